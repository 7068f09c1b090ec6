//! Agents, their keys and presence, and enroll secrets.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, EnrollSecretId, OrgId};
use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::schema::{
    AGENT_KEYS, AGENT_SERVERS, AGENTS, Bytes, ENROLL_HASHES, ENROLL_SECRETS, INVENTORY_REV,
    SERVERS, SILENT_WATCH, agent_key, cat, decode, encode, get_record, get_via, list_records,
    org_key, put_record, walk_prefix,
};
use super::{alerts, servers};
use crate::ingest::agent::{self as rules, HeartbeatUpdate};
use crate::model::{Agent, EnrollSecret, Server};
use crate::store::{Error, Result};

const KEY_COLLISION: Error = Error::Conflict("api key collision");

fn insert_agent(txn: &WriteTransaction, agent: &Agent) -> Result<()> {
    if txn
        .open_table(AGENT_KEYS)?
        .get(agent.key_hash.as_slice())?
        .is_some()
    {
        return Err(KEY_COLLISION);
    }
    put_agent(txn, agent)?;
    txn.open_table(AGENT_KEYS)?.insert(
        agent.key_hash.as_slice(),
        agent_key(agent.org_id, agent.id).as_slice(),
    )?;
    Ok(())
}

pub(super) fn create_agent(txn: &WriteTransaction, agent: &Agent) -> Result<()> {
    insert_agent(txn, agent)?;
    super::events::append(txn, crate::events::agent_enrolled(agent), agent.created_at)?;
    Ok(())
}

pub(super) fn enroll_agent(
    txn: &WriteTransaction,
    secret_hash: [u8; 32],
    mut agent: Agent,
    now: DateTime<Utc>,
) -> Result<Agent> {
    let Some(secret_key) = txn
        .open_table(ENROLL_HASHES)?
        .get(secret_hash.as_slice())?
        .map(|v| v.value().to_vec())
    else {
        return Err(Error::InvalidEnrollSecret);
    };
    let mut secret: EnrollSecret = get_record(&txn.open_table(ENROLL_SECRETS)?, &secret_key)?
        .ok_or(Error::InvalidEnrollSecret)?;
    if secret.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::InvalidEnrollSecret);
    }
    agent.org_id = secret.org_id;
    insert_agent(txn, &agent)?;
    super::events::append(txn, crate::events::agent_enrolled(&agent), now)?;
    secret.enrolled_count += 1;
    put_record(txn, ENROLL_SECRETS, &secret_key, &secret)?;
    Ok(agent)
}

pub(super) fn find_agent_by_key(
    txn: &ReadTransaction,
    key_hash: [u8; 32],
) -> Result<Option<Agent>> {
    get_via(txn, AGENT_KEYS, key_hash.as_slice(), AGENTS)
}

pub(super) fn get_agent(txn: &ReadTransaction, org: OrgId, agent: AgentId) -> Result<Agent> {
    get_record(&txn.open_table(AGENTS)?, &agent_key(org, agent))?.ok_or(Error::NotFound)
}

/// The stored agent, for a write.
pub(super) fn agent_for_write(txn: &WriteTransaction, org: OrgId, agent: AgentId) -> Result<Agent> {
    get_record(&txn.open_table(AGENTS)?, &agent_key(org, agent))?.ok_or(Error::NotFound)
}

/// Write the agent's record, and keep it filed in `silent_watch` as the record says:
/// the record it replaces says where it was filed.
pub(super) fn put_agent(txn: &WriteTransaction, agent: &Agent) -> Result<()> {
    let key = agent_key(agent.org_id, agent.id);
    let was = {
        let mut agents = txn.open_table(AGENTS)?;
        let old = agents.insert(key.as_slice(), encode(agent)?.as_slice())?;
        // A record that cannot be read leaves its row, if any: the sweep checks every
        // agent it finds against its record, and `check` names the row.
        old.and_then(|v| decode::<Agent>(v.value()).ok())
            .and_then(|a| watch_minute(&a))
    };
    let now = watch_minute(agent);
    if was == now {
        return Ok(());
    }
    rewatch(&mut txn.open_table(SILENT_WATCH)?, &key, was, now)
}

