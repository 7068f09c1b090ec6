//! Background jobs and their one scheduler: saving agent presence and when API tokens
//! were last used, counting server changes into the census, marking silent agents,
//! rescoring servers under newer rules or policy, and removing audit log entries past
//! their retention.
//!
//! [`run`] is one task that takes turns: a rescoring pass runs a batch per turn, so
//! that presence is still saved and silent agents still swept while a large database
//! is rescored.

use std::time::Duration;

use chrono::Utc;
use mcpwatch_protocol::ids::{OrgId, ServerId};
use tokio::time::{Interval, MissedTickBehavior};

use crate::ingest::agent::{Resumed, silence_cutoff};
use crate::state::SharedState;

/// How often in-memory presence is written to the store.
pub const PRESENCE_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// How often queued server changes are counted into the census.
const CENSUS_INTERVAL: Duration = Duration::from_secs(1);
/// The most queued changes counted in one turn: the census keeps up with 20,000
/// server changes a second (seeding a large fleet) and catches up after a burst.
const CENSUS_PER_TURN: usize = 20_000;
/// How often old audit entries are removed, and how many per transaction.
const AUDIT_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Agents visited, and alerts read, per retention transaction: small, so that reports
/// waiting behind one wait little.
const RETENTION_AGENTS: usize = 20;
const RETENTION_ALERTS: usize = 1000;
const AUDIT_PRUNE_BATCH: usize = 1000;
/// Agents marked silent per transaction (each has its servers rewritten as dormant:
/// few, so that reports waiting behind one wait little), and per turn (the rest wait
/// for the next sweep).
const SILENT_BATCH: usize = 100;
const SILENT_PER_TURN: usize = 10_000;
/// Servers rescored per turn.
const RESCORE_BATCH: usize = 500;

fn ticker(every: Duration) -> Interval {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// A rescoring pass in progress.
#[derive(Default)]
struct Pass {
    cursor: Option<(OrgId, ServerId)>,
    rescored: usize,
}

/// Run every background job until the task is dropped. Rescoring runs once at start
/// and again whenever [`crate::state::AppState::rescore_wanted`] is notified (a
/// policy change). `resumed`: when this start began listening, and the newest time it
/// found an agent heard from (the time between is not silence).
pub async fn run(state: SharedState, resumed: Option<Resumed>) {
    let threshold = state.settings.dormant_after;
    if let Some(r) = resumed.filter(|r| r.unheard() >= chrono::Duration::seconds(1)) {
        tracing::info!(
            last_heard = %r.last_heard,
            unheard_secs = r.unheard().num_seconds(),
            dormant_after_secs = threshold.as_secs(),
            "No agent was heard from for a while before this start; that time does not count as silence."
        );
    }
    let mut flush = ticker(PRESENCE_FLUSH_INTERVAL);
    let mut sweep = ticker((threshold / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)));
    let mut audit = ticker(AUDIT_PRUNE_INTERVAL);
    let mut census = ticker(CENSUS_INTERVAL);
    state.rescore_wanted.notify_one();
    let mut pass: Option<Pass> = None;
    loop {
        let rescoring = pass.is_some();
        tokio::select! {
            biased;
            _ = flush.tick() => {
                state.presence.flush(state.store.as_ref()).await;
                state.token_use.flush(state.store.as_ref()).await;
                if state.store.is_shared() {
                    presence_from_others(&state).await;
                }
            }
            // With several instances on one database, one runs these at a time.
            _ = census.tick() => if state.store.lead().await {
                drain_census(&state).await;
            },
            _ = sweep.tick() => if state.store.lead().await {
                sweep_silent(&state, resumed).await;
            } else {
                state.presence.flush(state.store.as_ref()).await;
            },
            _ = audit.tick() => if state.store.lead().await {
                prune_audit(&state).await;
                retention(&state).await;
            },
            () = state.rescore_wanted.notified() => {
                // A pass in progress starts over: the new policy applies to all.
                pass = Some(Pass::default());
            }
            () = std::future::ready(()), if rescoring => {
                // Any instance rescores (the one whose policy changed): each server is
                // read again and rescored in the writing transaction, so two at once
                // do no harm.
                if let Some(current) = pass.take() {
                    pass = rescore_batch(&state, current).await;
                }
            }
        }
    }
}

/// Read back when agents were heard from by other instances on the same database
/// (they flush every [`PRESENCE_FLUSH_INTERVAL`]), so that every instance shows
/// them online.
async fn presence_from_others(state: &SharedState) {
    let since =
        Utc::now() - chrono::Duration::from_std(PRESENCE_FLUSH_INTERVAL * 3).unwrap_or_default();
    match state.store.agents_seen_since(since).await {
        Ok(seen) => state.presence.load(seen),
        Err(e) => tracing::debug!(error = %e, "Cannot read presence from the store."),
    }
}

