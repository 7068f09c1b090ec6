//! `POST /mcp/report`: the agent's full snapshot of the MCP servers on its machine.

use serde::{Deserialize, Serialize};

use crate::server::ServerRecord;

/// A full inventory snapshot. Only `servers` is required (seed contract); a server
/// missing from the snapshot is one the agent no longer sees.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportRequest {
    /// Every server the agent found.
    pub servers: Vec<ServerRecord>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The machine's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// When the scan ran, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<String>,
    /// The agent's report counter; increases by one per report it builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// The hash of the normalised inventory the agent computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_hash: Option<String>,
    /// Config files that exist but could not be read or parsed: a broken file can hide
    /// a server, so the collector shows them on the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_errors: Vec<ConfigError>,
}

/// A config file the agent could not read or parse. `error` names the line and the
/// reason, never the file's contents.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigError {
    /// The file's path.
    pub path: String,
    /// The client the file belongs to.
    #[serde(default)]
    pub client: Option<String>,
    /// What went wrong, with the line and column when it is a parse error.
    pub error: String,
}

crate::omit_empty_in_json!(ConfigError {
    path,
    client if Option::is_none,
    error,
});

/// What the collector did with a report. Sent only after the report is durably stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportResponse {
    /// Always `"ok"`.
    pub status: String,
    /// How many servers the report held.
    pub received: usize,
    /// Servers seen for the first time.
    pub created: usize,
    /// Known servers whose record changed.
    pub updated: usize,
    /// Known servers that did not change.
    pub unchanged: usize,
    /// Known servers missing from this snapshot, now dormant.
    pub dormant: usize,
    /// Alerts the report raised.
    pub alerts_raised: usize,
}
