//! The embedded store: one redb file in the data dir.
//!
//! # Layout
//!
//! Keys are byte strings built from fixed-width parts (16-byte UUIDs, one-byte level
//! ranks), so that every organisation's rows form one contiguous key range and a
//! prefix scan never crosses into another organisation. Values are JSON.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `orgs` | org | [`Org`] |
//! | `users` | org·user | [`User`] |
//! | `user_emails` | email | org·user |
//! | `sessions` | session | [`Session`] |
//! | `user_sessions` | org·user·session | – |
//! | `agents` | org·agent | [`Agent`] |
//! | `agent_keys` | sha256(key) | org·agent |
//! | `enroll_secrets` | org·secret | [`EnrollSecret`] |
//! | `enroll_hashes` | sha256(secret) | org·secret |
//! | `servers` | org·server | [`Server`] |
//! | `server_identity` | org·agent·sha256(client, path, name) | server |
//! | `srv_rank` | org·rank·(255−score)·server | status·agent·name |
//! | `srv_agent` | org·agent·rank·(255−score)·server | status·name |
//! | `counts` | org·`S`·rank·status, org·`A` | u64 |
//! | `alerts` | org·alert | [`Alert`] |
//! | `alerts_open` | org·alert | – |
//! | `policies` | org | [`OrgPolicy`] |
//! | `alert_subjects` | org·subject·kind | org·alert (the one open alert of that kind) |
//! | `server_changes` | org·server·seq | [`ServerChange`] (the newest [`MAX_SERVER_CHANGES`] per server) |
//! | `inventory_rev` | org·agent | u64, bumped by every write of one of the agent's servers |
//!
//! The rank indexes order servers by risk (critical first, then score, then age) and
//! carry what the list filters need, so a filtered page reads only the index and the
//! page's rows; the counts are kept in the same transaction as the rows.
//!
//! # Group commit
//!
//! Writes go to one writer thread. It takes every write that is waiting (up to
//! [`MAX_BATCH`]), runs them in one transaction, commits once (fsync), and only then
//! answers each caller. Each write job does its checks (reads) before it writes, so a
//! job that refuses (not found, conflict) leaves nothing behind; a storage failure
//! aborts the whole batch and every caller in it gets the error.
//!
//! A report is planned (stored servers read and decoded, scored, combined, encoded)
//! by its caller against a read snapshot, not on the writer thread; the writer applies
//! the plan if the agent's `inventory_rev` and the organisation's policy are still what
//! the plan read, and plans again inside the transaction if not.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{
    AgentId, AlertId, EnrollSecretId, OrgId, ServerId, SessionId, UserId,
};
use mcpwatch_protocol::risk::{self, RiskLevel};
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::ReportResponse;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::{
    AlertQuery, Error, HeartbeatUpdate, OrgPatch, Page, ReportInput, Result, ServerQuery, Store,
    UserPatch,
};
use crate::ingest::{self, ServerWrite};
use crate::model::{
    Agent, Alert, AlertKind, EnrollSecret, HostFacts, LevelCounts, MAX_SERVER_CHANGES, Org,
    OrgPolicy, Role, Server, ServerChange, ServerStatus, Session, User,
};

type Bytes = &'static [u8];

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const ORGS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("orgs");
const USERS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("users");
const USER_EMAILS: TableDefinition<'_, &str, Bytes> = TableDefinition::new("user_emails");
const SESSIONS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("sessions");
const USER_SESSIONS: TableDefinition<'_, Bytes, ()> = TableDefinition::new("user_sessions");
const AGENTS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("agents");
const AGENT_KEYS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("agent_keys");
const ENROLL_SECRETS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("enroll_secrets");
const ENROLL_HASHES: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("enroll_hashes");
const SERVERS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("servers");
const SERVER_IDENTITY: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("server_identity");
const SRV_RANK: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("srv_rank");
const SRV_AGENT: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("srv_agent");
const COUNTS: TableDefinition<'_, Bytes, u64> = TableDefinition::new("counts");
const ALERTS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("alerts");
const ALERTS_OPEN: TableDefinition<'_, Bytes, ()> = TableDefinition::new("alerts_open");
const ALERT_SUBJECTS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("alert_subjects");
const POLICIES: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("policies");
const SERVER_CHANGES: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("server_changes");
const INVENTORY_REV: TableDefinition<'_, Bytes, u64> = TableDefinition::new("inventory_rev");

/// The layout version this code reads and writes. 2: server change histories moved
/// out of the server records into `server_changes` (see [`migrate_histories`]).
const SCHEMA_VERSION: u32 = 2;
/// Reports of at most this many servers are planned on the request's own thread.
const PLAN_ON_CALLER_MAX: usize = 100;
/// Servers migrated per transaction when a database is upgraded.
const MIGRATION_BATCH: usize = 10_000;
/// The most writes committed together.
const MAX_BATCH: usize = 512;
/// The database file inside the data dir.
pub const DB_FILE: &str = "mcpwatch.redb";

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> (Completion, bool) + Send>;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("another mcpwatch-collector already uses {path}")]
    InUse { path: PathBuf },
    #[error("cannot open database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error(
        "database {path} was written by a newer mcpwatch (layout {found}, this version reads up to {SCHEMA_VERSION})"
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("cannot initialise database {path}: {message}")]
    Init { path: PathBuf, message: String },
    #[error(
        "database {path} is empty (0 bytes): it is not a database, and a new one is made only where no file exists; restore it from a backup, or move it away to start with an empty database"
    )]
    Empty { path: PathBuf },
    #[error("data dir {path}: {message}")]
    Permissions { path: PathBuf, message: String },
}

/// The redb-backed [`Store`].
pub struct RedbStore {
    db: Arc<Slot>,
    jobs: mpsc::Sender<Job>,
}

/// Free space the disk must keep for a write batch to start: a commit that finds no
/// room fails with an I/O error that takes the database down until it is reopened,
/// so writes stop short of that and reads go on.
pub const DISK_RESERVE_BYTES: u64 = 32 * 1024 * 1024;
/// How long the store keeps trying to reopen the database after a storage failure
/// before `/health/live` says it cannot recover (and the service manager restarts it).
const RECOVERY_GIVE_UP: Duration = Duration::from_secs(10 * 60);

/// The open database, swappable: after an I/O error redb fails every later
/// operation, so the writer closes it and opens it again once the storage works.
struct Slot {
    path: PathBuf,
    current: std::sync::RwLock<Option<Arc<Database>>>,
    state: std::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// Writes are refused for lack of disk space.
    full: bool,
    /// The database is closed after a storage failure, since then, and why.
    failed: Option<(std::time::Instant, String)>,
}

impl Slot {
    fn db(&self) -> Result<Arc<Database>> {
        let current = self
            .current
            .read()
            .map_err(|_| Error::Internal("store handle lock poisoned".into()))?;
        current.clone().ok_or_else(|| self.failure())
    }

    /// The error for a write the writer could not make.
    fn failure(&self) -> Error {
        match self.state.lock() {
            Ok(state) if state.full => Error::StorageFull,
            Ok(state) => match &state.failed {
                Some((_, why)) => Error::Unavailable(why.clone()),
                None => Error::Internal("store writer dropped the write".into()),
            },
            Err(_) => Error::Internal("store state lock poisoned".into()),
        }
    }

    fn set_full(&self, full: bool) {
        if let Ok(mut state) = self.state.lock()
            && state.full != full
        {
            state.full = full;
            if full {
                tracing::error!(path = %self.path.display(), reserve_bytes = DISK_RESERVE_BYTES, "The disk holding the database is full: writes are refused until space is freed; reads go on.");
            } else {
                tracing::info!("Disk space is back: writes resume.");
            }
        }
    }

    /// Whether free space on the database's disk is below the reserve (never, where
    /// it cannot be measured).
    fn disk_full(&self) -> bool {
        #[cfg(unix)]
        {
            let dir = self.path.parent().unwrap_or(&self.path);
            if let Ok(stat) = rustix::fs::statvfs(dir) {
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                return free < DISK_RESERVE_BYTES;
            }
        }
        false
    }

    /// Close the database after a storage failure: take it out of the slot (new
    /// requests get [`Error::Unavailable`]), wait briefly for reads in flight, drop it.
    fn close_after_failure(&self, why: &str) {
        let taken = match self.current.write() {
            Ok(mut current) => current.take(),
            Err(_) => return,
        };
        if let Ok(mut state) = self.state.lock() {
            state.failed = Some((std::time::Instant::now(), why.to_owned()));
        }
        tracing::error!(
            error = why,
            "Storage failure: the database is closed and will be reopened once the storage works."
        );
        if let Some(db) = taken {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while Arc::strong_count(&db) > 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            drop(db);
        }
    }

    /// Try to open the database again; answers whether it is open.
    fn reopen(&self) -> bool {
        if self.current.read().is_ok_and(|c| c.is_some()) {
            return true;
        }
        if self.disk_full() {
            self.set_full(true);
        }
        match Database::open(&self.path) {
            Ok(db) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Some(Arc::new(db));
                }
                if let Ok(mut state) = self.state.lock() {
                    state.failed = None;
                }
                tracing::info!(path = %self.path.display(), "The database is open again: the store has recovered.");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "The database cannot be reopened yet; retrying.");
                false
            }
        }
    }

    /// `Err` once reopening has failed for longer than [`RECOVERY_GIVE_UP`].
    fn alive(&self) -> std::result::Result<(), String> {
        match self.state.lock() {
            Ok(state) => match &state.failed {
                Some((since, why)) if since.elapsed() > RECOVERY_GIVE_UP => Err(format!(
                    "the database could not be reopened for {} s after a storage failure: {why}",
                    since.elapsed().as_secs()
                )),
                _ => Ok(()),
            },
            Err(_) => Err("store state lock poisoned".into()),
        }
    }
}

