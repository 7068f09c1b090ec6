//! The census's counts, kept at write time: a row per (organisation, group, key), the
//! distinct members each row counts (hosts, users, clients, launches, a version's
//! hosts) with how many servers hold each, and an index by host count. What the counts
//! are is [`crate::census`]'s business; this module only applies a server's marks.
//!
//! Keys: a row is org·group·key·0 (a key never holds a NUL; a package's is
//! ecosystem·1·name); its members are row·kind·member; `census_rank` is
//! org·group·(u64::MAX − hosts)·key·0.

use std::ops::ControlFlow;

use mcpwatch_protocol::ids::OrgId;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{
    CENSUS, CENSUS_MEMBERS, CENSUS_RANK, COUNTS, add_count, cat, count, decode, encode, get_json,
    walk_prefix,
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

/// Count a server's change: its marks before out, its marks after in (nothing when
/// they count the same).
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
    for mark in &old {
        bump(txn, org, mark, -1)?;
    }
    for mark in &new {
        bump(txn, org, mark, 1)?;
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

fn bump(txn: &WriteTransaction, org: OrgId, mark: &Mark, delta: i64) -> Result<()> {
    let key = key_bytes(&mark.key, mark.ecosystem.as_deref());
    let row = row_key(org, mark.group, &key);
    let stored: Option<Counts> = get_json(&txn.open_table(CENSUS)?, &row)?;
    let existed = stored.is_some();
    let mut counts = stored.unwrap_or_default();
    let hosts_before = counts.hosts;
    counts.count(mark, delta);
    for kind in Member::ALL {
        let Some(bytes) = kind.of(mark) else { continue };
        let change = member(txn, &cat(&[&row, &[kind.code()], &bytes]), delta)?;
        if change == 0 {
            continue;
        }
        if let Some(counter) = kind.counter(&mut counts) {
            *counter = counter.saturating_add_signed(change);
        }
        if kind == Member::VersionHost
            && let Some(version) = &mark.version
        {
            member(txn, &cat(&[&row, b"V", version.as_bytes()]), change)?;
        }
    }
    let mut rank = txn.open_table(CENSUS_RANK)?;
    if existed && (counts.servers == 0 || counts.hosts != hosts_before) {
        rank.remove(rank_key(org, mark.group, hosts_before, &key).as_slice())?;
    }
    if counts.servers == 0 {
        drop(rank);
        txn.open_table(CENSUS)?.remove(row.as_slice())?;
        if existed {
            add_count(txn, &rows_count_key(org, mark.group), -1)?;
        }
        return Ok(());
    }
    if !existed || counts.hosts != hosts_before {
        rank.insert(rank_key(org, mark.group, counts.hosts, &key).as_slice(), ())?;
    }
    drop(rank);
    txn.open_table(CENSUS)?
        .insert(row.as_slice(), encode(&counts)?.as_slice())?;
    if !existed {
        add_count(txn, &rows_count_key(org, mark.group), 1)?;
    }
    Ok(())
}

/// A row's versions with their hosts, most hosts first.
fn versions(txn: &ReadTransaction, row: &[u8]) -> Result<Vec<VersionHosts>> {
    let prefix = cat(&[row, b"V"]);
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
    for (_, value) in batch {
        let server: Server = decode(value)?;
        apply(txn, None, Some(&server))?;
    }
    Ok(())
}
