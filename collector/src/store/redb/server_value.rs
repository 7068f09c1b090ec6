//! A server's stored bytes. A server is the one record there are millions of, so its
//! value leaves out what it can rebuild exactly: its organisation and id (they are its
//! key, org·server); its fingerprint when it is the one its launch computes to (the
//! collector's own, always, unless an older collector stored another); of what the
//! agent sent, the package when it is the one the launch runs, the type when it is
//! that package's name and the fingerprint when it is the computed one (as the
//! mcpwatch agent sends them); and its last sighting and update as offsets from its
//! first (nothing, at first). Each is left out only when rebuilding it gives it back
//! equal, so nothing an agent sent is changed.
//!
//! The value is postcard behind [`SERVER`]. Servers written by layouts 4 and 5 (the
//! whole [`Server`] behind `COMPACT`) and by layout 3 or older (JSON) are read as
//! they are; each is rewritten in this form the next time it changes.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId, ServerId, UserId};
use mcpwatch_protocol::risk::{Finding, RiskLevel};
use mcpwatch_protocol::server::ServerRecord;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::schema::{Bytes, ID, SERVER, id_at};
use crate::model::{Server, ServerStatus};
use crate::store::{Error, Result};

/// A time as an offset from the server's first sighting, or (when the offset does not
/// fit in nanoseconds, some 292 years) whole.
#[derive(Serialize, Deserialize)]
enum Moment {
    Nanos(i64),
    At(#[serde(with = "mcpwatch_protocol::compact::time")] DateTime<Utc>),
}

impl Moment {
    fn of(at: DateTime<Utc>, first: DateTime<Utc>) -> Self {
        (at - first)
            .num_nanoseconds()
            .map_or(Self::At(at), Self::Nanos)
    }

    fn at(self, first: DateTime<Utc>) -> Result<DateTime<Utc>> {
        match self {
            Self::At(at) => Ok(at),
            Self::Nanos(nanos) => first
                .checked_add_signed(chrono::Duration::nanoseconds(nanos))
                .ok_or_else(|| Error::internal("stored server time out of range")),
        }
    }
}

/// Which of the record's fields are left out, to be rebuilt (bits).
const PACKAGE_LAUNCHED: u8 = 1;
const TYPE_IS_PACKAGE: u8 = 2;
const FINGERPRINT_COMPUTED: u8 = 4;

/// The record without what can be rebuilt from the rest of it, and which fields those
/// are; `computed` is the record's computed fingerprint.
fn without_derived<'a>(record: &'a ServerRecord, computed: &str) -> (Cow<'a, ServerRecord>, u8) {
    let package_launched = record.package.is_some()
        && record.package == mcpwatch_protocol::risk::launched_package(record);
    let type_is_package = record.server_type.is_some()
        && record.server_type.as_deref() == record.package.as_ref().map(|p| p.name.as_str());
    let fingerprint_computed = record.fingerprint.as_ref().is_some_and(|f| f == computed);
    let derived = [
        (package_launched, PACKAGE_LAUNCHED),
        (type_is_package, TYPE_IS_PACKAGE),
        (fingerprint_computed, FINGERPRINT_COMPUTED),
    ]
    .into_iter()
    .filter(|(left_out, _)| *left_out)
    .fold(0, |bits, (_, bit)| bits | bit);
    if derived == 0 {
        return (Cow::Borrowed(record), 0);
    }
    let mut lean = record.clone();
    if type_is_package {
        lean.server_type = None;
    }
    if package_launched {
        lean.package = None;
    }
    if fingerprint_computed {
        lean.fingerprint = None;
    }
    (Cow::Owned(lean), derived)
}

/// [`without_derived`] undone; answers the record's computed fingerprint.
fn with_derived(record: &mut ServerRecord, derived: u8) -> String {
    if derived & PACKAGE_LAUNCHED != 0 {
        record.package = mcpwatch_protocol::risk::launched_package(record);
    }
    if derived & TYPE_IS_PACKAGE != 0 {
        record.server_type = record.package.as_ref().map(|p| p.name.clone());
    }
    let computed = record.compute_fingerprint();
    if derived & FINGERPRINT_COMPUTED != 0 {
        record.fingerprint = Some(computed.clone());
    }
    computed
}