/// Whether a redb error says the storage failed (and the database must be reopened).
fn storage_failed(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("i/o") || m.contains("io error") || m.contains("previous") || m.contains("no space")
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Self {
                Error::Internal(err.to_string())
            }
        }
    )*};
}
internal_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encoding record: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Internal(format!("stored record is unreadable: {e}")))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn id16(bytes: &[u8]) -> Result<[u8; 16]> {
    bytes
        .try_into()
        .map_err(|_| Error::Internal("stored key has the wrong length".into()))
}

fn inv_score(score: u8) -> u8 {
    u8::MAX - score
}

fn count_key_servers(org: OrgId, level: RiskLevel, status: ServerStatus) -> Vec<u8> {
    cat(&[&org.to_bytes(), b"S", &[level.rank(), status.code()]])
}

fn count_key_alerts(org: OrgId) -> Vec<u8> {
    cat(&[&org.to_bytes(), b"A"])
}

/// Every key in `table` that starts with `prefix`, with its value.
fn scan_prefix<T>(table: &T, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>
where
    T: ReadableTable<Bytes, Bytes>,
{
    let mut out = Vec::new();
    for entry in table.range::<&[u8]>(prefix..)? {
        let (k, v) = entry?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

fn get_json<T: DeserializeOwned, Tb: ReadableTable<Bytes, Bytes>>(
    table: &Tb,
    key: &[u8],
) -> Result<Option<T>> {
    match table.get(key)? {
        Some(v) => decode(v.value()).map(Some),
        None => Ok(None),
    }
}

/// Every record stored under `prefix`.
fn list_json<T: DeserializeOwned, Tb: ReadableTable<Bytes, Bytes>>(
    table: &Tb,
    prefix: &[u8],
) -> Result<Vec<T>> {
    scan_prefix(table, prefix)?
        .iter()
        .map(|(_, v)| decode(v))
        .collect()
}

/// The record an index entry points at.
fn get_via<T: DeserializeOwned>(
    txn: &ReadTransaction,
    index: TableDefinition<'_, Bytes, Bytes>,
    key: &[u8],
    data: TableDefinition<'_, Bytes, Bytes>,
) -> Result<Option<T>> {
    let Some(target) = txn.open_table(index)?.get(key)?.map(|v| v.value().to_vec()) else {
        return Ok(None);
    };
    get_json(&txn.open_table(data)?, &target)
}

fn add_count(txn: &WriteTransaction, key: &[u8], delta: i64) -> Result<()> {
    let mut counts = txn.open_table(COUNTS)?;
    let current = counts.get(key)?.map_or(0, |v| v.value());
    let next = current.saturating_add_signed(delta);
    if next == 0 {
        counts.remove(key)?;
    } else {
        counts.insert(key, next)?;
    }
    Ok(())
}

/// A server's entries in the rank indexes and the counts.
#[derive(PartialEq)]
struct IndexEntries {
    rank: (Vec<u8>, Vec<u8>),
    by_agent: (Vec<u8>, Vec<u8>),
    count: Vec<u8>,
}

impl IndexEntries {
    fn of(s: &Server) -> Self {
        let org = s.org_id.to_bytes();
        let agent = s.agent_id.to_bytes();
        let id = s.id.to_bytes();
        let order = [s.risk_level.rank(), inv_score(s.risk_score)];
        let name = s.record.server_name.to_lowercase();
        Self {
            rank: (
                cat(&[&org, &order, &id]),
                cat(&[&[s.status.code()], &agent, name.as_bytes()]),
            ),
            by_agent: (
                cat(&[&org, &agent, &order, &id]),
                cat(&[&[s.status.code()], name.as_bytes()]),
            ),
            count: count_key_servers(s.org_id, s.risk_level, s.status),
        }
    }
}

fn index_server(txn: &WriteTransaction, s: &Server, add: bool) -> Result<()> {
    let entries = IndexEntries::of(s);
    {
        let mut rank = txn.open_table(SRV_RANK)?;
        let mut by_agent = txn.open_table(SRV_AGENT)?;
        if add {
            rank.insert(entries.rank.0.as_slice(), entries.rank.1.as_slice())?;
            by_agent.insert(entries.by_agent.0.as_slice(), entries.by_agent.1.as_slice())?;
        } else {
            rank.remove(entries.rank.0.as_slice())?;
            by_agent.remove(entries.by_agent.0.as_slice())?;
        }
    }
    add_count(txn, &entries.count, if add { 1 } else { -1 })
}

fn put_server(txn: &WriteTransaction, write: &ServerWrite) -> Result<()> {
    put_encoded_server(txn, write, &encode(&write.after)?)
}

/// [`put_server`] with the new record already encoded.
fn put_encoded_server(txn: &WriteTransaction, write: &ServerWrite, encoded: &[u8]) -> Result<()> {
    let after = &write.after;
    // Most updates (a new version, another path) leave level, score, status and name,
    // and so every index entry, as they were.
    let same_entries = write
        .before
        .as_ref()
        .is_some_and(|before| IndexEntries::of(before) == IndexEntries::of(after));
    if !same_entries {
        if let Some(before) = &write.before {
            index_server(txn, before, false)?;
        }
        index_server(txn, after, true)?;
    }
    let (org, id) = (after.org_id.to_bytes(), after.id.to_bytes());
    txn.open_table(SERVERS)?
        .insert(cat(&[&org, &id]).as_slice(), encoded)?;
    if let Some(change) = &write.change {
        let seq = after
            .change_seq
            .checked_sub(1)
            .ok_or_else(|| Error::Internal("a server change without a number".into()))?;
        let mut history = txn.open_table(SERVER_CHANGES)?;
        history.insert(
            cat(&[&org, &id, &seq.to_be_bytes()]).as_slice(),
            encode(change)?.as_slice(),
        )?;
        if let Some(oldest) = seq.checked_sub(MAX_SERVER_CHANGES) {
            history.remove(cat(&[&org, &id, &oldest.to_be_bytes()]).as_slice())?;
        }
    }
    let rev_key = cat(&[&org, &after.agent_id.to_bytes()]);
    let mut revisions = txn.open_table(INVENTORY_REV)?;
    let next = revision_of(&revisions, &rev_key)?.wrapping_add(1);
    revisions.insert(rev_key.as_slice(), next)?;
    Ok(())
}

fn revision_of<T: ReadableTable<Bytes, u64>>(revisions: &T, key: &[u8]) -> Result<u64> {
    Ok(revisions.get(key)?.map_or(0, |v| v.value()))
}

fn subject_key(alert: &Alert) -> Vec<u8> {
    cat(&[
        &alert.org_id.to_bytes(),
        &alert.subject(),
        &[alert.kind.code()],
    ])
}

/// Raise an alert, unless one of the same kind is open for the same server or agent:
/// then that one is updated (severity raised, message and details replaced, one more
/// occurrence). Answers whether a new alert was created.
fn raise_alert(txn: &WriteTransaction, alert: &Alert) -> Result<bool> {
    let subject = subject_key(alert);
    let open_key = txn
        .open_table(ALERT_SUBJECTS)?
        .get(subject.as_slice())?
        .map(|v| v.value().to_vec());
    if let Some(key) = open_key {
        let previous = get_json::<Alert, _>(&txn.open_table(ALERTS)?, &key)?;
        if let Some(mut previous) = previous.filter(|p| !p.dismissed) {
            previous.severity = previous.severity.max(alert.severity);
            previous.title.clone_from(&alert.title);
            previous.message.clone_from(&alert.message);
            previous.details = alert.details.clone();
            previous.updated_at = Some(alert.created_at);
            previous.occurrences = previous.occurrences.saturating_add(1);
            txn.open_table(ALERTS)?
                .insert(key.as_slice(), encode(&previous)?.as_slice())?;
            return Ok(false);
        }
    }
    put_alert(txn, alert, None)?;
    let key = cat(&[&alert.org_id.to_bytes(), &alert.id.to_bytes()]);
    txn.open_table(ALERT_SUBJECTS)?
        .insert(subject.as_slice(), key.as_slice())?;
    Ok(true)
}

fn put_alert(txn: &WriteTransaction, alert: &Alert, was_open: Option<bool>) -> Result<()> {
    let key = cat(&[&alert.org_id.to_bytes(), &alert.id.to_bytes()]);
    if alert.dismissed && was_open == Some(true) {
        // Dismissed: the next occurrence of the situation raises a new alert.
        let subject = subject_key(alert);
        let mut subjects = txn.open_table(ALERT_SUBJECTS)?;
        if subjects
            .get(subject.as_slice())?
            .is_some_and(|v| v.value() == key.as_slice())
        {
            subjects.remove(subject.as_slice())?;
        }
    }
    txn.open_table(ALERTS)?
        .insert(key.as_slice(), encode(alert)?.as_slice())?;
    let open_now = !alert.dismissed;
    if was_open != Some(open_now) {
        let mut open = txn.open_table(ALERTS_OPEN)?;
        if open_now {
            open.insert(key.as_slice(), ())?;
        } else {
            open.remove(key.as_slice())?;
        }
        let delta = match (was_open, open_now) {
            (Some(true), false) => -1,
            (None | Some(false), true) => 1,
            _ => 0,
        };
        drop(open);
        add_count(txn, &count_key_alerts(alert.org_id), delta)?;
    }
    Ok(())
}

/// Show an agent's snapshot servers as active (agent heard from) or dormant (agent
/// silent). Servers missing from its snapshot stay dormant either way.
fn set_presence(txn: &WriteTransaction, org: OrgId, agent: AgentId, active: bool) -> Result<()> {
    let servers = agent_servers(
        &txn.open_table(SERVER_IDENTITY)?,
        &txn.open_table(SERVERS)?,
        org,
        agent,
    )?;
    let target = if active {
        ServerStatus::Active
    } else {
        ServerStatus::Dormant
    };
    for (before, _) in servers {
        if before.in_snapshot && before.status != target {
            let mut after = before.clone();
            after.status = target;
            put_server(txn, &ServerWrite::silent(Some(before), after))?;
        }
    }
    Ok(())
}

/// A report planned against one read of the agent's inventory.
struct PreparedReport {
    /// The agent's inventory revision and the policy record the plan read.
    revision: u64,
    policy: Option<Vec<u8>>,
    plan: ingest::Plan,
    combinations: Vec<risk::Combination>,
    /// The plan's writes, encoded.
    encoded: Vec<Vec<u8>>,
}

/// The tables [`prepare_report`] reads, opened in a read or a write transaction.
macro_rules! planning_tables {
    ($txn:expr) => {
        (
            &$txn.open_table(SERVER_IDENTITY)?,
            &$txn.open_table(SERVERS)?,
            &$txn.open_table(POLICIES)?,
            &$txn.open_table(INVENTORY_REV)?,
        )
    };
}

/// Plan a snapshot against the agent's stored servers, combine, and encode the writes.
fn prepare_report<I, S, P, R>(
    (identity, servers, policies, revisions): (&I, &S, &P, &R),
    org: OrgId,
    agent: AgentId,
    snapshot: Vec<ServerRecord>,
    now: DateTime<Utc>,
) -> Result<PreparedReport>
where
    I: ReadableTable<Bytes, Bytes>,
    S: ReadableTable<Bytes, Bytes>,
    P: ReadableTable<Bytes, Bytes>,
    R: ReadableTable<Bytes, u64>,
{
    let revision = revision_of(revisions, &cat(&[&org.to_bytes(), &agent.to_bytes()]))?;
    let existing = agent_servers(identity, servers, org, agent)?;
    let policy_bytes = policies
        .get(org.to_bytes().as_slice())?
        .map(|v| v.value().to_vec());
    let policy: OrgPolicy = match &policy_bytes {
        Some(bytes) => decode(bytes)?,
        None => OrgPolicy::default(),
    };
    let mut plan = ingest::plan(org, agent, existing, snapshot, &policy, now);
    let combinations = ingest::combine(&mut plan, now);
    let encoded = plan
        .writes
        .iter()
        .map(|w| encode(&w.after))
        .collect::<Result<_>>()?;
    Ok(PreparedReport {
        revision,
        policy: policy_bytes,
        plan,
        combinations,
        encoded,
    })
}

fn policy_of<T: ReadableTable<Bytes, Bytes>>(table: &T, org: OrgId) -> Result<OrgPolicy> {
    Ok(get_json(table, &org.to_bytes())?.unwrap_or_default())
}

fn agent_servers<T: ReadableTable<Bytes, Bytes>, U: ReadableTable<Bytes, Bytes>>(
    identity: &T,
    servers: &U,
    org: OrgId,
    agent: AgentId,
) -> Result<Vec<(Server, [u8; 32])>> {
    let org_b = org.to_bytes();
    let prefix = cat(&[&org_b, &agent.to_bytes()]);
    let mut out = Vec::new();
    for (key, value) in scan_prefix(identity, &prefix)? {
        let ident: [u8; 32] = key[32..]
            .try_into()
            .map_err(|_| Error::Internal("identity key has the wrong length".into()))?;
        let server_key = cat(&[&org_b, &value]);
        if let Some(server) = get_json::<Server, _>(servers, &server_key)? {
            out.push((server, ident));
        }
    }
    Ok(out)
}

fn count_active_admins<T: ReadableTable<Bytes, Bytes>>(users: &T, org: OrgId) -> Result<usize> {
    let mut n = 0;
    for (_, v) in scan_prefix(users, &org.to_bytes())? {
        let user: User = decode(&v)?;
        if user.role == Role::Admin && user.is_active {
            n += 1;
        }
    }
    Ok(n)
}

impl RedbStore {
    /// Open (or create) the database in `data_dir`, check its layout version, and start
    /// the writer thread.
    pub fn open(data_dir: &Path) -> std::result::Result<Self, OpenError> {
        let path = data_dir.join(DB_FILE);
        owner_only(data_dir, &path)?;
        let map = |source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse { path: path.clone() },
            source => OpenError::Open {
                path: path.clone(),
                source,
            },
        };
        // A database is created only where no file exists: an existing file that does
        // not open (empty, truncated, damaged) is an error, never a fresh start.
        let db = match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == 0 => return Err(OpenError::Empty { path }),
            Ok(_) => Database::open(&path).map_err(map)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Made under a temporary name and renamed once it is a database, so a
                // crash here never leaves an empty file where the database belongs.
                let creating = path.with_extension("redb.creating");
                let made = (|| -> std::io::Result<()> {
                    let _ = std::fs::remove_file(&creating);
                    create_private_file(&creating)?;
                    drop(Database::create(&creating).map_err(std::io::Error::other)?);
                    std::fs::rename(&creating, &path)
                })();
                made.map_err(|e| OpenError::Permissions {
                    path: path.clone(),
                    message: format!("cannot create the database file: {e}"),
                })?;
                Database::open(&path).map_err(map)?
            }
            Err(e) => {
                return Err(OpenError::Permissions {
                    path: path.clone(),
                    message: format!("cannot read the database file: {e}"),
                });
            }
        };
        let init = |db: &Database| -> Result<Option<u32>> {
            let txn = db.begin_write()?;
            let found = {
                let mut meta = txn.open_table(META)?;
                let found = match meta.get("schema_version")? {
                    Some(v) => Some(u32::from_be_bytes(v.value().try_into().map_err(|_| {
                        Error::Internal("schema version record is damaged".into())
                    })?)),
                    None => None,
                };
                if found.is_none() {
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
                }
                found
            };
            if found.is_some_and(|v| v > SCHEMA_VERSION) {
                return Ok(found);
            }
            txn.open_table(ORGS)?;
            txn.open_table(USERS)?;
            txn.open_table(USER_EMAILS)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(USER_SESSIONS)?;
            txn.open_table(AGENTS)?;
            txn.open_table(AGENT_KEYS)?;
            txn.open_table(ENROLL_SECRETS)?;
            txn.open_table(ENROLL_HASHES)?;
            txn.open_table(SERVERS)?;
            txn.open_table(SERVER_IDENTITY)?;
            txn.open_table(SRV_RANK)?;
            txn.open_table(SRV_AGENT)?;
            txn.open_table(COUNTS)?;
            txn.open_table(ALERTS)?;
            txn.open_table(ALERTS_OPEN)?;
            txn.open_table(ALERT_SUBJECTS)?;
            txn.open_table(POLICIES)?;
            txn.open_table(SERVER_CHANGES)?;
            txn.open_table(INVENTORY_REV)?;
            txn.commit()?;
            Ok(found)
        };
        match init(&db) {
            Ok(Some(found)) if found > SCHEMA_VERSION => {
                return Err(OpenError::TooNew { path, found });
            }
            Ok(Some(1)) => match migrate_histories(&db) {
                Ok(moved) => tracing::info!(
                    servers = moved,
                    "Database upgraded to layout 2: change histories moved out of server records."
                ),
                Err(e) => {
                    return Err(OpenError::Init {
                        path,
                        message: format!("upgrading the database layout from 1 to 2: {e}"),
                    });
                }
            },
            Ok(_) => {}
            Err(e) => {
                return Err(OpenError::Init {
                    path,
                    message: e.to_string(),
                });
            }
        }
        let db = Arc::new(Slot {
            path: path.clone(),
            current: std::sync::RwLock::new(Some(Arc::new(db))),
            state: std::sync::Mutex::new(SlotState::default()),
        });
        let (jobs, rx) = mpsc::channel::<Job>();
        let writer_db = Arc::clone(&db);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx))
            .map_err(|e| OpenError::Init {
                path: path.clone(),
                message: format!("cannot start writer thread: {e}"),
            })?;
        Ok(Self { db, jobs })
    }

    /// Close the database as after a storage failure (tests of the recovery). The
    /// writer, which would have seen the failure itself, notices at its next write.
    #[cfg(test)]
    pub(crate) fn simulate_storage_failure(&self) {
        self.db.close_after_failure("simulated storage failure");
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.db()?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            f(&txn)
        })
        .await
        .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }

    /// A point read on the calling thread: a few B-tree lookups in the memory-mapped
    /// file, cheaper than the hop to the blocking pool that [`Self::read`] makes (which
    /// scans and pages keep).
    fn read_now<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.db()?.begin_read()?;
        f(&txn)
    }

    /// Plan a report against a read snapshot (the heavy part: decode, score, combine,
    /// encode), so that the writer only applies it. A usual report is planned on the
    /// calling thread (a hop to the blocking pool would cost more than the work); a large
    /// one, which would hold a request thread for milliseconds, on the blocking pool.
    async fn prepare_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: &ReportInput,
    ) -> Result<PreparedReport> {
        let (snapshot, now) = (report.servers.clone(), report.received_at);
        let plan = move |txn: &ReadTransaction| {
            prepare_report(planning_tables!(txn), org, agent, snapshot, now)
        };
        if report.servers.len() <= PLAN_ON_CALLER_MAX {
            self.read_now(plan)
        } else {
            self.read(plan).await
        }
    }

    /// Apply a prepared report in one write job: as prepared when the agent's
    /// inventory and the policy are still what it read, planned again otherwise.
    async fn commit_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
        prepared: PreparedReport,
    ) -> Result<ReportResponse> {
        let ReportInput {
            servers: snapshot,
            config_errors,
            facts,
            sequence,
            received_at,
        } = report;
        self.write(move |txn| {
            let agent_key = cat(&[&org.to_bytes(), &agent.to_bytes()]);
            let mut record: Agent =
                get_json(&txn.open_table(AGENTS)?, &agent_key)?.ok_or(Error::NotFound)?;
            if record.stale {
                set_presence(txn, org, agent, true)?;
                record.stale = false;
            }
            let still_current = prepared.revision
                == revision_of(&txn.open_table(INVENTORY_REV)?, &agent_key)?
                && prepared.policy.as_deref()
                    == txn.open_table(POLICIES)?.get(org.to_bytes().as_slice())?.as_ref().map(|v| v.value());
            let PreparedReport { plan, combinations, encoded, .. } = if still_current {
                prepared
            } else {
                // Something wrote the agent's servers or the policy since: plan again.
                prepare_report(
                    planning_tables!(txn),
                    org,
                    agent,
                    snapshot,
                    received_at,
                )?
            };
            for (write, bytes) in plan.writes.iter().zip(&encoded) {
                put_encoded_server(txn, write, bytes)?;
                if write.before.is_none() {
                    let ident = ingest::identity_key(&write.after.record);
                    txn.open_table(SERVER_IDENTITY)?.insert(
                        cat(&[&agent_key, &ident]).as_slice(),
                        write.after.id.to_bytes().as_slice(),
                    )?;
                }
            }
            for alert in &plan.alerts {
                raise_alert(txn, alert)?;
            }
            let known: Vec<&str> = record.config_errors.iter().map(|e| e.path.as_str()).collect();
            let new_errors: Vec<&mcpwatch_protocol::wire::ConfigError> =
                config_errors.iter().filter(|e| !known.contains(&e.path.as_str())).collect();
            if !new_errors.is_empty() {
                let paths: Vec<&str> = new_errors.iter().map(|e| e.path.as_str()).collect();
                let host = record.facts.hostname.clone().unwrap_or_else(|| record.name.clone());
                raise_alert(
                    txn,
                    &Alert::new(
                        org,
                        AlertKind::ConfigErrors,
                        RiskLevel::Medium,
                        format!("MCP config files on {host} cannot be read"),
                        format!("{} config file(s) could not be read or parsed; servers in them are not visible.", paths.len()),
                        None,
                        Some(agent),
                        serde_json::json!({ "paths": paths, "errors": new_errors }),
                        received_at,
                    ),
                )?;
            }
            if let Some(alert) = ingest::combination_alert(&record, &combinations, received_at) {
                raise_alert(txn, &alert)?;
            }
            record.combinations = combinations;
            merge_facts(&mut record.facts, facts);
            record.last_report_at = Some(received_at);
            record.last_seen_at =
                Some(record.last_seen_at.map_or(received_at, |at| at.max(received_at)));
            record.server_count = plan.active_count;
            record.config_errors = config_errors;
            record.last_sequence = sequence.or(record.last_sequence);
            txn.open_table(AGENTS)?
                .insert(agent_key.as_slice(), encode(&record)?.as_slice())?;
            Ok(plan.outcome)
        })
        .await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let result = f(txn);
            let poisoned = matches!(result, Err(Error::Internal(_)));
            let completion: Completion = Box::new(move |commit: Result<()>| {
                // The caller may have gone away (request cancelled); the write stands.
                // A job's own error is the one its caller needs to see.
                let _ = tx.send(result.and_then(|value| commit.map(|()| value)));
            });
            (completion, poisoned)
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Internal("store writer has stopped".into()))?;
        rx.await.map_err(|_| self.db.failure())?
    }
}

