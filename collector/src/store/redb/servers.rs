//! Servers: records, their rank index, agents' rows and counts, change histories, policies, and
//! the listing queries.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId, ServerId, UserId};
use mcpwatch_protocol::risk::RiskLevel;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::agent_servers;
use super::alerts;
use super::schema::{
    AGENT_RANK_KEY_SERVER, AGENT_SERVERS, Bytes, COUNTS, INVENTORY_REV, IndexEntries, POLICIES,
    RANK_KEY_SERVER, RANK_VALUE_NAME, RANK_VALUE_STATUS, SERVER_CHANGES, SERVERS, SRV_RANK,
    add_count, agent_key, change_key, count, count_key_servers, encode, get_record, id_at,
    list_records, put_record, server_key,
};
use super::server_value;
use crate::ingest::{self, ServerWrite, rescore};
use crate::model::{
    LevelCounts, MAX_SERVER_CHANGES, OrgPolicy, Server, ServerChange, ServerStatus,
};
use crate::store::{Direction, Error, Page, Result, ServerQuery, ServerSort};

/// Add a server's entries to the rank index and counts, or take them out.
pub(super) fn index_server(txn: &WriteTransaction, s: &Server, add: bool) -> Result<()> {
    let entries = IndexEntries::of(s);
    {
        let mut rank = txn.open_table(SRV_RANK)?;
        if add {
            rank.insert(entries.rank.0.as_slice(), entries.rank.1.as_slice())?;
        } else {
            rank.remove(entries.rank.0.as_slice())?;
        }
    }
    add_count(txn, &entries.count, if add { 1 } else { -1 })?;
    Ok(())
}

pub(super) fn put_server(txn: &WriteTransaction, write: &ServerWrite) -> Result<()> {
    put_encoded_servers(
        txn,
        std::slice::from_ref(write),
        &[server_value::encode(&write.after)?],
    )
}

/// Store servers already encoded (`encoded[i]` is `writes[i].after`'s value): each
/// with its index entries, counts, census marks and history, and the new ones in
/// their agents' rows (one change of each row).
pub(super) fn put_encoded_servers(
    txn: &WriteTransaction,
    writes: &[ServerWrite],
    encoded: &[Vec<u8>],
) -> Result<()> {
    // Each agent written for, with the ids of its new servers.
    let mut agents: std::collections::BTreeMap<(OrgId, AgentId), Vec<[u8; 16]>> =
        std::collections::BTreeMap::new();
    for (write, bytes) in writes.iter().zip(encoded) {
        put_encoded_server(txn, write, bytes)?;
        let after = &write.after;
        let new = agents.entry((after.org_id, after.agent_id)).or_default();
        if write.before.is_none() {
            new.push(after.id.to_bytes());
        }
    }
    super::census::apply_all(
        txn,
        writes.iter().map(|w| (w.before.as_ref(), Some(&w.after))),
    )?;
    for ((org, agent), new) in &agents {
        agent_servers::add(txn, *org, *agent, new)?;
    }
    // Each agent whose servers changed gets a new inventory revision (reports planned
    // against the old one are planned again).
    let mut revisions = txn.open_table(INVENTORY_REV)?;
    for (org, agent) in agents.into_keys() {
        let key = agent_key(org, agent);
        let next = revision_of(&revisions, &key)?.wrapping_add(1);
        revisions.insert(key.as_slice(), next)?;
    }
    Ok(())
}

/// One server of [`put_encoded_servers`]: its record, index entries, counts and
/// history (its census marks, its agent's row and revision are the caller's).
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
    let key = server_key(after.org_id, after.id);
    txn.open_table(SERVERS)?.insert(key.as_slice(), encoded)?;
    if let Some(change) = &write.change {
        record_change(txn, &key, after.change_seq, change)?;
    }
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
    server_value::get(&txn.open_table(SERVERS)?, &server_key(org, server))?.ok_or(Error::NotFound)
}

pub(super) fn server_changes(
    txn: &ReadTransaction,
    org: OrgId,
    server: ServerId,
) -> Result<Vec<ServerChange>> {
    list_records(&txn.open_table(SERVER_CHANGES)?, &server_key(org, server))
}

pub(super) fn set_server_verified(
    txn: &WriteTransaction,
    org: OrgId,
    server: ServerId,
    (verified, by, at): (bool, UserId, DateTime<Utc>),
) -> Result<Server> {
    let before = server_value::get(&txn.open_table(SERVERS)?, &server_key(org, server))?
        .ok_or(Error::NotFound)?;
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
    Ok(get_record(table, &org.to_bytes())?.unwrap_or_default())
}

