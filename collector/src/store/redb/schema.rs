//! The layout: table definitions, the layout version, key builders and the helpers
//! every resource module reads and writes records with.
//!
//! Keys are byte strings built from fixed-width parts (16-byte UUIDs, one-byte level
//! ranks), so that every organisation's rows form one contiguous key range and a
//! prefix scan never crosses into another organisation. Records are postcard behind a
//! one-byte format mark (see [`encode`]). The offsets
//! of the parts inside a key are named here, next to the builders that make them.

use mcpwatch_protocol::ids::{AgentId, OrgId, ServerId, UserId};
use mcpwatch_protocol::risk::RiskLevel;
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Server, ServerStatus};
use crate::store::{Error, Result};

pub(super) type Bytes = &'static [u8];

pub(super) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
pub(super) const ORGS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("orgs");
pub(super) const USERS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("users");
pub(super) const USER_EMAILS: TableDefinition<'_, &str, Bytes> =
    TableDefinition::new("user_emails");
pub(super) const SESSIONS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("sessions");
pub(super) const USER_SESSIONS: TableDefinition<'_, Bytes, ()> =
    TableDefinition::new("user_sessions");
pub(super) const AGENTS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("agents");
pub(super) const AGENT_KEYS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("agent_keys");
pub(super) const ENROLL_SECRETS: TableDefinition<'_, Bytes, Bytes> =
    TableDefinition::new("enroll_secrets");
pub(super) const ENROLL_HASHES: TableDefinition<'_, Bytes, Bytes> =
    TableDefinition::new("enroll_hashes");
pub(super) const SERVERS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("servers");
pub(super) const SRV_RANK: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("srv_rank");
pub(super) const AGENT_SERVERS: TableDefinition<'_, Bytes, Bytes> =
    TableDefinition::new("agent_servers");
pub(super) const COUNTS: TableDefinition<'_, Bytes, u64> = TableDefinition::new("counts");
pub(super) const ALERTS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("alerts");
pub(super) const ALERTS_OPEN: TableDefinition<'_, Bytes, ()> = TableDefinition::new("alerts_open");
pub(super) const ALERT_SUBJECTS: TableDefinition<'_, Bytes, Bytes> =
    TableDefinition::new("alert_subjects");
/// Every alert about a server, open or dismissed: org·server·alert (see
/// [`server_alert_key`]), so that the alerts of servers that go are found without
/// reading the organisation's others.
pub(super) const ALERTS_OF_SERVER: TableDefinition<'_, Bytes, ()> =
    TableDefinition::new("alerts_of_server");
pub(super) const POLICIES: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("policies");
pub(super) const SERVER_CHANGES: TableDefinition<'_, Bytes, Bytes> =
    TableDefinition::new("server_changes");
pub(super) const INVENTORY_REV: TableDefinition<'_, Bytes, u64> =
    TableDefinition::new("inventory_rev");
pub(super) const EVENTS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("events");
pub(super) const API_TOKENS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("api_tokens");
pub(super) const API_TOKEN_HASHES: TableDefinition<'_, Bytes, Bytes> =
    TableDefinition::new("api_token_hashes");
pub(super) const AUDIT: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("audit");
pub(super) const CENSUS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("census");
pub(super) const CENSUS_MEMBERS: TableDefinition<'_, Bytes, u64> =
    TableDefinition::new("census_members");
pub(super) const CENSUS_RANK: TableDefinition<'_, Bytes, ()> = TableDefinition::new("census_rank");
pub(super) const CENSUS_QUEUE: TableDefinition<'_, Bytes, Bytes> =
    TableDefinition::new("census_queue");
pub(super) const CHANNELS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("channels");
pub(super) const DELIVERIES: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("deliveries");
pub(super) const DELIVERY_DUE: TableDefinition<'_, Bytes, ()> =
    TableDefinition::new("delivery_due");
/// The agents that can become silent (see `ingest::agent::silent_since`), by the
/// minute they were last heard from: minute·org·agent, the minute counted from 1970 in
/// four bytes, big-endian, so that the agents silent longest come first (see
/// `agents::watch_minute`).
pub(super) const SILENT_WATCH: TableDefinition<'_, Bytes, ()> =
    TableDefinition::new("silent_watch");

