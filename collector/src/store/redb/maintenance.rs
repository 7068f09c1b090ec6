//! The database's upkeep: a consistent snapshot into a new database file (one read
//! transaction, so a running collector keeps serving), a consistency check of the
//! counts and indexes against the records, opening a stopped collector's database
//! read-only, and compaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use redb::{
    Database, Key, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError, Value,
};

use super::schema::{
    AGENT_KEYS, AGENT_SERVERS, AGENTS, ALERTS, ALERTS_OF_SERVER, ALERTS_OPEN, API_TOKEN_HASHES,
    API_TOKENS, Bytes, CENSUS_MEMBERS, CENSUS_RANK, COUNTS, DELIVERY_DUE, ENROLL_HASHES,
    ENROLL_SECRETS, INVENTORY_REV, IndexEntries, META, ROW_TABLES, SERVERS, SILENT_WATCH, SRV_RANK,
    USER_EMAILS, USER_SESSIONS, USERS, decode,
};
use crate::model::{Agent, Alert};
use crate::store::{Error, Result, TableSpace};

/// Copy one table's rows (none when the source has no such table).
fn copy<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &redb::WriteTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<u64> {
    let source = match from.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut target = to.open_table(def)?;
    let mut rows = 0;
    for row in source.iter()? {
        let (k, v) = row?;
        target.insert(k.value(), v.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// Write everything `txn` sees into a new database at `out` (which must not exist);
/// answers how many rows were copied.
pub(super) fn snapshot(txn: &ReadTransaction, out: &Path) -> Result<u64> {
    if out.exists() {
        return Err(Error::internal(format!("{} already exists", out.display())));
    }
    let target = Database::create(out)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", out.display())))?;
    let w = target.begin_write()?;
    let mut rows = copy(txn, &w, META)?;
    for def in ROW_TABLES {
        rows += copy(txn, &w, def)?;
    }
    rows += copy(txn, &w, USER_EMAILS)?;
    rows += copy(txn, &w, USER_SESSIONS)?;
    rows += copy(txn, &w, COUNTS)?;
    rows += copy(txn, &w, ALERTS_OPEN)?;
    rows += copy(txn, &w, INVENTORY_REV)?;
    rows += copy(txn, &w, DELIVERY_DUE)?;
    rows += copy(txn, &w, CENSUS_MEMBERS)?;
    rows += copy(txn, &w, CENSUS_RANK)?;
    rows += copy(txn, &w, SILENT_WATCH)?;
    rows += copy(txn, &w, ALERTS_OF_SERVER)?;
    w.commit()?;
    drop(target);
    Ok(rows)
}

/// Every key of a table.
fn keys<V: Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<'static, Bytes, V>,
) -> Result<BTreeSet<Vec<u8>>> {
    let mut out = BTreeSet::new();
    // A table a newer layout adds is missing from a database not yet upgraded: every
    // entry it should hold is then missing.
    let table = match txn.open_table(def) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for row in table.iter()? {
        out.insert(row?.0.value().to_vec());
    }
    Ok(out)
}

/// Compare what an index holds with what the records say it should; one line per
/// difference (at most a few of each kind, then how many more).
fn compare(
    problems: &mut Vec<String>,
    what: &str,
    held: &BTreeMap<Vec<u8>, Vec<u8>>,
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
) {
    let missing: Vec<_> = expected.keys().filter(|k| !held.contains_key(*k)).collect();
    let extra: Vec<_> = held.keys().filter(|k| !expected.contains_key(*k)).collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| held.get(*k).is_some_and(|h| h != *v))
        .collect();
    for (n, kind) in [
        (missing.len(), "missing"),
        (extra.len(), "without a record"),
        (wrong.len(), "out of date"),
    ] {
        if n > 0 {
            problems.push(format!("{what}: {n} entries {kind}"));
        }
    }
}

/// What the indexes and counts should hold, made from the records.
#[derive(Default)]
struct Expected {
    rank: BTreeMap<Vec<u8>, Vec<u8>>,
    by_agent: BTreeMap<Vec<u8>, Vec<u8>>,
    open: BTreeMap<Vec<u8>, Vec<u8>>,
    counts: BTreeMap<Vec<u8>, u64>,
    /// `silent_watch`'s rows.
    watch: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `alerts_of_server`'s rows.
    of_server: BTreeMap<Vec<u8>, Vec<u8>>,
    undecodable: u64,
}

fn expected(txn: &ReadTransaction) -> Result<Expected> {
    let mut e = Expected::default();
    for row in txn.open_table(SERVERS)?.iter()? {
        let (key, value) = row?;
        let Ok(server) = super::server_value::decode(key.value(), value.value()) else {
            e.undecodable += 1;
            continue;
        };
        let entries = IndexEntries::of(&server);
        e.rank.insert(entries.rank.0, entries.rank.1);
        // Servers are read in key order (org·id), so each agent's ids come sorted.
        e.by_agent
            .entry(super::schema::agent_key(server.org_id, server.agent_id))
            .or_default()
            .extend_from_slice(&server.id.to_bytes());
        *e.counts.entry(entries.count).or_default() += 1;
    }
    for row in txn.open_table(AGENTS)?.iter()? {
        let (key, value) = row?;
        let Ok(agent) = decode::<Agent>(value.value()) else {
            e.undecodable += 1;
            continue;
        };
        if let Some(minute) = super::agents::watch_minute(&agent) {
            e.watch
                .insert(super::agents::watch_row(minute, key.value()), Vec::new());
        }
    }
    for row in txn.open_table(ALERTS)?.iter()? {
        let (key, value) = row?;
        let Ok(alert) = decode::<Alert>(value.value()) else {
            e.undecodable += 1;
            continue;
        };
        if let Some(entry) = super::schema::server_alert_key(&alert) {
            e.of_server.insert(entry, Vec::new());
        }
        if !alert.dismissed {
            e.open.insert(key.value().to_vec(), Vec::new());
            *e.counts
                .entry(super::schema::count_key_alerts(alert.org_id))
                .or_default() += 1;
        }
    }
    Ok(e)
}

fn rows(
    txn: &ReadTransaction,
    def: TableDefinition<'static, Bytes, Bytes>,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for row in txn.open_table(def)?.iter()? {
        let (k, v) = row?;
        out.insert(k.value().to_vec(), v.value().to_vec());
    }
    Ok(out)
}