/// Layout 1 kept each server's change history in its record; layout 2 keeps it in
/// `server_changes`. Moves the histories in transactions of [`MIGRATION_BATCH`]
/// servers, then records layout 2. A record without an inline history is left as it
/// is, so a migration that was interrupted continues where it stopped. Answers how
/// many servers had a history moved.
fn migrate_histories(db: &Database) -> Result<u64> {
    #[derive(serde::Deserialize)]
    struct InlineHistory {
        #[serde(default)]
        changes: Vec<ServerChange>,
    }
    let mut resume: Option<Vec<u8>> = None;
    let mut moved = 0;
    loop {
        let txn = db.begin_write()?;
        let batch: Vec<(Vec<u8>, Vec<u8>)> = {
            let servers = txn.open_table(SERVERS)?;
            let range = match &resume {
                Some(k) => servers.range::<&[u8]>((
                    std::ops::Bound::Excluded(k.as_slice()),
                    std::ops::Bound::Unbounded,
                ))?,
                None => servers.range::<&[u8]>(..)?,
            };
            let mut batch = Vec::new();
            for entry in range.take(MIGRATION_BATCH) {
                let (k, v) = entry?;
                batch.push((k.value().to_vec(), v.value().to_vec()));
            }
            batch
        };
        let Some((last, _)) = batch.last() else {
            txn.open_table(META)?
                .insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
            txn.commit()?;
            return Ok(moved);
        };
        resume = Some(last.clone());
        {
            let mut servers = txn.open_table(SERVERS)?;
            let mut history = txn.open_table(SERVER_CHANGES)?;
            for (key, value) in &batch {
                let inline: InlineHistory = decode(value)?;
                if inline.changes.is_empty() {
                    continue;
                }
                let mut server: Server = decode(value)?;
                let count = inline.changes.len() as u64;
                let first_kept = count.saturating_sub(MAX_SERVER_CHANGES);
                for (seq, change) in (0..count).zip(&inline.changes).skip(first_kept as usize) {
                    history.insert(
                        cat(&[key, &seq.to_be_bytes()]).as_slice(),
                        encode(change)?.as_slice(),
                    )?;
                }
                server.change_seq = count;
                servers.insert(key.as_slice(), encode(&server)?.as_slice())?;
                moved += 1;
            }
        }
        txn.commit()?;
    }
}

