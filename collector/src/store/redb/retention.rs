//! Retention: dormant servers not seen for long are deleted with their history and
//! their alerts, and old dismissed alerts are deleted; in small transactions, keeping
//! the counts, indexes and census as every other write does. Agents are never
//! deleted here: a silent agent stays listed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId, ServerId};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{
    AGENT_SERVERS, AGENTS, ALERT_SUBJECTS, ALERTS, ALERTS_OF_SERVER, ALERTS_OPEN, Bytes, ID,
    SERVER_CHANGES, SERVERS, add_count, count_key_alerts, decode, keys_with_prefix, org_key,
    scan_prefix, server_alert_key, server_key,
};
use crate::model::{Alert, Server, ServerStatus};
use crate::store::{Error, Result};

/// Up to `n` rows after `cursor` (from the start without one).
fn after<T: ReadableTable<Bytes, Bytes>>(
    table: &T,
    cursor: Option<&[u8]>,
    n: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use std::ops::Bound::{Excluded, Unbounded};
    let range = match cursor {
        Some(c) => table.range::<&[u8]>((Excluded(c), Unbounded))?,
        None => table.range::<&[u8]>(..)?,
    };
    range
        .take(n)
        .map(|r| {
            r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                .map_err(Error::from)
        })
        .collect()
}

/// Remove one server and everything kept about it but its alerts and its place in its
/// agent's row (the caller takes it out, once for all it removes): its index entries
/// and counts, its census membership, its history and its identity.
pub(super) fn remove_server(txn: &WriteTransaction, server: &Server) -> Result<()> {
    super::servers::index_server(txn, server, false)?;
    super::census::apply(txn, Some(server), None)?;
    let key = server_key(server.org_id, server.id);
    txn.open_table(SERVERS)?.remove(key.as_slice())?;
    let mut history = txn.open_table(SERVER_CHANGES)?;
    for (change_key, _) in scan_prefix(&history, &key)? {
        history.remove(change_key.as_slice())?;
    }
    Ok(())
}

/// Remove a stored alert, keeping the open index, its count, the subject link and
/// its server's list of alerts.
fn remove_alert(txn: &WriteTransaction, key: &[u8], alert: &Alert) -> Result<()> {
    txn.open_table(ALERTS)?.remove(key)?;
    if let Some(entry) = server_alert_key(alert) {
        txn.open_table(ALERTS_OF_SERVER)?.remove(entry.as_slice())?;
    }
    if !alert.dismissed {
        if txn.open_table(ALERTS_OPEN)?.remove(key)?.is_some() {
            add_count(txn, &count_key_alerts(alert.org_id), -1)?;
        }
        let mut subjects = txn.open_table(ALERT_SUBJECTS)?;
        let subject = super::alerts::subject_key(alert);
        if subjects
            .get(subject.as_slice())?
            .is_some_and(|v| v.value() == key)
        {
            subjects.remove(subject.as_slice())?;
        }
    }
    Ok(())
}

/// Whether a stored server is past its retention: dormant, and last seen before
/// `before`.
fn expired(server: &Server, before: DateTime<Utc>) -> bool {
    server.status == ServerStatus::Dormant && server.last_seen_at < before
}

/// Agents' keys, and where the next batch starts (`None`: the pass is over).
pub(super) type Batch = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// Up to `agents` agents after `cursor` (an agent's key) visited in a read, without
/// the writer: answers those with a server past its retention (most have none, so most
/// batches need no write), and where the next batch starts (`None`: the pass is over).
pub(super) fn dormant_candidates(
    txn: &ReadTransaction,
    before: DateTime<Utc>,
    cursor: Option<Vec<u8>>,
    agents: usize,
) -> Result<Batch> {
    let keys: Vec<Vec<u8>> = after(&txn.open_table(AGENTS)?, cursor.as_deref(), agents)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let next = (keys.len() == agents)
        .then(|| keys.last().cloned())
        .flatten();
    let (rows, stored) = (txn.open_table(AGENT_SERVERS)?, txn.open_table(SERVERS)?);
    let mut candidates = Vec::new();
    for key in keys {
        let (org, agent) = split_agent_key(&key)?;
        for id in super::agent_servers::of(&rows, org, agent)? {
            let server = super::server_value::get(&stored, &org_key(org, id))?;
            if server.is_some_and(|s| expired(&s, before)) {
                candidates.push(key);
                break;
            }
        }
    }
    Ok((candidates, next))
}

