//! The layout version: recorded in a new database, checked at open, and upgrades from
//! older layouts.

use redb::{Database, ReadableTable};

use super::schema::{
    AGENTS, ALERTS, ALERTS_OF_SERVER, API_TOKENS, AUDIT, Bytes, CENSUS, CENSUS_MEMBERS,
    CENSUS_QUEUE, COMPACT, ENROLL_SECRETS, EVENTS, META, ORGS, Record, SERVER, SERVER_CHANGES,
    SERVERS, SESSIONS, SILENT_WATCH, SRV_RANK, USERS, change_key, create_tables, decode, encode,
    server_alert_key,
};
use crate::model::{MAX_SERVER_CHANGES, Server, ServerChange};
use crate::store::{Error, Result};

/// The layout version this code reads and writes. 2: server change histories moved
/// out of the server records into `server_changes` (see [`migrate_histories`]). 3: the
/// census kept at write time (see [`build_census`]). 4: records in the compact
/// encoding (see [`compact_records`]), and no `server_identity` table (an agent's
/// servers are found through their rank index, the identity computed from each). 5:
/// census member keys without the organisation·group prefix (see [`SHORTEN`]). 6:
/// servers stored without what their key and launch say (see `server_value`), audit
/// entries compact, one row per agent listing its servers instead of an index row per
/// server (see [`list_agent_servers`]), and hosts in census member keys shorter (see
/// [`SHORT_HOSTS`]). 7: agents that can become silent filed by when they were last
/// heard from, so that the sweep for silent agents reads only those (see
/// [`SILENT_WATCH_BUILD`]). 8: each server's alerts listed in `alerts_of_server`, so that
/// retention finds the alerts of the servers it deletes without reading the
/// organisation's others (see [`ALERTS_OF_SERVER_BUILD`]).
pub(super) const SCHEMA_VERSION: u32 = 8;
/// Where an interrupted census build goes on (the last server key counted).
pub(super) const CENSUS_CURSOR: &str = "census_cursor";
/// Servers migrated per transaction when a database is upgraded.
const MIGRATION_BATCH: usize = 10_000;
const VERSION_KEY: &str = "schema_version";

/// Record the layout version in a new database and make its tables; answers the
/// version an existing database had (tables are left alone in a newer one).
pub(super) fn init(db: &Database) -> Result<Option<u32>> {
    let txn = db.begin_write()?;
    let found = {
        let mut meta = txn.open_table(META)?;
        let found = match meta.get(VERSION_KEY)? {
            Some(v) => {
                Some(u32::from_be_bytes(v.value().try_into().map_err(|_| {
                    Error::internal("schema version record is damaged")
                })?))
            }
            None => None,
        };
        if found.is_none() {
            meta.insert(VERSION_KEY, SCHEMA_VERSION.to_be_bytes().as_slice())?;
        }
        found
    };
    if found.is_some_and(|v| v > SCHEMA_VERSION) {
        return Ok(found);
    }
    create_tables(&txn)?;
    txn.commit()?;
    Ok(found)
}

/// Record a layout version (the last step of an upgrade).
pub(super) fn set_version(txn: &redb::WriteTransaction, version: u32) -> Result<()> {
    txn.open_table(META)?
        .insert(VERSION_KEY, version.to_be_bytes().as_slice())?;
    Ok(())
}

