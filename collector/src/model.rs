//! The collector's records: organisations, users, sessions, agents, enroll secrets,
//! servers and alerts, as they are stored and (through `api`) shown. Secrets appear
//! here only as hashes.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{
    AgentId, AlertId, ApiTokenId, ChannelId, EnrollSecretId, OrgId, ServerId, SessionId, UserId,
};
use mcpwatch_protocol::risk::{Finding, RiskLevel};
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::ConfigError;
use serde::{Deserialize, Serialize};

/// An organisation (tenant). Every other record belongs to exactly one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub alert_email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a user may do. Ordered: a higher role may do everything a lower one may.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// May also verify servers and dismiss alerts.
    Analyst,
    /// May do everything in the organisation.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }
}

/// A person with access to one organisation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    /// Lowercased; unique across the collector (login is by email alone).
    pub email: String,
    pub full_name: String,
    pub role: Role,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One login: a refresh-token family. Access tokens name their session, so deleting
/// it (logout, password change, user removal) ends them too.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub org_id: OrgId,
    /// The id of the only refresh token of this session that may still be used.
    pub refresh_jti: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An API token: a person's credential for scripts and services, with a role at most
/// the person's. Only the SHA-256 of the token is kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub name: String,
    pub role: Role,
    pub token_hash: [u8; 32],
    /// The start of the token, to tell tokens apart (`mcp_pat_AbCd`).
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// How an agent got its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Enrollment {
    /// An admin created it with `POST /agents/`.
    Manual,
    /// It enrolled itself with an enroll secret.
    EnrollSecret,
}

/// Host facts an agent reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct HostFacts {
    pub hostname: Option<String>,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub username: Option<String>,
    pub agent_version: Option<String>,
    /// Kernel, hardware, boot time and users, as the agent last sent them.
    #[serde(default)]
    pub machine: mcpwatch_protocol::wire::MachineFacts,
    /// Why the collector refused the agent's last report, as the agent says.
    #[serde(default)]
    pub report_error: Option<String>,
}

impl HostFacts {
    /// Facts an agent sent, over the stored ones: a fact left out keeps its value;
    /// the report error is replaced (the agent sends it while it holds, and an
    /// accepted report ends it).
    pub fn merge(&mut self, new: HostFacts) {
        let HostFacts {
            hostname,
            os_type,
            os_version,
            username,
            agent_version,
            machine,
            report_error,
        } = new;
        self.machine = self.machine.merged(&machine);
        self.report_error = report_error;
        for (slot, value) in [
            (&mut self.hostname, hostname),
            (&mut self.os_type, os_type),
            (&mut self.os_version, os_version),
            (&mut self.username, username),
            (&mut self.agent_version, agent_version),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
    }
}

/// One installed agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Agent {
    pub id: AgentId,
    pub org_id: OrgId,
    pub name: String,
    /// SHA-256 of the API key; the key itself is never stored.
    pub key_hash: [u8; 32],
    /// The first characters of the key, to tell keys apart in the UI.
    pub key_prefix: String,
    /// The Ed25519 key every request must be signed with, once bound.
    pub public_key: Option<[u8; 32]>,
    pub enrollment: Enrollment,
    pub facts: HostFacts,
    #[serde(with = "mcpwatch_protocol::compact::time")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "mcpwatch_protocol::compact::optional_time")]
    pub last_seen_at: Option<DateTime<Utc>>,
    #[serde(default, with = "mcpwatch_protocol::compact::optional_time")]
    pub last_report_at: Option<DateTime<Utc>>,
    /// Servers in the agent's latest snapshot.
    pub server_count: u64,
    /// Config files the agent could not read or parse in its latest report.
    pub config_errors: Vec<ConfigError>,
    /// The `sequence` of the latest report.
    pub last_sequence: Option<u64>,
    /// Silent longer than the dormancy threshold: its servers are shown dormant until
    /// it is heard from again.
    #[serde(default)]
    pub stale: bool,
    /// Dangerous combinations of its servers (see `protocol::risk::combinations`).
    #[serde(default)]
    pub combinations: Vec<mcpwatch_protocol::risk::Combination>,
}

fn yes() -> bool {
    true
}

/// A secret that lets agents enroll into an organisation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EnrollSecret {
    pub id: EnrollSecretId,
    pub org_id: OrgId,
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    pub secret_prefix: String,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub enrolled_count: u64,
}

/// Whether a server is in its agent's latest snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServerStatus {
    Active,
    Dormant,
}

