//! The census's counts, kept at write time as the embedded store keeps them (see
//! [`crate::store::tally`]): a server write queues its change in its own transaction;
//! [`drain`] claims the oldest queued changes and counts them in, one drain at a time
//! across every instance.

use std::collections::BTreeMap;

use mcpwatch_protocol::ids::OrgId;

use super::sql::{Db, count, doc, exec, get, json, row, rows, window};
use crate::census::{Counts, VersionHosts};
use crate::model::Server;
use crate::store::tally::{Change, RowChange, Tally, split_row, tally, transition, version_key};
use crate::store::{CensusQuery, Direction, Error, Page, Result};

/// Queue a server write's change to the census, if it changes any count.
pub(super) async fn apply(db: &Db, before: Option<&Server>, after: Option<&Server>) -> Result<()> {
    let Some(change) = Change::of(before, after) else {
        return Ok(());
    };
    exec(
        db,
        "INSERT INTO census_queue (doc) VALUES ($1)",
        &[&json(&change)?],
    )
    .await?;
    Ok(())
}

/// Whether any change is queued, not yet counted (one committed by a drain is gone
/// from the queue and in the counts at once).
pub(super) async fn queued(db: &Db) -> Result<bool> {
    Ok(row(db, "SELECT 1 FROM census_queue LIMIT 1", &[])
        .await?
        .is_some())
}

/// The advisory lock key of census drains ("mcpwcens" in ASCII).
const DRAIN_LOCK: i64 = 0x6d63_7077_6365_6e73;

/// Claim and count up to `limit` queued changes, oldest first; answers how many.
///
/// Drains wait for each other (a transaction-level advisory lock), so that changes are
/// counted in the order they were made: a server's removal counted before its
/// addition would leave a member counted that is gone (counts never go below zero).
/// The claimed rows are locked once, in a CTE, and deleted by key: the earlier
/// `DELETE ... WHERE seq IN (SELECT ... LIMIT ... FOR UPDATE SKIP LOCKED)`, beside a
/// second drain, was seen running for over 30 seconds.
pub(super) async fn drain(db: &Db, limit: usize) -> Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    exec(db, "SELECT pg_advisory_xact_lock($1)", &[&DRAIN_LOCK]).await?;
    let claimed = rows(
        db,
        "WITH claimed AS (SELECT seq FROM census_queue ORDER BY seq LIMIT $1 FOR UPDATE) \
         DELETE FROM census_queue q USING claimed c WHERE q.seq = c.seq RETURNING q.doc",
        &[&limit],
    )
    .await?;
    let changes = claimed
        .iter()
        .map(|r| doc::<Change>(r, 0))
        .collect::<Result<Vec<_>>>()?;
    count_changes(db, &changes).await?;
    Ok(changes.len())
}

/// Change member counters by their deltas (each key once), locking them in key order
/// (so that two instances draining at once wait for each other, never deadlock);
/// answers each key's distinct-member transition.
async fn bump_members(db: &Db, deltas: &BTreeMap<Vec<u8>, i64>) -> Result<BTreeMap<Vec<u8>, i64>> {
    if deltas.is_empty() {
        return Ok(BTreeMap::new());
    }
    let keys: Vec<&[u8]> = deltas.keys().map(Vec::as_slice).collect();
    let mut old: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for r in rows(
        db,
        "SELECT member, n FROM census_members WHERE member = ANY($1) ORDER BY member FOR UPDATE",
        &[&keys],
    )
    .await?
    {
        old.insert(get(&r, 0)?, get(&r, 1)?);
    }
    let (mut kept, mut counts, mut gone) = (Vec::new(), Vec::new(), Vec::new());
    let mut transitions = BTreeMap::new();
    for (key, delta) in deltas {
        let before = old.get(key).copied().unwrap_or(0).max(0);
        let after = before.saturating_add(*delta).max(0);
        transitions.insert(key.clone(), transition(count(before), count(after)));
        if after == 0 {
            gone.push(key.as_slice());
        } else {
            kept.push(key.as_slice());
            counts.push(after);
        }
    }
    if !kept.is_empty() {
        exec(
            db,
            "INSERT INTO census_members (member, n) SELECT * FROM unnest($1::bytea[], $2::bigint[]) \
             ON CONFLICT (member) DO UPDATE SET n = EXCLUDED.n",
            &[&kept, &counts],
        )
        .await?;
    }
    if !gone.is_empty() {
        exec(
            db,
            "DELETE FROM census_members WHERE member = ANY($1)",
            &[&gone],
        )
        .await?;
    }
    Ok(transitions)
}

