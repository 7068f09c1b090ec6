//! Servers: records, their rank indexes and counts, change histories, policies, and
//! the listing queries.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{OrgId, ServerId, UserId};
use mcpwatch_protocol::risk::RiskLevel;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::alerts;
use super::schema::{
    AGENT_RANK_KEY_SERVER, AGENT_RANK_VALUE_NAME, Bytes, COUNTS, INVENTORY_REV, IndexEntries,
    POLICIES, RANK_KEY_SERVER, RANK_VALUE_NAME, RANK_VALUE_STATUS, SERVER_CHANGES, SERVERS,
    SRV_AGENT, SRV_RANK, add_count, agent_key, change_key, count, count_key_servers, decode,
    encode, get_json, id_at, list_json, put_json, server_key, walk_prefix,
};
use crate::ingest::{self, ServerWrite, rescore};
use crate::model::{
    LevelCounts, MAX_SERVER_CHANGES, OrgPolicy, Server, ServerChange, ServerStatus,
};
use crate::store::{Error, Page, Result, ServerQuery};

/// Add a server's entries to the rank indexes and counts, or take them out.
pub(super) fn index_server(txn: &WriteTransaction, s: &Server, add: bool) -> Result<()> {
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

pub(super) fn put_server(txn: &WriteTransaction, write: &ServerWrite) -> Result<()> {
    put_encoded_server(txn, write, &encode(&write.after)?)
}

/// [`put_server`] with the new record already encoded.
pub(super) fn put_encoded_server(
    txn: &WriteTransaction,
    write: &ServerWrite,
    encoded: &[u8],
) -> Result<()> {
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
    let key = server_key(after.org_id, after.id);
    txn.open_table(SERVERS)?.insert(key.as_slice(), encoded)?;
    if let Some(change) = &write.change {
        record_change(txn, &key, after.change_seq, change)?;
    }
    let rev_key = agent_key(after.org_id, after.agent_id);
    let mut revisions = txn.open_table(INVENTORY_REV)?;
    let next = revision_of(&revisions, &rev_key)?.wrapping_add(1);
    revisions.insert(rev_key.as_slice(), next)?;
    Ok(())
}

/// Add change number `change_seq` to a server's history, dropping the oldest beyond
/// [`MAX_SERVER_CHANGES`].
fn record_change(
    txn: &WriteTransaction,
    server_key: &[u8],
    change_seq: u64,
    change: &ServerChange,
) -> Result<()> {
    let seq = change_seq
        .checked_sub(1)
        .ok_or_else(|| Error::internal("a server change without a number"))?;
    let mut history = txn.open_table(SERVER_CHANGES)?;
    history.insert(
        change_key(server_key, seq).as_slice(),
        encode(change)?.as_slice(),
    )?;
    if let Some(oldest) = seq.checked_sub(MAX_SERVER_CHANGES) {
        history.remove(change_key(server_key, oldest).as_slice())?;
    }
    Ok(())
}

/// How many writes of the agent's servers there have been (see `inventory_rev`).
pub(super) fn revision_of<T: ReadableTable<Bytes, u64>>(revisions: &T, key: &[u8]) -> Result<u64> {
    count(revisions, key)
}

pub(super) fn get_server(txn: &ReadTransaction, org: OrgId, server: ServerId) -> Result<Server> {
    get_json(&txn.open_table(SERVERS)?, &server_key(org, server))?.ok_or(Error::NotFound)
}

pub(super) fn server_changes(
    txn: &ReadTransaction,
    org: OrgId,
    server: ServerId,
) -> Result<Vec<ServerChange>> {
    list_json(&txn.open_table(SERVER_CHANGES)?, &server_key(org, server))
}

pub(super) fn set_server_verified(
    txn: &WriteTransaction,
    org: OrgId,
    server: ServerId,
    (verified, by, at): (bool, UserId, DateTime<Utc>),
) -> Result<Server> {
    let before: Server =
        get_json(&txn.open_table(SERVERS)?, &server_key(org, server))?.ok_or(Error::NotFound)?;
    let Some(write) = rescore::verification(&before, verified, by, at) else {
        return Ok(before);
    };
    put_server(txn, &write)?;
    Ok(write.after)
}

pub(super) fn policy_of<T: ReadableTable<Bytes, Bytes>>(
    table: &T,
    org: OrgId,
) -> Result<OrgPolicy> {
    Ok(get_json(table, &org.to_bytes())?.unwrap_or_default())
}

pub(super) fn put_policy(
    txn: &WriteTransaction,
    org: OrgId,
    mut policy: OrgPolicy,
) -> Result<OrgPolicy> {
    let previous = policy_of(&txn.open_table(POLICIES)?, org)?;
    policy.version = previous.version + 1;
    put_json(txn, POLICIES, &org.to_bytes(), &policy)?;
    Ok(policy)
}

pub(super) fn server_counts(txn: &ReadTransaction, org: OrgId) -> Result<LevelCounts> {
    let counts = txn.open_table(COUNTS)?;
    let mut out = LevelCounts::default();
    for level in RiskLevel::ALL {
        for status in ServerStatus::ALL {
            out.add(
                level,
                count(&counts, &count_key_servers(org, level, status))?,
            );
        }
    }
    Ok(out)
}

/// Where a rescoring pass continues: after this organisation's server.
pub(super) type Cursor = Option<(OrgId, ServerId)>;

/// The keys of up to `limit` servers scored by older rules or policy, reading at
/// most `scan_budget` rows from `cursor` on; and where to continue (`None`: done).
pub(super) fn outdated_servers(
    txn: &ReadTransaction,
    cursor: Cursor,
    limit: usize,
    scan_budget: usize,
) -> Result<(Vec<Vec<u8>>, Cursor)> {
    let servers = txn.open_table(SERVERS)?;
    let policies = txn.open_table(POLICIES)?;
    let start = cursor.map(|(o, s)| server_key(o, s));
    let range = match &start {
        Some(k) => servers.range::<&[u8]>((
            std::ops::Bound::Excluded(k.as_slice()),
            std::ops::Bound::Unbounded,
        ))?,
        None => servers.range::<&[u8]>(..)?,
    };
    let mut versions: HashMap<OrgId, u64> = HashMap::new();
    let (mut keys, mut scanned) = (Vec::new(), 0usize);
    for entry in range {
        let (k, v) = entry?;
        let server: Server = decode(v.value())?;
        let policy_version = match versions.entry(server.org_id) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => *e.insert(policy_of(&policies, server.org_id)?.version),
        };
        if ingest::is_outdated(&server, policy_version) {
            keys.push(k.value().to_vec());
        }
        scanned += 1;
        if keys.len() >= limit || scanned >= scan_budget {
            return Ok((keys, Some((server.org_id, server.id))));
        }
    }
    Ok((keys, None))
}

