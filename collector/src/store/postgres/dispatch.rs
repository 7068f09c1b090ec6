//! The [`Store`] implementation: reads on a pooled connection, writes through the
//! group-commit writer; each method hands over to its resource's module.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{
    AgentId, AlertId, ApiTokenId, ChannelId, EnrollSecretId, OrgId, ServerId, SessionId, UserId,
};
use mcpwatch_protocol::wire::ReportResponse;

use super::{
    PgStore, accounts, agents, alerts, audit, census, events, notifications, servers, tokens,
};
use crate::model::{
    Agent, Alert, ApiToken, EnrollSecret, LevelCounts, Org, OrgPolicy, Server, ServerChange,
    ServerStatus, Session, User,
};
use crate::notify::{Channel, Delivery};
use crate::store::{
    AlertQuery, AuditQuery, CensusQuery, DeliveryQuery, Error, FleetGauges, HeartbeatUpdate,
    OrgPatch, Page, ReportInput, Result, ServerQuery, Store, UserPatch,
};

/// Servers an export reads ahead of its writer: one page.
const EXPORT_BUFFER: usize = 50;

/// Census changes counted per transaction.
const CENSUS_BATCH: usize = 500;

/// Run `$body` in the writer's next transaction with `$db` its connection.
macro_rules! write {
    ($self:ident, |$db:ident| $body:expr) => {
        $self
            .writer
            .write(move |$db| Box::pin(async move { $body }))
            .await
    };
}