/// Upgrade a database of layout `from` to [`SCHEMA_VERSION`]; answers what was done,
/// for the log (`None`: nothing to do).
pub(super) fn upgrade(db: &Database, from: Option<u32>) -> Result<Option<String>> {
    let mut done = Vec::new();
    if from == Some(1) {
        let moved = migrate_histories(db)?;
        done.push(format!(
            "change histories of {moved} servers moved out of server records (layout 2)"
        ));
    }
    if matches!(from, Some(1 | 2)) {
        let counted = build_census(db)?;
        done.push(format!(
            "the census built from {counted} servers (layout 3)"
        ));
    }
    if matches!(from, Some(1..=3)) {
        tracing::info!(
            "Upgrading the database to layout 4: every record is rewritten in the compact \
             encoding, in transactions of {MIGRATION_BATCH}; if stopped, it goes on at the \
             next start."
        );
        let converted = compact_records(db)?;
        let txn = db.begin_write()?;
        txn.delete_table(SERVER_IDENTITY)?;
        set_version(&txn, 4)?;
        txn.commit()?;
        done.push(format!(
            "{converted} records converted to the compact encoding (layout 4)"
        ));
    }
    if matches!(from, Some(1..=4)) {
        tracing::info!(
            "Upgrading the database to layout 5: census member keys are rewritten shorter, \
             in transactions of {MIGRATION_BATCH}; if stopped, it goes on at the next start."
        );
        let rewritten = rekey_members(db, &SHORTEN)?;
        let txn = db.begin_write()?;
        set_version(&txn, 5)?;
        txn.commit()?;
        done.push(format!(
            "{rewritten} census member keys rewritten (layout 5)"
        ));
    }
    if matches!(from, Some(1..=5)) {
        let listed = list_agent_servers(db)?;
        let rekeyed = rekey_members(db, &SHORT_HOSTS)?;
        done.push(format!(
            "{listed} servers listed in their agents' rows, {rekeyed} census member keys \
             rewritten (layout 6)"
        ));
        // From layout 3 or older, the conversion above wrote layout 6's forms already.
        let rewritten = if matches!(from, Some(4 | 5)) {
            tracing::info!(
                "Upgrading the database to layout 6: servers and audit entries are \
                 rewritten shorter, in transactions of {MIGRATION_BATCH}; if stopped, it \
                 goes on at the next start."
            );
            compact_records(db)?
        } else {
            0
        };
        let txn = db.begin_write()?;
        set_version(&txn, 6)?;
        txn.commit()?;
        done.push(format!(
            "{rewritten} servers and audit entries rewritten (layout 6)"
        ));
    }
    add_indexes(db, from, &mut done)?;
    Ok((!done.is_empty()).then(|| format!("Database upgraded: {}.", done.join("; "))))
}

/// The upgrades that add an index (layouts 7 and 8), each noted in `done`.
fn add_indexes(db: &Database, from: Option<u32>, done: &mut Vec<String>) -> Result<()> {
    if matches!(from, Some(1..=6)) {
        let read = build_index(db, &SILENT_WATCH_BUILD)?;
        let txn = db.begin_write()?;
        set_version(&txn, 7)?;
        txn.commit()?;
        done.push(format!(
            "{read} agents read and those that can become silent filed by when they were \
             last heard from (layout 7)"
        ));
    }
    if matches!(from, Some(1..=7)) {
        let read = build_index(db, &ALERTS_OF_SERVER_BUILD)?;
        let txn = db.begin_write()?;
        set_version(&txn, 8)?;
        txn.commit()?;
        done.push(format!(
            "{read} alerts read and those about a server listed with it (layout 8)"
        ));
    }
    Ok(())
}

/// A record as read for an upgrade: its key and value.
type Row = (Vec<u8>, Vec<u8>);

/// An index a layout adds, built from the records of one table a batch at a time,
/// with a cursor in `meta` (adding a record's entry again changes nothing, so a batch
/// done again after a stop is harmless).
pub(super) struct IndexBuild {
    /// The table whose records the index lists.
    from: redb::TableDefinition<'static, Bytes, Bytes>,
    /// Where an interrupted build goes on (the last record key read), in `meta`.
    cursor: &'static str,
    /// Add the entries of one batch of records.
    add: fn(&redb::WriteTransaction, &[Row]) -> Result<()>,
}

/// Layout 7: every agent that can become silent filed in `silent_watch` (see
/// `agents::watch`).
pub(super) const SILENT_WATCH_BUILD: IndexBuild = IndexBuild {
    from: AGENTS,
    cursor: "silent_watch_cursor",
    add: |txn, batch| {
        let mut rows = txn.open_table(SILENT_WATCH)?;
        for (key, value) in batch {
            let agent: crate::model::Agent = decode(value)?;
            super::agents::rewatch(&mut rows, key, None, super::agents::watch_minute(&agent))?;
        }
        Ok(())
    },
};

/// Layout 8: every alert about a server listed in `alerts_of_server`.
pub(super) const ALERTS_OF_SERVER_BUILD: IndexBuild = IndexBuild {
    from: ALERTS,
    cursor: "alerts_of_server_cursor",
    add: |txn, batch| {
        let mut rows = txn.open_table(ALERTS_OF_SERVER)?;
        for (key, value) in batch {
            // A record that cannot be read is left for `check` to name; the upgrade
            // goes on.
            match decode::<crate::model::Alert>(value) {
                Ok(alert) => {
                    if let Some(entry) = server_alert_key(&alert) {
                        rows.insert(entry.as_slice(), ())?;
                    }
                }
                Err(e) => tracing::warn!(
                    key = %hex::encode(key),
                    error = %e,
                    "An alert record cannot be read; it is not listed with its server."
                ),
            }
        }
        Ok(())
    },
};