/// The counts rows of servers (org·S·level·status) and open alerts (org·A), as held.
fn held_counts(txn: &ReadTransaction) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut held = BTreeMap::new();
    for row in txn.open_table(COUNTS)?.iter()? {
        let (k, v) = row?;
        let key = k.value().to_vec();
        if matches!(key.get(super::schema::ID), Some(b'S' | b'A')) && v.value() > 0 {
            held.insert(key, v.value().to_be_bytes().to_vec());
        }
    }
    Ok(held)
}

/// Links whose target record is gone: (what, how many).
fn dangling(txn: &ReadTransaction) -> Result<Vec<(&'static str, usize)>> {
    let mut out = Vec::new();
    for (what, links, records) in [
        (
            "agent_keys: keys of agents that do not exist",
            AGENT_KEYS,
            AGENTS,
        ),
        (
            "enroll_hashes: hashes of enroll secrets that do not exist",
            ENROLL_HASHES,
            ENROLL_SECRETS,
        ),
        (
            "api_token_hashes: hashes of API tokens that do not exist",
            API_TOKEN_HASHES,
            API_TOKENS,
        ),
    ] {
        let records = keys(txn, records)?;
        let n = txn
            .open_table(links)?
            .iter()?
            .filter_map(std::result::Result::ok)
            .filter(|(_, v)| !records.contains(v.value()))
            .count();
        out.push((what, n));
    }
    let users = keys(txn, USERS)?;
    let n = txn
        .open_table(USER_EMAILS)?
        .iter()?
        .filter_map(std::result::Result::ok)
        .filter(|(_, v)| !users.contains(v.value()))
        .count();
    out.push(("user_emails: emails of users that do not exist", n));
    Ok(out)
}

/// Check that the counts and indexes agree with the records: answers what is wrong
/// (nothing when the database is consistent).
pub(super) fn check(txn: &ReadTransaction) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let e = expected(txn)?;
    if e.undecodable > 0 {
        problems.push(format!(
            "{} server, agent or alert records cannot be read",
            e.undecodable
        ));
    }
    compare(
        &mut problems,
        "srv_rank (servers by risk)",
        &rows(txn, SRV_RANK)?,
        &e.rank,
    );
    compare(
        &mut problems,
        "agent_servers (each agent's servers)",
        &rows(txn, AGENT_SERVERS)?,
        &e.by_agent,
    );
    // The key-only indexes: their keys, each with an empty value.
    let held = |def| -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        Ok(keys(txn, def)?
            .into_iter()
            .map(|k| (k, Vec::new()))
            .collect())
    };
    compare(
        &mut problems,
        "alerts_open (open alerts)",
        &held(ALERTS_OPEN)?,
        &e.open,
    );
    compare(
        &mut problems,
        "silent_watch (agents by when they were last heard from)",
        &held(SILENT_WATCH)?,
        &e.watch,
    );
    compare(
        &mut problems,
        "alerts_of_server (each server's alerts)",
        &held(ALERTS_OF_SERVER)?,
        &e.of_server,
    );
    let counts = e
        .counts
        .into_iter()
        .map(|(k, n)| (k, n.to_be_bytes().to_vec()))
        .collect();
    compare(
        &mut problems,
        "counts (servers by level, open alerts)",
        &held_counts(txn)?,
        &counts,
    );
    for (what, n) in dangling(txn)? {
        if n > 0 {
            problems.push(format!("{what}: {n}"));
        }
    }
    Ok(problems)
}