/// Save presence, then mark agents silent longer than the dormancy threshold (of the
/// time the collector was listening: see [`silence_cutoff`]), so that their servers
/// show as dormant.
async fn sweep_silent(state: &SharedState, resumed: Option<Resumed>) {
    // Save in-memory last-seen times first, so an agent heard from a moment ago is
    // not taken for silent.
    state.presence.flush(state.store.as_ref()).await;
    let Ok(threshold) = chrono::Duration::from_std(state.settings.dormant_after) else {
        return;
    };
    for _ in 0..SILENT_PER_TURN / SILENT_BATCH {
        let now = Utc::now();
        let cutoff = silence_cutoff(now, threshold, resumed);
        match state
            .store
            .sweep_silent_agents(cutoff, now, SILENT_BATCH)
            .await
        {
            Ok(marked) => {
                let more = marked.len() >= SILENT_BATCH;
                for (org, agent) in marked {
                    tracing::info!(%org, %agent, "Agent silent beyond the dormancy threshold; its servers are now dormant.");
                }
                if !more {
                    return;
                }
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Sweeping silent agents failed; will retry.");
                return;
            }
        }
    }
}

/// Count queued server changes into the census, a batch per transaction (short, so
/// that reports queued behind one on the writer wait little), up to
/// [`CENSUS_PER_TURN`] changes a turn.
async fn drain_census(state: &SharedState) {
    let batch = crate::store::redb::CENSUS_BATCH;
    for _ in 0..CENSUS_PER_TURN / batch {
        match state.store.drain_census(batch).await {
            Ok(n) if n >= batch => tokio::task::yield_now().await,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "Counting server changes into the census failed; will retry.");
                return;
            }
        }
    }
}

/// Remove audit entries past the retention, a batch per transaction so that reports
/// never wait long behind it.
async fn prune_audit(state: &SharedState) {
    let before = Utc::now() - chrono::Duration::days(i64::from(state.settings.retain_audit_days));
    let mut removed = 0;
    loop {
        match state.store.prune_audit(before, AUDIT_PRUNE_BATCH).await {
            Ok(n) => {
                removed += n;
                if n < AUDIT_PRUNE_BATCH {
                    break;
                }
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Removing old audit log entries failed; will retry.");
                break;
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            entries = removed,
            days = state.settings.retain_audit_days,
            "Removed audit log entries past their retention."
        );
    }
}

/// One batch of a rescoring pass; answers the pass if it is not done. A failure ends
/// the pass (the rest is rescored at the next start or policy change).
/// Delete dormant servers and dismissed alerts past their retention, a batch at a
/// time.
async fn retention(state: &SharedState) {
    let now = Utc::now();
    let days = |d: u32| now - chrono::Duration::days(i64::from(d));
    let (dormant_before, dismissed_before) = (
        days(state.settings.retain_dormant_days),
        days(state.settings.retain_alerts_days),
    );
    let (mut servers, mut alerts, mut dismissed) = (0, 0, 0);
    let mut cursor = None;
    loop {
        match state
            .store
            .prune_dormant_servers(dormant_before, cursor, RETENTION_AGENTS)
            .await
        {
            Ok((s, a, next)) => {
                (servers, alerts) = (servers + s, alerts + a);
                let Some(next) = next else { break };
                cursor = Some(next);
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Deleting dormant servers past their retention failed; will retry.");
                break;
            }
        }
    }
    let mut cursor = None;
    loop {
        match state
            .store
            .prune_dismissed_alerts(dismissed_before, cursor, RETENTION_ALERTS)
            .await
        {
            Ok((n, next)) => {
                dismissed += n;
                let Some(next) = next else { break };
                cursor = Some(next);
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Deleting dismissed alerts past their retention failed; will retry.");
                break;
            }
        }
    }
    if servers + dismissed > 0 {
        tracing::info!(
            servers,
            alerts_of_servers = alerts,
            dismissed_alerts = dismissed,
            dormant_days = state.settings.retain_dormant_days,
            alerts_days = state.settings.retain_alerts_days,
            "Deleted what is past its retention."
        );
    }
}

async fn rescore_batch(state: &SharedState, mut pass: Pass) -> Option<Pass> {
    match state
        .store
        .rescore_outdated(pass.cursor, RESCORE_BATCH, Utc::now())
        .await
    {
        Ok((n, next)) => {
            pass.rescored += n;
            if next.is_some() {
                pass.cursor = next;
                return Some(pass);
            }
            if pass.rescored > 0 {
                tracing::info!(
                    servers = pass.rescored,
                    rules_version = mcpwatch_protocol::risk::RULES_VERSION,
                    "Rescored servers under updated rules."
                );
            }
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "Rescoring servers under updated rules failed; will retry at next start or policy change.");
            None
        }
    }
}