/// Build `index` in transactions of [`MIGRATION_BATCH`] records, from where a stopped
/// build left off; answers how many records were read in this run.
fn build_index(db: &Database, index: &IndexBuild) -> Result<u64> {
    let mut read = 0;
    loop {
        let txn = db.begin_write()?;
        let batch = build_batch(&txn, index, MIGRATION_BATCH)?;
        txn.commit()?;
        match batch {
            Some(n) => read += n,
            None => return Ok(read),
        }
    }
}

/// Add the entries of up to `limit` records after the cursor; answers how many
/// records (`None` when none were left: the cursor is removed).
pub(super) fn build_batch(
    txn: &redb::WriteTransaction,
    index: &IndexBuild,
    limit: usize,
) -> Result<Option<u64>> {
    let cursor: Option<Vec<u8>> = txn
        .open_table(META)?
        .get(index.cursor)?
        .map(|v| v.value().to_vec());
    let batch = next_rows(txn, index.from, cursor.as_deref(), limit)?;
    let Some((last, _)) = batch.last() else {
        txn.open_table(META)?.remove(index.cursor)?;
        return Ok(None);
    };
    (index.add)(txn, &batch)?;
    txn.open_table(META)?
        .insert(index.cursor, last.as_slice())?;
    Ok(Some(batch.len() as u64))
}

/// One rewrite of every census member key: the table the old keys are set aside in,
/// the `meta` keys of its cursor and of its being done, and an old key's new form.
pub(super) struct Rekey {
    aside: redb::TableDefinition<'static, Bytes, u64>,
    cursor: &'static str,
    pub done: &'static str,
    rekey: fn(&[u8]) -> Result<Vec<u8>>,
}

/// Layout 5: layouts 3 and 4 kept census members as org·group·h(row)·kind·member;
/// the org·group prefix goes (the row's hash names both).
pub(super) const SHORTEN: Rekey = Rekey {
    aside: redb::TableDefinition::new("census_members_layout4"),
    cursor: "census_members_cursor",
    done: "census_members_short",
    rekey: |key| {
        key.get(crate::store::tally::OLD_MEMBER_PREFIX..)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::internal("a census member key is shorter than its old prefix"))
    },
};

/// Layout 6: hosts (agents' ids), alone, a user's or a version's, in 10 bytes (see
/// `tally::host_key`).
pub(super) const SHORT_HOSTS: Rekey = Rekey {
    aside: redb::TableDefinition::new("census_members_layout5"),
    cursor: "census_members_hosts_cursor",
    done: "census_members_hosts_short",
    rekey: |key| Ok(crate::store::tally::with_short_hosts(key)),
};

/// Rewrite every census member key ([`SHORTEN`], [`SHORT_HOSTS`]): the old table is
/// set aside once, then copied into a new `census_members` in transactions of
/// [`MIGRATION_BATCH`] with a cursor (two old keys that come out the same are added
/// together), then deleted. Recorded in `meta` when done, and by a census built in
/// today's form ([`build_census`]), so keys are never rewritten twice. Answers how
/// many keys were rewritten in this run.
fn rekey_members(db: &Database, rekey: &Rekey) -> Result<u64> {
    let txn = db.begin_write()?;
    if !set_members_aside(&txn, rekey)? {
        return Ok(0);
    }
    txn.commit()?;
    let mut rewritten = 0;
    loop {
        let txn = db.begin_write()?;
        let done = rekey_batch(&txn, rekey, MIGRATION_BATCH)?;
        txn.commit()?;
        match done {
            Some(n) => rewritten += n,
            None => return Ok(rewritten),
        }
    }
}

/// Set the census members aside (once) under the rewrite's own name, with a new empty
/// `census_members`; answers false when the rewrite is done already.
pub(super) fn set_members_aside(txn: &redb::WriteTransaction, rekey: &Rekey) -> Result<bool> {
    if txn.open_table(META)?.get(rekey.done)?.is_some() {
        return Ok(false);
    }
    let aside = txn
        .list_tables()?
        .any(|t| redb::TableHandle::name(&t) == redb::TableHandle::name(&rekey.aside));
    if !aside {
        txn.rename_table(CENSUS_MEMBERS, rekey.aside)?;
        txn.open_table(CENSUS_MEMBERS)?;
    }
    Ok(true)
}

