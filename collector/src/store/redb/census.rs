//! The census's counts, kept at write time: a row per (organisation, group, key), the
//! distinct members each row counts (hosts, users, clients, launches, a version's
//! hosts) with how many servers hold each, and an index by host count. What the counts
//! are is [`crate::census`]'s business; this module only applies a server's marks.
//!
//! A server write only appends its change to `census_queue` (one small write at the
//! end of a table, in the write's own transaction: nothing is lost); [`drain`] counts
//! queued changes in, thousands at a time and netted, from the background jobs and
//! before a census read that finds changes queued, so a read always sees every
//! committed write.
//!
//! Keys: a row is org·group·key·0 (a key never holds a NUL; a package's is
//! ecosystem·1·name); its members are h(row)·kind·member, with h the first 8
//! bytes of a SHA-256 (and long members hashed the same way); `census_rank` is
//! org·group·(u64::MAX − hosts)·key·0.

use std::ops::ControlFlow;

use mcpwatch_protocol::ids::OrgId;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{
    Bytes, CENSUS, CENSUS_MEMBERS, CENSUS_QUEUE, CENSUS_RANK, COUNTS, add_count, cat, count,
    decode, encode, get_record, walk_prefix,
};
use crate::census::{Counts, Group, VersionHosts};
use crate::model::Server;
use crate::store::tally::{Change, RowChange, Tally, tally, transition, version_key};
use crate::store::{CensusQuery, Direction, Page, Result};

/// The counts row of an organisation's census rows of one group.
fn rows_count_key(org: OrgId, group: Group) -> Vec<u8> {
    cat(&[&org.to_bytes(), b"C", &[group.code()]])
}

fn rank_key(org: OrgId, group: Group, hosts: u64, key: &[u8]) -> Vec<u8> {
    cat(&[
        &org.to_bytes(),
        &[group.code()],
        &(u64::MAX - hosts).to_be_bytes(),
        key,
        &[0],
    ])
}

/// Count a server's change: its marks before out, its marks after in, netted per row
/// and per member first, so that a change that keeps a server's host, user and client
/// (a new version, say) touches only what differs.
pub(super) fn apply(
    txn: &WriteTransaction,
    before: Option<&Server>,
    after: Option<&Server>,
) -> Result<()> {
    apply_all(txn, [(before, after)])
}

/// [`apply`] for several servers' changes, queued together.
pub(super) fn apply_all<'a>(
    txn: &WriteTransaction,
    changes: impl IntoIterator<Item = (Option<&'a Server>, Option<&'a Server>)>,
) -> Result<()> {
    let mut changes = changes
        .into_iter()
        .filter_map(|(before, after)| Change::of(before, after))
        .peekable();
    if changes.peek().is_none() {
        return Ok(());
    }
    let mut meta = txn.open_table(super::schema::META)?;
    let mut seq = meta
        .get(QUEUE_SEQ)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map_or(0, u64::from_be_bytes);
    let mut queue = txn.open_table(CENSUS_QUEUE)?;
    for change in changes {
        seq += 1;
        queue.insert(seq.to_be_bytes().as_slice(), encode(&change)?.as_slice())?;
    }
    meta.insert(QUEUE_SEQ, seq.to_be_bytes().as_slice())?;
    Ok(())
}

const QUEUE_SEQ: &str = "census_queue_seq";

/// Whether any change is queued, not yet counted.
pub(super) fn queued(txn: &ReadTransaction) -> Result<bool> {
    Ok(txn.open_table(CENSUS_QUEUE)?.first()?.is_some())
}

/// Count up to `limit` queued changes in, oldest first, in this transaction; answers
/// how many were counted.
pub(super) fn drain(txn: &WriteTransaction, limit: usize) -> Result<usize> {
    let mut keys = Vec::new();
    let mut changes = Vec::new();
    {
        let queue = txn.open_table(CENSUS_QUEUE)?;
        for entry in queue.iter()?.take(limit) {
            let (k, v) = entry?;
            keys.push(k.value().to_vec());
            changes.push(decode::<Change>(v.value())?);
        }
    }
    count_changes(txn, &changes)?;
    let mut queue = txn.open_table(CENSUS_QUEUE)?;
    for k in &keys {
        queue.remove(k.as_slice())?;
    }
    Ok(keys.len())
}

/// Count changes in, netted per row and per member across all of them first, so that
/// a popular row is written once however many of the changes touch it, and a change
/// that keeps a server's host, user and client (a new version, say) touches only what
/// differs.
fn count_changes(txn: &WriteTransaction, changes: &[Change]) -> Result<()> {
    use std::collections::BTreeMap;
    let Tally { rows, members } = tally(changes);
    // Which counters of which rows the members that appeared or went move.
    let mut moved: BTreeMap<Vec<u8>, [i64; 4]> = BTreeMap::new();
    let mut member_table = txn.open_table(CENSUS_MEMBERS)?;
    for (member_key, m) in members {
        if m.delta == 0 {
            continue;
        }
        let change = member(&mut member_table, &member_key, m.delta)?;
        if change == 0 {
            continue;
        }
        match m.kind.counter_index() {
            Some(i) => moved.entry(m.row).or_default()[i] += change,
            None => {
                if let Some(version) = m.version {
                    member(&mut member_table, &version_key(&m.row, &version), change)?;
                }
            }
        }
    }
    drop(member_table);
    let mut tables = RowTables {
        census: txn.open_table(CENSUS)?,
        rank: txn.open_table(CENSUS_RANK)?,
        rows_added: BTreeMap::new(),
    };
    for (row, change) in rows {
        let counters = moved.remove(&row).unwrap_or_default();
        let org = OrgId::from_bytes(super::schema::id_at(&row, 0)?);
        write_row(&mut tables, org, &row, &change, counters)?;
    }
    let RowTables { rows_added, .. } = tables;
    for (key, delta) in rows_added.into_iter().filter(|(_, d)| *d != 0) {
        add_count(txn, &key, delta)?;
    }
    Ok(())
}

