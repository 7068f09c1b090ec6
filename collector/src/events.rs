//! Events: what happened in an organisation, as the outbox keeps it and the live
//! stream (`GET /events`) and, later, notification channels send it. One constructor
//! per event; each names what a receiver needs and nothing secret (an agent's key hash
//! and public key never leave the collector). The store appends them in the same
//! transaction as the change that caused them.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::OrgId;
use serde::{Deserialize, Serialize};

use crate::model::{Agent, Alert, Server};

/// How many events an organisation's outbox keeps: the newest this many, none older
/// than [`MAX_EVENT_AGE_DAYS`].
pub const MAX_EVENTS_PER_ORG: u64 = 10_000;
/// The oldest event an outbox keeps, in days.
pub const MAX_EVENT_AGE_DAYS: i64 = 7;

/// What happened. On the wire, its name (`alert.created`, `audit.user.created`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventName {
    AlertCreated,
    /// A new occurrence of an open alert.
    AlertUpdated,
    AlertDismissed,
    AgentEnrolled,
    AgentDeleted,
    AgentSilent,
    /// An audit log entry (`audit.<action>`).
    Audit(crate::audit::Action),
    /// What `POST /notifications/channels/{id}/test` sends; never in the outbox.
    ChannelTest,
}

/// A string naming one of the events a channel may ask for (and `channel.test`).
impl utoipa::PartialSchema for EventName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = Self::ALL
            .iter()
            .map(|e| e.as_str())
            .chain(crate::audit::Action::ALL.iter().map(|a| a.event_name()))
            .chain([Self::ChannelTest.as_str()]);
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(names))
            .into()
    }
}

impl utoipa::ToSchema for EventName {}

impl Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name == Self::ChannelTest.as_str() {
            return Ok(Self::ChannelTest);
        }
        Self::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown event {name}")))
    }
}

impl EventName {
    /// The events of alerts and agents (a channel may ask for any of them, and for
    /// any audit event).
    pub const ALL: [EventName; 6] = [
        Self::AlertCreated,
        Self::AlertUpdated,
        Self::AlertDismissed,
        Self::AgentEnrolled,
        Self::AgentDeleted,
        Self::AgentSilent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlertCreated => "alert.created",
            Self::AlertUpdated => "alert.updated",
            Self::AlertDismissed => "alert.dismissed",
            Self::AgentEnrolled => "agent.enrolled",
            Self::AgentDeleted => "agent.deleted",
            Self::AgentSilent => "agent.silent",
            Self::Audit(action) => action.event_name(),
            Self::ChannelTest => "channel.test",
        }
    }

    /// The event a channel may ask for by this name: one of [`Self::ALL`] or an
    /// audit event.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == name)
            .or_else(|| crate::audit::Action::from_event_name(name).map(Self::Audit))
    }
}

/// An event as stored and sent. `id` grows with every event the collector records
/// (across organisations), so a receiver resumes after the last one it saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: u64,
    pub event: EventName,
    #[serde(with = "mcpwatch_protocol::compact::time")]
    pub timestamp: DateTime<Utc>,
    pub organization_id: OrgId,
    #[serde(with = "mcpwatch_protocol::compact::json_text")]
    pub data: serde_json::Value,
}

/// The start of an [`Event`]: what the outbox's pruning reads of the oldest event
/// without reading its data (the fields are the event's first ones, in its order, so
/// a compact record reads as one, and JSON ignores the rest).
#[derive(Debug, Serialize, Deserialize)]
pub struct EventStamp {
    pub id: u64,
    pub event: EventName,
    #[serde(with = "mcpwatch_protocol::compact::time")]
    pub timestamp: DateTime<Utc>,
}

/// An event before the store numbers it.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub organization_id: OrgId,
    pub event: EventName,
    pub data: serde_json::Value,
}

impl Draft {
    /// The event, numbered `id`, at `timestamp`.
    pub fn numbered(self, id: u64, timestamp: DateTime<Utc>) -> Event {
        Event {
            id,
            event: self.event,
            timestamp,
            organization_id: self.organization_id,
            data: self.data,
        }
    }
}

/// What an alert event says besides the alert: the server and the agent it is about,
/// as the store has them when the alert changes.
#[derive(Clone, Copy, Default)]
pub struct AlertContext<'a> {
    pub server: Option<&'a Server>,
    pub agent: Option<&'a Agent>,
}

/// An alert changed: `alert.created` (a new one), `alert.updated` (a new occurrence
/// of an open one) or `alert.dismissed`.
pub fn alert_changed(alert: &Alert, event: EventName, context: AlertContext<'_>) -> Draft {
    let mut data = serde_json::json!({ "alert": alert });
    if let Some(server) = context.server {
        data["server"] = serde_json::json!({
            "id": server.id,
            "server_name": server.record.server_name,
            "client": server.record.client,
            "os_user": server.record.os_user,
            "config_path": server.record.config_path,
            "risk_level": server.risk_level,
            "risk_score": server.risk_score,
        });
    }
    if let Some(agent) = context.agent {
        data["agent"] = agent_view(agent);
    }
    Draft {
        organization_id: alert.org_id,
        event,
        data,
    }
}

/// What an event says of an agent: who it is, never its key.
fn agent_view(agent: &Agent) -> serde_json::Value {
    serde_json::json!({
        "id": agent.id,
        "name": agent.name,
        "hostname": agent.facts.hostname,
        "os_type": agent.facts.os_type,
        "username": agent.facts.username,
        "last_seen_at": agent.last_seen_at,
    })
}

/// An agent enrolled (with an enroll secret, or made with an API key).
pub fn agent_enrolled(agent: &Agent) -> Draft {
    Draft {
        organization_id: agent.org_id,
        event: EventName::AgentEnrolled,
        data: serde_json::json!({ "agent": agent_view(agent) }),
    }
}

/// An agent deleted (its key revoked, its servers gone).
pub fn agent_deleted(agent: &Agent) -> Draft {
    Draft {
        organization_id: agent.org_id,
        event: EventName::AgentDeleted,
        data: serde_json::json!({ "agent": agent_view(agent) }),
    }
}

/// An agent silent since before `cutoff`.
pub fn agent_silent(agent: &Agent, cutoff: DateTime<Utc>) -> Draft {
    Draft {
        organization_id: agent.org_id,
        event: EventName::AgentSilent,
        data: serde_json::json!({ "agent": agent_view(agent), "cutoff": cutoff }),
    }
}

/// Whether an event is old enough to leave an outbox at `now`.
pub fn expired(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    at < now - chrono::Duration::days(MAX_EVENT_AGE_DAYS)
}
