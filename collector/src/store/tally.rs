//! How queued census changes become counts, shared by every backend: a server's
//! marks before out and after in ([`Change`]), netted per census row and per member
//! across a whole batch ([`tally`]), so that a popular row is written once however
//! many changes touch it. A backend keeps the member counters and rows; the keys are
//! the same bytes in each:
//!
//! - a row is org·group·key·0 (a key never holds a NUL; a package's is
//!   ecosystem·1·name);
//! - a row's members are h(row)·kind·member, with h the first 8 bytes of a SHA-256
//!   (and long members hashed the same way); a version's hosts are h(row)·`V`·version.
//!   The row's hash names its organisation and group too (they are in the row's key),
//!   so member keys carry no prefix: at ten million rows the chance that any two share
//!   a hash is about one in 370,000, and such a pair would only count together.
//! - a host (an agent's id) in a member is 10 bytes ([`host_key`]): the id's first 6,
//!   its creation time in milliseconds, so that a row's new hosts are written after
//!   its older ones (a growing census touches the end of each row, not all of it), and
//!   4 bytes of its SHA-256. Two hosts share a key only when they were enrolled in the
//!   same millisecond and those 4 bytes meet: at a thousand enrollments a second,
//!   about once in ten thousand fleets of a million; they would count as one host.

use std::collections::BTreeMap;

use mcpwatch_protocol::ids::OrgId;

use crate::census::{Group, Mark, Member, marks};
use crate::model::Server;

/// One server's change, waiting to be counted.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub org: OrgId,
    pub old: Vec<Mark>,
    pub new: Vec<Mark>,
}

impl Change {
    /// A server write's change, if it changes any count.
    pub fn of(before: Option<&Server>, after: Option<&Server>) -> Option<Self> {
        let old = before.map(marks).unwrap_or_default();
        let new = after.map(marks).unwrap_or_default();
        if old.len() == new.len() && old.iter().zip(&new).all(|(a, b)| a.same_counts(b)) {
            return None;
        }
        let org = before.or(after).map(|s| s.org_id)?;
        Some(Self { org, old, new })
    }

    /// A stored server counted in (building the census of an older database).
    pub fn existing(server: &Server) -> Self {
        Self {
            org: server.org_id,
            old: Vec::new(),
            new: marks(server),
        }
    }
}

/// What a batch does to one row: its servers and levels, and the mark last seen.
pub struct RowChange {
    pub mark: Mark,
    pub servers: i64,
    pub levels: [i64; 4],
    pub seen: bool,
}

impl RowChange {
    /// Whether the batch left the row as it was.
    pub fn is_empty(&self, counters: [i64; 4]) -> bool {
        self.servers == 0 && self.levels == [0; 4] && counters == [0; 4] && !self.seen
    }
}

/// A member key's net change: its row key, its kind, the version it names (a
/// version's host), and the change.
pub struct MemberChange {
    pub row: Vec<u8>,
    pub kind: Member,
    pub version: Option<String>,
    pub delta: i64,
}

/// A batch of changes netted per row and per member.
#[derive(Default)]
pub struct Tally {
    pub rows: BTreeMap<Vec<u8>, RowChange>,
    pub members: BTreeMap<Vec<u8>, MemberChange>,
}

/// A row's key bytes: its key, a package's after its ecosystem, without NULs.
pub fn key_bytes(mark_key: &str, ecosystem: Option<&str>) -> Vec<u8> {
    let clean = |s: &str| s.replace('\0', "\u{fffd}");
    match ecosystem {
        Some(eco) => [clean(eco).as_bytes(), &[1], clean(mark_key).as_bytes()].concat(),
        None => clean(mark_key).into_bytes(),
    }
}

/// A row: org·group·key·0.
pub fn row_key(org: OrgId, group: Group, key: &[u8]) -> Vec<u8> {
    [org.to_bytes().as_slice(), &[group.code()], key, &[0]].concat()
}

