//! The store interface the handlers use, its error type and query types.
//!
//! Every method that reads or writes an organisation's data takes that organisation
//! first; there is no "get by id" across organisations. The only lookups that are not
//! scoped are the ones that find out *which* organisation a caller belongs to: a user
//! by email (login), a session by id, an agent by the hash of its API key, and an
//! enroll secret by its hash.
//!
//! [`redb::RedbStore`] is the embedded implementation; another backend implements
//! [`Store`] and passes the conformance tests in `tests.rs`.

pub mod postgres;
pub mod records;
pub mod redb;
pub mod tally;
#[cfg(test)]
pub mod test_pg;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{
    AgentId, AlertId, ApiTokenId, ChannelId, EnrollSecretId, OrgId, ServerId, SessionId, UserId,
};
use mcpwatch_protocol::risk::RiskLevel;
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::{ConfigError, ReportResponse};

pub use crate::ingest::agent::{AgentReport, HeartbeatUpdate};
use crate::model::{
    Agent, Alert, ApiToken, EnrollSecret, HostFacts, LevelCounts, Org, OrgPolicy, Role, Server,
    ServerChange, ServerStatus, Session, User,
};
use crate::notify::{Channel, Delivery, DeliveryStatus};

/// What can go wrong in the store, as the API needs to tell it apart.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The record does not exist in this organisation.
    #[error("not found")]
    NotFound,
    /// The write conflicts with what is stored (a taken email, the last admin, ...).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Registration is closed: an organisation already exists.
    #[error("registration is closed")]
    RegistrationClosed,
    /// The enroll secret is unknown or expired.
    #[error("enroll secret is not valid")]
    InvalidEnrollSecret,
    /// The disk holding the database is (nearly) full: writes are refused until
    /// space returns; reads go on.
    #[error("the disk holding the database is full")]
    StorageFull,
    /// The store is recovering from a storage failure (reopening the database), or
    /// its database cannot be reached (PostgreSQL), or a write collided with another
    /// instance's: the caller may try again.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else: the storage itself failed.
    #[error("storage failure: {0}")]
    Internal(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A storage failure described in words (no underlying error to keep).
    pub fn internal(what: impl Into<String>) -> Self {
        Self::Internal(std::sync::Arc::from(Box::<
            dyn std::error::Error + Send + Sync,
        >::from(what.into())))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Which way a list is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// What servers can be sorted by. Ties are broken by the server id (the order servers
/// were first seen): ascending for every field in either direction, except that
/// `risk_score:asc` reads the risk index backwards and so breaks ties by id descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSort {
    RiskScore,
    ServerName,
    Hostname,
    FirstSeenAt,
    LastSeenAt,
}

/// What alerts can be sorted by. Ties are broken by the alert id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSort {
    CreatedAt,
    UpdatedAt,
    Severity,
}

/// Figures across every organisation (`Store::fleet_gauges`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetGauges {
    pub servers: crate::model::LevelCounts,
    /// Critical, high, medium, low.
    pub open_alerts: [u64; 4],
    pub agents: u64,
    pub pending_deliveries: u64,
    /// The database's size on disk.
    pub database_bytes: u64,
}

/// What one table takes in the database (`Store::space`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSpace {
    pub table: String,
    pub entries: u64,
    /// Keys and values.
    pub stored_bytes: u64,
    /// The B-tree's own bytes and the unused space in its pages.
    pub overhead_bytes: u64,
}

/// Filters for listing servers. Pages start at 1.
#[derive(Debug, Clone, Default)]
pub struct ServerQuery {
    pub risk_level: Option<RiskLevel>,
    pub status: Option<ServerStatus>,
    pub agent_id: Option<AgentId>,
    /// Case-insensitive substring of the server name.
    pub search: Option<String>,
    /// `None`: highest risk first (level, then score), then first seen.
    pub sort: Option<(ServerSort, Direction)>,
    pub page: u64,
    pub page_size: u64,
}

