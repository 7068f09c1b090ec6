//! Agent presence: when each agent was last heard from. Heartbeats update memory only;
//! [`flush_loop`] writes the new times to the store every few seconds in one batch, so
//! frequent heartbeats cost no fsync each, and a restart loses at most one interval
//! (an agent is then shown with a slightly older last-seen time, never offline forever).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId};

use crate::store::Store;

#[derive(Default)]
pub struct Presence {
    seen: Mutex<HashMap<AgentId, Seen>>,
}

struct Seen {
    org: OrgId,
    at: DateTime<Utc>,
    dirty: bool,
}

impl Presence {
    /// Note that an agent was heard from.
    pub fn record(&self, org: OrgId, agent: AgentId, at: DateTime<Utc>) {
        if let Ok(mut seen) = self.seen.lock() {
            let entry = seen.entry(agent).or_insert(Seen {
                org,
                at,
                dirty: true,
            });
            if at >= entry.at {
                entry.at = at;
                entry.dirty = true;
            }
        }
    }

    /// When the agent was last heard from since the collector started.
    pub fn last_seen(&self, agent: AgentId) -> Option<DateTime<Utc>> {
        self.seen.lock().ok()?.get(&agent).map(|s| s.at)
    }

    /// Times read from the store at start (already stored, so not to be flushed).
    pub fn load(&self, known: Vec<(OrgId, AgentId, DateTime<Utc>)>) {
        if let Ok(mut seen) = self.seen.lock() {
            for (org, agent, at) in known {
                seen.entry(agent).or_insert(Seen {
                    org,
                    at,
                    dirty: false,
                });
            }
        }
    }

    /// How many of `org`'s agents were heard from at or after `since` (the dashboard's
    /// online count, without reading every agent record).
    pub fn count_since(&self, org: OrgId, since: DateTime<Utc>) -> u64 {
        self.seen.lock().map_or(0, |seen| {
            seen.values()
                .filter(|s| s.org == org && s.at >= since)
                .count() as u64
        })
    }

    /// Forget a deleted agent.
    pub fn forget(&self, agent: AgentId) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(&agent);
        }
    }

    /// The times not yet written to the store.
    fn take_dirty(&self) -> Vec<(OrgId, AgentId, DateTime<Utc>)> {
        let Ok(mut seen) = self.seen.lock() else {
            return Vec::new();
        };
        seen.iter_mut()
            .filter(|(_, s)| s.dirty)
            .map(|(id, s)| {
                s.dirty = false;
                (s.org, *id, s.at)
            })
            .collect()
    }

    /// Write the pending times to the store now.
    pub async fn flush(&self, store: &dyn Store) {
        let batch = self.take_dirty();
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        if let Err(e) = store.touch_agents(batch).await {
            tracing::warn!(error = %e, agents = n, "Agent last-seen times could not be saved; will retry.");
            // They stay in memory; the next heartbeat marks them dirty again.
        }
    }
}

/// Every so often, save presence and mark agents silent longer than the dormancy
/// threshold, so that their servers show as dormant. Runs until the task is dropped.
pub async fn sweep_loop(state: Arc<crate::state::AppState>) {
    let threshold = state.settings.dormant_after;
    let every = (threshold / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Save in-memory last-seen times first, so an agent heard from a moment ago is
        // not taken for silent.
        state.presence.flush(state.store.as_ref()).await;
        let Ok(threshold) = chrono::Duration::from_std(threshold) else {
            return;
        };
        match state
            .store
            .sweep_silent_agents(Utc::now() - threshold)
            .await
        {
            Ok(marked) => {
                for (org, agent) in marked {
                    tracing::info!(%org, %agent, "Agent silent beyond the dormancy threshold; its servers are now dormant.");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Sweeping silent agents failed; will retry."),
        }
    }
}

/// Rescore, in batches, every stored server scored by an older rule set. Runs once at
/// start, beside the API; a failure is logged and the rest is rescored at next start.
pub async fn rescore_outdated(state: Arc<crate::state::AppState>) {
    let mut cursor = None;
    let mut total = 0usize;
    loop {
        match state.store.rescore_outdated(cursor, 500).await {
            Ok((n, next)) => {
                total += n;
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Rescoring servers under updated rules failed; will retry at next start.");
                return;
            }
        }
        tokio::task::yield_now().await;
    }
    if total > 0 {
        tracing::info!(
            servers = total,
            rules_version = mcpwatch_protocol::risk::RULES_VERSION,
            "Rescored servers under updated rules."
        );
    }
}

/// Flush presence to the store every `interval` until the task is dropped.
pub async fn flush_loop(presence: Arc<crate::state::AppState>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        presence.presence.flush(presence.store.as_ref()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_time_wins_and_dirty_entries_are_taken_once() {
        let p = Presence::default();
        let (org, agent) = (OrgId::new(), AgentId::new());
        let t1 = Utc::now();
        let t0 = t1 - chrono::Duration::seconds(10);
        p.record(org, agent, t1);
        p.record(org, agent, t0);
        assert_eq!(p.last_seen(agent), Some(t1));
        assert_eq!(p.take_dirty(), vec![(org, agent, t1)]);
        assert!(p.take_dirty().is_empty());
        p.forget(agent);
        assert_eq!(p.last_seen(agent), None);
    }

    #[test]
    fn the_online_count_is_per_organisation_and_includes_times_loaded_at_start() {
        let p = Presence::default();
        let (org, other) = (OrgId::new(), OrgId::new());
        let now = Utc::now();
        let old = now - chrono::Duration::minutes(10);
        p.load(vec![
            (org, AgentId::new(), now),
            (org, AgentId::new(), old),
            (other, AgentId::new(), now),
        ]);
        p.record(org, AgentId::new(), now);
        let since = now - chrono::Duration::minutes(3);
        assert_eq!(p.count_since(org, since), 2);
        assert_eq!(p.count_since(other, since), 1);
        // Loaded times are already stored: nothing to flush but the new heartbeat.
        assert_eq!(p.take_dirty().len(), 1);
    }
}
