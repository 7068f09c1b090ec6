//! The census's counts, kept at write time: a row per (organisation, group, key), the
//! distinct members each row counts (hosts, users, clients, launches, a version's
//! hosts) with how many servers hold each, and an index by host count. What the counts
//! are is [`crate::census`]'s business; this module only applies a server's marks.
//!
//! A server write only appends its change to `census_queue` (one small write at the
//! end of a table, in the write's own transaction: nothing is lost); [`drain`] counts
//! queued changes in, thousands at a time and netted, from the background jobs and
//! before every census read, so a read always sees every committed write.
//!
//! Keys: a row is org·group·key·0 (a key never holds a NUL; a package's is
//! ecosystem·1·name); its members are org·group·h(row)·kind·member, with h the first 8
//! bytes of a SHA-256 (and long members hashed the same way); `census_rank` is
//! org·group·(u64::MAX − hosts)·key·0.

use std::ops::ControlFlow;

use mcpwatch_protocol::ids::OrgId;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{
    CENSUS, CENSUS_MEMBERS, CENSUS_QUEUE, CENSUS_RANK, COUNTS, add_count, cat, count, decode,
    encode, get_json, walk_prefix,
};
use crate::census::{Counts, Group, Mark, Member, VersionHosts, marks};
use crate::model::Server;
use crate::store::{CensusQuery, Direction, Page, Result};

/// The counts row of an organisation's census rows of one group.
fn rows_count_key(org: OrgId, group: Group) -> Vec<u8> {
    cat(&[&org.to_bytes(), b"C", &[group.code()]])
}

/// A row's key bytes: its key, a package's after its ecosystem, without NULs.
fn key_bytes(mark_key: &str, ecosystem: Option<&str>) -> Vec<u8> {
    let clean = |s: &str| s.replace('\0', "\u{fffd}");
    match ecosystem {
        Some(eco) => [clean(eco).as_bytes(), &[1], clean(mark_key).as_bytes()].concat(),
        None => clean(mark_key).into_bytes(),
    }
}

fn row_key(org: OrgId, group: Group, key: &[u8]) -> Vec<u8> {
    cat(&[&org.to_bytes(), &[group.code()], key, &[0]])
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

/// Where a row's members are kept: org·group·(the first 8 bytes of the SHA-256 of the
/// row's key), so that member keys stay short however long the row's key is.
fn members_of(row: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(row);
    cat(&[&row[..17], &digest[..8]])
}

/// A member's bytes as kept: long ones (a launch's fingerprint, a user's name) as the
/// first 8 bytes of their SHA-256 after the host.
fn member_bytes(kind: Member, bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    match kind {
        Member::Host | Member::VersionHost | Member::Client => bytes.to_vec(),
        Member::User => {
            let (host, name) = bytes.split_at(16.min(bytes.len()));
            cat(&[host, &sha2::Sha256::digest(name)[..8]])
        }
        Member::Launch => sha2::Sha256::digest(bytes)[..8].to_vec(),
    }
}

/// What one server write does to one row: its servers and levels, and when it was seen.
struct RowChange {
    mark: Mark,
    servers: i64,
    levels: [i64; 4],
    seen: bool,
}

/// Count a server's change: its marks before out, its marks after in, netted per row
/// and per member first, so that a change that keeps a server's host, user and client
/// (a new version, say) touches only what differs.
pub(super) fn apply(
    txn: &WriteTransaction,
    before: Option<&Server>,
    after: Option<&Server>,
) -> Result<()> {
    let old = before.map(marks).unwrap_or_default();
    let new = after.map(marks).unwrap_or_default();
    if old.len() == new.len() && old.iter().zip(&new).all(|(a, b)| a.same_counts(b)) {
        return Ok(());
    }
    let Some(org) = before.or(after).map(|s| s.org_id) else {
        return Ok(());
    };
    enqueue(txn, &Change { org, old, new })
}

/// A member key's net change: its row key, its kind, the version it names (a version's
/// host), and the change.
type MemberChange = (Vec<u8>, Member, Option<String>, i64);

/// One server's change, waiting in `census_queue` to be counted.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Change {
    org: OrgId,
    old: Vec<Mark>,
    new: Vec<Mark>,
}

const QUEUE_SEQ: &str = "census_queue_seq";