/// Filters for listing alerts. Pages start at 1.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub dismissed: Option<bool>,
    pub severity: Option<RiskLevel>,
    /// `None`: newest first.
    pub sort: Option<(AlertSort, Direction)>,
    pub page: u64,
    pub page_size: u64,
}

/// A page of the census.
#[derive(Debug, Clone, Copy)]
pub struct CensusQuery {
    pub group: crate::census::Group,
    /// Sorted by hosts (else by key).
    pub by_hosts: bool,
    pub direction: Direction,
    pub page: u64,
    pub page_size: u64,
}

/// Filters for the audit log. Pages start at 1.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// The acting user, agent or token (a token's owner matches too).
    pub actor_id: Option<String>,
    pub action: Option<crate::audit::Action>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub page: u64,
    pub page_size: u64,
}

/// Filters for listing notification deliveries. Pages start at 1.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub channel_id: Option<ChannelId>,
    pub status: Option<DeliveryStatus>,
    pub page: u64,
    pub page_size: u64,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    pub password_hash: Option<String>,
}

impl UserPatch {
    /// Apply every field but the email (each backend keeps its email index with it).
    pub fn apply_except_email(self, user: &mut User, now: DateTime<Utc>) {
        let Self {
            email: _,
            full_name,
            role,
            is_active,
            password_hash,
        } = self;
        if let Some(name) = full_name {
            user.full_name = name;
        }
        if let Some(role) = role {
            user.role = role;
        }
        if let Some(active) = is_active {
            user.is_active = active;
        }
        if let Some(hash) = password_hash {
            user.password_hash = hash;
        }
        user.updated_at = now;
    }
}

/// Changes to an organisation.
#[derive(Debug, Clone, Default)]
pub struct OrgPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the address.
    pub alert_email: Option<Option<String>>,
}

/// A report to apply.
#[derive(Debug, Clone)]
pub struct ReportInput {
    pub servers: Vec<ServerRecord>,
    pub config_errors: Vec<ConfigError>,
    pub facts: HostFacts,
    pub sequence: Option<u64>,
    pub received_at: DateTime<Utc>,
}

impl ReportInput {
    /// The servers, and what the report says of its agent.
    pub fn split(self) -> (Vec<ServerRecord>, AgentReport) {
        let Self {
            servers,
            config_errors,
            facts,
            sequence,
            received_at,
        } = self;
        let agent = AgentReport {
            config_errors,
            facts,
            sequence,
            received_at,
        };
        (servers, agent)
    }
}