/// Run `$body` on a pooled connection `$db`.
macro_rules! read {
    ($self:ident, |$db:ident| $body:expr) => {{
        let $db = $self.db().await?;
        $body
    }};
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        read!(self, |db| {
            super::sql::row(&db, "SELECT 1", &[]).await?;
            Ok(())
        })
    }

    async fn lead(&self) -> bool {
        PgStore::lead(self).await
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn claim_nonce(
        &self,
        agent: AgentId,
        nonce: u128,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        PgStore::claim_nonce(self, agent, nonce, expires_at).await
    }

    async fn shared_secret(&self, name: &str, made: [u8; 32]) -> Result<Option<[u8; 32]>> {
        PgStore::shared_secret(self, name, made).await.map(Some)
    }

    async fn create_org_with_admin(
        &self,
        org: Org,
        admin: User,
        only_if_first: bool,
    ) -> Result<()> {
        write!(self, |db| accounts::create_org_with_admin(
            db,
            &org,
            &admin,
            only_if_first
        )
        .await)
    }

    async fn get_org(&self, org: OrgId) -> Result<Org> {
        read!(self, |db| accounts::get_org(&db, org).await)
    }

    async fn update_org(&self, org: OrgId, patch: OrgPatch, now: DateTime<Utc>) -> Result<Org> {
        write!(self, |db| accounts::update_org(db, org, patch, now).await)
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        read!(self, |db| accounts::find_user_by_email(&db, email).await)
    }

    async fn get_user(&self, org: OrgId, user: UserId) -> Result<User> {
        read!(self, |db| accounts::get_user(&db, org, user).await)
    }

    async fn list_users(&self, org: OrgId) -> Result<Vec<User>> {
        read!(self, |db| accounts::list_users(&db, org).await)
    }

    async fn create_user(&self, org: OrgId, user: User) -> Result<()> {
        write!(self, |db| accounts::create_user(db, org, &user).await)
    }

    async fn update_user(
        &self,
        org: OrgId,
        user: UserId,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User> {
        write!(self, |db| accounts::update_user(db, org, user, patch, now)
            .await)
    }

    async fn delete_user(&self, org: OrgId, user: UserId) -> Result<()> {
        write!(self, |db| accounts::delete_user(db, org, user).await)
    }

    async fn create_session(&self, session: Session) -> Result<()> {
        write!(self, |db| accounts::create_session(db, &session).await)
    }

    async fn get_session(&self, session: SessionId) -> Result<(Session, User)> {
        read!(self, |db| accounts::get_session(&db, session).await)
    }

    async fn rotate_session(
        &self,
        session: SessionId,
        expected_jti: &str,
        new_jti: String,
        expires_at: DateTime<Utc>,
    ) -> Result<Session> {
        let expected = expected_jti.to_owned();
        write!(self, |db| {
            accounts::rotate_session(db, session, &expected, new_jti, expires_at).await
        })?
        .ok_or(Error::NotFound)
    }

    async fn delete_session(&self, session: SessionId) -> Result<()> {
        write!(self, |db| accounts::delete_session(db, session).await)
    }

    async fn delete_user_sessions(
        &self,
        org: OrgId,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<()> {
        write!(self, |db| accounts::end_sessions(db, org, user, keep).await)
    }

    async fn create_agent(&self, agent: Agent) -> Result<()> {
        write!(self, |db| agents::create_agent(db, &agent).await)
    }

    async fn enroll_agent(
        &self,
        secret_hash: [u8; 32],
        agent: Agent,
        now: DateTime<Utc>,
    ) -> Result<Agent> {
        write!(self, |db| agents::enroll_agent(db, secret_hash, agent, now)
            .await)
    }

    async fn find_agent_by_key(&self, key_hash: [u8; 32]) -> Result<Option<Agent>> {
        read!(self, |db| agents::find_agent_by_key(&db, key_hash).await)
    }

    async fn get_agent(&self, org: OrgId, agent: AgentId) -> Result<Agent> {
        read!(self, |db| agents::get_agent(&db, org, agent).await)
    }

    async fn list_agents(&self, org: OrgId) -> Result<Vec<Agent>> {
        read!(self, |db| agents::list_agents(&db, org).await)
    }

    async fn agent_count(&self, org: OrgId) -> Result<u64> {
        read!(self, |db| agents::agent_count(&db, org).await)
    }

    async fn delete_agent(&self, org: OrgId, agent: AgentId, now: DateTime<Utc>) -> Result<()> {
        write!(self, |db| agents::delete_agent(db, org, agent, now).await)
    }

    async fn record_heartbeat(
        &self,
        org: OrgId,
        agent: AgentId,
        update: HeartbeatUpdate,
    ) -> Result<Agent> {
        write!(self, |db| agents::record_heartbeat(db, org, agent, update)
            .await)
    }

    async fn newest_silent_since(&self) -> Result<Option<DateTime<Utc>>> {
        read!(self, |db| agents::newest_silent_since(&db).await)
    }

    async fn sweep_silent_agents(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(OrgId, AgentId)>> {
        let candidates = read!(self, |db| agents::silent_agents(&db, cutoff, limit).await)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        write!(self, |db| agents::mark_silent(db, candidates, cutoff, now)
            .await)
    }

    async fn touch_agents(&self, seen: Vec<(OrgId, AgentId, DateTime<Utc>)>) -> Result<()> {
        write!(self, |db| agents::touch_agents(db, seen).await)
    }

    async fn agents_seen_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(OrgId, AgentId, DateTime<Utc>)>> {
        read!(self, |db| agents::agents_seen_since(&db, since).await)
    }

    async fn create_enroll_secret(&self, secret: EnrollSecret) -> Result<()> {
        write!(self, |db| agents::create_enroll_secret(db, &secret).await)
    }

    async fn list_enroll_secrets(&self, org: OrgId) -> Result<Vec<EnrollSecret>> {
        read!(self, |db| agents::list_enroll_secrets(&db, org).await)
    }

    async fn delete_enroll_secret(&self, org: OrgId, id: EnrollSecretId) -> Result<()> {
        write!(self, |db| agents::delete_enroll_secret(db, org, id).await)
    }

    async fn apply_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
    ) -> Result<ReportResponse> {
        let prepared = self.prepare_report(org, agent, &report).await?;
        self.commit_report(org, agent, report, prepared).await
    }

    async fn list_servers(&self, org: OrgId, query: ServerQuery) -> Result<Page<Server>> {
        read!(self, |db| servers::list_servers(&db, org, &query).await)
    }

    async fn get_server(&self, org: OrgId, server: ServerId) -> Result<Server> {
        read!(self, |db| servers::get_server(&db, org, server).await)
    }

    async fn server_changes(&self, org: OrgId, server: ServerId) -> Result<Vec<ServerChange>> {
        read!(self, |db| servers::server_changes(&db, org, server).await)
    }

    async fn set_server_verified(
        &self,
        org: OrgId,
        server: ServerId,
        verified: bool,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<Server> {
        write!(self, |db| {
            servers::set_server_verified(db, org, server, (verified, by, at)).await
        })
    }

    async fn export_servers(
        &self,
        org: OrgId,
        query: ServerQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Server>>> {
        let db = self.db().await?;
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
        tokio::spawn(async move {
            if let Err(e) = servers::export_servers(&db, org, &query, tx.clone()).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    async fn top_risks(&self, org: OrgId, limit: u64) -> Result<Vec<Server>> {
        let query = ServerQuery {
            status: Some(ServerStatus::Active),
            page: 1,
            page_size: limit,
            ..ServerQuery::default()
        };
        Ok(self.list_servers(org, query).await?.items)
    }

    async fn rescore_outdated(
        &self,
        cursor: Option<(OrgId, ServerId)>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<(usize, Option<(OrgId, ServerId)>)> {
        let scan_budget = limit.saturating_mul(20).max(1);
        let (keys, next) = read!(self, |db| {
            servers::outdated_servers(&db, cursor, limit, scan_budget).await
        })?;
        if keys.is_empty() {
            return Ok((0, next));
        }
        let rescored = write!(self, |db| servers::rescore_servers(db, keys, now).await)?;
        Ok((rescored, next))
    }

    async fn get_policy(&self, org: OrgId) -> Result<OrgPolicy> {
        read!(self, |db| servers::policy_of(&db, org).await)
    }

    async fn put_policy(&self, org: OrgId, policy: OrgPolicy) -> Result<OrgPolicy> {
        write!(self, |db| servers::put_policy(db, org, policy).await)
    }

    async fn server_counts(&self, org: OrgId) -> Result<LevelCounts> {
        read!(self, |db| servers::server_counts(&db, org).await)
    }

    async fn list_alerts(&self, org: OrgId, query: AlertQuery) -> Result<Page<Alert>> {
        read!(self, |db| alerts::list_alerts(&db, org, &query).await)
    }

    async fn dismiss_alert(
        &self,
        org: OrgId,
        alert: AlertId,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<Alert> {
        write!(self, |db| alerts::dismiss_alert(db, org, alert, (by, at))
            .await)
    }

    async fn dismiss_all_alerts(&self, org: OrgId, by: UserId, at: DateTime<Utc>) -> Result<u64> {
        write!(self, |db| alerts::dismiss_all_alerts(db, org, by, at).await)
    }

    async fn open_alert_count(&self, org: OrgId) -> Result<u64> {
        read!(self, |db| alerts::open_alert_count(&db, org).await)
    }

    async fn fleet_gauges(&self) -> Result<FleetGauges> {
        read!(self, |db| alerts::fleet_gauges(&db).await)
    }

    async fn snapshot(&self, _out: PathBuf) -> Result<u64> {
        Err(Error::Unavailable(
            "a collector on PostgreSQL is backed up with PostgreSQL's tools (pg_dump, or the \
             database's own backups), not by the collector"
                .into(),
        ))
    }

    async fn check(&self) -> Result<Vec<String>> {
        let mut problems = self.check_counts().await?;
        let watched = read!(self, |db| agents::silent_since_out_of_date(&db).await)?;
        if watched > 0 {
            problems.push(format!(
                "agents: {watched} with silent_since (when last heard from) out of date"
            ));
        }
        Ok(problems)
    }

    async fn space(&self) -> Result<Vec<crate::store::TableSpace>> {
        self.table_space().await
    }

    async fn prune_dormant_servers(
        &self,
        before: DateTime<Utc>,
        cursor: Option<Vec<u8>>,
        agents: usize,
    ) -> Result<(u64, u64, Option<Vec<u8>>)> {
        write!(self, |db| agents::prune_dormant(db, before, cursor, agents)
            .await)
    }

    async fn prune_dismissed_alerts(
        &self,
        before: DateTime<Utc>,
        cursor: Option<Vec<u8>>,
        rows: usize,
    ) -> Result<(u64, Option<Vec<u8>>)> {
        write!(self, |db| alerts::prune_dismissed(db, before, cursor, rows)
            .await)
    }

    async fn events_after(
        &self,
        org: OrgId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<crate::events::Event>> {
        read!(self, |db| events::events_after(&db, org, after, limit)
            .await)
    }

    fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    async fn create_channel(&self, channel: Channel) -> Result<()> {
        write!(self, |db| notifications::create_channel(db, &channel).await)
    }

    async fn list_channels(&self, org: OrgId) -> Result<Vec<Channel>> {
        read!(self, |db| notifications::list_channels(&db, org).await)
    }

    async fn get_channel(&self, org: OrgId, id: ChannelId) -> Result<Channel> {
        read!(self, |db| notifications::get_channel(&db, org, id).await)
    }

    async fn update_channel(&self, channel: Channel) -> Result<()> {
        write!(self, |db| notifications::update_channel(db, &channel).await)
    }

    async fn delete_channel(&self, org: OrgId, id: ChannelId) -> Result<()> {
        write!(self, |db| notifications::delete_channel(db, org, id).await)
    }

    async fn due_deliveries(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Delivery>> {
        read!(self, |db| notifications::due_deliveries(&db, before, limit)
            .await)
    }

    async fn next_delivery_due(&self) -> Result<Option<DateTime<Utc>>> {
        read!(self, |db| notifications::next_due(&db).await)
    }

    async fn record_attempt(&self, delivery: Delivery, failure: Option<Alert>) -> Result<()> {
        write!(self, |db| {
            notifications::record_attempt(db, &delivery, failure.as_ref()).await
        })
    }

    async fn list_deliveries(&self, org: OrgId, query: DeliveryQuery) -> Result<Page<Delivery>> {
        read!(self, |db| notifications::list_deliveries(&db, org, &query)
            .await)
    }

    async fn create_api_token(&self, token: ApiToken) -> Result<()> {
        write!(self, |db| tokens::create(db, &token).await)
    }

    async fn find_api_token(&self, hash: [u8; 32]) -> Result<Option<(ApiToken, User)>> {
        read!(self, |db| tokens::find(&db, hash).await)
    }

    async fn list_api_tokens(&self, org: OrgId, user: Option<UserId>) -> Result<Vec<ApiToken>> {
        read!(self, |db| tokens::list(&db, org, user).await)
    }

    async fn get_api_token(&self, org: OrgId, id: ApiTokenId) -> Result<ApiToken> {
        read!(self, |db| tokens::get(&db, org, id).await)
    }

    async fn delete_api_token(&self, org: OrgId, id: ApiTokenId) -> Result<ApiToken> {
        write!(self, |db| tokens::delete(db, org, id).await)
    }

    async fn touch_api_tokens(&self, used: Vec<(OrgId, ApiTokenId, DateTime<Utc>)>) -> Result<()> {
        write!(self, |db| tokens::touch(db, &used).await)
    }

    async fn record_audit(&self, entry: crate::audit::Entry) -> Result<()> {
        write!(self, |db| audit::record(db, &entry).await)
    }

    async fn list_audit(&self, org: OrgId, query: AuditQuery) -> Result<Page<crate::audit::Entry>> {
        read!(self, |db| audit::list(&db, org, &query).await)
    }

    async fn prune_audit(&self, before: DateTime<Utc>, limit: usize) -> Result<usize> {
        write!(self, |db| audit::prune(db, before, limit).await)
    }

    async fn drain_census(&self, limit: usize) -> Result<usize> {
        // Its own transaction on a pooled connection, beside the writer: counting
        // thousands of members must not hold up the reports queued behind it.
        let db = self.db().await?;
        db.batch_execute("BEGIN").await?;
        match census::drain(&db, limit).await {
            Ok(n) => {
                db.batch_execute("COMMIT").await?;
                Ok(n)
            }
            Err(e) => {
                let _ = db.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    async fn census(
        &self,
        org: OrgId,
        query: CensusQuery,
    ) -> Result<Page<(crate::census::Counts, Vec<crate::census::VersionHosts>)>> {
        // Every write committed before the read counted: with nothing queued, each is
        // already in the counts, and no drain (an exclusive lock) is taken.
        let listed = read!(self, |db| {
            if census::queued(&db).await? {
                None
            } else {
                Some(census::list(&db, org, &query).await?)
            }
        });
        if let Some(page) = listed {
            return Ok(page);
        }
        while self.drain_census(CENSUS_BATCH).await? >= CENSUS_BATCH {}
        read!(self, |db| census::list(&db, org, &query).await)
    }
}