/// Copy up to `limit` members set aside after the cursor with their keys rewritten;
/// answers how many (`None` when there were none left: the old table is deleted and
/// the rewrite recorded as done).
pub(super) fn rekey_batch(
    txn: &redb::WriteTransaction,
    rekey: &Rekey,
    limit: usize,
) -> Result<Option<u64>> {
    let cursor: Option<Vec<u8>> = txn
        .open_table(META)?
        .get(rekey.cursor)?
        .map(|v| v.value().to_vec());
    let batch: Vec<(Vec<u8>, u64)> = {
        let old = txn.open_table(rekey.aside)?;
        let range = match &cursor {
            Some(k) => old.range::<&[u8]>((
                std::ops::Bound::Excluded(k.as_slice()),
                std::ops::Bound::Unbounded,
            ))?,
            None => old.range::<&[u8]>(..)?,
        };
        range
            .take(limit)
            .map(|e| e.map(|(k, v)| (k.value().to_vec(), v.value())))
            .collect::<std::result::Result<_, _>>()?
    };
    let Some((last, _)) = batch.last() else {
        txn.delete_table(rekey.aside)?;
        let mut meta = txn.open_table(META)?;
        meta.remove(rekey.cursor)?;
        meta.insert(rekey.done, [1u8].as_slice())?;
        return Ok(None);
    };
    {
        let mut members = txn.open_table(CENSUS_MEMBERS)?;
        for (key, n) in &batch {
            let new = (rekey.rekey)(key)?;
            let held = members.get(new.as_slice())?.map_or(0, |v| v.value());
            members.insert(new.as_slice(), held.saturating_add(*n))?;
        }
    }
    txn.open_table(META)?
        .insert(rekey.cursor, last.as_slice())?;
    Ok(Some(batch.len() as u64))
}

/// Layouts up to 5 kept an index row per server by agent (org·agent·rank·server);
/// layout 6 keeps one row per agent listing its servers (`agent_servers`).
pub(super) const SRV_AGENT: redb::TableDefinition<'_, Bytes, Bytes> =
    redb::TableDefinition::new("srv_agent");
/// Where an interrupted listing of agents' servers goes on (the last server key listed).
pub(super) const AGENT_SERVERS_CURSOR: &str = "agent_servers_cursor";

/// Make every agent's row of servers, and every rank row in layout 6's form
/// (status·name: the agent no longer in it), from the servers, in transactions of
/// [`MIGRATION_BATCH`] servers with a cursor in `meta` (both writes are the same when
/// done twice, so a batch done again after a stop is harmless), then delete layout
/// 5's index by agent. Nothing to do once that index is gone (a database the new
/// layout wrote keeps its rows itself). Answers how many servers were listed in this
/// run.
fn list_agent_servers(db: &Database) -> Result<u64> {
    let mut listed = 0;
    loop {
        let txn = db.begin_write()?;
        let old_index = txn
            .list_tables()?
            .any(|t| redb::TableHandle::name(&t) == redb::TableHandle::name(&SRV_AGENT));
        if !old_index {
            return Ok(listed);
        }
        let resume: Option<Vec<u8>> = txn
            .open_table(META)?
            .get(AGENT_SERVERS_CURSOR)?
            .map(|v| v.value().to_vec());
        let batch = next_rows(&txn, SERVERS, resume.as_deref(), MIGRATION_BATCH)?;
        let Some((last, _)) = batch.last() else {
            txn.open_table(META)?.remove(AGENT_SERVERS_CURSOR)?;
            txn.delete_table(SRV_AGENT)?;
            txn.commit()?;
            return Ok(listed);
        };
        let mut rows: std::collections::BTreeMap<_, Vec<[u8; 16]>> = Default::default();
        let mut rank = txn.open_table(SRV_RANK)?;
        for (key, value) in &batch {
            let server = super::server_value::decode(key, value)?;
            rows.entry((server.org_id, server.agent_id))
                .or_default()
                .push(server.id.to_bytes());
            let (rank_key, rank_value) = super::schema::IndexEntries::of(&server).rank;
            rank.insert(rank_key.as_slice(), rank_value.as_slice())?;
        }
        drop(rank);
        for ((org, agent), ids) in rows {
            super::agent_servers::add(&txn, org, agent, &ids)?;
        }
        txn.open_table(META)?
            .insert(AGENT_SERVERS_CURSOR, last.as_slice())?;
        listed += batch.len() as u64;
        txn.commit()?;
    }
}

