//! Servers: the records with their index columns, change history, verification,
//! policies, rescoring, counts by level, and the filtered, sorted, paged lists.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId, ServerId, UserId};
use mcpwatch_protocol::risk::RiskLevel;
use tokio_postgres::types::ToSql;

use super::sql::{Db, count, doc, docs, exec, get, json, row, rows, text, window};
use crate::ingest::{self, ServerWrite, rescore};
use crate::model::{
    LevelCounts, MAX_SERVER_CHANGES, OrgPolicy, Server, ServerChange, ServerStatus,
};
use crate::store::{Direction, Error, Page, Result, ServerQuery, ServerSort};

const SERVER_COLUMNS: &str = "org, id, agent, ident, rank, inv_score, status, name_lc, last_seen_at, rules_version, policy_version, doc";

/// Insert a server's row, `conflict` saying what to do when its key is taken;
/// answers the rows written.
async fn write_row(db: &Db, s: &Server, conflict: &str) -> Result<u64> {
    let ident = ingest::identity_key(&s.record).to_vec();
    exec(
        db,
        &format!(
            "INSERT INTO servers ({SERVER_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT {conflict}"
        ),
        &[
            &s.org_id.0,
            &s.id.0,
            &s.agent_id.0,
            &ident,
            &i16::from(s.risk_level.rank()),
            &(255 - i16::from(s.risk_score)),
            &i16::from(s.status.code()),
            &text(&s.record.server_name.to_lowercase()),
            &s.last_seen_at,
            &i32::try_from(s.rules_version).unwrap_or(i32::MAX),
            &i64::try_from(s.policy_version).unwrap_or(i64::MAX),
            &json(s)?,
        ],
    )
    .await
}

/// A server copied in from another store (kept if there already); answers 1 if new.
pub(super) async fn copy_in(db: &Db, s: &Server) -> Result<u64> {
    write_row(db, s, "DO NOTHING").await
}

/// Store a server write: the record, its index columns, its census change, its
/// history entry, and the agent's inventory revision.
pub(super) async fn put_server(db: &Db, write: &ServerWrite) -> Result<()> {
    store_server(db, write).await?;
    bump_revision(db, write.after.org_id, write.after.agent_id).await
}

/// Note that an agent's servers were written (optimistic report planning checks it).
pub(super) async fn bump_revision(db: &Db, org: OrgId, agent: AgentId) -> Result<()> {
    exec(
        db,
        "UPDATE agents SET inventory_rev = inventory_rev + 1 WHERE org = $1 AND id = $2",
        &[&org.0, &agent.0],
    )
    .await?;
    Ok(())
}

/// [`put_server`] without the revision (the caller bumps it once for many).
/// Its three statements (row, census change, history) are independent: sent together
/// (pipelined on the connection), they cost one trip.
pub(super) async fn store_server(db: &Db, write: &ServerWrite) -> Result<()> {
    let s = &write.after;
    let row = write_row(
        db,
        s,
        "(org, id) DO UPDATE SET rank = EXCLUDED.rank, inv_score = EXCLUDED.inv_score, \
         status = EXCLUDED.status, name_lc = EXCLUDED.name_lc, last_seen_at = EXCLUDED.last_seen_at, \
         rules_version = EXCLUDED.rules_version, policy_version = EXCLUDED.policy_version, \
         doc = EXCLUDED.doc",
    );
    let census = super::census::apply(db, write.before.as_ref(), Some(s));
    let history = async {
        match &write.change {
            Some(change) => record_change(db, s, change).await,
            None => Ok(()),
        }
    };
    tokio::try_join!(row, census, history)?;
    Ok(())
}

/// Store many server writes (of any servers) together, pipelined.
pub(super) async fn store_servers(db: &Db, writes: &[ServerWrite]) -> Result<()> {
    futures_util::future::try_join_all(writes.iter().map(|w| store_server(db, w))).await?;
    Ok(())
}

