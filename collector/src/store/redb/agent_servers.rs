//! Which servers each agent has: one row per agent (org·agent) holding its server ids,
//! 16 bytes each, in ascending order. An agent's servers are read whole (a report is
//! planned against all of them; a listing filtered to one agent ranks them in memory),
//! so one row per agent costs a sixth of an index row per server and reads as fast.
//!
//! The row changes only when a server is stored for the first time or removed, never
//! when one is rescored or renamed.

use redb::{ReadableTable, WriteTransaction};

use super::schema::{AGENT_SERVERS, Bytes, ID, agent_key};
use crate::store::{Error, Result};
use mcpwatch_protocol::ids::{AgentId, OrgId};

/// The server ids in an agent's row.
pub(super) fn ids_in(row: &[u8]) -> Result<Vec<[u8; ID]>> {
    if !row.len().is_multiple_of(ID) {
        return Err(Error::internal("an agent's server list has a torn id"));
    }
    Ok(row
        .chunks_exact(ID)
        .map(|id| {
            let mut out = [0; ID];
            out.copy_from_slice(id);
            out
        })
        .collect())
}

/// The agent's server ids (none when it has no row).
pub(super) fn of<T: ReadableTable<Bytes, Bytes>>(
    table: &T,
    org: OrgId,
    agent: AgentId,
) -> Result<Vec<[u8; ID]>> {
    match table.get(agent_key(org, agent).as_slice())? {
        Some(row) => ids_in(row.value()),
        None => Ok(Vec::new()),
    }
}

/// Change an agent's row: `edit` gets its ids, sorted, and leaves them sorted. A row
/// left empty is removed.
fn edit(
    txn: &WriteTransaction,
    org: OrgId,
    agent: AgentId,
    edit: impl FnOnce(&mut Vec<[u8; ID]>),
) -> Result<()> {
    let key = agent_key(org, agent);
    let mut table = txn.open_table(AGENT_SERVERS)?;
    let mut ids = match table.get(key.as_slice())? {
        Some(row) => ids_in(row.value())?,
        None => Vec::new(),
    };
    edit(&mut ids);
    if ids.is_empty() {
        table.remove(key.as_slice())?;
    } else {
        table.insert(key.as_slice(), ids.concat().as_slice())?;
    }
    Ok(())
}

/// Add servers to their agent's row (ids already there stay once).
pub(super) fn add(
    txn: &WriteTransaction,
    org: OrgId,
    agent: AgentId,
    added: &[[u8; ID]],
) -> Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    edit(txn, org, agent, |ids| {
        ids.extend_from_slice(added);
        ids.sort_unstable();
        ids.dedup();
    })
}

/// Take servers out of their agent's row.
pub(super) fn remove(
    txn: &WriteTransaction,
    org: OrgId,
    agent: AgentId,
    removed: &[[u8; ID]],
) -> Result<()> {
    if removed.is_empty() {
        return Ok(());
    }
    let mut removed = removed.to_vec();
    removed.sort_unstable();
    edit(txn, org, agent, |ids| {
        ids.retain(|id| removed.binary_search(id).is_err());
    })
}

/// Forget an agent's row (the agent is deleted, with its servers).
pub(super) fn forget(txn: &WriteTransaction, org: OrgId, agent: AgentId) -> Result<()> {
    txn.open_table(AGENT_SERVERS)?
        .remove(agent_key(org, agent).as_slice())?;
    Ok(())
}