impl ServerStatus {
    pub const ALL: [ServerStatus; 2] = [Self::Active, Self::Dormant];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Dormant => "dormant",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Active => 0,
            Self::Dormant => 1,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }
}

/// What happened to a server, in its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// First reported.
    Created,
    /// Reported with other values.
    Updated,
    /// Missing from its agent's snapshot.
    Dormant,
    /// Reported again after being dormant.
    Reactivated,
    /// Marked as verified by a person.
    Verified,
    /// Its verification was taken back by a person.
    Unverified,
    /// Scored again under newer rules or policy.
    Rescored,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Dormant => "dormant",
            Self::Reactivated => "reactivated",
            Self::Verified => "verified",
            Self::Unverified => "unverified",
            Self::Rescored => "rescored",
        }
    }
}

impl PartialEq<&str> for ChangeKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One recorded change of a server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ServerChange {
    #[serde(with = "mcpwatch_protocol::compact::time")]
    pub at: DateTime<Utc>,
    pub kind: ChangeKind,
    /// The fields whose values changed.
    pub fields: Vec<String>,
    #[serde(default, with = "mcpwatch_protocol::compact::optional_digest")]
    pub previous_fingerprint: Option<String>,
    #[serde(default, with = "mcpwatch_protocol::compact::optional_digest")]
    pub fingerprint: Option<String>,
    pub previous_level: Option<RiskLevel>,
    pub level: Option<RiskLevel>,
    pub previous_command: Option<String>,
    pub command: Option<String>,
}

impl ServerChange {
    /// A change that is an event, with no before/after launch or level.
    pub fn event(at: DateTime<Utc>, kind: ChangeKind, fields: &[&str]) -> Self {
        Self {
            at,
            kind,
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            previous_fingerprint: None,
            fingerprint: None,
            previous_level: None,
            level: None,
            previous_command: None,
            command: None,
        }
    }
}

/// A server's history as shown, from its stored entries (oldest first).
///
/// Its first entry, `created`, is not stored: it is the server's first sighting
/// (`first_seen_at`), numbered 0, shown while the newest [`MAX_SERVER_CHANGES`] entries
/// still reach back to it. Earlier collectors stored it; such a stored entry is
/// shown as it is. A `created` entry without the launch, level and fingerprint the
/// server started with gets them from the "before" of the first later change that moved
/// each (an update always records the fingerprint and level it replaced, and the launch
/// when the fingerprint moved; a rescore, the level), or else from the server itself.
pub fn history(server: &Server, stored: Vec<ServerChange>) -> Vec<ServerChange> {
    let first_is_kept = (1..=MAX_SERVER_CHANGES).contains(&server.change_seq);
    let created_is_stored = stored
        .first()
        .is_some_and(|c| c.kind == ChangeKind::Created);
    let mut changes = Vec::with_capacity(stored.len() + 1);
    if first_is_kept && !created_is_stored {
        changes.push(ServerChange::event(
            server.first_seen_at,
            ChangeKind::Created,
            &[],
        ));
    }
    changes.extend(stored);
    for i in 0..changes.len() {
        let (head, later) = changes.split_at_mut(i + 1);
        let created = &mut head[i];
        if created.kind != ChangeKind::Created || created.fingerprint.is_some() {
            continue;
        }
        created.fingerprint = Some(
            later
                .iter()
                .find_map(|c| c.previous_fingerprint.clone())
                .unwrap_or_else(|| server.fingerprint.clone()),
        );
        created.level = Some(
            later
                .iter()
                .find_map(|c| c.previous_level)
                .unwrap_or(server.risk_level),
        );
        created.command = Some(
            later
                .iter()
                .find_map(|c| c.previous_command.clone())
                .unwrap_or_else(|| server.record.launch_line()),
        );
    }
    changes
}

/// How many changes a server keeps (the newest).
pub const MAX_SERVER_CHANGES: u64 = 50;