/// The store's one writer: batches waiting writes into one transaction and commits
/// once. Before a batch it checks the disk has room (refusing the batch with
/// [`Error::StorageFull`] while it has not, so the database never meets a full disk);
/// after a storage failure it closes the database and reopens it with backoff,
/// refusing writes with [`Error::Unavailable`] meanwhile.
fn writer_loop(slot: &Slot, rx: &mpsc::Receiver<Job>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let recovering = slot.current.read().is_ok_and(|c| c.is_none());
        let first = if recovering {
            match rx.recv_timeout(backoff) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        };
        if recovering {
            if slot.reopen() {
                backoff = Duration::from_millis(100);
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        let Some(first) = first else { continue };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Dropping a batch's jobs drops their senders: each caller gets the slot's
        // failure (full, or recovering).
        let full = slot.disk_full();
        slot.set_full(full);
        if full {
            continue;
        }
        let Ok(db) = slot.db() else { continue };
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                tracing::error!(error = %e, "Store write transaction could not start.");
                if storage_failed(&e.to_string()) {
                    drop(db);
                    slot.close_after_failure(&e.to_string());
                }
                continue;
            }
        };
        let mut completions = Vec::with_capacity(batch.len());
        let mut poisoned = false;
        for job in batch {
            match catch_unwind(AssertUnwindSafe(|| job(&txn))) {
                Ok((completion, failed)) => {
                    poisoned |= failed;
                    completions.push(completion);
                }
                Err(_) => {
                    tracing::error!("A store write panicked; its batch is rolled back.");
                    poisoned = true;
                }
            }
        }
        let outcome = if poisoned {
            drop(txn);
            Err(Error::Internal(
                "write batch rolled back after a storage failure".into(),
            ))
        } else {
            txn.commit().map_err(|e| {
                tracing::error!(error = %e, "Store commit failed.");
                Error::from(e)
            })
        };
        let failed_storage = match &outcome {
            Err(Error::Internal(m)) => storage_failed(m),
            _ => false,
        };
        if failed_storage {
            drop(db);
            let why = match &outcome {
                Err(e) => e.to_string(),
                Ok(()) => String::new(),
            };
            slot.close_after_failure(&why);
            if slot.disk_full() {
                slot.set_full(true);
            }
        }
        for completion in completions {
            completion(match &outcome {
                Ok(()) => Ok(()),
                Err(_) if failed_storage => Err(slot.failure()),
                Err(e) => Err(Error::Internal(e.to_string())),
            });
        }
    }
}

#[async_trait]
impl Store for RedbStore {
    fn alive(&self) -> std::result::Result<(), String> {
        self.db.alive()
    }