async fn record_change(db: &Db, s: &Server, change: &ServerChange) -> Result<()> {
    let seq = s
        .change_seq
        .checked_sub(1)
        .ok_or_else(|| Error::internal("a server change without a number"))?;
    let seq = i64::try_from(seq).map_err(|_| Error::internal("change number too large"))?;
    let keep = i64::try_from(MAX_SERVER_CHANGES).unwrap_or(i64::MAX);
    // The entry and the end of the oldest kept beyond the newest MAX, in one trip.
    exec(
        db,
        "WITH added AS (INSERT INTO server_changes (org, server, seq, doc) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org, server, seq) DO UPDATE SET doc = EXCLUDED.doc) \
         DELETE FROM server_changes WHERE org = $1 AND server = $2 AND seq <= $3::bigint - $5::bigint",
        &[&s.org_id.0, &s.id.0, &seq, &json(change)?, &keep],
    )
    .await?;
    Ok(())
}

/// Remove a server with its history (its census counts go too).
pub(super) async fn remove_server(db: &Db, server: &Server) -> Result<()> {
    super::census::apply(db, Some(server), None).await?;
    exec(
        db,
        "DELETE FROM servers WHERE org = $1 AND id = $2",
        &[&server.org_id.0, &server.id.0],
    )
    .await?;
    exec(
        db,
        "DELETE FROM server_changes WHERE org = $1 AND server = $2",
        &[&server.org_id.0, &server.id.0],
    )
    .await?;
    Ok(())
}

/// An agent's stored servers with their identities; `lock` takes their rows for
/// the rest of the transaction.
pub(super) async fn agent_servers(
    db: &Db,
    org: OrgId,
    agent: AgentId,
    lock: bool,
) -> Result<Vec<(Server, [u8; 32])>> {
    let sql = if lock {
        "SELECT doc, ident FROM servers WHERE org = $1 AND agent = $2 ORDER BY id FOR UPDATE"
    } else {
        "SELECT doc, ident FROM servers WHERE org = $1 AND agent = $2 ORDER BY id"
    };
    rows(db, sql, &[&org.0, &agent.0])
        .await?
        .iter()
        .map(|r| {
            let ident: Vec<u8> = get(r, 1)?;
            let ident = <[u8; 32]>::try_from(ident)
                .map_err(|_| Error::internal("server identity has the wrong length"))?;
            Ok((doc(r, 0)?, ident))
        })
        .collect()
}

/// The agent's servers dormant since before `before`, locked for removal: only those
/// are read, so that retention's hourly pass over every agent reads no records for
/// agents with nothing to remove.
pub(super) async fn dormant_servers(
    db: &Db,
    org: OrgId,
    agent: AgentId,
    before: DateTime<Utc>,
) -> Result<Vec<Server>> {
    let dormant = i16::from(ServerStatus::Dormant.code());
    let mut found = Vec::new();
    for r in rows(
        db,
        "SELECT doc FROM servers WHERE org = $1 AND agent = $2 AND status = $3 \
         AND last_seen_at < $4 ORDER BY id FOR UPDATE",
        &[&org.0, &agent.0, &dormant, &before],
    )
    .await?
    {
        let server: Server = doc(&r, 0)?;
        // A record that disagrees with its columns is left for `check` to name.
        if server.status == ServerStatus::Dormant && server.last_seen_at < before {
            found.push(server);
        }
    }
    Ok(found)
}