/// The storage the collector runs on.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Check that the store can be read and written.
    async fn ping(&self) -> Result<()>;

    /// `Err(why)` once the store has failed in a way it cannot recover from by itself
    /// (the process should be restarted); `Ok` while it works or is still recovering.
    fn alive(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    // What several instances on one database share (one instance: nothing to share).
    /// Whether this instance runs the background jobs (rescoring, the silent-agent
    /// sweep, retention, the census, notification delivery): with several instances
    /// on one database, one at a time.
    async fn lead(&self) -> bool {
        true
    }
    /// Whether other instances may write to this store (then presence is read back
    /// from it, see `jobs`).
    fn is_shared(&self) -> bool {
        false
    }
    /// Record a signed request's nonce, valid until `expires_at`; `false` when it was
    /// seen before by any instance. One instance keeps the replay guard in memory
    /// (see `state`), so the embedded store has nothing to add.
    async fn claim_nonce(
        &self,
        _agent: AgentId,
        _nonce: u128,
        _expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(true)
    }
    /// The secret every instance shares under `name` (the stored one, else `made`,
    /// stored now); `None` when the store keeps no shared secrets (the embedded store:
    /// the signing key is a file in the data dir).
    async fn shared_secret(&self, _name: &str, _made: [u8; 32]) -> Result<Option<[u8; 32]>> {
        Ok(None)
    }

    // Organisations and users.
    /// Create an organisation with its first admin. With `only_if_first`, refuse with
    /// [`Error::RegistrationClosed`] when any organisation exists (checked atomically).
    async fn create_org_with_admin(&self, org: Org, admin: User, only_if_first: bool)
    -> Result<()>;
    async fn get_org(&self, org: OrgId) -> Result<Org>;
    async fn update_org(&self, org: OrgId, patch: OrgPatch, now: DateTime<Utc>) -> Result<Org>;
    /// Find a user by (lowercased) email, for login.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn get_user(&self, org: OrgId, user: UserId) -> Result<User>;
    async fn list_users(&self, org: OrgId) -> Result<Vec<User>>;
    async fn create_user(&self, org: OrgId, user: User) -> Result<()>;
    /// Refuses with a conflict to leave the organisation without an active admin.
    async fn update_user(
        &self,
        org: OrgId,
        user: UserId,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User>;
    /// Also ends the user's sessions. Refuses to remove the last active admin.
    async fn delete_user(&self, org: OrgId, user: UserId) -> Result<()>;

    // Sessions.
    async fn create_session(&self, session: Session) -> Result<()>;
    /// A session and its user, for authenticating a token.
    async fn get_session(&self, session: SessionId) -> Result<(Session, User)>;
    /// Replace the session's refresh token id if `expected_jti` is current; if it is not
    /// (a refresh token used twice), end the session and answer `NotFound`.
    async fn rotate_session(
        &self,
        session: SessionId,
        expected_jti: &str,
        new_jti: String,
        expires_at: DateTime<Utc>,
    ) -> Result<Session>;
    async fn delete_session(&self, session: SessionId) -> Result<()>;
    /// End every session of a user except `keep`.
    async fn delete_user_sessions(
        &self,
        org: OrgId,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<()>;

    // Agents and enrollment.
    async fn create_agent(&self, agent: Agent) -> Result<()>;
    /// Create an agent from an enroll secret, atomically checking the secret.
    async fn enroll_agent(
        &self,
        secret_hash: [u8; 32],
        agent: Agent,
        now: DateTime<Utc>,
    ) -> Result<Agent>;
    /// Find an agent by the SHA-256 of its API key.
    async fn find_agent_by_key(&self, key_hash: [u8; 32]) -> Result<Option<Agent>>;
    async fn get_agent(&self, org: OrgId, agent: AgentId) -> Result<Agent>;
    async fn list_agents(&self, org: OrgId) -> Result<Vec<Agent>>;
    /// How many agents the organisation has (their keys counted, not read).
    async fn agent_count(&self, org: OrgId) -> Result<u64>;
    /// Removes the agent, its key and its servers.
    async fn delete_agent(&self, org: OrgId, agent: AgentId, now: DateTime<Utc>) -> Result<()>;
    async fn record_heartbeat(
        &self,
        org: OrgId,
        agent: AgentId,
        update: HeartbeatUpdate,
    ) -> Result<Agent>;
    /// Mark up to `limit` agents last seen before `cutoff` as stale, those silent
    /// longest first: their snapshot servers show as dormant until the agent is heard
    /// from again (heartbeat or report). Answers the agents marked (fewer than `limit`:
    /// no more were silent, or some were heard from meanwhile).
    async fn sweep_silent_agents(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(OrgId, AgentId)>>;
    /// The newest [`silent_since`](crate::ingest::agent::silent_since) of any agent
    /// that can become silent (`None`: there is none): read at start, to know how long
    /// nothing was heard before it.
    async fn newest_silent_since(&self) -> Result<Option<DateTime<Utc>>>;
    /// Persist last-seen times kept in memory. Unknown agents are skipped.
    async fn touch_agents(&self, seen: Vec<(OrgId, AgentId, DateTime<Utc>)>) -> Result<()>;
    /// Every agent heard from at or after `since`, with when (read once at start).
    async fn agents_seen_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(OrgId, AgentId, DateTime<Utc>)>>;
    async fn create_enroll_secret(&self, secret: EnrollSecret) -> Result<()>;
    async fn list_enroll_secrets(&self, org: OrgId) -> Result<Vec<EnrollSecret>>;
    async fn delete_enroll_secret(&self, org: OrgId, id: EnrollSecretId) -> Result<()>;

    // Inventory.
    /// Apply a full snapshot (see `ingest`); answers once it is durable.
    async fn apply_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
    ) -> Result<ReportResponse>;
    async fn list_servers(&self, org: OrgId, query: ServerQuery) -> Result<Page<Server>>;
    async fn get_server(&self, org: OrgId, server: ServerId) -> Result<Server>;
    /// A server's change history, oldest first (the newest `MAX_SERVER_CHANGES`).
    async fn server_changes(&self, org: OrgId, server: ServerId) -> Result<Vec<ServerChange>>;
    async fn set_server_verified(
        &self,
        org: OrgId,
        server: ServerId,
        verified: bool,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<Server>;
    /// Every server matching `query`'s filters (its sort and page are ignored), in risk
    /// order, read in one read transaction and handed over one at a time through a
    /// bounded channel: memory stays the same however many there are. Dropping the
    /// receiver stops the reading.
    async fn export_servers(
        &self,
        org: OrgId,
        query: ServerQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Server>>>;
    /// Active servers, highest risk first.
    async fn top_risks(&self, org: OrgId, limit: u64) -> Result<Vec<Server>>;
    /// Rescore up to `limit` servers scored by an older rule set, starting after
    /// `cursor`; answers how many were rescored and where to continue (`None`: done).
    /// A server whose level rose raises an alert unless it is verified.
    async fn rescore_outdated(
        &self,
        cursor: Option<(OrgId, ServerId)>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<(usize, Option<(OrgId, ServerId)>)>;
    /// The organisation's policy (the default, empty one if none was set).
    async fn get_policy(&self, org: OrgId) -> Result<OrgPolicy>;
    /// Replace the policy; its version becomes the stored one plus one.
    async fn put_policy(&self, org: OrgId, policy: OrgPolicy) -> Result<OrgPolicy>;
    /// Counts by level of every stored server (maintained at write time).
    async fn server_counts(&self, org: OrgId) -> Result<LevelCounts>;

    // Alerts.
    async fn list_alerts(&self, org: OrgId, query: AlertQuery) -> Result<Page<Alert>>;
    async fn dismiss_alert(
        &self,
        org: OrgId,
        alert: AlertId,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<Alert>;
    /// Dismiss every open alert; answers how many were dismissed.
    async fn dismiss_all_alerts(&self, org: OrgId, by: UserId, at: DateTime<Utc>) -> Result<u64>;
    /// Open alerts (maintained at write time).
    async fn open_alert_count(&self, org: OrgId) -> Result<u64>;
    /// Figures across every organisation, for the metrics: servers by level, open
    /// alerts by severity, agents, deliveries waiting.
    async fn fleet_gauges(&self) -> Result<FleetGauges>;

    // Upkeep.
    /// Write a consistent snapshot of everything into a new database file at `out`
    /// while serving; answers the rows copied.
    async fn snapshot(&self, out: std::path::PathBuf) -> Result<u64>;
    /// What disagrees between the counts and indexes and the records (nothing when
    /// consistent).
    async fn check(&self) -> Result<Vec<String>>;
    /// Every table's entries and bytes, largest first.
    async fn space(&self) -> Result<Vec<TableSpace>>;
    /// Delete dormant servers last seen before `before` (with their history and
    /// alerts), visiting up to `agents` agents after `cursor` (read first where the
    /// store can: a batch with nothing to delete writes nothing); answers the servers
    /// and alerts deleted and where the next batch starts (`None`: done).
    async fn prune_dormant_servers(
        &self,
        before: DateTime<Utc>,
        cursor: Option<Vec<u8>>,
        agents: usize,
    ) -> Result<(u64, u64, Option<Vec<u8>>)>;
    /// Delete alerts dismissed before `before`, reading up to `rows` alerts after
    /// `cursor` (read first where the store can: a batch with nothing to delete writes
    /// nothing); answers how many went and where the next batch starts.
    async fn prune_dismissed_alerts(
        &self,
        before: DateTime<Utc>,
        cursor: Option<Vec<u8>>,
        rows: usize,
    ) -> Result<(u64, Option<Vec<u8>>)>;

    // Events (the outbox, appended by the writes above).
    /// The organisation's events after `after` (every retained one when `None`), oldest
    /// first, at most `limit`.
    async fn events_after(
        &self,
        org: OrgId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<crate::events::Event>>;
    /// Changes once events are committed (to the newest event id): live readers wait
    /// on it, then read [`Store::events_after`].
    fn event_signal(&self) -> tokio::sync::watch::Receiver<u64>;

    // Notification channels and their deliveries (made by the event appends above for
    // the channels that want each event).
    async fn create_channel(&self, channel: Channel) -> Result<()>;
    async fn list_channels(&self, org: OrgId) -> Result<Vec<Channel>>;
    async fn get_channel(&self, org: OrgId, id: ChannelId) -> Result<Channel>;
    /// Replace a stored channel (`NotFound` if it is not there).
    async fn update_channel(&self, channel: Channel) -> Result<()>;
    /// Remove a channel; its deliveries still to try are marked failed.
    async fn delete_channel(&self, org: OrgId, id: ChannelId) -> Result<()>;
    /// Deliveries still to try that are due before `before` (any organisation), soonest
    /// first, at most `limit`.
    async fn due_deliveries(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Delivery>>;
    /// When the soonest delivery still to try is due.
    async fn next_delivery_due(&self) -> Result<Option<DateTime<Utc>>>;
    /// Store what an attempt gave; with `failure`, raise that alert in the same write.
    async fn record_attempt(&self, delivery: Delivery, failure: Option<Alert>) -> Result<()>;
    async fn list_deliveries(&self, org: OrgId, query: DeliveryQuery) -> Result<Page<Delivery>>;

    // API tokens.
    async fn create_api_token(&self, token: ApiToken) -> Result<()>;
    /// The token with this SHA-256 and its owner, for authenticating a request (`None`
    /// when the token was revoked or its owner removed).
    async fn find_api_token(&self, hash: [u8; 32]) -> Result<Option<(ApiToken, User)>>;
    /// The organisation's tokens, or only `user`'s.
    async fn list_api_tokens(&self, org: OrgId, user: Option<UserId>) -> Result<Vec<ApiToken>>;
    async fn get_api_token(&self, org: OrgId, id: ApiTokenId) -> Result<ApiToken>;
    /// Revoke a token; answers what it was.
    async fn delete_api_token(&self, org: OrgId, id: ApiTokenId) -> Result<ApiToken>;
    /// Save last-used times kept in memory. Revoked tokens are skipped.
    async fn touch_api_tokens(&self, used: Vec<(OrgId, ApiTokenId, DateTime<Utc>)>) -> Result<()>;

    // The audit log (append-only but for retention).
    /// Append an entry, with its event, in one transaction.
    async fn record_audit(&self, entry: crate::audit::Entry) -> Result<()>;
    /// A page of the organisation's entries, newest first.
    async fn list_audit(&self, org: OrgId, query: AuditQuery) -> Result<Page<crate::audit::Entry>>;
    /// Remove up to `limit` entries made before `before` (any organisation); answers
    /// how many were removed.
    async fn prune_audit(&self, before: DateTime<Utc>, limit: usize) -> Result<usize>;

    // The census (kept at write time).
    /// Count up to `limit` queued server changes into the census; answers how many.
    async fn drain_census(&self, limit: usize) -> Result<usize>;
    /// A page of the organisation's census rows of one group, with each row's versions
    /// (every committed write counted first).
    async fn census(
        &self,
        org: OrgId,
        query: CensusQuery,
    ) -> Result<Page<(crate::census::Counts, Vec<crate::census::VersionHosts>)>>;
}