/// Delete the servers past their retention of the agents at `keys` (found by
/// [`dormant_candidates`], and checked again here), with their history and alerts.
/// Answers how many servers and alerts went.
pub(super) fn prune_dormant(
    txn: &WriteTransaction,
    before: DateTime<Utc>,
    keys: Vec<Vec<u8>>,
) -> Result<(u64, u64)> {
    let (mut servers, mut alerts) = (0, 0);
    for key in keys {
        let (org, agent) = split_agent_key(&key)?;
        let mut gone: BTreeSet<ServerId> = BTreeSet::new();
        let stored = super::agents::agent_servers(
            &txn.open_table(AGENT_SERVERS)?,
            &txn.open_table(SERVERS)?,
            org,
            agent,
        )?;
        for (server, _) in stored {
            if expired(&server, before) {
                remove_server(txn, &server)?;
                gone.insert(server.id);
            }
        }
        if !gone.is_empty() {
            let ids: Vec<[u8; 16]> = gone.iter().map(|id| id.to_bytes()).collect();
            super::agent_servers::remove(txn, org, agent, &ids)?;
            servers += gone.len() as u64;
            alerts += remove_alerts_of(txn, org, &gone)?;
        }
    }
    Ok((servers, alerts))
}

fn split_agent_key(key: &[u8]) -> Result<(OrgId, AgentId)> {
    let org: [u8; 16] = key
        .get(..16)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::internal("agent key too short"))?;
    let agent: [u8; 16] = key
        .get(16..32)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::internal("agent key too short"))?;
    Ok((OrgId::from_bytes(org), AgentId::from_bytes(agent)))
}

/// Remove the organisation's alerts about `servers`: each server's, found through
/// `alerts_of_server` (the organisation's other alerts are not read).
fn remove_alerts_of(
    txn: &WriteTransaction,
    org: OrgId,
    servers: &BTreeSet<ServerId>,
) -> Result<u64> {
    let mut doomed: Vec<(Vec<u8>, Alert)> = Vec::new();
    let mut stale: Vec<Vec<u8>> = Vec::new();
    {
        let (index, alerts) = (txn.open_table(ALERTS_OF_SERVER)?, txn.open_table(ALERTS)?);
        for server in servers {
            for entry in keys_with_prefix(&index, &server_key(org, *server))? {
                // org·server·alert: the alert's own key is org·alert.
                let alert_id = entry
                    .get(2 * ID..)
                    .and_then(|b| <[u8; ID]>::try_from(b).ok())
                    .ok_or_else(|| {
                        Error::internal("an alerts_of_server key has the wrong length")
                    })?;
                let key = org_key(org, alert_id);
                match alerts
                    .get(key.as_slice())?
                    .map(|v| decode::<Alert>(v.value()))
                {
                    Some(Ok(alert)) => doomed.push((key, alert)),
                    // A record that cannot be read stays, with its entry, for `check`
                    // to name (as before this index: retention goes on without it).
                    Some(Err(_)) => {}
                    None => stale.push(entry),
                }
            }
        }
    }
    // An entry whose alert is gone goes with its server too.
    let mut index = txn.open_table(ALERTS_OF_SERVER)?;
    for entry in &stale {
        index.remove(entry.as_slice())?;
    }
    drop(index);
    for (key, alert) in &doomed {
        remove_alert(txn, key, alert)?;
    }
    Ok(doomed.len() as u64)
}

/// Whether an alert is past its retention: dismissed before `before`.
fn dismissed_before(alert: &Alert, before: DateTime<Utc>) -> bool {
    alert.dismissed && alert.dismissed_at.unwrap_or(alert.created_at) < before
}

/// Up to `rows` alerts after `cursor` read without the writer: answers the keys of
/// those dismissed before `before` (most batches have none, so most need no write),
/// and where the next batch starts (`None`: the pass is over).
pub(super) fn dismissed_candidates(
    txn: &ReadTransaction,
    before: DateTime<Utc>,
    cursor: Option<Vec<u8>>,
    rows: usize,
) -> Result<Batch> {
    let batch = after(&txn.open_table(ALERTS)?, cursor.as_deref(), rows)?;
    let next = (batch.len() == rows)
        .then(|| batch.last().map(|(k, _)| k.clone()))
        .flatten();
    let candidates = batch
        .into_iter()
        .filter(|(_, value)| decode::<Alert>(value).is_ok_and(|a| dismissed_before(&a, before)))
        .map(|(key, _)| key)
        .collect();
    Ok((candidates, next))
}

/// Delete the alerts at `keys` that are dismissed before `before` (found by
/// [`dismissed_candidates`], and checked again here); answers how many went.
pub(super) fn prune_dismissed(
    txn: &WriteTransaction,
    before: DateTime<Utc>,
    keys: Vec<Vec<u8>>,
) -> Result<u64> {
    let mut doomed = Vec::new();
    {
        let alerts = txn.open_table(ALERTS)?;
        for key in keys {
            let Some(value) = alerts.get(key.as_slice())? else {
                continue;
            };
            if let Ok(alert) = decode::<Alert>(value.value())
                && dismissed_before(&alert, before)
            {
                doomed.push((key, alert));
            }
        }
    }
    for (key, alert) in &doomed {
        remove_alert(txn, key, alert)?;
    }
    Ok(doomed.len() as u64)
}