/// How a stopped collector's database was opened, or why it could not be.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("no database at {0}")]
    Missing(String),
    #[error("a running mcpwatch-collector has {0} open")]
    Running(String),
    #[error("{0} was not closed cleanly and needs repair")]
    NeedsRepair(String),
    #[error("cannot open {path}: {message}")]
    Open { path: String, message: String },
}

/// Open the database in `data_dir` for reading while no collector runs on it.
pub fn open_read_only(data_dir: &Path) -> std::result::Result<ReadOnlyDatabase, OfflineError> {
    let path = data_dir.join(super::DB_FILE);
    let show = path.display().to_string();
    if !path.exists() {
        return Err(OfflineError::Missing(show));
    }
    ReadOnlyDatabase::open(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OfflineError::Running(show),
        redb::DatabaseError::RepairAborted => OfflineError::NeedsRepair(show),
        other => OfflineError::Open {
            path: show,
            message: other.to_string(),
        },
    })
}

/// Run `f` in a read transaction of a stopped collector's database. A database left
/// by a crash (a SIGKILL, a power cut) needs redb's repair before it can be read: it is
/// opened for writing once, which repairs it, as the collector's next start would.
pub fn offline_read<T>(
    data_dir: &Path,
    f: impl FnOnce(&ReadTransaction) -> Result<T>,
) -> std::result::Result<T, String> {
    let run = |txn: std::result::Result<ReadTransaction, redb::TransactionError>| {
        f(&txn.map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    };
    match open_read_only(data_dir) {
        Ok(db) => run(db.begin_read()),
        Err(OfflineError::NeedsRepair(path)) => {
            let db = Database::open(&path).map_err(|e| format!("cannot repair {path}: {e}"))?;
            tracing::info!(path, "The database was not closed cleanly; repaired it.");
            run(db.begin_read())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Snapshot a stopped collector's database into `out`.
pub fn snapshot_offline(data_dir: &Path, out: &Path) -> std::result::Result<u64, String> {
    offline_read(data_dir, |txn| snapshot(txn, out))
}

/// Check a stopped collector's database (or a restored one).
pub fn check_offline(data_dir: &Path) -> std::result::Result<Vec<String>, String> {
    offline_read(data_dir, check)
}

/// Compact a stopped collector's database, giving free pages back to the file
/// system; answers whether the file shrank.
pub fn compact_offline(data_dir: &Path) -> std::result::Result<bool, String> {
    let path = data_dir.join(super::DB_FILE);
    let mut db = match Database::open(&path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(format!(
                "a running mcpwatch-collector has {} open; stop it first",
                path.display()
            ));
        }
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    db.compact().map_err(|e| e.to_string())
}

/// Every table's entries and bytes, largest first.
pub(super) fn space(txn: &ReadTransaction) -> Result<Vec<TableSpace>> {
    use redb::ReadableTableMetadata as _;
    let mut out = Vec::new();
    for handle in txn.list_tables()? {
        let table = txn.open_untyped_table(handle)?;
        let stats = table.stats()?;
        out.push(TableSpace {
            table: redb::TableHandle::name(&table).to_owned(),
            entries: table.len()?,
            stored_bytes: stats.stored_bytes(),
            overhead_bytes: stats.metadata_bytes() + stats.fragmented_bytes(),
        });
    }
    out.sort_by(|a, b| {
        (b.stored_bytes + b.overhead_bytes)
            .cmp(&(a.stored_bytes + a.overhead_bytes))
            .then_with(|| a.table.cmp(&b.table))
    });
    Ok(out)
}

/// Check a stopped collector's database and list its tables with their sizes, from
/// one read transaction.
pub fn check_with_space_offline(
    data_dir: &Path,
) -> std::result::Result<(Vec<String>, Vec<TableSpace>), String> {
    offline_read(data_dir, |txn| Ok((check(txn)?, space(txn)?)))
}

/// The bytes a file takes on disk: its allocated blocks where the file system says
/// (a redb file grows ahead of its pages and the part never written takes no disk),
/// else its length.
pub fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        meta.blocks().saturating_mul(512)
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}