/// Every table of records and links (byte keys to byte values).
pub(super) const ROW_TABLES: [TableDefinition<'_, Bytes, Bytes>; 22] = [
    ORGS,
    USERS,
    SESSIONS,
    AGENTS,
    AGENT_KEYS,
    ENROLL_SECRETS,
    ENROLL_HASHES,
    SERVERS,
    SRV_RANK,
    AGENT_SERVERS,
    ALERTS,
    ALERT_SUBJECTS,
    POLICIES,
    SERVER_CHANGES,
    EVENTS,
    CHANNELS,
    DELIVERIES,
    API_TOKENS,
    API_TOKEN_HASHES,
    AUDIT,
    CENSUS,
    CENSUS_QUEUE,
];

/// The length of an id (a UUID) in a key.
pub(super) const ID: usize = 16;
/// Where the third part starts in an org·id·… key (the session of `user_sessions`).
pub(super) const THIRD_PART: usize = 2 * ID;
/// Where the server id starts in a `srv_rank` key (org·rank·inverse score·server).
pub(super) const RANK_KEY_SERVER: usize = ID + 2;
/// Where the server id starts in an agent's ranked row (org·agent·rank·inverse
/// score·server; made in memory from the agent's servers, see [`IndexEntries::agent_row`]).
pub(super) const AGENT_RANK_KEY_SERVER: usize = 2 * ID + 2;
/// Where the lowercased name starts in a rank value (`srv_rank`'s and an agent's ranked
/// row's: status·name).
pub(super) const RANK_VALUE_NAME: usize = 1;
/// Where the status byte is in both rank values.
pub(super) const RANK_VALUE_STATUS: usize = 0;

pub(super) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// org·id: the key of every per-organisation record.
pub(super) fn org_key(org: OrgId, id: [u8; ID]) -> Vec<u8> {
    cat(&[&org.to_bytes(), &id])
}

pub(super) fn agent_key(org: OrgId, agent: AgentId) -> Vec<u8> {
    org_key(org, agent.to_bytes())
}

pub(super) fn server_key(org: OrgId, server: ServerId) -> Vec<u8> {
    org_key(org, server.to_bytes())
}

pub(super) fn user_key(org: OrgId, user: UserId) -> Vec<u8> {
    org_key(org, user.to_bytes())
}

/// A server's change number `seq`, in `server_changes`.
pub(super) fn change_key(server_key: &[u8], seq: u64) -> Vec<u8> {
    cat(&[server_key, &seq.to_be_bytes()])
}

/// The counts row of one organisation's servers at one level and status.
pub(super) fn count_key_servers(org: OrgId, level: RiskLevel, status: ServerStatus) -> Vec<u8> {
    cat(&[&org.to_bytes(), b"S", &[level.rank(), status.code()]])
}

/// The counts row of one organisation's retained events.
pub(super) fn count_key_events(org: OrgId) -> Vec<u8> {
    cat(&[&org.to_bytes(), b"E"])
}

/// An event's key: org·id (big-endian, so an organisation's events are in order).
pub(super) fn event_key(org: OrgId, id: u64) -> Vec<u8> {
    cat(&[&org.to_bytes(), &id.to_be_bytes()])
}

/// The counts row of one organisation's deliveries.
pub(super) fn count_key_deliveries(org: OrgId) -> Vec<u8> {
    cat(&[&org.to_bytes(), b"D"])
}

/// A delivery's entry in `delivery_due`: when (milliseconds since 1970, offset so that
/// the bytes sort in time order)·org·delivery.
pub(super) fn due_key(
    at: chrono::DateTime<chrono::Utc>,
    org: OrgId,
    delivery: [u8; ID],
) -> Vec<u8> {
    let millis = (at.timestamp_millis() as u64) ^ (1 << 63);
    cat(&[&millis.to_be_bytes(), &org.to_bytes(), &delivery])
}

/// An alert's entry in `alerts_of_server` (`None`: the alert is not about a server):
/// org·server·alert.
pub(super) fn server_alert_key(alert: &crate::model::Alert) -> Option<Vec<u8>> {
    alert.server_id.map(|server| {
        cat(&[
            &alert.org_id.to_bytes(),
            &server.to_bytes(),
            &alert.id.to_bytes(),
        ])
    })
}