/// Append a change to the queue (one small write at the end of a table).
fn enqueue(txn: &WriteTransaction, change: &Change) -> Result<()> {
    let mut meta = txn.open_table(super::schema::META)?;
    let seq = meta
        .get(QUEUE_SEQ)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map_or(0, u64::from_be_bytes)
        + 1;
    meta.insert(QUEUE_SEQ, seq.to_be_bytes().as_slice())?;
    drop(meta);
    txn.open_table(CENSUS_QUEUE)?
        .insert(seq.to_be_bytes().as_slice(), encode(change)?.as_slice())?;
    Ok(())
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
    let mut rows: BTreeMap<Vec<u8>, RowChange> = BTreeMap::new();
    let mut members: BTreeMap<Vec<u8>, MemberChange> = BTreeMap::new();
    let marked = changes.iter().flat_map(|c| {
        c.old
            .iter()
            .map(move |m| (c.org, m, -1))
            .chain(c.new.iter().map(move |m| (c.org, m, 1)))
    });
    for (org, mark, delta) in marked {
        let key = key_bytes(&mark.key, mark.ecosystem.as_deref());
        let row = row_key(org, mark.group, &key);
        let change = rows.entry(row.clone()).or_insert_with(|| RowChange {
            mark: mark.clone(),
            servers: 0,
            levels: [0; 4],
            seen: false,
        });
        change.servers += delta;
        change.levels[crate::census::level_index(mark.level)] += delta;
        if delta > 0 {
            change.mark = mark.clone();
            change.seen = true;
        }
        let prefix = members_of(&row);
        for kind in Member::ALL {
            let Some(bytes) = kind.of(mark) else { continue };
            let member = cat(&[&prefix, &[kind.code()], &member_bytes(kind, &bytes)]);
            let entry = members
                .entry(member)
                .or_insert_with(|| (row.clone(), kind, mark.version.clone(), 0));
            entry.3 += delta;
        }
    }
    // Which counters of which rows the members that appeared or went move.
    let mut moved: BTreeMap<Vec<u8>, [i64; 4]> = BTreeMap::new();
    for (member_key, (row, kind, version, delta)) in members {
        if delta == 0 {
            continue;
        }
        let change = member(txn, &member_key, delta)?;
        if change == 0 {
            continue;
        }
        match kind.counter_index() {
            Some(i) => moved.entry(row).or_default()[i] += change,
            None => {
                if let Some(version) = version {
                    let prefix = members_of(&row);
                    member(txn, &cat(&[&prefix, b"V", version.as_bytes()]), change)?;
                }
            }
        }
    }
    for (row, change) in rows {
        let counters = moved.remove(&row).unwrap_or_default();
        let org = OrgId::from_bytes(super::schema::id_at(&row, 0)?);
        write_row(txn, org, &row, &change, counters)?;
    }
    Ok(())
}

/// Store a row's new counts (and its place in the index by hosts); a row left without
/// servers goes.
fn write_row(
    txn: &WriteTransaction,
    org: OrgId,
    row: &[u8],
    change: &RowChange,
    counters: [i64; 4],
) -> Result<()> {
    if change.servers == 0 && change.levels == [0; 4] && counters == [0; 4] && !change.seen {
        return Ok(());
    }
    let stored: Option<Counts> = get_json(&txn.open_table(CENSUS)?, row)?;
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
    let mut rank = txn.open_table(CENSUS_RANK)?;
    if existed && (counts.servers == 0 || counts.hosts != hosts_before) {
        rank.remove(rank_key(org, group, hosts_before, key).as_slice())?;
    }
    if counts.servers == 0 {
        drop(rank);
        txn.open_table(CENSUS)?.remove(row)?;
        if existed {
            add_count(txn, &rows_count_key(org, group), -1)?;
        }
        return Ok(());
    }
    if !existed || counts.hosts != hosts_before {
        rank.insert(rank_key(org, group, counts.hosts, key).as_slice(), ())?;
    }
    drop(rank);
    txn.open_table(CENSUS)?
        .insert(row, encode(&counts)?.as_slice())?;
    if !existed {
        add_count(txn, &rows_count_key(org, group), 1)?;
    }
    Ok(())
}

/// Add `delta` to a member's server count; answers +1 when it appeared, -1 when it went.
fn member(txn: &WriteTransaction, key: &[u8], delta: i64) -> Result<i64> {
    let mut table = txn.open_table(CENSUS_MEMBERS)?;
    let old = table.get(key)?.map_or(0, |v| v.value());
    let new = old.saturating_add_signed(delta);
    if new == 0 {
        table.remove(key)?;
    } else {
        table.insert(key, new)?;
    }
    Ok(match (old, new) {
        (0, n) if n > 0 => 1,
        (o, 0) if o > 0 => -1,
        _ => 0,
    })
}

/// A row's versions with their hosts, most hosts first.
fn versions(txn: &ReadTransaction, row: &[u8]) -> Result<Vec<VersionHosts>> {
    let prefix = cat(&[&members_of(row), b"V"]);
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
    for (_, value) in batch {
        let server: Server = decode(value)?;
        changes.push(Change {
            org: server.org_id,
            old: Vec::new(),
            new: marks(&server),
        });
    }
    count_changes(txn, &changes)
}