    async fn ping(&self) -> Result<()> {
        self.read(|txn| {
            txn.open_table(META)?.get("schema_version")?;
            Ok(())
        })
        .await?;
        self.write(|txn| {
            txn.open_table(META)?
                .insert("last_ping", Utc::now().timestamp().to_be_bytes().as_slice())?;
            Ok(())
        })
        .await
    }

    async fn create_org_with_admin(
        &self,
        org: Org,
        admin: User,
        only_if_first: bool,
    ) -> Result<()> {
        self.write(move |txn| {
            if only_if_first && !txn.open_table(ORGS)?.is_empty()? {
                return Err(Error::RegistrationClosed);
            }
            if txn
                .open_table(USER_EMAILS)?
                .get(admin.email.as_str())?
                .is_some()
            {
                return Err(Error::Conflict("email is already registered"));
            }
            let user_key = cat(&[&org.id.to_bytes(), &admin.id.to_bytes()]);
            txn.open_table(ORGS)?
                .insert(org.id.to_bytes().as_slice(), encode(&org)?.as_slice())?;
            txn.open_table(USERS)?
                .insert(user_key.as_slice(), encode(&admin)?.as_slice())?;
            txn.open_table(USER_EMAILS)?
                .insert(admin.email.as_str(), user_key.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn get_org(&self, org: OrgId) -> Result<Org> {
        self.read(move |txn| {
            get_json(&txn.open_table(ORGS)?, &org.to_bytes())?.ok_or(Error::NotFound)
        })
        .await
    }

    async fn update_org(&self, org: OrgId, patch: OrgPatch) -> Result<Org> {
        self.write(move |txn| {
            let mut record: Org =
                get_json(&txn.open_table(ORGS)?, &org.to_bytes())?.ok_or(Error::NotFound)?;
            if let Some(name) = patch.name {
                record.name = name;
            }
            if let Some(email) = patch.alert_email {
                record.alert_email = email;
            }
            record.updated_at = Utc::now();
            txn.open_table(ORGS)?
                .insert(org.to_bytes().as_slice(), encode(&record)?.as_slice())?;
            Ok(record)
        })
        .await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.read(move |txn| {
            let Some(key) = txn
                .open_table(USER_EMAILS)?
                .get(email.as_str())?
                .map(|v| v.value().to_vec())
            else {
                return Ok(None);
            };
            get_json(&txn.open_table(USERS)?, &key)
        })
        .await
    }

    async fn get_user(&self, org: OrgId, user: UserId) -> Result<User> {
        self.read(move |txn| {
            let key = cat(&[&org.to_bytes(), &user.to_bytes()]);
            get_json(&txn.open_table(USERS)?, &key)?.ok_or(Error::NotFound)
        })
        .await
    }

    async fn list_users(&self, org: OrgId) -> Result<Vec<User>> {
        self.read(move |txn| list_json(&txn.open_table(USERS)?, &org.to_bytes()))
            .await
    }

    async fn create_user(&self, org: OrgId, user: User) -> Result<()> {
        self.write(move |txn| {
            if user.org_id != org
                || txn
                    .open_table(ORGS)?
                    .get(org.to_bytes().as_slice())?
                    .is_none()
            {
                return Err(Error::NotFound);
            }
            if txn
                .open_table(USER_EMAILS)?
                .get(user.email.as_str())?
                .is_some()
            {
                return Err(Error::Conflict("email is already registered"));
            }
            let key = cat(&[&org.to_bytes(), &user.id.to_bytes()]);
            txn.open_table(USERS)?
                .insert(key.as_slice(), encode(&user)?.as_slice())?;
            txn.open_table(USER_EMAILS)?
                .insert(user.email.as_str(), key.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn update_user(&self, org: OrgId, user: UserId, patch: UserPatch) -> Result<User> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &user.to_bytes()]);
            let users = txn.open_table(USERS)?;
            let mut record: User = get_json(&users, &key)?.ok_or(Error::NotFound)?;
            let was_admin = record.role == Role::Admin && record.is_active;
            let stays_admin = patch.role.unwrap_or(record.role) == Role::Admin
                && patch.is_active.unwrap_or(record.is_active);
            if was_admin && !stays_admin && count_active_admins(&users, org)? <= 1 {
                return Err(Error::Conflict(
                    "the organisation must keep at least one active admin",
                ));
            }
            drop(users);
            let old_email = record.email.clone();
            let new_email = patch.email.filter(|e| *e != old_email);
            if let Some(email) = &new_email
                && txn.open_table(USER_EMAILS)?.get(email.as_str())?.is_some()
            {
                return Err(Error::Conflict("email is already registered"));
            }
            // Checks done; write.
            if let Some(email) = new_email {
                let mut emails = txn.open_table(USER_EMAILS)?;
                emails.remove(old_email.as_str())?;
                emails.insert(email.as_str(), key.as_slice())?;
                record.email = email;
            }
            if let Some(name) = patch.full_name {
                record.full_name = name;
            }
            if let Some(role) = patch.role {
                record.role = role;
            }
            if let Some(active) = patch.is_active {
                record.is_active = active;
            }
            if let Some(hash) = patch.password_hash {
                record.password_hash = hash;
            }
            record.updated_at = Utc::now();
            txn.open_table(USERS)?
                .insert(key.as_slice(), encode(&record)?.as_slice())?;
            Ok(record)
        })
        .await
    }

    async fn delete_user(&self, org: OrgId, user: UserId) -> Result<()> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &user.to_bytes()]);
            let users = txn.open_table(USERS)?;
            let record: User = get_json(&users, &key)?.ok_or(Error::NotFound)?;
            if record.role == Role::Admin
                && record.is_active
                && count_active_admins(&users, org)? <= 1
            {
                return Err(Error::Conflict(
                    "the organisation must keep at least one active admin",
                ));
            }
            drop(users);
            txn.open_table(USERS)?.remove(key.as_slice())?;
            txn.open_table(USER_EMAILS)?.remove(record.email.as_str())?;
            end_sessions(txn, org, user, None)
        })
        .await
    }

    async fn create_session(&self, session: Session) -> Result<()> {
        self.write(move |txn| {
            let link = cat(&[
                &session.org_id.to_bytes(),
                &session.user_id.to_bytes(),
                &session.id.to_bytes(),
            ]);
            txn.open_table(SESSIONS)?.insert(
                session.id.to_bytes().as_slice(),
                encode(&session)?.as_slice(),
            )?;
            txn.open_table(USER_SESSIONS)?.insert(link.as_slice(), ())?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, session: SessionId) -> Result<(Session, User)> {
        self.read_now(move |txn| {
            let record: Session = get_json(&txn.open_table(SESSIONS)?, &session.to_bytes())?
                .ok_or(Error::NotFound)?;
            let key = cat(&[&record.org_id.to_bytes(), &record.user_id.to_bytes()]);
            let user: User = get_json(&txn.open_table(USERS)?, &key)?.ok_or(Error::NotFound)?;
            Ok((record, user))
        })
    }

    async fn rotate_session(
        &self,
        session: SessionId,
        expected_jti: &str,
        new_jti: String,
        expires_at: DateTime<Utc>,
    ) -> Result<Session> {
        let expected = expected_jti.to_owned();
        let rotated = self
            .write(move |txn| {
                let Some(mut record) =
                    get_json::<Session, _>(&txn.open_table(SESSIONS)?, &session.to_bytes())?
                else {
                    return Ok(None);
                };
                if record.refresh_jti != expected {
                    // A refresh token was used twice: someone else may hold it. End the session.
                    end_one_session(txn, &record)?;
                    return Ok(None);
                }
                record.refresh_jti = new_jti;
                record.expires_at = expires_at;
                txn.open_table(SESSIONS)?
                    .insert(session.to_bytes().as_slice(), encode(&record)?.as_slice())?;
                Ok(Some(record))
            })
            .await?;
        rotated.ok_or(Error::NotFound)
    }

    async fn delete_session(&self, session: SessionId) -> Result<()> {
        self.write(move |txn| {
            let found = get_json::<Session, _>(&txn.open_table(SESSIONS)?, &session.to_bytes())?;
            if let Some(record) = found {
                end_one_session(txn, &record)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_user_sessions(
        &self,
        org: OrgId,
        user: UserId,
        keep: Option<SessionId>,
    ) -> Result<()> {
        self.write(move |txn| end_sessions(txn, org, user, keep))
            .await
    }

    async fn create_agent(&self, agent: Agent) -> Result<()> {
        self.write(move |txn| {
            if txn
                .open_table(AGENT_KEYS)?
                .get(agent.key_hash.as_slice())?
                .is_some()
            {
                return Err(Error::Conflict("api key collision"));
            }
            insert_agent(txn, &agent)
        })
        .await
    }

    async fn enroll_agent(
        &self,
        secret_hash: [u8; 32],
        mut agent: Agent,
        now: DateTime<Utc>,
    ) -> Result<Agent> {
        self.write(move |txn| {
            let Some(secret_key) = txn
                .open_table(ENROLL_HASHES)?
                .get(secret_hash.as_slice())?
                .map(|v| v.value().to_vec())
            else {
                return Err(Error::InvalidEnrollSecret);
            };
            let mut secret: EnrollSecret = get_json(&txn.open_table(ENROLL_SECRETS)?, &secret_key)?
                .ok_or(Error::InvalidEnrollSecret)?;
            if secret.expires_at.is_some_and(|at| at <= now) {
                return Err(Error::InvalidEnrollSecret);
            }
            if txn
                .open_table(AGENT_KEYS)?
                .get(agent.key_hash.as_slice())?
                .is_some()
            {
                return Err(Error::Conflict("api key collision"));
            }
            agent.org_id = secret.org_id;
            insert_agent(txn, &agent)?;
            secret.enrolled_count += 1;
            txn.open_table(ENROLL_SECRETS)?
                .insert(secret_key.as_slice(), encode(&secret)?.as_slice())?;
            Ok(agent)
        })
        .await
    }

    async fn find_agent_by_key(&self, key_hash: [u8; 32]) -> Result<Option<Agent>> {
        self.read_now(move |txn| get_via(txn, AGENT_KEYS, key_hash.as_slice(), AGENTS))
    }

    async fn get_agent(&self, org: OrgId, agent: AgentId) -> Result<Agent> {
        self.read(move |txn| {
            let key = cat(&[&org.to_bytes(), &agent.to_bytes()]);
            get_json(&txn.open_table(AGENTS)?, &key)?.ok_or(Error::NotFound)
        })
        .await
    }

    async fn list_agents(&self, org: OrgId) -> Result<Vec<Agent>> {
        self.read(move |txn| list_json(&txn.open_table(AGENTS)?, &org.to_bytes()))
            .await
    }

    async fn delete_agent(&self, org: OrgId, agent: AgentId) -> Result<()> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &agent.to_bytes()]);
            let record: Agent = get_json(&txn.open_table(AGENTS)?, &key)?.ok_or(Error::NotFound)?;
            let servers = agent_servers(
                &txn.open_table(SERVER_IDENTITY)?,
                &txn.open_table(SERVERS)?,
                org,
                agent,
            )?;
            for (server, ident) in servers {
                index_server(txn, &server, false)?;
                let server_key = cat(&[&org.to_bytes(), &server.id.to_bytes()]);
                txn.open_table(SERVERS)?.remove(server_key.as_slice())?;
                let mut history = txn.open_table(SERVER_CHANGES)?;
                for (change_key, _) in scan_prefix(&history, &server_key)? {
                    history.remove(change_key.as_slice())?;
                }
                drop(history);
                txn.open_table(SERVER_IDENTITY)?
                    .remove(cat(&[&key, &ident]).as_slice())?;
            }
            txn.open_table(AGENT_KEYS)?
                .remove(record.key_hash.as_slice())?;
            txn.open_table(INVENTORY_REV)?.remove(key.as_slice())?;
            txn.open_table(AGENTS)?.remove(key.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn record_heartbeat(
        &self,
        org: OrgId,
        agent: AgentId,
        update: HeartbeatUpdate,
    ) -> Result<Agent> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &agent.to_bytes()]);
            let mut record: Agent =
                get_json(&txn.open_table(AGENTS)?, &key)?.ok_or(Error::NotFound)?;
            merge_facts(&mut record.facts, update.facts);
            record.last_seen_at = Some(
                record
                    .last_seen_at
                    .map_or(update.seen_at, |at| at.max(update.seen_at)),
            );
            if record.public_key.is_none() {
                record.public_key = update.bind_public_key;
            }
            if record.stale {
                set_presence(txn, org, agent, true)?;
                record.stale = false;
            }
            txn.open_table(AGENTS)?
                .insert(key.as_slice(), encode(&record)?.as_slice())?;
            Ok(record)
        })
        .await
    }

    async fn agents_seen_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(OrgId, AgentId, DateTime<Utc>)>> {
        self.read(move |txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(AGENTS)?.iter()? {
                let agent: Agent = decode(entry?.1.value())?;
                if let Some(at) = agent.last_seen_at.filter(|at| *at >= since) {
                    out.push((agent.org_id, agent.id, at));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn sweep_silent_agents(&self, cutoff: DateTime<Utc>) -> Result<Vec<(OrgId, AgentId)>> {
        let silent = move |a: &Agent| {
            !a.stale && a.server_count > 0 && a.last_seen_at.unwrap_or(a.created_at) < cutoff
        };
        // Find candidates with a read, so the writer is held only for the agents that change.
        let candidates: Vec<Vec<u8>> = self
            .read(move |txn| {
                let mut out = Vec::new();
                for entry in txn.open_table(AGENTS)?.iter()? {
                    let (k, v) = entry?;
                    if silent(&decode::<Agent>(v.value())?) {
                        out.push(k.value().to_vec());
                    }
                }
                Ok(out)
            })
            .await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |txn| {
            let mut marked = Vec::new();
            for key in candidates {
                let Some(mut agent) = get_json::<Agent, _>(&txn.open_table(AGENTS)?, &key)? else {
                    continue;
                };
                if !silent(&agent) {
                    continue;
                }
                set_presence(txn, agent.org_id, agent.id, false)?;
                agent.stale = true;
                let host = agent.facts.hostname.clone().unwrap_or_else(|| agent.name.clone());
                raise_alert(
                    txn,
                    &Alert::new(
                        agent.org_id,
                        AlertKind::AgentSilent,
                        RiskLevel::Medium,
                        format!("Agent on {host} has gone silent"),
                        "No heartbeat or report since the last-seen time; its servers are now shown as dormant.".to_owned(),
                        None,
                        Some(agent.id),
                        serde_json::json!({ "last_seen_at": agent.last_seen_at, "cutoff": cutoff }),
                        Utc::now(),
                    ),
                )?;
                txn.open_table(AGENTS)?
                    .insert(key.as_slice(), encode(&agent)?.as_slice())?;
                marked.push((agent.org_id, agent.id));
            }
            Ok(marked)
        })
        .await
    }

    async fn touch_agents(&self, seen: Vec<(OrgId, AgentId, DateTime<Utc>)>) -> Result<()> {
        self.write(move |txn| {
            let mut agents = txn.open_table(AGENTS)?;
            for (org, agent, at) in seen {
                let key = cat(&[&org.to_bytes(), &agent.to_bytes()]);
                let Some(mut record) = get_json::<Agent, _>(&agents, &key)? else {
                    continue;
                };
                if record.last_seen_at.is_none_or(|prev| prev < at) {
                    record.last_seen_at = Some(at);
                    agents.insert(key.as_slice(), encode(&record)?.as_slice())?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn create_enroll_secret(&self, secret: EnrollSecret) -> Result<()> {
        self.write(move |txn| {
            if txn
                .open_table(ENROLL_HASHES)?
                .get(secret.secret_hash.as_slice())?
                .is_some()
            {
                return Err(Error::Conflict("enroll secret collision"));
            }
            let key = cat(&[&secret.org_id.to_bytes(), &secret.id.to_bytes()]);
            txn.open_table(ENROLL_SECRETS)?
                .insert(key.as_slice(), encode(&secret)?.as_slice())?;
            txn.open_table(ENROLL_HASHES)?
                .insert(secret.secret_hash.as_slice(), key.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn list_enroll_secrets(&self, org: OrgId) -> Result<Vec<EnrollSecret>> {
        self.read(move |txn| list_json(&txn.open_table(ENROLL_SECRETS)?, &org.to_bytes()))
            .await
    }

    async fn delete_enroll_secret(&self, org: OrgId, id: EnrollSecretId) -> Result<()> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &id.to_bytes()]);
            let secret: EnrollSecret =
                get_json(&txn.open_table(ENROLL_SECRETS)?, &key)?.ok_or(Error::NotFound)?;
            txn.open_table(ENROLL_SECRETS)?.remove(key.as_slice())?;
            txn.open_table(ENROLL_HASHES)?
                .remove(secret.secret_hash.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn apply_report(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
    ) -> Result<ReportResponse> {
        let prepared = self.prepare_report(org, agent, &report).await?;
        self.commit_report(org, agent, report, prepared).await
    }

    async fn list_servers(&self, org: OrgId, query: ServerQuery) -> Result<Page<Server>> {
        self.read(move |txn| list_servers(txn, org, &query)).await
    }

    async fn get_server(&self, org: OrgId, server: ServerId) -> Result<Server> {
        self.read(move |txn| {
            get_json(
                &txn.open_table(SERVERS)?,
                &cat(&[&org.to_bytes(), &server.to_bytes()]),
            )?
            .ok_or(Error::NotFound)
        })
        .await
    }

    async fn server_changes(&self, org: OrgId, server: ServerId) -> Result<Vec<ServerChange>> {
        self.read(move |txn| {
            let prefix = cat(&[&org.to_bytes(), &server.to_bytes()]);
            list_json(&txn.open_table(SERVER_CHANGES)?, &prefix)
        })
        .await
    }

    async fn set_server_verified(
        &self,
        org: OrgId,
        server: ServerId,
        verified: bool,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<Server> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &server.to_bytes()]);
            let before: Server =
                get_json(&txn.open_table(SERVERS)?, &key)?.ok_or(Error::NotFound)?;
            if before.is_verified == verified {
                return Ok(before);
            }
            let mut after = before.clone();
            after.is_verified = verified;
            after.verified_by = verified.then_some(by);
            after.verified_at = verified.then_some(at);
            after.updated_at = at;
            let write = ServerWrite::recording(
                Some(before),
                after,
                ServerChange::event(
                    at,
                    if verified { "verified" } else { "unverified" },
                    &["is_verified"],
                ),
            );
            put_server(txn, &write)?;
            Ok(write.after)
        })
        .await
    }

    async fn top_risks(&self, org: OrgId, limit: u64) -> Result<Vec<Server>> {
        self.read(move |txn| {
            let query = ServerQuery {
                status: Some(ServerStatus::Active),
                page: 1,
                page_size: limit,
                ..ServerQuery::default()
            };
            Ok(list_servers(txn, org, &query)?.items)
        })
        .await
    }

    async fn rescore_outdated(
        &self,
        cursor: Option<(OrgId, ServerId)>,
        limit: usize,
    ) -> Result<(usize, Option<(OrgId, ServerId)>)> {
        // Read at most this many rows per call, so that one call stays short.
        let scan_budget = limit.saturating_mul(20).max(1);
        let (keys, next) = self
            .read(move |txn| {
                let servers = txn.open_table(SERVERS)?;
                let start = cursor.map(|(o, s)| cat(&[&o.to_bytes(), &s.to_bytes()]));
                let policies = txn.open_table(POLICIES)?;
                let mut versions: std::collections::HashMap<OrgId, u64> =
                    std::collections::HashMap::new();
                let mut keys = Vec::new();
                let mut last = None;
                let mut scanned = 0usize;
                let range = match &start {
                    Some(k) => servers.range::<&[u8]>((
                        std::ops::Bound::Excluded(k.as_slice()),
                        std::ops::Bound::Unbounded,
                    ))?,
                    None => servers.range::<&[u8]>(..)?,
                };
                let mut exhausted = true;
                for entry in range {
                    let (k, v) = entry?;
                    let server: Server = decode(v.value())?;
                    let policy_version = match versions.get(&server.org_id) {
                        Some(v) => *v,
                        None => {
                            let v = policy_of(&policies, server.org_id)?.version;
                            versions.insert(server.org_id, v);
                            v
                        }
                    };
                    if server.rules_version != risk::RULES_VERSION
                        || server.policy_version != policy_version
                    {
                        keys.push(k.value().to_vec());
                    }
                    last = Some((server.org_id, server.id));
                    scanned += 1;
                    if keys.len() >= limit || scanned >= scan_budget {
                        exhausted = false;
                        break;
                    }
                }
                Ok((keys, if exhausted { None } else { last }))
            })
            .await?;
        if keys.is_empty() {
            return Ok((0, next));
        }
        let rescored = self
            .write(move |txn| {
                let mut n = 0;
                let mut policies: std::collections::HashMap<OrgId, OrgPolicy> = std::collections::HashMap::new();
                for key in keys {
                    let Some(before) = get_json::<Server, _>(&txn.open_table(SERVERS)?, &key)? else { continue };
                    let policy = match policies.entry(before.org_id) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => e.insert(policy_of(&txn.open_table(POLICIES)?, before.org_id)?),
                    };
                    if before.rules_version == risk::RULES_VERSION && before.policy_version == policy.version {
                        continue;
                    }
                    // Combination findings depend on the neighbours; they carry over and
                    // are recomputed at the agent's next report.
                    let mut findings = risk::assess_with(&before.record, &policy.scoring).findings;
                    findings.extend(
                        before.findings.iter().filter(|f| risk::COMBO_RULES.contains(&f.rule_id.as_str())).cloned(),
                    );
                    let assessment = risk::score_findings(findings, before.record.disabled);
                    let now = Utc::now();
                    let mut after = before.clone();
                    after.risk_score = assessment.score;
                    after.risk_level = assessment.level;
                    after.findings = assessment.findings;
                    after.rules_version = assessment.rules_version;
                    after.policy_version = policy.version;
                    let mut change = None;
                    if after.risk_level != before.risk_level || after.risk_score != before.risk_score {
                        after.updated_at = now;
                        let mut rescored = ServerChange::event(now, "rescored", &["risk_score"]);
                        rescored.previous_level = Some(before.risk_level);
                        rescored.level = Some(after.risk_level);
                        change = Some(rescored);
                    }
                    if after.risk_level > before.risk_level && !after.is_verified && !policy.approves(&after.record) {
                        let name = &after.record.server_name;
                        raise_alert(
                            txn,
                            &Alert::new(
                                after.org_id,
                                AlertKind::RiskIncreased,
                                after.risk_level,
                                format!("Risk of MCP server \"{name}\" rose to {} under updated rules", after.risk_level),
                                format!(
                                    "Rules v{} rate it {} (score {}); it was {} (score {}).",
                                    risk::RULES_VERSION, after.risk_level, after.risk_score, before.risk_level, before.risk_score
                                ),
                                Some(after.id),
                                Some(after.agent_id),
                                serde_json::json!({
                                    "before": { "risk_level": before.risk_level, "risk_score": before.risk_score, "rules_version": before.rules_version },
                                    "after": { "risk_level": after.risk_level, "risk_score": after.risk_score, "rules_version": after.rules_version },
                                }),
                                now,
                            ),
                        )?;
                    }
                    let write = match change {
                        Some(change) => ServerWrite::recording(Some(before), after, change),
                        None => ServerWrite::silent(Some(before), after),
                    };
                    put_server(txn, &write)?;
                    n += 1;
                }
                Ok(n)
            })
            .await?;
        Ok((rescored, next))
    }

    async fn get_policy(&self, org: OrgId) -> Result<OrgPolicy> {
        self.read(move |txn| policy_of(&txn.open_table(POLICIES)?, org))
            .await
    }

    async fn put_policy(&self, org: OrgId, mut policy: OrgPolicy) -> Result<OrgPolicy> {
        self.write(move |txn| {
            let previous = policy_of(&txn.open_table(POLICIES)?, org)?;
            policy.version = previous.version + 1;
            txn.open_table(POLICIES)?
                .insert(org.to_bytes().as_slice(), encode(&policy)?.as_slice())?;
            Ok(policy)
        })
        .await
    }

    async fn server_counts(&self, org: OrgId) -> Result<LevelCounts> {
        self.read(move |txn| {
            let counts = txn.open_table(COUNTS)?;
            let mut out = LevelCounts::default();
            for level in RiskLevel::ALL {
                for status in ServerStatus::ALL {
                    let n = counts
                        .get(count_key_servers(org, level, status).as_slice())?
                        .map_or(0, |v| v.value());
                    out.add(level, n);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list_alerts(&self, org: OrgId, query: AlertQuery) -> Result<Page<Alert>> {
        self.read(move |txn| {
            let org_b = org.to_bytes();
            let alerts = txn.open_table(ALERTS)?;
            let offset = query.page.saturating_sub(1).saturating_mul(query.page_size);
            let mut items = Vec::new();
            let mut total = 0u64;
            let mut consider = |alert: Alert| {
                if query.severity.is_some_and(|s| s != alert.severity)
                    || query.dismissed.is_some_and(|d| d != alert.dismissed)
                {
                    return;
                }
                if total >= offset && (items.len() as u64) < query.page_size {
                    items.push(alert);
                }
                total += 1;
            };
            if query.dismissed == Some(false) {
                let open = txn.open_table(ALERTS_OPEN)?;
                let mut keys = Vec::new();
                for entry in open.range::<&[u8]>(org_b.as_slice()..)? {
                    let (k, ()) = (entry?.0.value().to_vec(), ());
                    if !k.starts_with(&org_b) {
                        break;
                    }
                    keys.push(k);
                }
                for key in keys.iter().rev() {
                    if let Some(alert) = get_json::<Alert, _>(&alerts, key)? {
                        consider(alert);
                    }
                }
            } else {
                for (_, v) in scan_prefix(&alerts, &org_b)?.iter().rev() {
                    consider(decode(v)?);
                }
            }
            Ok(Page { items, total })
        })
        .await
    }

    async fn dismiss_alert(
        &self,
        org: OrgId,
        alert: AlertId,
        by: UserId,
        at: DateTime<Utc>,
    ) -> Result<Alert> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &alert.to_bytes()]);
            let mut record: Alert =
                get_json(&txn.open_table(ALERTS)?, &key)?.ok_or(Error::NotFound)?;
            if record.dismissed {
                return Ok(record);
            }
            record.dismissed = true;
            record.dismissed_at = Some(at);
            record.dismissed_by = Some(by);
            put_alert(txn, &record, Some(true))?;
            Ok(record)
        })
        .await
    }

    async fn dismiss_all_alerts(&self, org: OrgId, by: UserId, at: DateTime<Utc>) -> Result<u64> {
        self.write(move |txn| {
            let org_b = org.to_bytes();
            let mut keys = Vec::new();
            {
                let open = txn.open_table(ALERTS_OPEN)?;
                for entry in open.range::<&[u8]>(org_b.as_slice()..)? {
                    let key = entry?.0.value().to_vec();
                    if !key.starts_with(&org_b) {
                        break;
                    }
                    keys.push(key);
                }
            }
            let mut dismissed = 0;
            for key in keys {
                let Some(mut record) = get_json::<Alert, _>(&txn.open_table(ALERTS)?, &key)? else {
                    continue;
                };
                record.dismissed = true;
                record.dismissed_at = Some(at);
                record.dismissed_by = Some(by);
                put_alert(txn, &record, Some(true))?;
                dismissed += 1;
            }
            Ok(dismissed)
        })
        .await
    }

    async fn open_alert_count(&self, org: OrgId) -> Result<u64> {
        self.read(move |txn| {
            Ok(txn
                .open_table(COUNTS)?
                .get(count_key_alerts(org).as_slice())?
                .map_or(0, |v| v.value()))
        })
        .await
    }
}

#[cfg(test)]
impl RedbStore {
    /// Put a server back into layout 1: its history inside its record, no
    /// `server_changes` rows, and the database marked as layout 1.
    pub async fn make_layout_1_for_test(&self, org: OrgId, server: ServerId) -> Result<()> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &server.to_bytes()]);
            let changes: Vec<ServerChange> = list_json(&txn.open_table(SERVER_CHANGES)?, &key)?;
            let mut history = txn.open_table(SERVER_CHANGES)?;
            for (k, _) in scan_prefix(&history, &key)? {
                history.remove(k.as_slice())?;
            }
            let mut record: serde_json::Value =
                get_json(&txn.open_table(SERVERS)?, &key)?.ok_or(Error::NotFound)?;
            if let Some(fields) = record.as_object_mut() {
                fields.remove("change_seq");
                fields.insert("changes".into(), serde_json::json!(changes));
            }
            txn.open_table(SERVERS)?
                .insert(key.as_slice(), encode(&record)?.as_slice())?;
            txn.open_table(META)?
                .insert("schema_version", 1u32.to_be_bytes().as_slice())?;
            Ok(())
        })
        .await
    }

    /// [`Store::apply_report`] with `meanwhile` awaited between planning and applying,
    /// as when another write lands while a report is being planned.
    pub async fn apply_report_racing(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> Result<ReportResponse> {
        let prepared = self.prepare_report(org, agent, &report).await?;
        meanwhile.await;
        self.commit_report(org, agent, report, prepared).await
    }

    /// Pretend a stored server was scored by another rule set (for rescoring tests).
    pub async fn set_rules_version_for_test(
        &self,
        org: OrgId,
        server: ServerId,
        version: u32,
        score: u8,
    ) -> Result<()> {
        self.write(move |txn| {
            let key = cat(&[&org.to_bytes(), &server.to_bytes()]);
            let before: Server =
                get_json(&txn.open_table(SERVERS)?, &key)?.ok_or(Error::NotFound)?;
            let mut after = before.clone();
            after.rules_version = version;
            after.risk_score = score;
            after.risk_level = RiskLevel::from_score(score);
            put_server(txn, &ServerWrite::silent(Some(before), after))
        })
        .await
    }
}

/// Facts the agent sent over the stored ones: a fact left out keeps its value; the
/// report error is replaced (the agent sends it while it holds, and an accepted
/// report ends it).
/// The data dir and database file are the collector's alone: a data dir open to its
/// group or others is tightened to 0700 (and said so), the database file to 0600.
fn owner_only(data_dir: &Path, db: &Path) -> std::result::Result<(), OpenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let tighten = |path: &Path, mode: u32| -> std::result::Result<(), OpenError> {
            let meta = match std::fs::metadata(path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(OpenError::Permissions {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    });
                }
            };
            let current = meta.permissions().mode() & 0o777;
            if current & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
                    |e| OpenError::Permissions {
                        path: path.to_path_buf(),
                        message: format!(
                            "it is open to other users (mode {current:o}) and cannot be restricted to its owner: {e}"
                        ),
                    },
                )?;
                tracing::warn!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "Access to the collector's data was open to other users; restricted to its owner.");
            }
            Ok(())
        };
        tighten(data_dir, 0o700)?;
        tighten(db, 0o600)?;
    }
    #[cfg(not(unix))]
    let _ = (data_dir, db);
    Ok(())
}