/// The minute an agent is filed under in `silent_watch`, counted from 1970 (`None`:
/// it cannot become silent). A minute, so that an agent heard from many times a
/// minute is filed again once a minute at most.
pub(super) fn watch_minute(agent: &Agent) -> Option<u32> {
    let at = rules::silent_since(agent)?;
    Some(u32::try_from(at.timestamp().max(0) / 60).unwrap_or(u32::MAX))
}

/// The agent at `key`'s row in `silent_watch`, under `minute`.
pub(super) fn watch_row(minute: u32, key: &[u8]) -> Vec<u8> {
    cat(&[&minute.to_be_bytes(), key])
}

/// Move the agent at `key` in `silent_watch` from the minute it was filed under
/// (`None`: it was not) to its minute now (`None`: it cannot become silent, or is
/// gone).
pub(super) fn rewatch(
    rows: &mut Table<'_, Bytes, ()>,
    key: &[u8],
    was: Option<u32>,
    now: Option<u32>,
) -> Result<()> {
    if was == now {
        return Ok(());
    }
    if let Some(minute) = was {
        rows.remove(watch_row(minute, key).as_slice())?;
    }
    if let Some(minute) = now {
        rows.insert(watch_row(minute, key).as_slice(), ())?;
    }
    Ok(())
}

pub(super) fn list_agents(txn: &ReadTransaction, org: OrgId) -> Result<Vec<Agent>> {
    list_records(&txn.open_table(AGENTS)?, &org.to_bytes())
}

