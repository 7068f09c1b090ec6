//! Identifier newtypes. Each wraps a UUID and serialises as its string form, so an
//! `AgentId` can never be passed where an `OrgId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered identifier (UUID v7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The 16 bytes of the UUID, big-endian, as used in storage keys.
            pub fn to_bytes(self) -> [u8; 16] {
                *self.0.as_bytes()
            }

            /// Rebuild an identifier from the bytes produced by [`Self::to_bytes`].
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// An organisation (tenant).
    OrgId
);
id_type!(
    /// A person who uses the collector's API.
    UserId
);
id_type!(
    /// An agent: one installation of `mcpwatch-agent` on one machine.
    AgentId
);
id_type!(
    /// One MCP server as seen on one agent.
    ServerId
);
id_type!(
    /// An alert raised for an organisation.
    AlertId
);
id_type!(
    /// An enroll secret that lets agents enroll into an organisation.
    EnrollSecretId
);
id_type!(
    /// A login session (one refresh-token family).
    SessionId
);
id_type!(
    /// A notification channel (a webhook, Slack, email or syslog target).
    ChannelId
);
id_type!(
    /// One event's delivery to one notification channel.
    DeliveryId
);
id_type!(
    /// An API token (`mcp_pat_...`) a person made for scripts and services.
    ApiTokenId
);
id_type!(
    /// An entry of an organisation's audit log.
    AuditId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_bytes_and_strings() {
        let id = AgentId::new();
        assert_eq!(AgentId::from_bytes(id.to_bytes()), id);
        assert_eq!(id.to_string().parse::<AgentId>().unwrap(), id);
        assert!("not-a-uuid".parse::<AgentId>().is_err());
    }

    #[test]
    fn ids_serialise_as_plain_strings() {
        let id = ServerId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
    }
}
