//! `POST /agents/enroll`: an agent exchanges its organisation's enroll secret, its
//! host facts and its public key for an agent identity and API key of its own.

use serde::{Deserialize, Serialize};

use super::MachineFacts;
use crate::ids::AgentId;

/// The enrollment body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// The enroll secret an admin created with `POST /enroll-secrets`.
    pub enroll_secret: String,
    /// The agent's Ed25519 public key, base64 (standard alphabet, 32 bytes).
    pub public_key: String,
    /// A display name; defaults to the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The machine's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `windows`, `macos` or `linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// The OS version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// The user the agent runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// More about the machine.
    #[serde(flatten)]
    pub machine: MachineFacts,
}

impl EnrollRequest {
    /// The host facts, to check or fit them against the limits in one place.
    pub fn host_mut(&mut self) -> ([&mut Option<String>; 5], &mut MachineFacts) {
        (
            [
                &mut self.hostname,
                &mut self.os_type,
                &mut self.os_version,
                &mut self.username,
                &mut self.agent_version,
            ],
            &mut self.machine,
        )
    }
}

/// The collector's answer to an enrollment. `api_key` is shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    /// The new agent's identifier.
    pub agent_id: AgentId,
    /// The agent's API key (`mcp_sk_...`); only its hash is stored.
    pub api_key: String,
    /// How many seconds the agent should wait between heartbeats.
    pub heartbeat_interval_seconds: u64,
}
