//! `POST /agents/heartbeat`: the agent says it is alive and what machine it runs on.

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

/// The heartbeat body. The seed sends `hostname`, `os_type`, `username` and
/// `agent_version`; all fields are optional so a heartbeat is never refused for a
/// missing host fact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// More about the machine; sent when it changed since the last heartbeat the
    /// collector accepted (a field left out keeps its stored value).
    #[serde(flatten)]
    pub machine: MachineFacts,
    /// Why the collector refused the agent's last report for good, if it did (the agent
    /// does not send that report again until its inventory changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
}

impl HeartbeatRequest {
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

/// What an agent can tell about its machine beyond its name and OS (all optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineFacts {
    /// The OS name and version as people say it (`"Ubuntu 24.04.1 LTS"`, `"macOS 15.2"`).
    #[serde(default)]
    pub os_name: Option<String>,
    /// The kernel version (`"6.8.0-45-generic"`, `"24.2.0"`, `"26100"`).
    #[serde(default)]
    pub kernel_version: Option<String>,
    /// The CPU architecture (`"x86_64"`, `"arm64"`).
    #[serde(default)]
    pub arch: Option<String>,
    /// The hardware maker (`"LENOVO"`, `"Apple Inc."`).
    #[serde(default)]
    pub hardware_vendor: Option<String>,
    /// The hardware model (`"20AN"`, `"MacBookPro18,3"`).
    #[serde(default)]
    pub hardware_model: Option<String>,
    /// The hardware serial number, where the OS shows it to the agent.
    #[serde(default)]
    pub hardware_serial: Option<String>,
    /// The machine's hardware UUID, where the OS shows it to the agent.
    #[serde(default)]
    pub machine_id: Option<String>,
    /// When the machine booted, RFC 3339.
    #[serde(default)]
    pub boot_time: Option<String>,
    /// The machine's human users (the ones whose configs the agent scans).
    #[serde(default)]
    pub users: Option<Vec<String>>,
    /// The machine's address as the agent sees it (the seed agent sends it).
    #[serde(default)]
    pub ip_address: Option<String>,
}

crate::omit_empty_in_json!(MachineFacts {
    os_name if Option::is_none,
    kernel_version if Option::is_none,
    arch if Option::is_none,
    hardware_vendor if Option::is_none,
    hardware_model if Option::is_none,
    hardware_serial if Option::is_none,
    machine_id if Option::is_none,
    boot_time if Option::is_none,
    users if Option::is_none,
    ip_address if Option::is_none,
});

impl MachineFacts {
    /// Whether no fact is known.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `self` with every fact `newer` knows replaced by it.
    pub fn merged(&self, newer: &Self) -> Self {
        fn pick<T: Clone>(old: &Option<T>, new: &Option<T>) -> Option<T> {
            new.clone().or_else(|| old.clone())
        }
        Self {
            os_name: pick(&self.os_name, &newer.os_name),
            kernel_version: pick(&self.kernel_version, &newer.kernel_version),
            arch: pick(&self.arch, &newer.arch),
            hardware_vendor: pick(&self.hardware_vendor, &newer.hardware_vendor),
            hardware_model: pick(&self.hardware_model, &newer.hardware_model),
            hardware_serial: pick(&self.hardware_serial, &newer.hardware_serial),
            machine_id: pick(&self.machine_id, &newer.machine_id),
            boot_time: pick(&self.boot_time, &newer.boot_time),
            users: pick(&self.users, &newer.users),
            ip_address: pick(&self.ip_address, &newer.ip_address),
        }
    }
}

/// The collector's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
