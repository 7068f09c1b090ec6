//! The audit log's words: every action it records (a stable name each), who acted,
//! on what, and the entry itself. Entries are written by the router's audit layer for
//! the routes that name an action, with the details their handlers attach; each entry
//! is also an event (`audit.<action>`) for notification channels and the live stream.
//! `details` never holds a secret: handlers attach names, roles and ids only.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AuditId, OrgId};
use serde::{Deserialize, Serialize};

/// How long entries are kept unless the operator says otherwise (`--retain-audit-days`).
pub const DEFAULT_RETAIN_DAYS: u32 = 365;

macro_rules! actions {
    ($($variant:ident => $name:literal, $event:literal;)*) => {
        /// What was done.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $($variant,)*
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Self::$variant,)*];

            /// The action's name (`user.created`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The name of its event (`audit.user.created`).
            pub fn event_name(self) -> &'static str {
                match self {
                    $(Self::$variant => $event,)*
                }
            }
        }
    };
}

actions! {
    Registered => "auth.registered", "audit.auth.registered";
    Login => "auth.login", "audit.auth.login";
    LoginFailed => "auth.login_failed", "audit.auth.login_failed";
    Logout => "auth.logout", "audit.auth.logout";
    PasswordChanged => "auth.password_changed", "audit.auth.password_changed";
    ProfileUpdated => "auth.profile_updated", "audit.auth.profile_updated";
    OrganizationUpdated => "organization.updated", "audit.organization.updated";
    UserCreated => "user.created", "audit.user.created";
    UserUpdated => "user.updated", "audit.user.updated";
    UserRoleChanged => "user.role_changed", "audit.user.role_changed";
    UserDeactivated => "user.deactivated", "audit.user.deactivated";
    UserDeleted => "user.deleted", "audit.user.deleted";
    AgentCreated => "agent.created", "audit.agent.created";
    AgentDeleted => "agent.deleted", "audit.agent.deleted";
    AgentEnrolled => "agent.enrolled", "audit.agent.enrolled";
    EnrollSecretCreated => "enroll_secret.created", "audit.enroll_secret.created";
    EnrollSecretDeleted => "enroll_secret.deleted", "audit.enroll_secret.deleted";
    PolicyUpdated => "policy.updated", "audit.policy.updated";
    ServerVerified => "server.verified", "audit.server.verified";
    ServerUnverified => "server.unverified", "audit.server.unverified";
    AlertDismissed => "alert.dismissed", "audit.alert.dismissed";
    AlertsDismissedAll => "alert.dismissed_all", "audit.alert.dismissed_all";
    ApiTokenCreated => "api_token.created", "audit.api_token.created";
    ApiTokenRevoked => "api_token.revoked", "audit.api_token.revoked";
    ChannelCreated => "channel.created", "audit.channel.created";
    ChannelUpdated => "channel.updated", "audit.channel.updated";
    ChannelDeleted => "channel.deleted", "audit.channel.deleted";
    ChannelTested => "channel.tested", "audit.channel.tested";
}

impl Action {
    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == name)
    }

    /// The action whose event is named `name`.
    pub fn from_event_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.event_name() == name)
    }
}

/// A string naming one of the actions.
impl utoipa::PartialSchema for Action {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Self::ALL.iter().map(|a| a.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for Action {}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown action {name}")))
    }
}

/// Who acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiToken,
    Agent,
    System,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    pub kind: ActorKind,
    /// The user's (for an API token: its owner's is in `user_id`), agent's or token's id.
    pub id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The person behind an API token.
    #[serde(default)]
    pub user_id: Option<String>,
}

// JSON leaves out an absent email and user; a stored entry (compact) carries every field.
mcpwatch_protocol::omit_empty_in_json!(Actor {
    kind,
    id,
    email if Option::is_none,
    user_id if Option::is_none,
});

/// What was acted on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Target {
    pub kind: String,
    pub id: Option<String>,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    pub id: AuditId,
    pub organization_id: OrgId,
    #[serde(with = "mcpwatch_protocol::compact::time")]
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: Action,
    pub target: Target,
    pub source_ip: Option<String>,
    #[serde(with = "mcpwatch_protocol::compact::json_text")]
    pub details: serde_json::Value,
}

/// The event an entry is, for channels and the live stream.
pub fn event(entry: &Entry) -> crate::events::Draft {
    crate::events::Draft {
        organization_id: entry.organization_id,
        event: crate::events::EventName::Audit(entry.action),
        data: serde_json::json!({ "audit": entry }),
    }
}

/// Whether an entry is older than `retain_days` at `now`.
pub fn expired(entry: &Entry, retain_days: u32, now: DateTime<Utc>) -> bool {
    entry.at < now - chrono::Duration::days(i64::from(retain_days))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_name_and_its_event_name() {
        let mut names = std::collections::HashSet::new();
        for a in Action::ALL {
            assert!(names.insert(a.as_str()), "{a:?}");
            assert_eq!(a.event_name(), format!("audit.{}", a.as_str()));
            assert_eq!(Action::parse(a.as_str()), Some(*a));
            assert_eq!(Action::from_event_name(a.event_name()), Some(*a));
        }
        assert_eq!(
            serde_json::to_value(Action::UserRoleChanged).unwrap(),
            "user.role_changed"
        );
    }
}