/// A row key's organisation and key bytes (without the trailing NUL).
pub fn split_row(row: &[u8]) -> Option<(OrgId, &[u8])> {
    let org: [u8; 16] = row.get(..16)?.try_into().ok()?;
    let key = row.get(17..row.len().checked_sub(1)?)?;
    Some((OrgId::from_bytes(org), key))
}

/// Where a row's members are kept: the first 8 bytes of the SHA-256 of the row's key
/// (organisation, group and key), so that member keys stay short however long the
/// row's key is.
pub fn members_of(row: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(row)[..MEMBER_PREFIX].to_vec()
}

/// The bytes of a member key before its kind: the row's hash.
pub const MEMBER_PREFIX: usize = 8;

/// The organisation·group prefix member keys carried before layout 5 (redb) and
/// schema 2 (PostgreSQL), which their upgrades take off.
pub const OLD_MEMBER_PREFIX: usize = 17;

/// The counter of a version's hosts in a row.
pub fn version_key(row: &[u8], version: &str) -> Vec<u8> {
    [members_of(row).as_slice(), b"V", version.as_bytes()].concat()
}

/// The first 8 bytes of the SHA-256 of `bytes`.
fn h8(bytes: &[u8]) -> [u8; 8] {
    use sha2::Digest as _;
    let mut out = [0; 8];
    out.copy_from_slice(&sha2::Sha256::digest(bytes)[..8]);
    out
}

/// The bytes of a host (an agent's id) in [`Member::of`]'s member bytes.
const HOST: usize = 16;
/// The bytes of a host's id kept in front of its hash: a time-ordered id's milliseconds.
const HOST_TIME: usize = 6;

/// A host (an agent's 16-byte id) as kept in member keys: its first 6 bytes, then 4
/// bytes of its SHA-256 (see the module's notes).
fn host_key(host: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let time = &host[..HOST_TIME.min(host.len())];
    [time, &sha2::Sha256::digest(host)[..4]].concat()
}

/// A member's bytes as kept: a host (alone, a user's, a version's) as its
/// [`host_key`], and other long ones (a launch's fingerprint, a user's name) as the
/// first 8 bytes of their SHA-256.
fn member_bytes(kind: Member, bytes: &[u8]) -> Vec<u8> {
    match kind {
        Member::Client => bytes.to_vec(),
        Member::Host => host_key(bytes),
        Member::Launch => h8(bytes).to_vec(),
        Member::User => {
            let (host, name) = bytes.split_at(HOST.min(bytes.len()));
            [host_key(host).as_slice(), &h8(name)].concat()
        }
        Member::VersionHost => {
            let (version, host) = bytes.split_at(bytes.len().saturating_sub(HOST));
            [version, &host_key(host)].concat()
        }
    }
}

/// A member key as redb layout 5 and PostgreSQL schema 2 kept it (hosts whole) in
/// today's form; keys of the other kinds as they are.
pub fn with_short_hosts(key: &[u8]) -> Vec<u8> {
    let Some((head, member)) = key.split_at_checked(MEMBER_PREFIX + 1) else {
        return key.to_vec();
    };
    match head[MEMBER_PREFIX] {
        b'a' if member.len() == HOST => [head, &host_key(member)].concat(),
        b'u' if member.len() == HOST + 8 => {
            let (host, name) = member.split_at(HOST);
            [head, &host_key(host), name].concat()
        }
        b'v' if member.len() > HOST => {
            let (version, host) = member.split_at(member.len() - HOST);
            [head, version, &host_key(host)].concat()
        }
        _ => key.to_vec(),
    }
}