/// [`Server`] without what its key and its launch say.
#[derive(Serialize, Deserialize)]
struct Value<'a> {
    agent_id: AgentId,
    record: Cow<'a, ServerRecord>,
    /// The record's fields left out ([`without_derived`]).
    derived: u8,
    /// `None`: the fingerprint the record computes to.
    #[serde(with = "mcpwatch_protocol::compact::optional_digest")]
    fingerprint: Option<String>,
    risk_score: u8,
    risk_level: RiskLevel,
    findings: Cow<'a, [Finding]>,
    rules_version: u32,
    status: ServerStatus,
    policy_version: u64,
    in_snapshot: bool,
    is_verified: bool,
    verified_by: Option<UserId>,
    #[serde(with = "mcpwatch_protocol::compact::optional_time")]
    verified_at: Option<DateTime<Utc>>,
    #[serde(with = "mcpwatch_protocol::compact::time")]
    first_seen_at: DateTime<Utc>,
    last_seen_at: Moment,
    updated_at: Moment,
    change_seq: u64,
}

/// A server's value.
pub(super) fn encode(server: &Server) -> Result<Vec<u8>> {
    let computed = server.record.compute_fingerprint();
    let first = server.first_seen_at;
    let (record, derived) = without_derived(&server.record, &computed);
    let value = Value {
        agent_id: server.agent_id,
        record,
        derived,
        fingerprint: (server.fingerprint != computed).then(|| server.fingerprint.clone()),
        risk_score: server.risk_score,
        risk_level: server.risk_level,
        findings: Cow::Borrowed(&server.findings),
        rules_version: server.rules_version,
        status: server.status,
        policy_version: server.policy_version,
        in_snapshot: server.in_snapshot,
        is_verified: server.is_verified,
        verified_by: server.verified_by,
        verified_at: server.verified_at,
        first_seen_at: first,
        last_seen_at: Moment::of(server.last_seen_at, first),
        updated_at: Moment::of(server.updated_at, first),
        change_seq: server.change_seq,
    };
    postcard::to_extend(&value, vec![SERVER])
        .map_err(|e| Error::internal(format!("encoding server: {e}")))
}

/// A server from its key (org·server) and value, in any layout's form.
pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<Server> {
    let Some((&SERVER, rest)) = bytes.split_first() else {
        // Layouts up to 5: the whole server, compact or JSON.
        return super::schema::decode_either(bytes);
    };
    let unreadable = |e: String| Error::internal(format!("stored server is unreadable: {e}"));
    let value: Value<'_> = postcard::from_bytes(rest).map_err(|e| unreadable(e.to_string()))?;
    let mut record = value.record.into_owned();
    let computed = with_derived(&mut record, value.derived);
    let fingerprint = value.fingerprint.unwrap_or(computed);
    let first = value.first_seen_at;
    Ok(Server {
        org_id: OrgId::from_bytes(id_at(key, 0)?),
        id: ServerId::from_bytes(id_at(key, ID)?),
        agent_id: value.agent_id,
        record,
        fingerprint,
        risk_score: value.risk_score,
        risk_level: value.risk_level,
        findings: value.findings.into_owned(),
        rules_version: value.rules_version,
        status: value.status,
        policy_version: value.policy_version,
        in_snapshot: value.in_snapshot,
        is_verified: value.is_verified,
        verified_by: value.verified_by,
        verified_at: value.verified_at,
        first_seen_at: first,
        last_seen_at: value.last_seen_at.at(first)?,
        updated_at: value.updated_at.at(first)?,
        change_seq: value.change_seq,
    })
}

/// The agent of the server stored at `key`, if any, without decoding the rest of it.
pub(super) fn agent_of<T: ReadableTable<Bytes, Bytes>>(
    table: &T,
    key: &[u8],
) -> Result<Option<AgentId>> {
    let Some(value) = table.get(key)? else {
        return Ok(None);
    };
    match value.value().split_first() {
        // The agent is a server value's first field.
        Some((&SERVER, rest)) => postcard::take_from_bytes::<AgentId>(rest)
            .map(|(agent, _)| Some(agent))
            .map_err(|e| Error::internal(format!("stored server is unreadable: {e}"))),
        _ => Ok(Some(decode(key, value.value())?.agent_id)),
    }
}

