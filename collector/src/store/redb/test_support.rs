//! What the store's tests need to set up situations a running collector does not
//! make by itself: an old layout, a racing write, an old rule set.

use mcpwatch_protocol::ids::{AgentId, OrgId, ServerId};
use mcpwatch_protocol::risk::RiskLevel;
use mcpwatch_protocol::wire::ReportResponse;

use super::RedbStore;
use super::schema::{
    SERVER_CHANGES, SERVERS, get_json, keys_with_prefix, list_json, put_json, server_key,
};
use super::{migrate, servers};
use crate::ingest::ServerWrite;
use crate::model::{Server, ServerChange};
use crate::store::{Error, ReportInput, Result};

impl RedbStore {
    /// Put a server back into layout 1: its history inside its record, no
    /// `server_changes` rows, and the database marked as layout 1.
    pub async fn make_layout_1_for_test(&self, org: OrgId, server: ServerId) -> Result<()> {
        self.write(move |txn| {
            let key = server_key(org, server);
            let changes: Vec<ServerChange> = list_json(&txn.open_table(SERVER_CHANGES)?, &key)?;
            let rows = keys_with_prefix(&txn.open_table(SERVER_CHANGES)?, &key)?;
            let mut history = txn.open_table(SERVER_CHANGES)?;
            for k in rows {
                history.remove(k.as_slice())?;
            }
            drop(history);
            let mut record: serde_json::Value =
                get_json(&txn.open_table(SERVERS)?, &key)?.ok_or(Error::NotFound)?;
            if let Some(fields) = record.as_object_mut() {
                fields.remove("change_seq");
                fields.insert("changes".into(), serde_json::json!(changes));
            }
            put_json(txn, SERVERS, &key, &record)?;
            migrate::set_version(txn, 1)
        })
        .await
    }

    /// [`crate::store::Store::apply_report`] with `meanwhile` awaited between planning
    /// and applying, as when another write lands while a report is being planned.
    pub async fn apply_report_racing(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> Result<ReportResponse> {
        let prepared = self.prepare_report(org, agent, &report).await?;
        meanwhile.await;
        self.commit_report(org, agent, report, prepared).await
    }

    /// Pretend a stored server was scored by another rule set (for rescoring tests).
    pub async fn set_rules_version_for_test(
        &self,
        org: OrgId,
        server: ServerId,
        version: u32,
        score: u8,
    ) -> Result<()> {
        self.write(move |txn| {
            let before: Server = get_json(&txn.open_table(SERVERS)?, &server_key(org, server))?
                .ok_or(Error::NotFound)?;
            let mut after = before.clone();
            after.rules_version = version;
            after.risk_score = score;
            after.risk_level = RiskLevel::from_score(score);
            servers::put_server(txn, &ServerWrite::silent(Some(before), after))
        })
        .await
    }
}
