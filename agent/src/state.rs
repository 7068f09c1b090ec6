//! The agent's state dir: its identity (agent id, API key, Ed25519 signing key), what
//! it last sent and when, and the newest report not yet accepted by the collector (the
//! spool), so that a restart while the collector is down loses nothing, and an enroll
//! secret `install` was given while the collector could not be reached (deleted once
//! the agent enrolls). Every file is owner-only and replaced atomically; the state
//! file carries a format version.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use mcpwatch_protocol::wire::ReportRequest;
use serde::{Deserialize, Serialize};

use crate::paths::{create_private_dir, write_private};

const STATE_FILE: &str = "state.json";
const KEY_FILE: &str = "agent.key";
const SPOOL_FILE: &str = "pending-report.json";
const ENROLL_SECRET_FILE: &str = "enroll-secret";
const STATE_VERSION: u32 = 1;

/// Why the state dir could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state dir {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is damaged (line {line}); re-enroll to start over")]
    Damaged { path: PathBuf, line: usize },
    #[error("signing key {path} is damaged; re-enroll to start over")]
    BadKey { path: PathBuf },
    #[error("state file {path} was written by a newer agent (format {found})")]
    TooNew { path: PathBuf, found: u32 },
}

pub type Result<T> = std::result::Result<T, Error>;

/// What the agent remembers between runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub agent_id: Option<String>,
    pub collector_url: Option<String>,
    /// The agent's API key (a credential: this file is owner-only).
    pub api_key: Option<String>,
    /// Whether the collector has our public key (it requires signatures once it has).
    #[serde(default)]
    pub key_bound: bool,
    pub heartbeat_interval_secs: Option<u64>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub last_report_at: Option<DateTime<Utc>>,
    /// The inventory hash of the last report the collector accepted.
    pub last_report_hash: Option<String>,
    #[serde(default)]
    pub sequence: u64,
    pub last_error: Option<String>,
    /// The collector refused our key repeatedly: uploads stop until re-enrollment.
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub watched_dirs: usize,
    /// The last report the collector refused for good (a 4xx other than 401/429), so
    /// that the same body is not sent again and `status` and heartbeats can say why.
    #[serde(default)]
    pub refused_report: Option<RefusedReport>,
    /// The most bytes of servers one report may carry, when the collector answered 413
    /// to more (unset: [`crate::inventory::REPORT_BUDGET_BYTES`]).
    #[serde(default)]
    pub report_budget_bytes: Option<usize>,
    /// The host facts last sent, hashed: heartbeats carry them only when they change.
    #[serde(default)]
    pub facts_hash: Option<String>,
}

/// A report the collector refused for good.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefusedReport {
    pub inventory_hash: String,
    pub at: DateTime<Utc>,
    /// What the collector said, made safe to print.
    pub error: String,
}

/// The state dir.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Use `dir`, creating it owner-only.
    pub fn open(dir: &Path) -> Result<Self> {
        create_private_dir(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn io(&self, file: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        let path = self.dir.join(file);
        move |source| Error::Io { path, source }
    }

    /// The saved state, or a fresh one.
    pub fn load(&self) -> Result<State> {
        let path = self.dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: STATE_VERSION,
                    ..State::default()
                });
            }
            Err(e) => return Err(self.io(STATE_FILE)(e)),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| Error::Damaged {
            path: path.clone(),
            line: e.line(),
        })?;
        if state.version > STATE_VERSION {
            return Err(Error::TooNew {
                path,
                found: state.version,
            });
        }
        Ok(state)
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let mut state = state.clone();
        state.version = STATE_VERSION;
        let bytes = serde_json::to_vec_pretty(&state).unwrap_or_default();
        write_private(&self.dir.join(STATE_FILE), &bytes).map_err(self.io(STATE_FILE))
    }

    /// The signing key, if one was made.
    pub fn signing_key(&self) -> Result<Option<SigningKey>> {
        let path = self.dir.join(KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let bytes =
                    hex::decode(text.trim()).map_err(|_| Error::BadKey { path: path.clone() })?;
                let seed: [u8; 32] = bytes.try_into().map_err(|_| Error::BadKey { path })?;
                Ok(Some(SigningKey::from_bytes(&seed)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(KEY_FILE)(e)),
        }
    }

    /// Make and save a new signing key.
    pub fn new_signing_key(&self) -> Result<SigningKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Io {
            path: self.dir.join(KEY_FILE),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_private(&self.dir.join(KEY_FILE), hex::encode(seed).as_bytes())
            .map_err(self.io(KEY_FILE))?;
        Ok(SigningKey::from_bytes(&seed))
    }

    /// The report waiting to be accepted, if any.
    pub fn pending(&self) -> Option<ReportRequest> {
        let text = fs::read_to_string(self.dir.join(SPOOL_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn set_pending(&self, report: &ReportRequest) -> Result<()> {
        let bytes = serde_json::to_vec(report).unwrap_or_default();
        write_private(&self.dir.join(SPOOL_FILE), &bytes).map_err(self.io(SPOOL_FILE))
    }

    pub fn clear_pending(&self) -> Result<()> {
        self.remove(SPOOL_FILE)
    }

    fn remove(&self, name: &'static str) -> Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io(name)(e)),
            _ => Ok(()),
        }
    }

    /// The enroll secret kept for the service to enroll with, if any.
    pub fn enroll_secret(&self) -> Option<String> {
        let text = fs::read_to_string(self.dir.join(ENROLL_SECRET_FILE)).ok()?;
        Some(text.trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// Keep an enroll secret until the agent has enrolled with it (owner-only).
    pub fn keep_enroll_secret(&self, secret: &str) -> Result<()> {
        write_private(&self.dir.join(ENROLL_SECRET_FILE), secret.as_bytes())
            .map_err(self.io(ENROLL_SECRET_FILE))
    }

    /// Delete the kept enroll secret (once enrolled, or refused).
    pub fn forget_enroll_secret(&self) -> Result<()> {
        self.remove(ENROLL_SECRET_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_key_and_spool_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(&dir.path().join("st")).unwrap();
        let mut state = s.load().unwrap();
        assert!(state.agent_id.is_none());
        state.agent_id = Some("a".into());
        state.sequence = 4;
        s.save(&state).unwrap();
        assert_eq!(s.load().unwrap().sequence, 4);
        assert!(s.signing_key().unwrap().is_none());
        let key = s.new_signing_key().unwrap();
        assert_eq!(s.signing_key().unwrap().unwrap().to_bytes(), key.to_bytes());
        assert!(s.pending().is_none());
        s.set_pending(&ReportRequest::default()).unwrap();
        assert!(s.pending().is_some());
        s.clear_pending().unwrap();
        s.clear_pending().unwrap();
        assert!(s.pending().is_none());
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        fs::write(dir.path().join(STATE_FILE), "{\n\"version\": 1,\n oops").unwrap();
        assert!(matches!(s.load(), Err(Error::Damaged { line: 3, .. })));
        fs::write(dir.path().join(KEY_FILE), "zz").unwrap();
        assert!(matches!(s.signing_key(), Err(Error::BadKey { .. })));
    }
}
