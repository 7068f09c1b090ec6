//! The collector's settings: defaults, merged with the environment and the command
//! line by clap (command line wins), then checked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Settings the server runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Any number of registrations, each creating its own organisation.
    pub open_registration: bool,
    /// Serve plain HTTP on a non-loopback address.
    pub allow_insecure_http: bool,
    /// Origins allowed by CORS; `*` allows any origin without credentials.
    pub cors_origins: Vec<String>,
    /// The heartbeat interval told to agents.
    pub heartbeat_interval: Duration,
    /// An agent not heard from for this long is offline.
    pub offline_after: Duration,
    /// An agent not heard from for this long has its servers shown as dormant.
    pub dormant_after: Duration,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub agent_requests_per_minute: u32,
    pub login_failures_per_account: u32,
    pub login_failures_per_address: u32,
    pub login_lockout: Duration,
    /// The database's page cache, in MiB.
    pub cache_mb: usize,
    /// Days audit log entries are kept.
    pub retain_audit_days: u32,
    /// Days dormant servers are kept after they were last seen.
    pub retain_dormant_days: u32,
    /// Days dismissed alerts are kept after their dismissal.
    pub retain_alerts_days: u32,
    /// The bearer token `/metrics` asks for (without one it answers loopback only).
    pub metrics_token: Option<String>,
    /// Serve HTTPS with these files.
    pub tls: Option<crate::tls::TlsFiles>,
    /// How notifications are sent (SMTP, the outbound address policy).
    pub notify: crate::notify::send::NotifySettings,
    /// Store everything in this PostgreSQL database instead of the data dir.
    pub database: Option<crate::store::postgres::PgOptions>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
pub const DEFAULT_HEARTBEAT_SECS: u64 = 60;
pub const DEFAULT_DORMANT_AFTER_SECS: u64 = 24 * 60 * 60;
pub const DEFAULT_MAX_BODY_BYTES: usize = mcpwatch_protocol::limits::DEFAULT_MAX_BODY_BYTES;
pub const DEFAULT_AGENT_REQUESTS_PER_MINUTE: u32 = 600;
pub const DEFAULT_RETAIN_DORMANT_DAYS: u32 = 90;
pub const DEFAULT_RETAIN_ALERTS_DAYS: u32 = 365;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "refusing to serve plain HTTP on non-loopback address {0}: tokens and API keys would cross the network \
         unencrypted. Serve HTTPS with --tls-cert and --tls-key, or put a TLS-terminating proxy in front \
         and pass --allow-insecure-http (MCPWATCH_ALLOW_INSECURE_HTTP=true), or listen on 127.0.0.1"
    )]
    InsecureListen(SocketAddr),
    #[error("--heartbeat-interval must be from 5 to 86400 seconds, got {0}")]
    HeartbeatInterval(u64),
    #[error("no data dir given and the OS has no per-user data directory; pass --data-dir")]
    NoDataDir,
}

impl Settings {
    /// Settings with every default, for `listen` and `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        let heartbeat_interval = Duration::from_secs(DEFAULT_HEARTBEAT_SECS);
        Self {
            listen,
            data_dir,
            open_registration: false,
            allow_insecure_http: false,
            cors_origins: Vec::new(),
            heartbeat_interval,
            offline_after: heartbeat_interval * 3,
            dormant_after: Duration::from_secs(DEFAULT_DORMANT_AFTER_SECS),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(30),
            agent_requests_per_minute: DEFAULT_AGENT_REQUESTS_PER_MINUTE,
            login_failures_per_account: 10,
            login_failures_per_address: 50,
            login_lockout: Duration::from_secs(15 * 60),
            retain_audit_days: crate::audit::DEFAULT_RETAIN_DAYS,
            retain_dormant_days: DEFAULT_RETAIN_DORMANT_DAYS,
            retain_alerts_days: DEFAULT_RETAIN_ALERTS_DAYS,
            tls: None,
            metrics_token: None,
            cache_mb: crate::store::redb::DEFAULT_CACHE_MB,
            notify: crate::notify::send::NotifySettings::default(),
            database: None,
        }
    }

    /// Check rules that involve more than one setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.listen.ip().is_loopback() && !self.allow_insecure_http && self.tls.is_none() {
            return Err(ConfigError::InsecureListen(self.listen));
        }
        let secs = self.heartbeat_interval.as_secs();
        if !(5..=86_400).contains(&secs) {
            return Err(ConfigError::HeartbeatInterval(secs));
        }
        Ok(())
    }
}

/// The default data dir: the OS data dir + `mcpwatch`.
pub fn default_data_dir() -> Result<PathBuf, ConfigError> {
    dirs::data_dir()
        .map(|d| d.join("mcpwatch"))
        .ok_or(ConfigError::NoDataDir)
}

/// Split `CORS_ORIGINS` (comma-separated).
pub fn parse_origins(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_off_loopback_needs_the_flag() {
        for (addr, allow, ok) in [
            ("127.0.0.1:8000", false, true),
            ("[::1]:8000", false, true),
            ("0.0.0.0:8000", false, false),
            ("0.0.0.0:8000", true, true),
            ("10.1.2.3:8000", false, false),
        ] {
            let mut s = Settings::new(addr.parse().unwrap(), PathBuf::from("/tmp/x"));
            s.allow_insecure_http = allow;
            assert_eq!(s.validate().is_ok(), ok, "{addr} allow={allow}");
        }
    }

    #[test]
    fn heartbeat_interval_is_bounded() {
        let mut s = Settings::new("127.0.0.1:1".parse().unwrap(), PathBuf::from("/tmp/x"));
        s.heartbeat_interval = Duration::from_secs(1);
        assert_eq!(s.validate(), Err(ConfigError::HeartbeatInterval(1)));
    }

    #[test]
    fn origins_are_split_and_trimmed() {
        assert_eq!(
            parse_origins(" https://a.example/ ,https://b.example,,"),
            ["https://a.example", "https://b.example"]
        );
        assert!(parse_origins("").is_empty());
    }
}
