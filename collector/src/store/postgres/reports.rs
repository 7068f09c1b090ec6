//! Reports: planned by their caller against a read of the agent's servers, applied
//! by the writer if the agent's inventory revision and the organisation's policy
//! version are still what the plan read, and planned again inside the transaction
//! (with the agent's rows locked) if not.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId};
use mcpwatch_protocol::risk;
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::ReportResponse;

use super::sql::{Db, get, row};
use super::{agents, alerts, servers};
use crate::ingest::{self, agent::AgentReport};
use crate::store::{Error, Result};

/// A report planned against one read of the agent's inventory.
pub(super) struct PreparedReport {
    /// The agent's inventory revision and the policy version the plan read.
    revision: (i64, i64),
    plan: ingest::Plan,
    combinations: Vec<risk::Combination>,
}

/// The agent's inventory revision and its organisation's policy version.
async fn revision(db: &Db, org: OrgId, agent: AgentId, lock: bool) -> Result<(i64, i64)> {
    let sql = if lock {
        "SELECT a.inventory_rev, COALESCE((SELECT version FROM policies WHERE org = $1), 0) \
         FROM agents a WHERE a.org = $1 AND a.id = $2 FOR UPDATE"
    } else {
        "SELECT a.inventory_rev, COALESCE((SELECT version FROM policies WHERE org = $1), 0) \
         FROM agents a WHERE a.org = $1 AND a.id = $2"
    };
    let found = row(db, sql, &[&org.0, &agent.0])
        .await?
        .ok_or(Error::NotFound)?;
    Ok((get(&found, 0)?, get(&found, 1)?))
}

/// Plan a snapshot against the agent's stored servers and combine.
pub(super) async fn prepare(
    db: &Db,
    (org, agent): (OrgId, AgentId),
    snapshot: Vec<ServerRecord>,
    now: DateTime<Utc>,
    lock: bool,
) -> Result<PreparedReport> {
    let revision = revision(db, org, agent, lock).await?;
    let existing = servers::agent_servers(db, org, agent, lock).await?;
    let policy = servers::policy_of(db, org).await?;
    let mut plan = ingest::plan(org, agent, existing, snapshot, &policy, now);
    let combinations = ingest::combine(&mut plan, now);
    Ok(PreparedReport {
        revision,
        plan,
        combinations,
    })
}

/// Apply a prepared report inside the writer's transaction: as prepared when still
/// current, planned again otherwise.
pub(super) async fn commit(
    db: &Db,
    (org, agent): (OrgId, AgentId),
    snapshot: Vec<ServerRecord>,
    report: AgentReport,
    prepared: PreparedReport,
) -> Result<ReportResponse> {
    // Locks the agent's row: reports of one agent on several instances go one by one.
    let mut record = agents::agent_for_write(db, org, agent).await?;
    agents::heard_from(db, &mut record).await?;
    let current = revision(db, org, agent, false).await?;
    let PreparedReport {
        plan, combinations, ..
    } = if prepared.revision == current {
        prepared
    } else {
        // Something wrote the agent's servers or the policy since: plan again.
        prepare(db, (org, agent), snapshot, report.received_at, true).await?
    };
    if !plan.writes.is_empty() {
        servers::store_servers(db, &plan.writes).await?;
        servers::bump_revision(db, org, agent).await?;
    }
    let raised = ingest::agent::reported(&mut record, report, combinations, plan.active_count);
    // The agent first, so that the alerts' events show it as just reported.
    agents::put_agent(db, &record).await?;
    for alert in plan.alerts.iter().chain(&raised) {
        alerts::raise(db, alert).await?;
    }
    Ok(plan.outcome)
}

impl super::PgStore {
    /// Plan a report against a read of the agent's servers (off the writer).
    pub(super) async fn prepare_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: &crate::store::ReportInput,
    ) -> Result<PreparedReport> {
        let db = self.db().await?;
        prepare(
            &db,
            (org, agent),
            report.servers.clone(),
            report.received_at,
            false,
        )
        .await
    }

    /// Apply a prepared report in the writer's next transaction.
    pub(super) async fn commit_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: crate::store::ReportInput,
        prepared: PreparedReport,
    ) -> Result<ReportResponse> {
        let (snapshot, report) = report.split();
        self.writer
            .write(move |db| {
                Box::pin(async move { commit(db, (org, agent), snapshot, report, prepared).await })
            })
            .await
    }

    /// [`crate::store::Store::apply_report`] with `meanwhile` awaited between planning
    /// and applying, as when another write lands while a report is being planned.
    #[cfg(test)]
    pub async fn apply_report_racing(
        &self,
        org: OrgId,
        agent: AgentId,
        report: crate::store::ReportInput,
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> Result<ReportResponse> {
        let prepared = self.prepare_report(org, agent, &report).await?;
        meanwhile.await;
        self.commit_report(org, agent, report, prepared).await
    }
}