/// The server stored at `key`, if any.
pub(super) fn get<T: ReadableTable<Bytes, Bytes>>(table: &T, key: &[u8]) -> Result<Option<Server>> {
    table.get(key)?.map(|v| decode(key, v.value())).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redb::schema::{COMPACT, server_key};

    fn server() -> Server {
        let record = crate::ingest::tests::record("fs", &["-y", "fs@1.0.0", "/home/a"]);
        let now = Utc::now();
        Server {
            id: ServerId::new(),
            org_id: OrgId::new(),
            agent_id: AgentId::new(),
            fingerprint: record.compute_fingerprint(),
            record,
            risk_score: 42,
            risk_level: RiskLevel::Medium,
            findings: vec![Finding {
                rule_id: "MCP-CAP-001".into(),
                severity: mcpwatch_protocol::risk::Severity::Medium,
                weight: 20,
                message: "reads files".into(),
                evidence: "/home/a".into(),
            }],
            rules_version: 4,
            status: ServerStatus::Dormant,
            policy_version: 7,
            in_snapshot: false,
            is_verified: true,
            verified_by: Some(UserId::new()),
            verified_at: Some(now),
            first_seen_at: now,
            last_seen_at: now,
            updated_at: now,
            change_seq: 3,
        }
    }

    fn round_trip(server: &Server) -> (Server, usize) {
        let key = server_key(server.org_id, server.id);
        let bytes = encode(server).unwrap();
        (decode(&key, &bytes).unwrap(), bytes.len())
    }

    #[test]
    fn a_server_comes_back_whole_from_less() {
        let server = server();
        let whole = postcard::to_stdvec(&server).unwrap().len();
        let (back, len) = round_trip(&server);
        assert_eq!(back, server);
        // Ids (17 bytes each), the fingerprint (33 bytes, 1 left) and two times (8 to
        // 11 bytes each, 2 left) less.
        assert!(len + 2 * 17 + 32 + 2 * 5 <= whole, "{len} of {whole}");

        // Later and earlier times than the first sighting, to the nanosecond.
        let mut moved = server.clone();
        moved.last_seen_at += chrono::Duration::nanoseconds(86_400_000_000_123);
        moved.updated_at -= chrono::Duration::nanoseconds(1);
        assert_eq!(round_trip(&moved).0, moved);
        // Further apart than nanoseconds reach: kept whole.
        let mut far = server.clone();
        far.first_seen_at = DateTime::from_timestamp(0, 0).unwrap();
        far.last_seen_at = DateTime::from_timestamp(400 * 365 * 86_400, 5).unwrap();
        assert_eq!(round_trip(&far).0, far);
    }

    /// A record as the mcpwatch agent sends it: its parse of the launch, the package
    /// the launch runs, that package's name as the type, the fingerprint computed.
    fn as_the_agent_sends_it() -> ServerRecord {
        use mcpwatch_protocol::server::{LaunchInfo, Package};
        let mut record =
            crate::ingest::tests::record("fs", &["-y", "@scope/fs-server@1.2.3", "/home/a"]);
        record.command = Some("npx -y @scope/fs-server@1.2.3 /home/a".into());
        record.launch = Some(LaunchInfo {
            program: "npx".into(),
            wrappers: vec![],
            runs: "npx".into(),
        });
        record.package = Some(Package {
            ecosystem: "npm".into(),
            name: "@scope/fs-server".into(),
            version: Some("1.2.3".into()),
        });
        record.server_type = Some("@scope/fs-server".into());
        record.fingerprint = Some(record.compute_fingerprint());
        record
    }

    #[test]
    fn what_the_agent_sent_that_its_launch_says_is_rebuilt_equal() {
        let mut server = server();
        server.record = as_the_agent_sends_it();
        server.fingerprint = server.record.compute_fingerprint();
        let (back, len) = round_trip(&server);
        assert_eq!(back, server);
        let mut whole = server.clone();
        whole.record.package = None;
        whole.record.server_type = None;
        whole.record.fingerprint = None;
        whole.fingerprint = whole.record.compute_fingerprint();
        let (_, bare) = round_trip(&whole);
        assert_eq!(len, bare, "package, type and sent fingerprint left out");

        // Anything else the agent sent is kept as sent.
        let mut other = server.clone();
        other.record.package.as_mut().unwrap().version = Some("9.9.9".into());
        other.record.server_type = Some("filesystem".into());
        other.record.fingerprint = Some("not-the-computed-one".into());
        assert_eq!(round_trip(&other).0, other);
        let mut none = server.clone();
        none.record.package = None;
        assert_eq!(round_trip(&none).0, none, "no package sent stays none");
    }

    #[test]
    fn a_fingerprint_the_launch_does_not_compute_to_is_kept() {
        let mut server = server();
        server.fingerprint = "sent-by-an-older-collector".into();
        assert_eq!(round_trip(&server).0, server);
        server.fingerprint = "ab".repeat(32);
        assert_eq!(round_trip(&server).0, server);
    }

    #[test]
    fn servers_of_older_layouts_are_read_as_they_were_written() {
        let server = server();
        let key = server_key(server.org_id, server.id);
        let compact = postcard::to_extend(&server, vec![COMPACT]).unwrap();
        assert_eq!(decode(&key, &compact).unwrap(), server);
        let json = serde_json::to_vec(&server).unwrap();
        assert_eq!(decode(&key, &json).unwrap(), server);
        // A damaged value is an error naming what it is, never a panic.
        let mut cut = encode(&server).unwrap();
        cut.truncate(cut.len() / 2);
        let err = decode(&key, &cut).unwrap_err().to_string();
        assert!(err.contains("stored server is unreadable"), "{err}");
    }
}
