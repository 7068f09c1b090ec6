//! `POST /agents/heartbeat`: the agent says it is alive and what machine it runs on.

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

/// The heartbeat body. The seed sends `hostname`, `os_type`, `username` and
/// `agent_version`; all fields are optional so a heartbeat is never refused for a
/// missing host fact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// The machine's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `windows`, `macos` or `linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// The user the agent runs as, or the machine's main user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The OS version string (`"Ubuntu 24.04"`, `"14.5"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// The agent's Ed25519 public key, base64 (standard alphabet). Sent by an agent
    /// that holds a key made with `POST /agents/` to bind its signing key on the first
    /// heartbeat; from then on every request of that agent must be signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// The collector's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// Always `"ok"`.
    pub status: String,
    /// The agent the key belongs to.
    pub agent_id: AgentId,
    /// How many seconds the agent should wait before its next heartbeat.
    pub heartbeat_interval_seconds: u64,
    /// Whether the collector now requires this agent to sign its requests.
    pub signing_required: bool,
    /// The collector's clock, RFC 3339, so an agent can see its own clock skew.
    pub server_time: String,
}