pub(super) fn agent_count(txn: &ReadTransaction, org: OrgId) -> Result<u64> {
    let mut n = 0;
    walk_prefix(&txn.open_table(AGENTS)?, &org.to_bytes(), |_, _| {
        n += 1;
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(n)
}

/// The agent's servers with their identity hashes (computed from each record: the
/// client, config path and name it was stored under), through its row of servers.
pub(super) fn agent_servers<T, U>(
    rows: &T,
    servers: &U,
    org: OrgId,
    agent: AgentId,
) -> Result<Vec<(Server, [u8; 32])>>
where
    T: ReadableTable<super::schema::Bytes, super::schema::Bytes>,
    U: ReadableTable<super::schema::Bytes, super::schema::Bytes>,
{
    let mut out = Vec::new();
    for id in super::agent_servers::of(rows, org, agent)? {
        if let Some(server) = super::server_value::get(servers, &org_key(org, id))? {
            let ident = crate::ingest::identity_key(&server.record);
            out.push((server, ident));
        }
    }
    Ok(out)
}

/// The agent's servers with their identity hashes, in a write.
fn servers_for_write(
    txn: &WriteTransaction,
    org: OrgId,
    agent: AgentId,
) -> Result<Vec<(Server, [u8; 32])>> {
    agent_servers(
        &txn.open_table(AGENT_SERVERS)?,
        &txn.open_table(SERVERS)?,
        org,
        agent,
    )
}

/// Show the agent's snapshot servers as active (heard from) or dormant (silent).
pub(super) fn set_presence(
    txn: &WriteTransaction,
    org: OrgId,
    agent: AgentId,
    active: bool,
) -> Result<()> {
    let servers = servers_for_write(txn, org, agent)?;
    for (server, _) in servers {
        if let Some(write) = rules::presence(&server, active) {
            servers::put_server(txn, &write)?;
        }
    }
    Ok(())
}

/// The agent is heard from: if it was silent, its servers are active again.
pub(super) fn heard_from(txn: &WriteTransaction, record: &mut Agent) -> Result<()> {
    if rules::heard_from(record) {
        set_presence(txn, record.org_id, record.id, true)?;
    }
    Ok(())
}

pub(super) fn delete_agent(
    txn: &WriteTransaction,
    org: OrgId,
    agent: AgentId,
    now: DateTime<Utc>,
) -> Result<()> {
    let key = agent_key(org, agent);
    let record = agent_for_write(txn, org, agent)?;
    let servers = servers_for_write(txn, org, agent)?;
    for (server, _) in servers {
        super::retention::remove_server(txn, &server)?;
    }
    super::agent_servers::forget(txn, org, agent)?;
    txn.open_table(AGENT_KEYS)?
        .remove(record.key_hash.as_slice())?;
    txn.open_table(INVENTORY_REV)?.remove(key.as_slice())?;
    txn.open_table(AGENTS)?.remove(key.as_slice())?;
    rewatch(
        &mut txn.open_table(SILENT_WATCH)?,
        &key,
        watch_minute(&record),
        None,
    )?;
    super::events::append(txn, crate::events::agent_deleted(&record), now)?;
    Ok(())
}

pub(super) fn record_heartbeat(
    txn: &WriteTransaction,
    org: OrgId,
    agent: AgentId,
    update: HeartbeatUpdate,
) -> Result<Agent> {
    let mut record = agent_for_write(txn, org, agent)?;
    rules::heartbeat(&mut record, update);
    heard_from(txn, &mut record)?;
    put_agent(txn, &record)?;
    Ok(record)
}

/// Every agent record, for scans that visit them all.
fn each_agent(txn: &ReadTransaction, mut f: impl FnMut(Vec<u8>, Agent)) -> Result<()> {
    for entry in txn.open_table(AGENTS)?.iter()? {
        let (k, v) = entry?;
        f(k.value().to_vec(), decode(v.value())?);
    }
    Ok(())
}

pub(super) fn agents_seen_since(
    txn: &ReadTransaction,
    since: DateTime<Utc>,
) -> Result<Vec<(OrgId, AgentId, DateTime<Utc>)>> {
    let mut out = Vec::new();
    each_agent(txn, |_, agent| {
        if let Some(at) = agent.last_seen_at.filter(|at| *at >= since) {
            out.push((agent.org_id, agent.id, at));
        }
    })?;
    Ok(out)
}

/// The newest `silent_since` of the agents filed in `silent_watch`: the greatest
/// among those filed under its last minute that has any (an agent is filed under the
/// minute of its `silent_since`, so no earlier minute can hold a newer one).
pub(super) fn newest_silent_since(txn: &ReadTransaction) -> Result<Option<DateTime<Utc>>> {
    let agents = txn.open_table(AGENTS)?;
    let mut newest: Option<(u32, DateTime<Utc>)> = None;
    for row in txn.open_table(SILENT_WATCH)?.iter()?.rev() {
        let row = row?;
        let (minute, key) = row
            .0
            .value()
            .split_at_checked(4)
            .ok_or_else(|| Error::internal("a silent_watch key is too short"))?;
        let minute = u32::from_be_bytes(minute.try_into().unwrap_or_default());
        if newest.is_some_and(|(filed, _)| minute < filed) {
            break;
        }
        // A row whose record is gone or cannot be read is left for `check` to name.
        let since = agents
            .get(key)?
            .and_then(|v| decode::<Agent>(v.value()).ok())
            .and_then(|agent| rules::silent_since(&agent));
        if let Some(since) = since
            && newest.is_none_or(|(_, best)| since > best)
        {
            newest = Some((minute, since));
        }
    }
    Ok(newest.map(|(_, since)| since))
}

/// The keys of up to `limit` agents silent since before `cutoff`, silent longest first
/// (found with a read, so that the writer is held only for the agents that change):
/// those filed in `silent_watch` under a minute before it, each checked against its
/// record (the last minute holds agents heard from after the cutoff too).
pub(super) fn silent_agents(
    txn: &ReadTransaction,
    cutoff: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let agents = txn.open_table(AGENTS)?;
    // Minutes up to the cutoff's own (its earlier seconds may hold silent agents).
    let Ok(end) = u32::try_from(cutoff.timestamp().div_euclid(60) + 1) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in txn
        .open_table(SILENT_WATCH)?
        .range::<&[u8]>(..end.to_be_bytes().as_slice())?
    {
        let row = row?;
        let key = row
            .0
            .value()
            .get(4..)
            .ok_or_else(|| Error::internal("a silent_watch key is too short"))?;
        // An agent whose record cannot be read is left for `check` to name; the others
        // are still swept.
        let Some(agent) = agents
            .get(key)?
            .and_then(|v| decode::<Agent>(v.value()).ok())
        else {
            continue;
        };
        if rules::is_silent(&agent, cutoff) {
            out.push(key.to_vec());
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Mark the agents at `keys` silent if they still are: their servers become dormant
/// and an alert is raised for each.
pub(super) fn mark_silent(
    txn: &WriteTransaction,
    keys: Vec<Vec<u8>>,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<(OrgId, AgentId)>> {
    let mut marked = Vec::new();
    for key in keys {
        let Some(mut agent) = get_record::<Agent, _>(&txn.open_table(AGENTS)?, &key)? else {
            continue;
        };
        if !rules::is_silent(&agent, cutoff) {
            continue;
        }
        let alert = rules::silenced(&mut agent, cutoff, now);
        set_presence(txn, agent.org_id, agent.id, false)?;
        alerts::raise(txn, alert)?;
        super::events::append(txn, crate::events::agent_silent(&agent, cutoff), now)?;
        put_agent(txn, &agent)?;
        marked.push((agent.org_id, agent.id));
    }
    Ok(marked)
}

pub(super) fn touch_agents(
    txn: &WriteTransaction,
    seen: Vec<(OrgId, AgentId, DateTime<Utc>)>,
) -> Result<()> {
    let mut agents = txn.open_table(AGENTS)?;
    let mut rows = txn.open_table(SILENT_WATCH)?;
    for (org, agent, at) in seen {
        let key = agent_key(org, agent);
        let Some(mut record) = get_record::<Agent, _>(&agents, &key)? else {
            continue;
        };
        if record.last_seen_at.is_none_or(|prev| prev < at) {
            let was = watch_minute(&record);
            record.last_seen_at = Some(at);
            agents.insert(key.as_slice(), encode(&record)?.as_slice())?;
            rewatch(&mut rows, &key, was, watch_minute(&record))?;
        }
    }
    Ok(())
}

pub(super) fn create_enroll_secret(txn: &WriteTransaction, secret: &EnrollSecret) -> Result<()> {
    if txn
        .open_table(ENROLL_HASHES)?
        .get(secret.secret_hash.as_slice())?
        .is_some()
    {
        return Err(Error::Conflict("enroll secret collision"));
    }
    let key = org_key(secret.org_id, secret.id.to_bytes());
    put_record(txn, ENROLL_SECRETS, &key, secret)?;
    txn.open_table(ENROLL_HASHES)?
        .insert(secret.secret_hash.as_slice(), key.as_slice())?;
    Ok(())
}

pub(super) fn list_enroll_secrets(txn: &ReadTransaction, org: OrgId) -> Result<Vec<EnrollSecret>> {
    list_records(&txn.open_table(ENROLL_SECRETS)?, &org.to_bytes())
}

pub(super) fn delete_enroll_secret(
    txn: &WriteTransaction,
    org: OrgId,
    id: EnrollSecretId,
) -> Result<()> {
    let key = org_key(org, id.to_bytes());
    let secret: EnrollSecret =
        get_record(&txn.open_table(ENROLL_SECRETS)?, &key)?.ok_or(Error::NotFound)?;
    txn.open_table(ENROLL_SECRETS)?.remove(key.as_slice())?;
    txn.open_table(ENROLL_HASHES)?
        .remove(secret.secret_hash.as_slice())?;
    Ok(())
}