async fn count_changes(db: &Db, changes: &[Change]) -> Result<()> {
    let Tally {
        rows: changed,
        members,
    } = tally(changes);
    let deltas: BTreeMap<Vec<u8>, i64> = members
        .iter()
        .filter(|(_, m)| m.delta != 0)
        .map(|(k, m)| (k.clone(), m.delta))
        .collect();
    let transitions = bump_members(db, &deltas).await?;
    let mut moved: BTreeMap<Vec<u8>, [i64; 4]> = BTreeMap::new();
    let mut versions: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (key, m) in members {
        let change = transitions.get(&key).copied().unwrap_or(0);
        if change == 0 {
            continue;
        }
        match m.kind.counter_index() {
            Some(i) => moved.entry(m.row).or_default()[i] += change,
            None => {
                if let Some(version) = m.version {
                    *versions.entry(version_key(&m.row, &version)).or_default() += change;
                }
            }
        }
    }
    versions.retain(|_, d| *d != 0);
    bump_members(db, &versions).await?;
    write_rows(db, changed, moved).await
}

/// A census row's place: organisation, group code, key bytes.
type RowAt = (uuid::Uuid, i16, Vec<u8>);

/// Store the rows' new counts (read and locked together, in key order; written in
/// two statements); rows left without servers go.
async fn write_rows(
    db: &Db,
    changed: BTreeMap<Vec<u8>, RowChange>,
    mut moved: BTreeMap<Vec<u8>, [i64; 4]>,
) -> Result<()> {
    let mut wanted: Vec<(RowAt, RowChange, [i64; 4])> = Vec::new();
    for (row_key, change) in changed {
        let counters = moved.remove(&row_key).unwrap_or_default();
        if change.is_empty(counters) {
            continue;
        }
        let (org, key) =
            split_row(&row_key).ok_or_else(|| Error::internal("census row key is too short"))?;
        let at = (org.0, i16::from(change.mark.group.code()), key.to_vec());
        wanted.push((at, change, counters));
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let orgs: Vec<uuid::Uuid> = wanted.iter().map(|(at, ..)| at.0).collect();
    let groups: Vec<i16> = wanted.iter().map(|(at, ..)| at.1).collect();
    let keys: Vec<&[u8]> = wanted.iter().map(|(at, ..)| at.2.as_slice()).collect();
    let mut stored: BTreeMap<RowAt, Counts> = BTreeMap::new();
    for r in rows(
        db,
        "SELECT c.org, c.grp, c.key, c.doc FROM census c \
         JOIN unnest($1::uuid[], $2::smallint[], $3::bytea[]) AS t(org, grp, key) \
         ON c.org = t.org AND c.grp = t.grp AND c.key = t.key \
         ORDER BY c.org, c.grp, c.key FOR UPDATE OF c",
        &[&orgs, &groups, &keys],
    )
    .await?
    {
        stored.insert((get(&r, 0)?, get(&r, 1)?, get(&r, 2)?), doc(&r, 3)?);
    }
    let (mut put, mut gone) = (Columns::default(), Columns::default());
    for (at, change, counters) in wanted {
        let mut counts = stored.remove(&at).unwrap_or_default();
        counts.apply(
            &change.mark,
            change.servers,
            change.levels,
            counters,
            change.seen,
        );
        if counts.servers == 0 {
            gone.push(at, None)?;
        } else {
            put.push(at, Some(&counts))?;
        }
    }
    save_rows(db, &put, &gone).await
}

/// Census rows as columns, for one bulk statement.
#[derive(Default)]
struct Columns {
    orgs: Vec<uuid::Uuid>,
    groups: Vec<i16>,
    keys: Vec<Vec<u8>>,
    hosts: Vec<i64>,
    docs: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, (org, group, key): RowAt, counts: Option<&Counts>) -> Result<()> {
        self.orgs.push(org);
        self.groups.push(group);
        self.keys.push(key);
        if let Some(counts) = counts {
            self.hosts
                .push(i64::try_from(counts.hosts).unwrap_or(i64::MAX));
            self.docs.push(json(counts)?);
        }
        Ok(())
    }
}