/// Create an empty file readable and writable by its owner only.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

fn merge_facts(facts: &mut HostFacts, new: HostFacts) {
    let HostFacts {
        hostname,
        os_type,
        os_version,
        username,
        agent_version,
        machine,
        report_error,
    } = new;
    facts.machine = facts.machine.merged(&machine);
    facts.report_error = report_error;
    for (slot, value) in [
        (&mut facts.hostname, hostname),
        (&mut facts.os_type, os_type),
        (&mut facts.os_version, os_version),
        (&mut facts.username, username),
        (&mut facts.agent_version, agent_version),
    ] {
        if value.is_some() {
            *slot = value;
        }
    }
}

fn insert_agent(txn: &WriteTransaction, agent: &Agent) -> Result<()> {
    let key = cat(&[&agent.org_id.to_bytes(), &agent.id.to_bytes()]);
    txn.open_table(AGENTS)?
        .insert(key.as_slice(), encode(agent)?.as_slice())?;
    txn.open_table(AGENT_KEYS)?
        .insert(agent.key_hash.as_slice(), key.as_slice())?;
    Ok(())
}

fn end_one_session(txn: &WriteTransaction, session: &Session) -> Result<()> {
    let link = cat(&[
        &session.org_id.to_bytes(),
        &session.user_id.to_bytes(),
        &session.id.to_bytes(),
    ]);
    txn.open_table(SESSIONS)?
        .remove(session.id.to_bytes().as_slice())?;
    txn.open_table(USER_SESSIONS)?.remove(link.as_slice())?;
    Ok(())
}