/// The tables [`write_row`] writes, opened once for all the rows of a drain, and how
/// many rows each organisation's group gained or lost (by its counts key, counted in
/// after).
struct RowTables<'txn> {
    census: redb::Table<'txn, Bytes, Bytes>,
    rank: redb::Table<'txn, Bytes, ()>,
    rows_added: std::collections::BTreeMap<Vec<u8>, i64>,
}

/// Store a row's new counts (and its place in the index by hosts); a row left without
/// servers goes.
fn write_row(
    tables: &mut RowTables<'_>,
    org: OrgId,
    row: &[u8],
    change: &RowChange,
    counters: [i64; 4],
) -> Result<()> {
    if change.is_empty(counters) {
        return Ok(());
    }
    let stored: Option<Counts> = get_record(&tables.census, row)?;
    let existed = stored.is_some();
    let mut counts = stored.unwrap_or_default();
    let hosts_before = counts.hosts;
    counts.apply(
        &change.mark,
        change.servers,
        change.levels,
        counters,
        change.seen,
    );
    let group = change.mark.group;
    let key = &row[17..row.len() - 1];
    if existed && (counts.servers == 0 || counts.hosts != hosts_before) {
        tables
            .rank
            .remove(rank_key(org, group, hosts_before, key).as_slice())?;
    }
    if counts.servers == 0 {
        tables.census.remove(row)?;
        if existed {
            *tables
                .rows_added
                .entry(rows_count_key(org, group))
                .or_default() -= 1;
        }
        return Ok(());
    }
    if !existed || counts.hosts != hosts_before {
        tables
            .rank
            .insert(rank_key(org, group, counts.hosts, key).as_slice(), ())?;
    }
    tables.census.insert(row, encode(&counts)?.as_slice())?;
    if !existed {
        *tables
            .rows_added
            .entry(rows_count_key(org, group))
            .or_default() += 1;
    }
    Ok(())
}

/// Add `delta` to a member's server count; answers +1 when it appeared, -1 when it went.
fn member(table: &mut redb::Table<'_, Bytes, u64>, key: &[u8], delta: i64) -> Result<i64> {
    let old = table.get(key)?.map_or(0, |v| v.value());
    let new = old.saturating_add_signed(delta);
    if new == 0 {
        table.remove(key)?;
    } else {
        table.insert(key, new)?;
    }
    Ok(transition(old, new))
}

/// A row's versions with their hosts, most hosts first.
fn versions(txn: &ReadTransaction, row: &[u8]) -> Result<Vec<VersionHosts>> {
    let prefix = version_key(row, "");
    let mut out = Vec::new();
    walk_prefix(
        &txn.open_table(CENSUS_MEMBERS)?,
        &prefix,
        |k, hosts: u64| {
            let version = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push(VersionHosts { version, hosts });
            Ok(ControlFlow::Continue(()))
        },
    )?;
    out.sort_by(|a, b| {
        b.hosts
            .cmp(&a.hosts)
            .then_with(|| a.version.cmp(&b.version))
    });
    Ok(out)
}

/// A page of an organisation's census rows of one group, with their versions.
pub(super) fn list(
    txn: &ReadTransaction,
    org: OrgId,
    query: &CensusQuery,
) -> Result<Page<(Counts, Vec<VersionHosts>)>> {
    let total = count(&txn.open_table(COUNTS)?, &rows_count_key(org, query.group))?;
    let prefix = cat(&[&org.to_bytes(), &[query.group.code()]]);
    let offset = usize::try_from(query.page.saturating_sub(1).saturating_mul(query.page_size))
        .unwrap_or(usize::MAX);
    let size = usize::try_from(query.page_size).unwrap_or(usize::MAX);
    let reverse = query.direction == Direction::Asc;
    let end = {
        let mut e = prefix.clone();
        if let Some(last) = e.last_mut() {
            *last += 1;
        }
        e
    };
    // Rows in order: by hosts from the rank index (its key part after the count is the
    // row's key), or by key from the rows themselves.
    let mut rows: Vec<Vec<u8>> = Vec::with_capacity(size);
    if query.by_hosts {
        let rank = txn.open_table(CENSUS_RANK)?;
        let range = rank.range::<&[u8]>(prefix.as_slice()..end.as_slice())?;
        let keys: Box<dyn Iterator<Item = _>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for entry in keys.skip(offset).take(size) {
            let (k, _) = entry?;
            let key = &k.value()[prefix.len() + 8..];
            rows.push(cat(&[&prefix, key]));
        }
    } else {
        let table = txn.open_table(CENSUS)?;
        let range = table.range::<&[u8]>(prefix.as_slice()..end.as_slice())?;
        let keys: Box<dyn Iterator<Item = _>> = if query.direction == Direction::Desc {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for entry in keys.skip(offset).take(size) {
            let (k, _) = entry?;
            rows.push(k.value().to_vec());
        }
    }
    let table = txn.open_table(CENSUS)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(v) = table.get(row.as_slice())? {
            let counts: Counts = decode(v.value())?;
            items.push((counts, versions(txn, &row)?));
        }
    }
    Ok(Page { items, total })
}

/// Count every stored server of one batch in (building the census of a database made
/// before it existed).
pub(super) fn count_in(txn: &WriteTransaction, batch: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    let mut changes = Vec::with_capacity(batch.len());
    for (key, value) in batch {
        let server = super::server_value::decode(key, value)?;
        changes.push(Change::existing(&server));
    }
    count_changes(txn, &changes)
}