/// Write the rows in `put` and remove those in `gone`.
async fn save_rows(db: &Db, put: &Columns, gone: &Columns) -> Result<()> {
    if !put.orgs.is_empty() {
        exec(
            db,
            "INSERT INTO census (org, grp, key, hosts, doc) \
             SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::bytea[], $4::bigint[], $5::bytea[]) \
             ON CONFLICT (org, grp, key) DO UPDATE SET hosts = EXCLUDED.hosts, doc = EXCLUDED.doc",
            &[&put.orgs, &put.groups, &put.keys, &put.hosts, &put.docs],
        )
        .await?;
    }
    if !gone.orgs.is_empty() {
        exec(
            db,
            "DELETE FROM census c USING unnest($1::uuid[], $2::smallint[], $3::bytea[]) AS t(org, grp, key) \
             WHERE c.org = t.org AND c.grp = t.grp AND c.key = t.key",
            &[&gone.orgs, &gone.groups, &gone.keys],
        )
        .await?;
    }
    Ok(())
}

/// Each row's versions with their hosts, most hosts first: one statement for a page.
async fn versions(db: &Db, row_keys: &[Vec<u8>]) -> Result<Vec<Vec<VersionHosts>>> {
    let mut out: Vec<Vec<VersionHosts>> = vec![Vec::new(); row_keys.len()];
    if row_keys.is_empty() {
        return Ok(out);
    }
    let (mut lows, mut highs) = (Vec::new(), Vec::new());
    for row_key in row_keys {
        let low = version_key(row_key, "");
        let mut high = low.clone();
        if let Some(last) = high.last_mut() {
            *last += 1;
        }
        lows.push(low);
        highs.push(high);
    }
    for r in rows(
        db,
        // LATERAL: one index range scan per row (a join the planner could turn into a
        // scan of every member).
        "SELECT t.i, m.member, m.n FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS t(lo, hi, i) \
         CROSS JOIN LATERAL (SELECT member, n FROM census_members \
                             WHERE member >= t.lo AND member < t.hi) m",
        &[&lows, &highs],
    )
    .await?
    {
        let i = usize::try_from(get::<i64>(&r, 0)? - 1)
            .map_err(|_| Error::internal("census row index out of range"))?;
        let member: Vec<u8> = get(&r, 1)?;
        let (Some(list), Some(low)) = (out.get_mut(i), lows.get(i)) else {
            continue;
        };
        let version = String::from_utf8_lossy(member.get(low.len()..).unwrap_or_default()).into_owned();
        list.push(VersionHosts {
            version,
            hosts: count(get(&r, 2)?),
        });
    }
    for list in &mut out {
        list.sort_by(|a, b| {
            b.hosts
                .cmp(&a.hosts)
                .then_with(|| a.version.cmp(&b.version))
        });
    }
    Ok(out)
}

pub(super) async fn list(
    db: &Db,
    org: OrgId,
    query: &CensusQuery,
) -> Result<Page<(Counts, Vec<VersionHosts>)>> {
    let group = i16::from(query.group.code());
    let total = row(
        db,
        "SELECT n FROM counts WHERE org = $1 AND key = $2",
        &[&org.0, &format!("C{group}")],
    )
    .await?
    .map(|r| get::<i64>(&r, 0))
    .transpose()?
    .map_or(0, count);
    let order = match (query.by_hosts, query.direction) {
        (true, Direction::Desc) => "hosts DESC, key",
        (true, Direction::Asc) => "hosts, key DESC",
        (false, Direction::Asc) => "key",
        (false, Direction::Desc) => "key DESC",
    };
    let (offset, size) = window(query.page, query.page_size);
    let found = rows(
        db,
        &format!(
            "SELECT key, doc FROM census WHERE org = $1 AND grp = $2 ORDER BY {order} \
             OFFSET $3 LIMIT $4"
        ),
        &[&org.0, &group, &offset, &size],
    )
    .await?;
    let mut counts = Vec::with_capacity(found.len());
    let mut row_keys = Vec::with_capacity(found.len());
    for r in &found {
        let key: Vec<u8> = get(r, 0)?;
        counts.push(doc::<Counts>(r, 1)?);
        row_keys.push(crate::store::tally::row_key(org, query.group, &key));
    }
    let versions = versions(db, &row_keys).await?;
    Ok(Page {
        items: counts.into_iter().zip(versions).collect(),
        total,
    })
}
