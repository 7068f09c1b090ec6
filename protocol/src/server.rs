//! The normalised MCP server record: one server that one MCP client on one machine is
//! configured to launch or connect to, as the agent reports it.
//!
//! The first five fields are the seed contract (`server_name`, `server_type`,
//! `command`, `scope`, `env_vars`) and keep their meaning; every other field is an
//! optional extension, so a report made of the seed's fields alone stays valid.
//! No field ever carries a secret value: env vars and headers are names only, and
//! secrets found in arguments or URLs are replaced by [`REDACTED`] by the agent.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the agent puts where it removed a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// One MCP server entry of a client's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerRecord {
    /// The key the client's config gives the server (`"filesystem"`).
    pub server_name: String,
    /// What it is: package name, container image, or remote host.
    #[serde(default)]
    pub server_type: Option<String>,
    /// The command line (secrets redacted), or the URL for remote servers.
    #[serde(default)]
    pub command: Option<String>,
    /// The filesystem path or resource the server is pointed at, if any.
    #[serde(default)]
    pub scope: Option<String>,
    /// Names of the environment variables the config sets for the server; never values.
    #[serde(default)]
    pub env_vars: Vec<String>,

    /// Every filesystem path the server is pointed at (`scope` holds the main one).
    #[serde(default)]
    pub scope_paths: Vec<String>,
    /// The MCP client application whose config this is (`claude-desktop`, `cursor`, ...).
    #[serde(default)]
    pub client: Option<String>,
    /// The config file the server was found in.
    #[serde(default)]
    pub config_path: Option<String>,
    /// Whether the config file is the user's own or a project's.
    #[serde(default)]
    pub config_scope: Option<ConfigScope>,
    /// For project-level configs, the project directory.
    #[serde(default)]
    pub project_path: Option<String>,
    /// The operating-system user whose config it is.
    #[serde(default)]
    pub os_user: Option<String>,
    /// How the client talks to the server.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// The arguments after the command, secrets redacted.
    #[serde(default)]
    pub args: Vec<String>,
    /// The URL of a remote server, secrets redacted.
    #[serde(default)]
    pub url: Option<String>,
    /// Names of the HTTP headers the config sends to a remote server; never values.
    #[serde(default)]
    pub header_names: Vec<String>,
    /// The package the launcher runs, when one could be recognised.
    #[serde(default)]
    pub package: Option<Package>,
    /// The client's config marks the server as disabled.
    #[serde(default)]
    pub disabled: bool,
    /// Tools the client runs without asking the user (`"*"` for all of them).
    #[serde(default)]
    pub auto_approve: Vec<String>,
    /// Secrets the agent found and removed, without their values.
    #[serde(default)]
    pub secrets_found: Vec<SecretFinding>,
    /// Stable hash of what identifies the launch; see [`ServerRecord::compute_fingerprint`].
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The launch as the agent parsed it (absent for remote servers and for agents
    /// that do not parse); the rules read it before the command line.
    #[serde(default)]
    pub launch: Option<LaunchInfo>,
    /// The seed agent's name for the client application (`"Claude Desktop"`); read as
    /// `client` when that is absent (see [`ServerRecord::normalise`]), never stored.
    #[serde(default)]
    pub source: Option<String>,
}

crate::omit_empty_in_json!(ServerRecord {
    server_name,
    server_type if Option::is_none,
    command if Option::is_none,
    scope if Option::is_none,
    env_vars,
    scope_paths if Vec::is_empty,
    client if Option::is_none,
    config_path if Option::is_none,
    config_scope if Option::is_none,
    project_path if Option::is_none,
    os_user if Option::is_none,
    transport if Option::is_none,
    args if Vec::is_empty,
    url if Option::is_none,
    header_names if Vec::is_empty,
    package if Option::is_none,
    disabled,
    auto_approve if Vec::is_empty,
    secrets_found if Vec::is_empty,
    fingerprint if Option::is_none,
    launch if Option::is_none,
    // Read as `client` when that is absent, never stored or sent.
    source if crate::compact::always,
});

/// A stdio launch, parsed: the program as configured (its arguments are the record's
/// `args`), the wrappers taken off it in order (`"cmd /c"`, `"sudo"`, `"env"`,
/// `"bash -c"`), and the program that really runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LaunchInfo {
    pub program: String,
    #[serde(default)]
    pub wrappers: Vec<String>,
    pub runs: String,
}

crate::omit_empty_in_json!(LaunchInfo {
    program,
    wrappers if Vec::is_empty,
    runs,
});

