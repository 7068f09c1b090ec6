//! A stopped collector's records read a batch at a time, in key order from a cursor,
//! for `migrate-store` (see [`crate::store::records`]).

use std::ops::Bound::{Excluded, Unbounded};

use mcpwatch_protocol::ids::{OrgId, ServerId};
use redb::{ReadTransaction, ReadableTableMetadata as _, TableDefinition};

use super::schema::{
    AGENTS, ALERTS, API_TOKENS, AUDIT, Bytes, CHANNELS, DELIVERIES, ENROLL_SECRETS, EVENTS, ID,
    ORGS, POLICIES, SERVER_CHANGES, SERVERS, SESSIONS, USERS, decode,
};
use crate::store::records::{Record, Table};
use crate::store::{Error, Result};

fn definition(table: Table) -> TableDefinition<'static, Bytes, Bytes> {
    match table {
        Table::Orgs => ORGS,
        Table::Users => USERS,
        Table::Sessions => SESSIONS,
        Table::Agents => AGENTS,
        Table::EnrollSecrets => ENROLL_SECRETS,
        Table::Policies => POLICIES,
        Table::Channels => CHANNELS,
        Table::ApiTokens => API_TOKENS,
        Table::Servers => SERVERS,
        Table::ServerChanges => SERVER_CHANGES,
        Table::Alerts => ALERTS,
        Table::Events => EVENTS,
        Table::Deliveries => DELIVERIES,
        Table::Audit => AUDIT,
    }
}

fn id_in(key: &[u8], at: usize) -> Result<[u8; ID]> {
    key.get(at..at + ID)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::internal("stored key has the wrong length"))
}

fn record(table: Table, key: &[u8], value: &[u8]) -> Result<Record> {
    Ok(match table {
        Table::Orgs => Record::Org(decode(value)?),
        Table::Users => Record::User(decode(value)?),
        Table::Sessions => Record::Session(decode(value)?),
        Table::Agents => Record::Agent(decode(value)?),
        Table::EnrollSecrets => Record::EnrollSecret(decode(value)?),
        Table::Policies => Record::Policy(OrgId::from_bytes(id_in(key, 0)?), decode(value)?),
        Table::Channels => Record::Channel(decode(value)?),
        Table::ApiTokens => Record::ApiToken(decode(value)?),
        Table::Servers => Record::Server(super::server_value::decode(key, value)?),
        Table::ServerChanges => {
            let seq = key
                .get(2 * ID..2 * ID + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| Error::internal("change key has the wrong length"))?;
            Record::Change(
                OrgId::from_bytes(id_in(key, 0)?),
                ServerId::from_bytes(id_in(key, ID)?),
                seq,
                decode(value)?,
            )
        }
        Table::Alerts => Record::Alert(decode(value)?),
        Table::Events => Record::Event(decode(value)?),
        Table::Deliveries => Record::Delivery(decode(value)?),
        Table::Audit => Record::Audit(decode(value)?),
    })
}

/// Up to `limit` records of `table` after the key `after`; answers them and the key
/// of the last (`None` when the table has no more).
pub fn batch(
    txn: &ReadTransaction,
    table: Table,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(Vec<Record>, Option<Vec<u8>>)> {
    let rows = match txn.open_table(definition(table)) {
        Ok(rows) => rows,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), None)),
        Err(e) => return Err(e.into()),
    };
    let range = match after {
        Some(key) => rows.range::<&[u8]>((Excluded(key), Unbounded))?,
        None => rows.range::<&[u8]>(..)?,
    };
    let (mut out, mut last) = (Vec::new(), None);
    for row in range.take(limit) {
        let (k, v) = row?;
        out.push(record(table, k.value(), v.value())?);
        last = Some(k.value().to_vec());
    }
    let next = if out.len() == limit { last } else { None };
    Ok((out, next))
}

/// How many records `table` holds.
pub fn count(txn: &ReadTransaction, table: Table) -> Result<u64> {
    match txn.open_table(definition(table)) {
        Ok(rows) => Ok(rows.len()?),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}