pub(super) fn put_policy(
    txn: &WriteTransaction,
    org: OrgId,
    mut policy: OrgPolicy,
) -> Result<OrgPolicy> {
    let previous = policy_of(&txn.open_table(POLICIES)?, org)?;
    policy.version = previous.version + 1;
    put_record(txn, POLICIES, &org.to_bytes(), &policy)?;
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
        let server = server_value::decode(k.value(), v.value())?;
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
        let Some(before) = server_value::get(&txn.open_table(SERVERS)?, &key)? else {
            continue;
        };
        let policy = match policies.entry(before.org_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(policy_of(&txn.open_table(POLICIES)?, before.org_id)?),
        };
        let Some(rescored) = rescore::rescore(&before, policy, now) else {
            continue;
        };
        if let Some(alert) = rescored.alert {
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

/// A page of an organisation's servers: highest risk first unless another order is
/// asked for.
pub(super) fn list_servers(
    txn: &ReadTransaction,
    org: OrgId,
    query: &ServerQuery,
) -> Result<Page<Server>> {
    match query.sort {
        None | Some((ServerSort::RiskScore, Direction::Desc)) => ranked(txn, org, query, false),
        Some((ServerSort::RiskScore, Direction::Asc)) => ranked(txn, org, query, true),
        Some((field, direction)) => sorted(txn, org, query, field, direction),
    }
}

/// Where a listing reads its rows in rank order: the organisation's rank index, or one
/// agent's rows made from its servers (sorted in memory, as the index would hold them).
enum Rows {
    Index(redb::ReadOnlyTable<Bytes, Bytes>),
    Agent(Vec<(Vec<u8>, Vec<u8>)>),
}

/// Where a listing reads: the rank rows of the organisation or of one agent, the
/// prefix of its rows, and where the server id is in them.
struct RankScan {
    rows: Rows,
    prefix: Vec<u8>,
    id_at: usize,
}

impl RankScan {
    fn new(txn: &ReadTransaction, org: OrgId, query: &ServerQuery) -> Result<Self> {
        let mut scan = match query.agent_id {
            Some(agent) => Self {
                rows: Rows::Agent(agent_rows(txn, org, agent)?),
                prefix: agent_key(org, agent),
                id_at: AGENT_RANK_KEY_SERVER,
            },
            None => Self {
                rows: Rows::Index(txn.open_table(SRV_RANK)?),
                prefix: org.to_bytes().to_vec(),
                id_at: RANK_KEY_SERVER,
            },
        };
        if let Some(level) = query.risk_level {
            scan.prefix.push(level.rank());
        }
        Ok(scan)
    }

    /// Whether an index row passes the status and search filters.
    fn matches(&self, query: &ServerQuery, needle: Option<&str>, value: &[u8]) -> bool {
        let status = value
            .get(RANK_VALUE_STATUS)
            .copied()
            .and_then(ServerStatus::from_code);
        if query.status.is_some_and(|s| Some(s) != status) {
            return false;
        }
        needle.is_none_or(|needle| {
            std::str::from_utf8(value.get(RANK_VALUE_NAME..).unwrap_or_default())
                .unwrap_or_default()
                .contains(needle)
        })
    }

    /// Every row under the prefix, in key order or reversed, until `visit` breaks.
    fn walk(
        &self,
        reverse: bool,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let table = match &self.rows {
            Rows::Index(table) => table,
            Rows::Agent(rows) => {
                let under = rows.iter().filter(|(k, _)| k.starts_with(&self.prefix));
                return each(under, reverse, |(k, v)| visit(k, v));
            }
        };
        let rows = match successor(&self.prefix) {
            Some(end) => table.range::<&[u8]>(self.prefix.as_slice()..end.as_slice())?,
            None => table.range::<&[u8]>(self.prefix.as_slice()..)?,
        };
        each(rows, reverse, |row| {
            let (k, v) = row?;
            visit(k.value(), v.value())
        })
    }
}

/// `step` over `rows`, in order or reversed, until it breaks.
fn each<T>(
    rows: impl DoubleEndedIterator<Item = T>,
    reverse: bool,
    mut step: impl FnMut(T) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let rows: Box<dyn Iterator<Item = T> + '_> = if reverse {
        Box::new(rows.rev())
    } else {
        Box::new(rows)
    };
    for row in rows {
        if step(row)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// One agent's rank rows ([`IndexEntries::agent_row`]) from its servers, in key order.
fn agent_rows(
    txn: &ReadTransaction,
    org: OrgId,
    agent: AgentId,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let servers = txn.open_table(SERVERS)?;
    let mut rows = Vec::new();
    for id in agent_servers::of(&txn.open_table(AGENT_SERVERS)?, org, agent)? {
        if let Some(server) = server_value::get(&servers, &super::schema::org_key(org, id))? {
            rows.push(IndexEntries::agent_row(&server));
        }
    }
    rows.sort_unstable();
    Ok(rows)
}

/// Every server matching `query`'s filters, in risk order, to `send` until it answers
/// false (the reader went away).
pub(super) fn export_servers(
    txn: &ReadTransaction,
    org: OrgId,
    query: &ServerQuery,
    mut send: impl FnMut(Server) -> bool,
) -> Result<()> {
    let needle = query.search.as_ref().map(|s| s.to_lowercase());
    let scan = RankScan::new(txn, org, query)?;
    let servers = txn.open_table(SERVERS)?;
    scan.walk(false, |key, value| {
        if !scan.matches(query, needle.as_deref(), value) {
            return Ok(ControlFlow::Continue(()));
        }
        let id = id_at(key, scan.id_at)?;
        let Some(server) = server_value::get(&servers, &super::schema::org_key(org, id))? else {
            return Ok(ControlFlow::Continue(()));
        };
        Ok(if send(server) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        })
    })
}

/// The smallest key greater than every key that starts with `prefix` (`None`: none is).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The servers of `ids`, in that order.
fn servers_by_id(txn: &ReadTransaction, org: OrgId, ids: Vec<[u8; 16]>) -> Result<Vec<Server>> {
    let servers = txn.open_table(SERVERS)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(server) = server_value::get(&servers, &super::schema::org_key(org, id))? {
            items.push(server);
        }
    }
    Ok(items)
}

/// A page in risk order (highest first, or lowest with `reverse`), from the index alone.
fn ranked(
    txn: &ReadTransaction,
    org: OrgId,
    query: &ServerQuery,
    reverse: bool,
) -> Result<Page<Server>> {
    let offset = query.page.saturating_sub(1).saturating_mul(query.page_size);
    let needle = query.search.as_ref().map(|s| s.to_lowercase());
    let counted = counted_total(txn, org, query)?;
    let scan = RankScan::new(txn, org, query)?;
    let (mut ids, mut total) = (Vec::new(), 0u64);
    scan.walk(reverse, |key, value| {
        if !scan.matches(query, needle.as_deref(), value) {
            return Ok(ControlFlow::Continue(()));
        }
        if total >= offset && (ids.len() as u64) < query.page_size {
            ids.push(id_at(key, scan.id_at)?);
        }
        total += 1;
        // Without a search or an agent, the counts answer `total`: stop at a full page.
        if counted.is_some() && ids.len() as u64 >= query.page_size {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(Page {
        items: servers_by_id(txn, org, ids)?,
        total: counted.unwrap_or(total),
    })
}

/// One server's place in a sorted listing: its sort key, then its id.
#[derive(PartialEq, Eq)]
struct Placed {
    key: Vec<u8>,
    id: [u8; 16],
    descending: bool,
}

impl Ord for Placed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let by_key = self.key.cmp(&other.key);
        let by_key = if self.descending {
            by_key.reverse()
        } else {
            by_key
        };
        by_key.then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Placed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A page sorted by a field other than risk: every matching index row is placed, and
/// only the rows up to the end of the page are kept (a bounded heap). Names and first
/// sightings (the id's time) come from the index; host names from the agents (each
/// server's agent from the first field of its record); last sightings from the records.
fn sorted(
    txn: &ReadTransaction,
    org: OrgId,
    query: &ServerQuery,
    field: ServerSort,
    direction: Direction,
) -> Result<Page<Server>> {
    let offset = query.page.saturating_sub(1).saturating_mul(query.page_size);
    let keep = usize::try_from(offset.saturating_add(query.page_size)).unwrap_or(usize::MAX);
    let needle = query.search.as_ref().map(|s| s.to_lowercase());
    let scan = RankScan::new(txn, org, query)?;
    let hosts: std::collections::HashMap<[u8; 16], Vec<u8>> = if field == ServerSort::Hostname {
        super::agents::list_agents(txn, org)?
            .into_iter()
            .map(|a| {
                let host = a.facts.hostname.unwrap_or(a.name).to_lowercase();
                (a.id.to_bytes(), host.into_bytes())
            })
            .collect()
    } else {
        std::collections::HashMap::new()
    };
    let servers = txn.open_table(SERVERS)?;
    let mut heap = std::collections::BinaryHeap::new();
    let mut total = 0u64;
    scan.walk(false, |key, value| {
        if !scan.matches(query, needle.as_deref(), value) {
            return Ok(ControlFlow::Continue(()));
        }
        total += 1;
        let id = id_at(key, scan.id_at)?;
        let sort_key = match field {
            ServerSort::ServerName => value.get(RANK_VALUE_NAME..).unwrap_or_default().to_vec(),
            // One agent's servers share a host; the organisation's, each its agent's.
            ServerSort::Hostname if query.agent_id.is_some() => Vec::new(),
            ServerSort::Hostname => {
                server_value::agent_of(&servers, &super::schema::org_key(org, id))?
                    .and_then(|agent| hosts.get(&agent.to_bytes()).cloned())
                    .unwrap_or_default()
            }
            ServerSort::LastSeenAt => {
                server_value::get(&servers, &super::schema::org_key(org, id))?
                    .map(|s| s.last_seen_at.timestamp_micros().to_be_bytes().to_vec())
                    .unwrap_or_default()
            }
            // Ids are time-ordered: the order servers were first seen.
            ServerSort::FirstSeenAt => id.to_vec(),
            ServerSort::RiskScore => Vec::new(),
        };
        heap.push(Placed {
            key: sort_key,
            id,
            descending: direction == Direction::Desc,
        });
        if heap.len() > keep {
            heap.pop();
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let placed = heap.into_sorted_vec();
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let ids = placed.into_iter().skip(offset).map(|p| p.id).collect();
    Ok(Page {
        items: servers_by_id(txn, org, ids)?,
        total,
    })
}