pub(super) async fn get_server(db: &Db, org: OrgId, server: ServerId) -> Result<Server> {
    let found = row(
        db,
        "SELECT doc FROM servers WHERE org = $1 AND id = $2",
        &[&org.0, &server.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

async fn server_for_write(db: &Db, org: OrgId, server: ServerId) -> Result<Server> {
    let found = row(
        db,
        "SELECT doc FROM servers WHERE org = $1 AND id = $2 FOR UPDATE",
        &[&org.0, &server.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

pub(super) async fn server_changes(
    db: &Db,
    org: OrgId,
    server: ServerId,
) -> Result<Vec<ServerChange>> {
    docs(
        &rows(
            db,
            "SELECT doc FROM server_changes WHERE org = $1 AND server = $2 ORDER BY seq",
            &[&org.0, &server.0],
        )
        .await?,
    )
}

pub(super) async fn set_server_verified(
    db: &Db,
    org: OrgId,
    server: ServerId,
    (verified, by, at): (bool, UserId, DateTime<Utc>),
) -> Result<Server> {
    let before = server_for_write(db, org, server).await?;
    let Some(write) = rescore::verification(&before, verified, by, at) else {
        return Ok(before);
    };
    put_server(db, &write).await?;
    Ok(write.after)
}

pub(super) async fn policy_of(db: &Db, org: OrgId) -> Result<OrgPolicy> {
    match row(db, "SELECT doc FROM policies WHERE org = $1", &[&org.0]).await? {
        Some(found) => doc(&found, 0),
        None => Ok(OrgPolicy::default()),
    }
}

pub(super) async fn put_policy(db: &Db, org: OrgId, mut policy: OrgPolicy) -> Result<OrgPolicy> {
    let current = row(
        db,
        "SELECT version FROM policies WHERE org = $1 FOR UPDATE",
        &[&org.0],
    )
    .await?;
    let version: i64 = current.map(|r| get(&r, 0)).transpose()?.unwrap_or(0);
    policy.version = count(version) + 1;
    let next = version + 1;
    exec(
        db,
        "INSERT INTO policies (org, version, doc) VALUES ($1, $2, $3) \
         ON CONFLICT (org) DO UPDATE SET version = EXCLUDED.version, doc = EXCLUDED.doc",
        &[&org.0, &next, &json(&policy)?],
    )
    .await?;
    Ok(policy)
}

pub(super) async fn server_counts(db: &Db, org: OrgId) -> Result<LevelCounts> {
    let mut out = LevelCounts::default();
    for r in rows(
        db,
        "SELECT key, n FROM counts WHERE org = $1 AND key LIKE 'S%'",
        &[&org.0],
    )
    .await?
    {
        let key: String = get(&r, 0)?;
        let level = key
            .get(1..2)
            .and_then(|d| d.parse().ok())
            .and_then(RiskLevel::from_rank);
        if let Some(level) = level {
            out.add(level, count(get(&r, 1)?));
        }
    }
    Ok(out)
}

pub(super) type Cursor = Option<(OrgId, ServerId)>;

/// Servers scored by an older rule set or policy, after `cursor`: up to `limit`
/// found, `scan_budget` read. Answers their keys and where to go on.
pub(super) async fn outdated_servers(
    db: &Db,
    cursor: Cursor,
    limit: usize,
    scan_budget: usize,
) -> Result<(Vec<(OrgId, ServerId)>, Cursor)> {
    let (org, id) = cursor.map_or((uuid::Uuid::nil(), uuid::Uuid::nil()), |(o, s)| (o.0, s.0));
    let budget = i64::try_from(scan_budget).unwrap_or(i64::MAX);
    // The versions only, not the records: a pass reads every server.
    let scanned = rows(
        db,
        "SELECT s.org, s.id, s.rules_version::bigint, s.policy_version, COALESCE(p.version, 0) \
         FROM servers s LEFT JOIN policies p ON p.org = s.org \
         WHERE (s.org, s.id) > ($1, $2) ORDER BY s.org, s.id LIMIT $3",
        &[&org, &id, &budget],
    )
    .await?;
    let mut keys = Vec::new();
    let mut last = None;
    for r in &scanned {
        let key = (OrgId(get(r, 0)?), ServerId(get(r, 1)?));
        let (rules, scored, policy): (i64, i64, i64) = (get(r, 2)?, get(r, 3)?, get(r, 4)?);
        last = Some(key);
        let rules = u32::try_from(rules).unwrap_or(u32::MAX);
        if ingest::scored_by_other(rules, count(scored), count(policy)) {
            keys.push(key);
            if keys.len() >= limit {
                return Ok((keys, last));
            }
        }
    }
    let next = if scanned.len() as u64 >= count(budget) {
        last
    } else {
        None
    };
    Ok((keys, next))
}

pub(super) async fn rescore_servers(
    db: &Db,
    keys: Vec<(OrgId, ServerId)>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut n = 0;
    let mut policies: HashMap<OrgId, OrgPolicy> = HashMap::new();
    for (org, id) in keys {
        let before = match server_for_write(db, org, id).await {
            Ok(server) => server,
            Err(Error::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let policy = match policies.entry(org) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(policy_of(db, org).await?),
        };
        let Some(rescored) = rescore::rescore(&before, policy, now) else {
            continue;
        };
        if let Some(alert) = &rescored.alert {
            super::alerts::raise(db, alert).await?;
        }
        put_server(db, &rescored.write).await?;
        n += 1;
    }
    Ok(n)
}

/// The `WHERE` clause and parameters of a server query's filters.
struct Filter {
    clause: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filter {
    fn of(org: OrgId, query: &ServerQuery) -> Self {
        let mut filter = Self {
            clause: "s.org = $1".into(),
            params: vec![Box::new(org.0)],
        };
        if let Some(agent) = query.agent_id {
            filter.push("s.agent = $", Box::new(agent.0));
        }
        if let Some(level) = query.risk_level {
            filter.push("s.rank = $", Box::new(i16::from(level.rank())));
        }
        if let Some(status) = query.status {
            filter.push("s.status = $", Box::new(i16::from(status.code())));
        }
        if let Some(needle) = &query.search {
            let pattern = format!("%{}%", like_escaped(&text(&needle.to_lowercase())));
            filter.push("s.name_lc LIKE $", Box::new(pattern));
        }
        filter
    }

    fn push(&mut self, condition: &str, param: Box<dyn ToSql + Sync + Send>) {
        self.params.push(param);
        self.clause
            .push_str(&format!(" AND {condition}{}", self.params.len()));
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `text` with LIKE's wildcards taken literally.
fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The `ORDER BY` of a server query (ties broken as the redb store breaks them).
fn order_of(query: &ServerQuery) -> String {
    let order = match query.sort {
        None | Some((ServerSort::RiskScore, Direction::Desc)) => "s.rank, s.inv_score, s.id",
        Some((ServerSort::RiskScore, Direction::Asc)) => "s.rank DESC, s.inv_score DESC, s.id DESC",
        Some((ServerSort::ServerName, Direction::Asc)) => r#"s.name_lc COLLATE "C", s.id"#,
        Some((ServerSort::ServerName, Direction::Desc)) => r#"s.name_lc COLLATE "C" DESC, s.id"#,
        Some((ServerSort::Hostname, Direction::Asc)) => return format!("{HOST}, s.id"),
        Some((ServerSort::Hostname, Direction::Desc)) => return format!("{HOST} DESC, s.id"),
        Some((ServerSort::FirstSeenAt, Direction::Asc)) => "s.id",
        Some((ServerSort::FirstSeenAt, Direction::Desc)) => "s.id DESC",
        Some((ServerSort::LastSeenAt, Direction::Asc)) => "s.last_seen_at, s.id",
        Some((ServerSort::LastSeenAt, Direction::Desc)) => "s.last_seen_at DESC, s.id",
    };
    order.to_owned()
}

/// The agent's host name (else its name), lowercased, for sorting by host.
const HOST: &str =
    "(SELECT a.host FROM agents a WHERE a.org = s.org AND a.id = s.agent) COLLATE \"C\"";

/// How many servers a query's filters match: the counts when only level and status
/// filter, else counted.
async fn total(db: &Db, org: OrgId, query: &ServerQuery, filter: &Filter) -> Result<u64> {
    if query.search.is_none() && query.agent_id.is_none() {
        let counts = rows(
            db,
            "SELECT key, n FROM counts WHERE org = $1 AND key LIKE 'S%'",
            &[&org.0],
        )
        .await?;
        let mut n = 0;
        for r in &counts {
            let key: String = get(r, 0)?;
            let level_ok = query
                .risk_level
                .is_none_or(|l| key.get(1..2) == Some(l.rank().to_string().as_str()));
            let status_ok = query
                .status
                .is_none_or(|s| key.get(3..) == Some(s.code().to_string().as_str()));
            if level_ok && status_ok {
                n += count(get(r, 1)?);
            }
        }
        return Ok(n);
    }
    let found = row(
        db,
        &format!("SELECT count(*) FROM servers s WHERE {}", filter.clause),
        &filter.params(),
    )
    .await?;
    Ok(found
        .map(|r| get::<i64>(&r, 0))
        .transpose()?
        .map_or(0, count))
}

pub(super) async fn list_servers(db: &Db, org: OrgId, query: &ServerQuery) -> Result<Page<Server>> {
    let filter = Filter::of(org, query);
    let total = total(db, org, query, &filter).await?;
    let (offset, size) = window(query.page, query.page_size);
    let sql = format!(
        "SELECT s.doc FROM servers s WHERE {} ORDER BY {} OFFSET {offset} LIMIT {size}",
        filter.clause,
        order_of(query)
    );
    let items = docs(&rows(db, &sql, &filter.params()).await?)?;
    Ok(Page { items, total })
}

/// Rows an export reads per query (keyset pages, so memory stays flat).
const EXPORT_PAGE: i64 = 200;

/// Every server matching `query`'s filters in risk order, a page at a time, handed to
/// `send` until it answers `false`.
pub(super) async fn export_servers(
    db: &Db,
    org: OrgId,
    query: &ServerQuery,
    send: tokio::sync::mpsc::Sender<Result<Server>>,
) -> Result<()> {
    let filter = Filter::of(org, query);
    let mut after: Option<(i16, i16, uuid::Uuid)> = None;
    loop {
        let bound = after;
        let mut params = filter.params();
        let mut clause = filter.clause.clone();
        if let Some(bound) = &bound {
            let n = params.len();
            clause.push_str(&format!(
                " AND (s.rank, s.inv_score, s.id) > (${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3
            ));
            params.push(&bound.0);
            params.push(&bound.1);
            params.push(&bound.2);
        }
        let sql = format!(
            "SELECT s.doc, s.rank, s.inv_score, s.id FROM servers s WHERE {clause} \
             ORDER BY s.rank, s.inv_score, s.id LIMIT {EXPORT_PAGE}"
        );
        let page = rows(db, &sql, &params).await?;
        for r in &page {
            after = Some((get(r, 1)?, get(r, 2)?, get(r, 3)?));
            if send.send(doc(r, 0)).await.is_err() {
                return Ok(());
            }
        }
        if (page.len() as i64) < EXPORT_PAGE {
            return Ok(());
        }
    }
}

/// Servers by level across every organisation (for the metrics).
pub(super) async fn fleet_levels(db: &Db) -> Result<LevelCounts> {
    let mut out = LevelCounts::default();
    for r in rows(
        db,
        "SELECT substr(key, 2, 1), sum(n)::bigint FROM counts WHERE key LIKE 'S%' GROUP BY 1",
        &[],
    )
    .await?
    {
        let rank: String = get(&r, 0)?;
        if let Some(level) = rank.parse().ok().and_then(RiskLevel::from_rank) {
            out.add(level, count(get(&r, 1)?));
        }
    }
    Ok(out)
}