/// The counts row of one organisation's open alerts.
pub(super) fn count_key_alerts(org: OrgId) -> Vec<u8> {
    cat(&[&org.to_bytes(), b"A"])
}

/// Where a server sorts among its organisation's (and agent's): level, then score
/// (highest first).
fn rank_order(s: &Server) -> [u8; 2] {
    [s.risk_level.rank(), u8::MAX - s.risk_score]
}

/// A server's entries in the rank index and the counts.
#[derive(PartialEq)]
pub(super) struct IndexEntries {
    pub rank: (Vec<u8>, Vec<u8>),
    pub count: Vec<u8>,
}

impl IndexEntries {
    pub fn of(s: &Server) -> Self {
        let name = s.record.server_name.to_lowercase();
        Self {
            rank: (
                cat(&[&s.org_id.to_bytes(), &rank_order(s), &s.id.to_bytes()]),
                cat(&[&[s.status.code()], name.as_bytes()]),
            ),
            count: count_key_servers(s.org_id, s.risk_level, s.status),
        }
    }

    /// The row a listing of one agent's servers ranks a server by: key
    /// org·agent·rank·inverse score·server, value status·name (not stored: made from
    /// the agent's servers when such a listing is asked for).
    pub fn agent_row(s: &Server) -> (Vec<u8>, Vec<u8>) {
        let name = s.record.server_name.to_lowercase();
        (
            cat(&[
                &s.org_id.to_bytes(),
                &s.agent_id.to_bytes(),
                &rank_order(s),
                &s.id.to_bytes(),
            ]),
            cat(&[&[s.status.code()], name.as_bytes()]),
        )
    }
}

/// The first byte of a record in the compact encoding: postcard, with the fields of
/// each type in declaration order. A record of layout 3 or older is JSON, whose first
/// byte is always `{` or `[`; [`decode`] reads both, so that an interrupted upgrade
/// (which converts record by record) leaves a database every reader understands.
pub(super) const COMPACT: u8 = 0;

/// The first byte of a server in the form of layout 6 (see `server_value`).
pub(super) const SERVER: u8 = 1;

/// A type the store keeps as a record, and in which encoding.
pub(super) trait Record: Serialize + DeserializeOwned {
    /// Postcard behind [`COMPACT`]; `false` keeps JSON, for a type postcard cannot
    /// carry (a flattened field, free-form JSON details) and that is one of a few per
    /// organisation or per alert, not per server.
    const COMPACT: bool;
}

macro_rules! records {
    (compact: $($c:ty),*; json: $($j:ty),*) => {
        $(impl Record for $c { const COMPACT: bool = true; })*
        $(impl Record for $j { const COMPACT: bool = false; })*
    };
}
records!(
    compact: crate::model::ServerChange, crate::model::Org,
        crate::model::User, crate::model::Session, crate::model::EnrollSecret,
        crate::model::ApiToken, crate::census::Counts, crate::store::tally::Change, crate::model::Agent,
        crate::events::Event, crate::events::EventStamp, crate::audit::Entry;
    json: crate::model::Alert, crate::model::OrgPolicy, crate::notify::Channel,
        crate::notify::Delivery
);

/// A record's stored bytes.
pub(super) fn encode<T: Record>(value: &T) -> Result<Vec<u8>> {
    let bytes = if T::COMPACT {
        postcard::to_extend(value, vec![COMPACT]).map_err(|e| e.to_string())
    } else {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    };
    bytes.map_err(|e| Error::internal(format!("encoding record: {e}")))
}

/// A record from its stored bytes, in either encoding (a type's records are JSON until
/// the upgrade to layout 4 has converted them).
pub(super) fn decode<T: Record>(bytes: &[u8]) -> Result<T> {
    decode_either(bytes)
}

/// [`decode`] for any type: postcard behind [`COMPACT`], or JSON.
pub(super) fn decode_either<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let value = match bytes.split_first() {
        Some((&COMPACT, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        _ => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    };
    value.map_err(|e| Error::internal(format!("stored record is unreadable: {e}")))
}

/// The 16-byte id at `at` in a key.
pub(super) fn id_at(key: &[u8], at: usize) -> Result<[u8; ID]> {
    key.get(at..at + ID)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::internal("stored key has the wrong length"))
}