/// Layouts up to 3 kept a link from each server's identity within its agent to the
/// server; layout 4 computes the identity from the record.
pub(super) const SERVER_IDENTITY: redb::TableDefinition<'_, Bytes, Bytes> =
    redb::TableDefinition::new("server_identity");

/// A record (its key, its bytes) read in either encoding and written in the compact
/// one (`true`) or as JSON (`false`, as layouts up to 3 wrote it: the tests make such
/// databases).
pub(super) type Recode = fn(&[u8], &[u8], bool) -> Result<Vec<u8>>;

/// A table whose records are compact: how to rewrite one, and the first byte of its
/// newest form.
#[derive(Clone, Copy)]
pub(super) struct CompactTable {
    pub table: redb::TableDefinition<'static, Bytes, Bytes>,
    pub recode: Recode,
    pub mark: u8,
}

const fn compact(
    table: redb::TableDefinition<'static, Bytes, Bytes>,
    recode: Recode,
) -> CompactTable {
    CompactTable {
        table,
        recode,
        mark: COMPACT,
    }
}

/// Every table whose records are compact: from layout 4, and servers in their own
/// form and audit entries from layout 6.
pub(super) const COMPACT_TABLES: [CompactTable; 12] = [
    compact(ORGS, recode::<crate::model::Org>),
    compact(USERS, recode::<crate::model::User>),
    compact(SESSIONS, recode::<crate::model::Session>),
    compact(AGENTS, recode::<crate::model::Agent>),
    compact(ENROLL_SECRETS, recode::<crate::model::EnrollSecret>),
    compact(API_TOKENS, recode::<crate::model::ApiToken>),
    CompactTable {
        table: SERVERS,
        recode: recode_server,
        mark: SERVER,
    },
    compact(SERVER_CHANGES, recode::<ServerChange>),
    compact(CENSUS, recode::<crate::census::Counts>),
    compact(CENSUS_QUEUE, recode::<crate::store::tally::Change>),
    compact(EVENTS, recode::<crate::events::Event>),
    compact(AUDIT, recode::<crate::audit::Entry>),
];

fn recode<T: Record>(_key: &[u8], bytes: &[u8], compact: bool) -> Result<Vec<u8>> {
    let record = decode::<T>(bytes)?;
    if compact {
        encode(&record)
    } else {
        json(&record)
    }
}

/// [`recode`] for a server, whose compact form leaves out what its key says.
fn recode_server(key: &[u8], bytes: &[u8], compact: bool) -> Result<Vec<u8>> {
    let server = super::server_value::decode(key, bytes)?;
    if compact {
        super::server_value::encode(&server)
    } else {
        json(&server)
    }
}

fn json<T: serde::Serialize>(record: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::internal(format!("encoding record: {e}")))
}

/// Layouts up to 3 kept records as JSON; layout 4 keeps most of them compact (see
/// `schema::encode`), and layout 6 servers in their own form and audit entries compact
/// too. Rewrites every record not in its newest form, table by table,
/// [`MIGRATION_BATCH`] records per transaction. A record already in it is left as it
/// is, and readers take every form, so an interrupted conversion goes on where it
/// stopped and the database is readable meanwhile. Answers how many records were
/// rewritten in this run.
fn compact_records(db: &Database) -> Result<u64> {
    let mut converted = 0;
    for table in COMPACT_TABLES {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let txn = db.begin_write()?;
            let (scanned_to, count) = compact_batch(&txn, table, after.as_deref())?;
            txn.commit()?;
            converted += count;
            match scanned_to {
                Some(last) => after = Some(last),
                None => break,
            }
        }
    }
    Ok(converted)
}

/// Rewrite the records not in their newest form among the next [`MIGRATION_BATCH`] of
/// a table after the key `after`; answers the last key looked at (`None` at the end of
/// the table) and how many were rewritten.
pub(super) fn compact_batch(
    txn: &redb::WriteTransaction,
    CompactTable {
        table,
        recode,
        mark,
    }: CompactTable,
    after: Option<&[u8]>,
) -> Result<(Option<Vec<u8>>, u64)> {
    let batch = next_rows(txn, table, after, MIGRATION_BATCH)?;
    let mut rows = txn.open_table(table)?;
    let mut converted = 0;
    for (key, value) in batch.iter().filter(|(_, v)| v.first() != Some(&mark)) {
        rows.insert(key.as_slice(), recode(key, value, true)?.as_slice())?;
        converted += 1;
    }
    Ok((batch.last().map(|(k, _)| k.clone()), converted))
}