/// Net a batch of changes per row and per member.
pub fn tally(changes: &[Change]) -> Tally {
    let mut out = Tally::default();
    let marked = changes.iter().flat_map(|c| {
        c.old
            .iter()
            .map(move |m| (c.org, m, -1))
            .chain(c.new.iter().map(move |m| (c.org, m, 1)))
    });
    for (org, mark, delta) in marked {
        let key = key_bytes(&mark.key, mark.ecosystem.as_deref());
        let row = row_key(org, mark.group, &key);
        let change = out.rows.entry(row.clone()).or_insert_with(|| RowChange {
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
            let member = [
                prefix.as_slice(),
                &[kind.code()],
                &member_bytes(kind, &bytes),
            ]
            .concat();
            let entry = out.members.entry(member).or_insert_with(|| MemberChange {
                row: row.clone(),
                kind,
                version: mark.version.clone(),
                delta: 0,
            });
            entry.delta += delta;
        }
    }
    out
}

/// Whether a member counter going from `old` to `new` adds a distinct member (1),
/// removes one (−1), or neither (0).
pub fn transition(old: u64, new: u64) -> i64 {
    match (old, new) {
        (0, n) if n > 0 => 1,
        (o, 0) if o > 0 => -1,
        _ => 0,
    }
}

/// The member keys redb layout 5 and PostgreSQL schema 2 kept for these servers' hosts
/// (alone, a user's, a version's: their whole ids), with their counts: what the tests
/// put back to make such a database.
#[cfg(test)]
pub fn members_with_whole_hosts(servers: &[Server]) -> BTreeMap<Vec<u8>, u64> {
    let mut out = BTreeMap::new();
    for server in servers {
        for mark in marks(server) {
            let key = key_bytes(&mark.key, mark.ecosystem.as_deref());
            let prefix = members_of(&row_key(server.org_id, mark.group, &key));
            for kind in [Member::Host, Member::User, Member::VersionHost] {
                let Some(bytes) = kind.of(&mark) else {
                    continue;
                };
                let member = match kind {
                    Member::User => {
                        let (host, name) = bytes.split_at(HOST.min(bytes.len()));
                        [host, &h8(name)].concat()
                    }
                    _ => bytes,
                };
                let key = [prefix.as_slice(), &[kind.code()], &member].concat();
                *out.entry(key).or_default() += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpwatch_protocol::ids::AgentId;
    use mcpwatch_protocol::server::Package;

    #[test]
    fn whole_hosts_rekeyed_are_the_keys_counted_today() {
        let (org, now) = (OrgId::new(), chrono::Utc::now());
        let mut servers = Vec::new();
        for host in 0..3 {
            let mut record = crate::ingest::tests::record("fs", &["-y", "fs@1.2.3-beta.4"]);
            record.os_user = Some(format!("user-{host}"));
            record.package = Some(Package {
                ecosystem: "npm".into(),
                name: "fs".into(),
                version: Some("1.2.3-beta.4".into()),
            });
            let plan = crate::ingest::plan(
                org,
                AgentId::new(),
                vec![],
                vec![record],
                &crate::model::OrgPolicy::default(),
                now,
            );
            servers.extend(plan.writes.into_iter().map(|w| w.after));
        }
        let today: BTreeMap<Vec<u8>, i64> =
            tally(&servers.iter().map(Change::existing).collect::<Vec<_>>())
                .members
                .into_iter()
                .filter(|(_, m)| {
                    matches!(m.kind, Member::Host | Member::User | Member::VersionHost)
                })
                .map(|(k, m)| (k, m.delta))
                .collect();
        let old = members_with_whole_hosts(&servers);
        assert_eq!(old.len(), today.len());
        assert!(
            old.keys().all(|k| !today.contains_key(k)),
            "hosts were whole"
        );
        let rekeyed: BTreeMap<Vec<u8>, i64> = old
            .into_iter()
            .map(|(k, n)| (with_short_hosts(&k), i64::try_from(n).unwrap()))
            .collect();
        assert_eq!(rekeyed, today);
        // A host's key keeps its id's time first: later hosts sort after earlier ones.
        let earlier = [&[0, 0, 0, 0, 0, 1][..], &[0xff; 10]].concat();
        let mut later = [0u8; 16];
        later[5] = 2;
        assert!(host_key(&earlier) < host_key(&later));
        assert_eq!(host_key(&later).len(), 10);
        // Keys of other kinds, and short or damaged keys, are left as they are.
        for key in [
            &b"12345678c"[..],
            b"12345678fabcdefgh",
            b"1234",
            b"12345678a-short",
        ] {
            assert_eq!(with_short_hosts(key), key);
        }
    }
}