/// Where a config file lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ConfigScope {
    /// The user's own config (`~/.cursor/mcp.json`).
    User,
    /// A project's config (`<project>/.mcp.json`).
    Project,
}

/// How a client talks to an MCP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A local process over standard input and output.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// Server-sent events (the older remote transport).
    Sse,
    /// WebSocket (`ws://`, `wss://`).
    Ws,
}

/// The package a launcher (`npx`, `uvx`, `docker run`, ...) runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Package {
    /// `npm`, `pypi`, `docker`, `deno`, `binary`, ...
    pub ecosystem: String,
    /// The package or image name, without the version.
    pub name: String,
    /// The pinned version or tag; `None` when the launch is unpinned.
    #[serde(default)]
    pub version: Option<String>,
}

/// A secret the agent found in the config and removed before sending.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretFinding {
    /// Where it was: `args[2]`, `url`, `command`.
    pub location: String,
    /// What it looked like: `github_token`, `aws_access_key`, `connection_string_password`, ...
    pub kind: String,
}

impl ServerRecord {
    /// Fold what other agents send into this record's meaning: the seed agent's
    /// `source` is the client when no `client` is given, and an empty or blank `scope`
    /// (or scope path) is no scope at all, not the whole disk.
    pub fn normalise(&mut self) {
        if let Some(source) = self.source.take()
            && self.client.is_none()
            && !source.trim().is_empty()
        {
            self.client = Some(source.trim().to_owned());
        }
        if self.scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
            self.scope = None;
        }
        self.scope_paths.retain(|p| !p.trim().is_empty());
        for field in [&mut self.server_type, &mut self.command, &mut self.url] {
            if field.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *field = None;
            }
        }
    }

    /// The stable hash of what identifies the launch: transport, command, arguments, URL
    /// and package. It changes when what the client would run changes, and not when
    /// only the metadata around it (disabled flag, env var names) does.
    pub fn compute_fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |name: &str, value: &str| {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value.as_bytes());
        };
        let transport = self
            .transport
            .map(|t| format!("{t:?}").to_lowercase())
            .unwrap_or_default();
        field("transport", &transport);
        field("command", self.command.as_deref().unwrap_or(""));
        for arg in &self.args {
            field("arg", arg);
        }
        field("url", self.url.as_deref().unwrap_or(""));
        if let Some(package) = &self.package {
            field("package.ecosystem", &package.ecosystem);
            field("package.name", &package.name);
            field("package.version", package.version.as_deref().unwrap_or(""));
        }
        hex::encode(hasher.finalize())
    }

    /// The fingerprint the agent sent, or the one computed from the record.
    pub fn fingerprint_or_compute(&self) -> String {
        self.fingerprint
            .clone()
            .unwrap_or_else(|| self.compute_fingerprint())
    }

    /// The launch line a person would recognise: the URL for remote servers, else the
    /// command with its arguments.
    pub fn launch_line(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let mut line = self.command.clone().unwrap_or_default();
        for arg in &self.args {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(arg);
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_report_entry_parses_with_defaults() {
        let json = r#"{"server_name":"filesystem","server_type":"@modelcontextprotocol/server-filesystem",
            "command":"npx @modelcontextprotocol/server-filesystem /home","scope":"/home","env_vars":["PATH","HOME"]}"#;
        let record: ServerRecord = serde_json::from_str(json).unwrap();
        assert_eq!(record.server_name, "filesystem");
        assert_eq!(record.scope.as_deref(), Some("/home"));
        assert_eq!(record.env_vars, ["PATH", "HOME"]);
        assert!(!record.disabled);
        assert!(record.package.is_none());
    }

    #[test]
    fn fingerprint_changes_with_launch_not_with_metadata() {
        let base = ServerRecord {
            server_name: "x".into(),
            command: Some("npx".into()),
            args: vec!["-y".into(), "pkg@1.0.0".into()],
            ..ServerRecord::default()
        };
        let mut disabled = base.clone();
        disabled.disabled = true;
        disabled.env_vars = vec!["TOKEN".into()];
        assert_eq!(base.compute_fingerprint(), disabled.compute_fingerprint());

        let mut other = base.clone();
        other.args[1] = "pkg@1.0.1".into();
        assert_ne!(base.compute_fingerprint(), other.compute_fingerprint());

        // Field boundaries are part of the hash: moving text between args changes it.
        let mut split = base.clone();
        split.args = vec!["-y pkg@1.0.0".into()];
        assert_ne!(base.compute_fingerprint(), split.compute_fingerprint());
    }
}