/// Layout 1 kept each server's change history in its record; layout 2 keeps it in
/// `server_changes`. Moves the histories in transactions of [`MIGRATION_BATCH`]
/// servers, then records layout 2. A record without an inline history is left as it
/// is, so a migration that was interrupted continues where it stopped. Answers how
/// many servers had a history moved.
fn migrate_histories(db: &Database) -> Result<u64> {
    let mut resume: Option<Vec<u8>> = None;
    let mut moved = 0;
    loop {
        let txn = db.begin_write()?;
        let batch = next_rows(&txn, SERVERS, resume.as_deref(), MIGRATION_BATCH)?;
        let Some((last, _)) = batch.last() else {
            set_version(&txn, 2)?;
            txn.commit()?;
            return Ok(moved);
        };
        resume = Some(last.clone());
        moved += move_histories(&txn, &batch)?;
        txn.commit()?;
    }
}

/// Layout 3 keeps the census at write time; a database of layout 2 has none. Counts
/// every server in, in transactions of [`MIGRATION_BATCH`], recording after each where
/// it got to, so that an interrupted build goes on where it stopped; then records
/// layout 3. Answers how many servers were counted in this run.
fn build_census(db: &Database) -> Result<u64> {
    let mut counted = 0;
    loop {
        let txn = db.begin_write()?;
        let resume: Option<Vec<u8>> = txn
            .open_table(META)?
            .get(CENSUS_CURSOR)?
            .map(|v| v.value().to_vec());
        let batch = next_rows(&txn, SERVERS, resume.as_deref(), MIGRATION_BATCH)?;
        let Some((last, _)) = batch.last() else {
            let mut meta = txn.open_table(META)?;
            meta.remove(CENSUS_CURSOR)?;
            // Counted with today's keys.
            meta.insert(SHORTEN.done, [1u8].as_slice())?;
            meta.insert(SHORT_HOSTS.done, [1u8].as_slice())?;
            drop(meta);
            set_version(&txn, 3)?;
            txn.commit()?;
            return Ok(counted);
        };
        super::census::count_in(&txn, &batch)?;
        txn.open_table(META)?
            .insert(CENSUS_CURSOR, last.as_slice())?;
        counted += batch.len() as u64;
        txn.commit()?;
    }
}

/// The next [`MIGRATION_BATCH`] records of `table` after the key `after` (from the
/// first when `None`), as key and value bytes.
fn next_rows(
    txn: &redb::WriteTransaction,
    table: redb::TableDefinition<'_, Bytes, Bytes>,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let rows = txn.open_table(table)?;
    let range = match after {
        Some(k) => {
            rows.range::<&[u8]>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))?
        }
        None => rows.range::<&[u8]>(..)?,
    };
    let mut batch = Vec::new();
    for entry in range.take(limit) {
        let (k, v) = entry?;
        batch.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(batch)
}

/// Move the inline histories of one batch of server records; answers how many moved.
fn move_histories(txn: &redb::WriteTransaction, batch: &[(Vec<u8>, Vec<u8>)]) -> Result<u64> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct InlineHistory {
        #[serde(default)]
        changes: Vec<ServerChange>,
    }
    // Layout 1 was JSON throughout.
    impl super::schema::Record for InlineHistory {
        const COMPACT: bool = false;
    }
    let mut servers = txn.open_table(SERVERS)?;
    let mut history = txn.open_table(SERVER_CHANGES)?;
    let mut moved = 0;
    for (key, value) in batch {
        let inline: InlineHistory = decode(value)?;
        if inline.changes.is_empty() {
            continue;
        }
        let mut server: Server = super::schema::decode_either(value)?;
        let count = inline.changes.len() as u64;
        let first_kept = count.saturating_sub(MAX_SERVER_CHANGES);
        for (seq, change) in (0..count).zip(&inline.changes).skip(first_kept as usize) {
            history.insert(change_key(key, seq).as_slice(), encode(change)?.as_slice())?;
        }
        server.change_seq = count;
        servers.insert(
            key.as_slice(),
            super::server_value::encode(&server)?.as_slice(),
        )?;
        moved += 1;
    }
    Ok(moved)
}
