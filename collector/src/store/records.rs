//! Every stored record by its table, as `migrate-store` carries them from one backend
//! to another: the backend-neutral shape of a deployment's data. Indexes and counts
//! are not records: the receiving backend rebuilds them as it stores these.

use mcpwatch_protocol::ids::{OrgId, ServerId};

use crate::audit::Entry;
use crate::events::Event;
use crate::model::{
    Agent, Alert, ApiToken, EnrollSecret, Org, OrgPolicy, Server, ServerChange, Session, User,
};
use crate::notify::{Channel, Delivery};

/// The tables that hold records, in the order they are copied (what a record refers
/// to comes before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Orgs,
    Users,
    Sessions,
    Agents,
    EnrollSecrets,
    Policies,
    Channels,
    ApiTokens,
    Servers,
    ServerChanges,
    Alerts,
    Events,
    Deliveries,
    Audit,
}

impl Table {
    pub const ALL: [Table; 14] = [
        Self::Orgs,
        Self::Users,
        Self::Sessions,
        Self::Agents,
        Self::EnrollSecrets,
        Self::Policies,
        Self::Channels,
        Self::ApiTokens,
        Self::Servers,
        Self::ServerChanges,
        Self::Alerts,
        Self::Events,
        Self::Deliveries,
        Self::Audit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Orgs => "orgs",
            Self::Users => "users",
            Self::Sessions => "sessions",
            Self::Agents => "agents",
            Self::EnrollSecrets => "enroll_secrets",
            Self::Policies => "policies",
            Self::Channels => "channels",
            Self::ApiTokens => "api_tokens",
            Self::Servers => "servers",
            Self::ServerChanges => "server_changes",
            Self::Alerts => "alerts",
            Self::Events => "events",
            Self::Deliveries => "deliveries",
            Self::Audit => "audit",
        }
    }
}

/// One stored record.
#[derive(Clone, Debug)]
pub enum Record {
    Org(Org),
    User(User),
    Session(Session),
    Agent(Agent),
    EnrollSecret(EnrollSecret),
    Policy(OrgId, OrgPolicy),
    Channel(Channel),
    ApiToken(ApiToken),
    Server(Server),
    /// A server's change number `seq` (from 0).
    Change(OrgId, ServerId, u64, ServerChange),
    Alert(Alert),
    Event(Event),
    Delivery(Delivery),
    Audit(Entry),
}