/// Visit every key in `table` that starts with `prefix`, in order, with its value,
/// until `visit` answers `Break`: the one prefix scan every query uses.
pub(super) fn walk_prefix<V, T>(
    table: &T,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], V::SelfType<'_>) -> Result<std::ops::ControlFlow<()>>,
) -> Result<()>
where
    V: redb::Value + 'static,
    T: ReadableTable<Bytes, V>,
{
    for entry in table.range::<&[u8]>(prefix..)? {
        let (k, v) = entry?;
        if !k.value().starts_with(prefix) || visit(k.value(), v.value())?.is_break() {
            break;
        }
    }
    Ok(())
}

/// Every key in `table` that starts with `prefix`, with its value.
pub(super) fn scan_prefix<T>(table: &T, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>
where
    T: ReadableTable<Bytes, Bytes>,
{
    let mut out = Vec::new();
    walk_prefix(table, prefix, |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Every key in `table` that starts with `prefix` (for index tables, whose values
/// say nothing).
pub(super) fn keys_with_prefix<V, T>(table: &T, prefix: &[u8]) -> Result<Vec<Vec<u8>>>
where
    V: redb::Value + 'static,
    T: ReadableTable<Bytes, V>,
{
    let mut out = Vec::new();
    walk_prefix(table, prefix, |k, _| {
        out.push(k.to_vec());
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(out)
}

pub(super) fn get_record<T: Record, Tb: ReadableTable<Bytes, Bytes>>(
    table: &Tb,
    key: &[u8],
) -> Result<Option<T>> {
    match table.get(key)? {
        Some(v) => decode(v.value()).map(Some),
        None => Ok(None),
    }
}

/// Every record stored under `prefix`.
pub(super) fn list_records<T: Record, Tb: ReadableTable<Bytes, Bytes>>(
    table: &Tb,
    prefix: &[u8],
) -> Result<Vec<T>> {
    scan_prefix(table, prefix)?
        .iter()
        .map(|(_, v)| decode(v))
        .collect()
}

/// The record an index entry points at.
pub(super) fn get_via<T: Record>(
    txn: &ReadTransaction,
    index: TableDefinition<'_, Bytes, Bytes>,
    key: &[u8],
    data: TableDefinition<'_, Bytes, Bytes>,
) -> Result<Option<T>> {
    let Some(target) = txn.open_table(index)?.get(key)?.map(|v| v.value().to_vec()) else {
        return Ok(None);
    };
    get_record(&txn.open_table(data)?, &target)
}

/// Store a record.
pub(super) fn put_record<T: Record>(
    txn: &WriteTransaction,
    table: TableDefinition<'_, Bytes, Bytes>,
    key: &[u8],
    value: &T,
) -> Result<()> {
    txn.open_table(table)?
        .insert(key, encode(value)?.as_slice())?;
    Ok(())
}

/// Add `delta` to a counts row (a row that reaches 0 is removed).
pub(super) fn add_count(txn: &WriteTransaction, key: &[u8], delta: i64) -> Result<u64> {
    let mut counts = txn.open_table(COUNTS)?;
    let current = counts.get(key)?.map_or(0, |v| v.value());
    let next = current.saturating_add_signed(delta);
    if next == 0 {
        counts.remove(key)?;
    } else {
        counts.insert(key, next)?;
    }
    Ok(next)
}

/// Read a counts row.
pub(super) fn count<T: ReadableTable<Bytes, u64>>(counts: &T, key: &[u8]) -> Result<u64> {
    Ok(counts.get(key)?.map_or(0, |v| v.value()))
}

/// Make every table, so that reads of an empty database find them.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    for table in ROW_TABLES {
        txn.open_table(table)?;
    }
    txn.open_table(USER_EMAILS)?;
    txn.open_table(USER_SESSIONS)?;
    txn.open_table(COUNTS)?;
    txn.open_table(ALERTS_OPEN)?;
    txn.open_table(INVENTORY_REV)?;
    txn.open_table(DELIVERY_DUE)?;
    txn.open_table(CENSUS_MEMBERS)?;
    txn.open_table(CENSUS_RANK)?;
    txn.open_table(SILENT_WATCH)?;
    txn.open_table(ALERTS_OF_SERVER)?;
    Ok(())
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Self {
                Error::Internal(std::sync::Arc::new(err))
            }
        }
    )*};
}
internal_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
