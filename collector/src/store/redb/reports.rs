//! Reports: planned by their caller against a read snapshot, applied by the writer.
//!
//! A report is planned (stored servers read and decoded, scored, combined, encoded)
//! by its caller against a read snapshot, not on the writer thread; the writer applies
//! the plan if the agent's `inventory_rev` and the organisation's policy are still what
//! the plan read, and plans again inside the transaction if not.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId};
use mcpwatch_protocol::risk;
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::ReportResponse;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::RedbStore;
use super::schema::{AGENT_SERVERS, Bytes, INVENTORY_REV, POLICIES, SERVERS, agent_key, decode};
use super::{agents, alerts, servers};
use crate::ingest::{self, agent::AgentReport};
use crate::model::OrgPolicy;
use crate::store::{ReportInput, Result};

/// Reports of at most this many servers are planned on the request's own thread.
const PLAN_ON_CALLER_MAX: usize = 100;

/// A report planned against one read of the agent's inventory.
pub(super) struct PreparedReport {
    /// The agent's inventory revision and the policy record the plan read.
    revision: u64,
    policy: Option<Vec<u8>>,
    plan: ingest::Plan,
    combinations: Vec<risk::Combination>,
    /// The plan's writes, encoded.
    encoded: Vec<Vec<u8>>,
}

/// The tables [`prepare`] reads, opened in a read or a write transaction.
macro_rules! planning_tables {
    ($txn:expr) => {
        (
            &$txn.open_table(AGENT_SERVERS)?,
            &$txn.open_table(SERVERS)?,
            &$txn.open_table(POLICIES)?,
            &$txn.open_table(INVENTORY_REV)?,
        )
    };
}

/// Plan a snapshot against the agent's stored servers, combine, and encode the writes.
fn prepare<I, S, P, R>(
    (identity, stored, policies, revisions): (&I, &S, &P, &R),
    (org, agent): (OrgId, AgentId),
    snapshot: Vec<ServerRecord>,
    now: DateTime<Utc>,
) -> Result<PreparedReport>
where
    I: ReadableTable<Bytes, Bytes>,
    S: ReadableTable<Bytes, Bytes>,
    P: ReadableTable<Bytes, Bytes>,
    R: ReadableTable<Bytes, u64>,
{
    let revision = servers::revision_of(revisions, &agent_key(org, agent))?;
    let existing = agents::agent_servers(identity, stored, org, agent)?;
    let policy_bytes = policies
        .get(org.to_bytes().as_slice())?
        .map(|v| v.value().to_vec());
    let policy: OrgPolicy = match &policy_bytes {
        Some(bytes) => decode(bytes)?,
        None => OrgPolicy::default(),
    };
    let mut plan = ingest::plan(org, agent, existing, snapshot, &policy, now);
    let combinations = ingest::combine(&mut plan, now);
    let encoded = plan
        .writes
        .iter()
        .map(|w| super::server_value::encode(&w.after))
        .collect::<Result<_>>()?;
    Ok(PreparedReport {
        revision,
        policy: policy_bytes,
        plan,
        combinations,
        encoded,
    })
}

/// Whether what `prepared` read (the agent's inventory revision, the policy) is
/// still what is stored.
fn still_current(
    txn: &WriteTransaction,
    org: OrgId,
    agent: AgentId,
    prepared: &PreparedReport,
) -> Result<bool> {
    let revision = servers::revision_of(&txn.open_table(INVENTORY_REV)?, &agent_key(org, agent))?;
    let policies = txn.open_table(POLICIES)?;
    let policy = policies.get(org.to_bytes().as_slice())?;
    Ok(prepared.revision == revision
        && prepared.policy.as_deref() == policy.as_ref().map(|v| v.value()))
}

/// Apply a prepared report inside the writer's transaction: as prepared when still
/// current, planned again otherwise.
fn commit(
    txn: &WriteTransaction,
    (org, agent): (OrgId, AgentId),
    snapshot: Vec<ServerRecord>,
    report: AgentReport,
    prepared: PreparedReport,
) -> Result<ReportResponse> {
    let mut record = agents::agent_for_write(txn, org, agent)?;
    agents::heard_from(txn, &mut record)?;
    let PreparedReport {
        plan,
        combinations,
        encoded,
        ..
    } = if still_current(txn, org, agent, &prepared)? {
        prepared
    } else {
        // Something wrote the agent's servers or the policy since: plan again.
        prepare(
            planning_tables!(txn),
            (org, agent),
            snapshot,
            report.received_at,
        )?
    };
    servers::put_encoded_servers(txn, &plan.writes, &encoded)?;
    let raised = ingest::agent::reported(&mut record, report, combinations, plan.active_count);
    // The agent first, so that the alerts' events show it as just reported.
    agents::put_agent(txn, &record)?;
    // The servers and the agent as just stored: the alerts' events show them as they
    // are, without reading them back.
    let written: std::collections::HashMap<_, _> = if plan.alerts.is_empty() && raised.is_empty() {
        std::collections::HashMap::new()
    } else {
        plan.writes
            .iter()
            .map(|w| &w.after)
            .chain(&plan.untouched)
            .map(|s| (s.id, s))
            .collect()
    };
    for alert in plan.alerts.into_iter().chain(raised) {
        let in_hand = alerts::InHand {
            server: alert.server_id.and_then(|id| written.get(&id).copied()),
            agent: Some(&record),
        };
        alerts::raise_with(txn, alert, in_hand)?;
    }
    Ok(plan.outcome)
}

impl RedbStore {
    /// Plan a report against a read snapshot (the heavy part: decode, score, combine,
    /// encode), so that the writer only applies it. A usual report is planned on the
    /// calling thread (a hop to the blocking pool would cost more than the work); a
    /// large one, which would hold a request thread for milliseconds, on the blocking
    /// pool.
    pub(super) async fn prepare_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: &ReportInput,
    ) -> Result<PreparedReport> {
        let (snapshot, now) = (report.servers.clone(), report.received_at);
        let plan = move |txn: &ReadTransaction| {
            prepare(planning_tables!(txn), (org, agent), snapshot, now)
        };
        if report.servers.len() <= PLAN_ON_CALLER_MAX {
            self.read_now(plan)
        } else {
            self.read(plan).await
        }
    }

    /// Apply a prepared report in one write job.
    pub(super) async fn commit_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
        prepared: PreparedReport,
    ) -> Result<ReportResponse> {
        let (snapshot, report) = report.split();
        self.write(move |txn| commit(txn, (org, agent), snapshot, report, prepared))
            .await
    }
}