/// One MCP server on one agent. Identity: (agent, client, config path, server name).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Server {
    pub id: ServerId,
    pub org_id: OrgId,
    pub agent_id: AgentId,
    pub record: ServerRecord,
    #[serde(with = "mcpwatch_protocol::compact::digest")]
    pub fingerprint: String,
    pub risk_score: u8,
    pub risk_level: RiskLevel,
    pub findings: Vec<Finding>,
    pub rules_version: u32,
    pub status: ServerStatus,
    /// The organisation policy version the score was computed under.
    #[serde(default)]
    pub policy_version: u64,
    /// In the agent's latest snapshot. Such a server is still `dormant` while its
    /// agent has been silent longer than the dormancy threshold.
    #[serde(default = "yes")]
    pub in_snapshot: bool,
    pub is_verified: bool,
    pub verified_by: Option<UserId>,
    #[serde(default, with = "mcpwatch_protocol::compact::optional_time")]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(with = "mcpwatch_protocol::compact::time")]
    pub first_seen_at: DateTime<Utc>,
    #[serde(with = "mcpwatch_protocol::compact::time")]
    pub last_seen_at: DateTime<Utc>,
    #[serde(with = "mcpwatch_protocol::compact::time")]
    pub updated_at: DateTime<Utc>,
    /// How many changes have been recorded; the history itself is stored apart from
    /// the server (the newest [`MAX_SERVER_CHANGES`] of them), read only for its detail.
    #[serde(default)]
    pub change_seq: u64,
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A server seen for the first time at level high or critical.
    NewRiskyServer,
    /// A server's risk level rose.
    RiskIncreased,
    /// A server's command or URL changed under the same name (rug pull).
    ServerChanged,
    /// An agent has been silent longer than the threshold.
    AgentSilent,
    /// Config files an agent could not read or parse: they may hide servers.
    ConfigErrors,
    /// A server launches a package the organisation's policy blocks.
    BlockedPackage,
    /// One client on the machine combines servers into a dangerous pair.
    DangerousCombination,
    /// A notification channel could not deliver an event within the retry horizon.
    NotificationFailed,
}

impl AlertKind {
    /// A stable byte for storage keys.
    pub fn code(self) -> u8 {
        match self {
            Self::NewRiskyServer => 1,
            Self::RiskIncreased => 2,
            Self::ServerChanged => 3,
            Self::AgentSilent => 4,
            Self::ConfigErrors => 5,
            Self::BlockedPackage => 6,
            Self::DangerousCombination => 7,
            Self::NotificationFailed => 8,
        }
    }
}

/// An alert for the security team.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Alert {
    pub id: AlertId,
    pub org_id: OrgId,
    pub kind: AlertKind,
    pub severity: RiskLevel,
    pub title: String,
    pub message: String,
    pub server_id: Option<ServerId>,
    pub agent_id: Option<AgentId>,
    /// The notification channel the alert is about (failed deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<ChannelId>,
    pub created_at: DateTime<Utc>,
    /// When a repeat of the same situation last updated this alert.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// How many times the situation was seen while the alert was open.
    #[serde(default = "one")]
    pub occurrences: u32,
    /// What changed: `{"before": {...}, "after": {...}}` or the facts of the situation.
    #[serde(default)]
    pub details: serde_json::Value,
    pub dismissed: bool,
    pub dismissed_at: Option<DateTime<Utc>>,
    pub dismissed_by: Option<UserId>,
}

impl Alert {
    /// What the alert is about: its server, else its agent, else its channel. One open alert per
    /// (subject, kind).
    pub fn subject(&self) -> [u8; 16] {
        self.server_id
            .map(ServerId::to_bytes)
            .or(self.agent_id.map(AgentId::to_bytes))
            .or(self.channel_id.map(ChannelId::to_bytes))
            .unwrap_or([0; 16])
    }
}

fn one() -> u32 {
    1
}

/// An organisation's policy: what scoring changes (blocked packages, severity
/// overrides) and which servers are approved (reported, but raising no alert).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OrgPolicy {
    #[serde(flatten)]
    pub scoring: mcpwatch_protocol::risk::Policy,
    /// Package or server names, matched without regard to case.
    #[serde(default)]
    pub approved: Vec<String>,
    /// Increases with every change; servers scored under an older one are rescored.
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_by: Option<UserId>,
}

impl OrgPolicy {
    /// Whether a server is approved: its package name or its server name is listed.
    pub fn approves(&self, record: &mcpwatch_protocol::server::ServerRecord) -> bool {
        self.approved.iter().any(|a| {
            let a = a.trim().to_lowercase();
            record.server_name.to_lowercase() == a
                || record
                    .package
                    .as_ref()
                    .is_some_and(|p| p.name.to_lowercase() == a)
                || record
                    .server_type
                    .as_ref()
                    .is_some_and(|t| t.to_lowercase() == a)
        })
    }
}

/// Server counts by level, for the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LevelCounts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
}

impl LevelCounts {
    pub fn total(&self) -> u64 {
        self.critical + self.high + self.medium + self.low
    }

    pub fn add(&mut self, level: RiskLevel, n: u64) {
        match level {
            RiskLevel::Critical => self.critical += n,
            RiskLevel::High => self.high += n,
            RiskLevel::Medium => self.medium += n,
            RiskLevel::Low => self.low += n,
        }
    }
}