/// Rescore the servers at `keys` that are still outdated; answers how many were.
pub(super) fn rescore_servers(
    txn: &WriteTransaction,
    keys: Vec<Vec<u8>>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut n = 0;
    let mut policies: HashMap<OrgId, OrgPolicy> = HashMap::new();
    for key in keys {
        let Some(before) = get_json::<Server, _>(&txn.open_table(SERVERS)?, &key)? else {
            continue;
        };
        let policy = match policies.entry(before.org_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(policy_of(&txn.open_table(POLICIES)?, before.org_id)?),
        };
        let Some(rescored) = rescore::rescore(&before, policy, now) else {
            continue;
        };
        if let Some(alert) = &rescored.alert {
            alerts::raise(txn, alert)?;
        }
        put_server(txn, &rescored.write)?;
        n += 1;
    }
    Ok(n)
}

/// Counts answer a listing's `total` when it filters by level and status only.
fn counted_total(txn: &ReadTransaction, org: OrgId, query: &ServerQuery) -> Result<Option<u64>> {
    if query.search.is_some() || query.agent_id.is_some() {
        return Ok(None);
    }
    let counts = txn.open_table(COUNTS)?;
    let mut n = 0;
    for level in RiskLevel::ALL {
        if query.risk_level.is_some_and(|l| l != level) {
            continue;
        }
        for status in ServerStatus::ALL {
            if query.status.is_none_or(|s| s == status) {
                n += count(&counts, &count_key_servers(org, level, status))?;
            }
        }
    }
    Ok(Some(n))
}

/// A page of an organisation's servers, highest risk first, from the rank indexes.
pub(super) fn list_servers(
    txn: &ReadTransaction,
    org: OrgId,
    query: &ServerQuery,
) -> Result<Page<Server>> {
    let org_b = org.to_bytes();
    let offset = query.page.saturating_sub(1).saturating_mul(query.page_size);
    let search = query.search.as_ref().map(|s| s.to_lowercase());
    let counted = counted_total(txn, org, query)?;
    let (table, mut prefix, id_at_key, name_at) = match query.agent_id {
        Some(agent) => (
            txn.open_table(SRV_AGENT)?,
            agent_key(org, agent),
            AGENT_RANK_KEY_SERVER,
            AGENT_RANK_VALUE_NAME,
        ),
        None => (
            txn.open_table(SRV_RANK)?,
            org_b.to_vec(),
            RANK_KEY_SERVER,
            RANK_VALUE_NAME,
        ),
    };
    if let Some(level) = query.risk_level {
        prefix.push(level.rank());
    }
    let (mut ids, mut total) = (Vec::new(), 0u64);
    walk_prefix(&table, &prefix, |key, value: &[u8]| {
        let status = value
            .get(RANK_VALUE_STATUS)
            .copied()
            .and_then(ServerStatus::from_code);
        if query.status.is_some_and(|s| Some(s) != status) {
            return Ok(ControlFlow::Continue(()));
        }
        if let Some(needle) = &search {
            let name =
                std::str::from_utf8(value.get(name_at..).unwrap_or_default()).unwrap_or_default();
            if !name.contains(needle.as_str()) {
                return Ok(ControlFlow::Continue(()));
            }
        }
        if total >= offset && (ids.len() as u64) < query.page_size {
            ids.push(id_at(key, id_at_key)?);
        }
        total += 1;
        // Without a search or an agent, the counts answer `total`: stop at a full page.
        if counted.is_some() && ids.len() as u64 >= query.page_size {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let servers = txn.open_table(SERVERS)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(server) = get_json::<Server, _>(&servers, &super::schema::org_key(org, id))? {
            items.push(server);
        }
    }
    Ok(Page {
        items,
        total: counted.unwrap_or(total),
    })
}