fn end_sessions(
    txn: &WriteTransaction,
    org: OrgId,
    user: UserId,
    keep: Option<SessionId>,
) -> Result<()> {
    let prefix = cat(&[&org.to_bytes(), &user.to_bytes()]);
    let mut links = Vec::new();
    {
        let table = txn.open_table(USER_SESSIONS)?;
        for entry in table.range::<&[u8]>(prefix.as_slice()..)? {
            let key = entry?.0.value().to_vec();
            if !key.starts_with(&prefix) {
                break;
            }
            links.push(key);
        }
    }
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut user_sessions = txn.open_table(USER_SESSIONS)?;
    for link in links {
        let sid = SessionId::from_bytes(id16(&link[32..])?);
        if Some(sid) == keep {
            continue;
        }
        sessions.remove(sid.to_bytes().as_slice())?;
        user_sessions.remove(link.as_slice())?;
    }
    Ok(())
}

fn list_servers(txn: &ReadTransaction, org: OrgId, query: &ServerQuery) -> Result<Page<Server>> {
    let org_b = org.to_bytes();
    let servers = txn.open_table(SERVERS)?;
    let offset = query.page.saturating_sub(1).saturating_mul(query.page_size);
    let search = query.search.as_ref().map(|s| s.to_lowercase());
    let mut ids: Vec<[u8; 16]> = Vec::new();
    let mut total = 0u64;

    // Without a search or an agent, the counts answer `total`, and the scan stops once
    // the page is full.
    let counted_total = if search.is_none() && query.agent_id.is_none() {
        let counts = txn.open_table(COUNTS)?;
        let mut n = 0;
        for level in RiskLevel::ALL {
            if query.risk_level.is_some_and(|l| l != level) {
                continue;
            }
            for status in ServerStatus::ALL {
                if query.status.is_some_and(|s| s != status) {
                    continue;
                }
                n += counts
                    .get(count_key_servers(org, level, status).as_slice())?
                    .map_or(0, |v| v.value());
            }
        }
        Some(n)
    } else {
        None
    };

    let (table, prefix, id_at, status_at, name_at) = match query.agent_id {
        Some(agent) => {
            let mut prefix = cat(&[&org_b, &agent.to_bytes()]);
            if let Some(level) = query.risk_level {
                prefix.push(level.rank());
            }
            (txn.open_table(SRV_AGENT)?, prefix, 34usize, 0usize, 1usize)
        }
        None => {
            let mut prefix = org_b.to_vec();
            if let Some(level) = query.risk_level {
                prefix.push(level.rank());
            }
            (txn.open_table(SRV_RANK)?, prefix, 18usize, 0usize, 17usize)
        }
    };
    for entry in table.range::<&[u8]>(prefix.as_slice()..)? {
        let (k, v) = entry?;
        let key = k.value();
        if !key.starts_with(&prefix) {
            break;
        }
        let value = v.value();
        let status = value
            .get(status_at)
            .copied()
            .and_then(ServerStatus::from_code);
        if query.status.is_some_and(|s| Some(s) != status) {
            continue;
        }
        if let Some(needle) = &search {
            let name =
                std::str::from_utf8(value.get(name_at..).unwrap_or_default()).unwrap_or_default();
            if !name.contains(needle.as_str()) {
                continue;
            }
        }
        if total >= offset && (ids.len() as u64) < query.page_size {
            ids.push(id16(key.get(id_at..id_at + 16).unwrap_or_default())?);
        }
        total += 1;
        if counted_total.is_some() && ids.len() as u64 >= query.page_size {
            break;
        }
    }
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(server) = get_json::<Server, _>(&servers, &cat(&[&org_b, &id]))? {
            items.push(server);
        }
    }
    Ok(Page {
        items,
        total: counted_total.unwrap_or(total),
    })
}

#[cfg(test)]
mod slot_tests {
    use super::*;

    /// The slot alone, without the writer: closed after a failure it answers
    /// `Unavailable`, is alive while recovering, and opens the same file again.
    #[test]
    fn a_closed_slot_is_unavailable_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let db = Database::create(&path).unwrap();
        let slot = Slot {
            path,
            current: std::sync::RwLock::new(Some(Arc::new(db))),
            state: std::sync::Mutex::new(SlotState::default()),
        };
        assert!(slot.db().is_ok());
        slot.close_after_failure("simulated");
        assert!(matches!(slot.db(), Err(Error::Unavailable(_))));
        assert!(matches!(slot.failure(), Error::Unavailable(_)));
        assert!(slot.alive().is_ok());
        assert!(slot.reopen());
        assert!(slot.db().is_ok());
        assert!(matches!(slot.failure(), Error::Internal(_)));
    }
}
