//! The census's counts, kept at write time as the embedded store keeps them (see
//! [`crate::store::tally`]): a server write queues its change in its own transaction;
//! [`drain`] claims queued changes (`FOR UPDATE SKIP LOCKED`, so that instances
//! draining at once never count one twice) and counts them in.

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

/// Claim and count up to `limit` queued changes, oldest first; answers how many.
pub(super) async fn drain(db: &Db, limit: usize) -> Result<usize> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let claimed = rows(
        db,
        "DELETE FROM census_queue WHERE seq IN \
         (SELECT seq FROM census_queue ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING doc",
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

/// Change a member counter by `delta`; answers the distinct-member transition.
async fn member(db: &Db, key: &[u8], delta: i64) -> Result<i64> {
    let found = row(
        db,
        "INSERT INTO census_members (member, n) VALUES ($1, $2) \
         ON CONFLICT (member) DO UPDATE SET n = GREATEST(census_members.n + EXCLUDED.n, 0) \
         RETURNING n",
        &[&key, &delta],
    )
    .await?
    .ok_or_else(|| Error::internal("census member upsert answered nothing"))?;
    let new: i64 = get(&found, 0)?;
    let old = (new - delta).max(0);
    if new == 0 {
        exec(db, "DELETE FROM census_members WHERE member = $1", &[&key]).await?;
    }
    Ok(transition(count(old), count(new)))
}

async fn count_changes(db: &Db, changes: &[Change]) -> Result<()> {
    let Tally { rows, members } = tally(changes);
    let mut moved: BTreeMap<Vec<u8>, [i64; 4]> = BTreeMap::new();
    for (key, m) in members {
        if m.delta == 0 {
            continue;
        }
        let change = member(db, &key, m.delta).await?;
        if change == 0 {
            continue;
        }
        match m.kind.counter_index() {
            Some(i) => moved.entry(m.row).or_default()[i] += change,
            None => {
                if let Some(version) = m.version {
                    member(db, &version_key(&m.row, &version), change).await?;
                }
            }
        }
    }
    for (row_key, change) in rows {
        let counters = moved.remove(&row_key).unwrap_or_default();
        write_row(db, &row_key, &change, counters).await?;
    }
    Ok(())
}

/// Store a row's new counts; a row left without servers goes.
async fn write_row(db: &Db, row_key: &[u8], change: &RowChange, counters: [i64; 4]) -> Result<()> {
    if change.is_empty(counters) {
        return Ok(());
    }
    let (org, key) =
        split_row(row_key).ok_or_else(|| Error::internal("census row key is too short"))?;
    let group = i16::from(change.mark.group.code());
    let stored = row(
        db,
        "SELECT doc FROM census WHERE org = $1 AND grp = $2 AND key = $3 FOR UPDATE",
        &[&org.0, &group, &key],
    )
    .await?;
    let mut counts: Counts = stored.map(|r| doc(&r, 0)).transpose()?.unwrap_or_default();
    counts.apply(
        &change.mark,
        change.servers,
        change.levels,
        counters,
        change.seen,
    );
    if counts.servers == 0 {
        exec(
            db,
            "DELETE FROM census WHERE org = $1 AND grp = $2 AND key = $3",
            &[&org.0, &group, &key],
        )
        .await?;
        return Ok(());
    }
    let hosts = i64::try_from(counts.hosts).unwrap_or(i64::MAX);
    exec(
        db,
        "INSERT INTO census (org, grp, key, hosts, doc) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (org, grp, key) DO UPDATE SET hosts = EXCLUDED.hosts, doc = EXCLUDED.doc",
        &[&org.0, &group, &key, &hosts, &json(&counts)?],
    )
    .await?;
    Ok(())
}

/// A row's versions with their hosts, most hosts first.
async fn versions(db: &Db, row_key: &[u8]) -> Result<Vec<VersionHosts>> {
    let prefix = version_key(row_key, "");
    let mut upper = prefix.clone();
    if let Some(last) = upper.last_mut() {
        *last += 1;
    }
    let mut out = Vec::new();
    for r in rows(
        db,
        "SELECT member, n FROM census_members WHERE member >= $1 AND member < $2",
        &[&prefix, &upper],
    )
    .await?
    {
        let member: Vec<u8> = get(&r, 0)?;
        let version = String::from_utf8_lossy(&member[prefix.len()..]).into_owned();
        out.push(VersionHosts {
            version,
            hosts: count(get(&r, 1)?),
        });
    }
    out.sort_by(|a, b| {
        b.hosts
            .cmp(&a.hosts)
            .then_with(|| a.version.cmp(&b.version))
    });
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
    let mut items = Vec::with_capacity(found.len());
    for r in &found {
        let key: Vec<u8> = get(r, 0)?;
        let counts: Counts = doc(r, 1)?;
        let row_key = crate::store::tally::row_key(org, query.group, &key);
        items.push((counts, versions(db, &row_key).await?));
    }
    Ok(Page { items, total })
}
