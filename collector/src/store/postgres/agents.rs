//! Agents, their keys and presence (which makes their servers active or dormant),
//! enroll secrets, and the retention of dormant servers.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, EnrollSecretId, OrgId, ServerId};

use super::sql::{Db, count, doc, docs, exec, get, is_unique_violation, json, row, rows, text};
use super::{alerts, servers};
use crate::ingest::agent::{self as rules, HeartbeatUpdate};
use crate::model::{Agent, EnrollSecret};
use crate::store::{Error, Result};

const KEY_COLLISION: Error = Error::Conflict("api key collision");

/// The agent's host name (else its name), lowercased: the servers' sort by host.
fn host_of(agent: &Agent) -> String {
    text(
        &agent
            .facts
            .hostname
            .as_deref()
            .unwrap_or(&agent.name)
            .to_lowercase(),
    )
}

/// Insert an agent's row (`copy`: kept if its key is taken); answers the rows written.
async fn write_agent(
    db: &Db,
    agent: &Agent,
    doc: &[u8],
    copy: bool,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sql = if copy {
        "INSERT INTO agents (org, id, key_hash, last_seen, host, doc, silent_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
    } else {
        "INSERT INTO agents (org, id, key_hash, last_seen, host, doc, silent_since) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    };
    let statement = db.prepare_cached(sql).await?;
    db.execute(
        &statement,
        &[
            &agent.org_id.0,
            &agent.id.0,
            &agent.key_hash.as_slice(),
            &agent.last_seen_at,
            &host_of(agent),
            &doc,
            &rules::silent_since(agent),
        ],
    )
    .await
}

async fn insert_agent(db: &Db, agent: &Agent) -> Result<()> {
    match write_agent(db, agent, &json(agent)?, false).await {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(KEY_COLLISION),
        Err(e) => Err(e.into()),
    }
}

/// An agent copied in from another store (kept if there already); answers 1 if new.
pub(super) async fn copy_in(db: &Db, agent: &Agent) -> Result<u64> {
    Ok(write_agent(db, agent, &json(agent)?, true).await?)
}

pub(super) async fn create_agent(db: &Db, agent: &Agent) -> Result<()> {
    insert_agent(db, agent).await?;
    super::events::append(db, crate::events::agent_enrolled(agent), agent.created_at).await?;
    Ok(())
}

pub(super) async fn enroll_agent(
    db: &Db,
    secret_hash: [u8; 32],
    mut agent: Agent,
    now: DateTime<Utc>,
) -> Result<Agent> {
    let found = row(
        db,
        "SELECT doc FROM enroll_secrets WHERE secret_hash = $1 FOR UPDATE",
        &[&secret_hash.as_slice()],
    )
    .await?
    .ok_or(Error::InvalidEnrollSecret)?;
    let mut secret: EnrollSecret = doc(&found, 0)?;
    if secret.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::InvalidEnrollSecret);
    }
    agent.org_id = secret.org_id;
    insert_agent(db, &agent).await?;
    super::events::append(db, crate::events::agent_enrolled(&agent), now).await?;
    secret.enrolled_count += 1;
    exec(
        db,
        "UPDATE enroll_secrets SET doc = $3 WHERE org = $1 AND id = $2",
        &[&secret.org_id.0, &secret.id.0, &json(&secret)?],
    )
    .await?;
    Ok(agent)
}

pub(super) async fn find_agent_by_key(db: &Db, key_hash: [u8; 32]) -> Result<Option<Agent>> {
    row(
        db,
        "SELECT doc FROM agents WHERE key_hash = $1",
        &[&key_hash.as_slice()],
    )
    .await?
    .map(|r| doc(&r, 0))
    .transpose()
}

pub(super) async fn get_agent(db: &Db, org: OrgId, agent: AgentId) -> Result<Agent> {
    let found = row(
        db,
        "SELECT doc FROM agents WHERE org = $1 AND id = $2",
        &[&org.0, &agent.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

/// The agent's record, locked for the rest of the transaction.
pub(super) async fn agent_for_write(db: &Db, org: OrgId, agent: AgentId) -> Result<Agent> {
    let found = row(
        db,
        "SELECT doc FROM agents WHERE org = $1 AND id = $2 FOR UPDATE",
        &[&org.0, &agent.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

pub(super) async fn put_agent(db: &Db, agent: &Agent) -> Result<()> {
    exec(
        db,
        "UPDATE agents SET last_seen = $3, host = $4, doc = $5, silent_since = $6 \
         WHERE org = $1 AND id = $2",
        &[
            &agent.org_id.0,
            &agent.id.0,
            &agent.last_seen_at,
            &host_of(agent),
            &json(agent)?,
            &rules::silent_since(agent),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn list_agents(db: &Db, org: OrgId) -> Result<Vec<Agent>> {
    docs(
        &rows(
            db,
            "SELECT doc FROM agents WHERE org = $1 ORDER BY id",
            &[&org.0],
        )
        .await?,
    )
}

pub(super) async fn agent_count(db: &Db, org: OrgId) -> Result<u64> {
    let found = row(db, "SELECT count(*) FROM agents WHERE org = $1", &[&org.0]).await?;
    Ok(found
        .map(|r| get::<i64>(&r, 0))
        .transpose()?
        .map_or(0, count))
}

/// Make the agent's snapshot servers active or dormant.
async fn set_presence(db: &Db, org: OrgId, agent: AgentId, active: bool) -> Result<()> {
    for (server, _) in servers::agent_servers(db, org, agent, true).await? {
        if let Some(write) = rules::presence(&server, active) {
            servers::put_server(db, &write).await?;
        }
    }
    Ok(())
}

/// The agent was heard from: if it was silent, its servers are active again.
pub(super) async fn heard_from(db: &Db, record: &mut Agent) -> Result<()> {
    if rules::heard_from(record) {
        set_presence(db, record.org_id, record.id, true).await?;
    }
    Ok(())
}

pub(super) async fn delete_agent(
    db: &Db,
    org: OrgId,
    agent: AgentId,
    now: DateTime<Utc>,
) -> Result<()> {
    let record = agent_for_write(db, org, agent).await?;
    for (server, _) in servers::agent_servers(db, org, agent, true).await? {
        servers::remove_server(db, &server).await?;
    }
    exec(
        db,
        "DELETE FROM agents WHERE org = $1 AND id = $2",
        &[&org.0, &agent.0],
    )
    .await?;
    super::events::append(db, crate::events::agent_deleted(&record), now).await?;
    Ok(())
}

pub(super) async fn record_heartbeat(
    db: &Db,
    org: OrgId,
    agent: AgentId,
    update: HeartbeatUpdate,
) -> Result<Agent> {
    let mut record = agent_for_write(db, org, agent).await?;
    rules::heartbeat(&mut record, update);
    heard_from(db, &mut record).await?;
    put_agent(db, &record).await?;
    Ok(record)
}

/// How many agents' `silent_since` disagrees with their record (by more than the
/// column's rounding to microseconds), for the consistency check.
pub(super) async fn silent_since_out_of_date(db: &Db) -> Result<u64> {
    let mut out = 0;
    for r in rows(db, "SELECT doc, silent_since FROM agents", &[]).await? {
        let agent: Agent = doc(&r, 0)?;
        let held: Option<DateTime<Utc>> = get(&r, 1)?;
        let agrees = match (rules::silent_since(&agent), held) {
            (None, None) => true,
            (Some(at), Some(held)) => (at - held).num_microseconds().is_some_and(|d| d.abs() <= 1),
            _ => false,
        };
        out += u64::from(!agrees);
    }
    Ok(out)
}

pub(super) async fn agents_seen_since(
    db: &Db,
    since: DateTime<Utc>,
) -> Result<Vec<(OrgId, AgentId, DateTime<Utc>)>> {
    // The column is rounded to microseconds; the record keeps the exact time.
    let recent: Vec<Agent> = docs(
        &rows(
            db,
            "SELECT doc FROM agents WHERE last_seen >= $1::timestamptz - interval '1 millisecond'",
            &[&since],
        )
        .await?,
    )?;
    Ok(recent
        .into_iter()
        .filter_map(|a| {
            a.last_seen_at
                .filter(|at| *at >= since)
                .map(|at| (a.org_id, a.id, at))
        })
        .collect())
}

/// The newest `silent_since`, exact from its record (the column is rounded to
/// microseconds).
pub(super) async fn newest_silent_since(db: &Db) -> Result<Option<DateTime<Utc>>> {
    let newest = row(
        db,
        "SELECT doc FROM agents WHERE silent_since IS NOT NULL \
         ORDER BY silent_since DESC LIMIT 1",
        &[],
    )
    .await?;
    Ok(match newest {
        Some(r) => rules::silent_since(&doc::<Agent>(&r, 0)?),
        None => None,
    })
}

/// Up to `limit` agents silent since before `cutoff`, silent longest first: those
/// whose `silent_since` is before it, each checked against its record (the column is
/// rounded to microseconds).
pub(super) async fn silent_agents(
    db: &Db,
    cutoff: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<(OrgId, AgentId)>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let candidates: Vec<Agent> = docs(
        &rows(
            db,
            "SELECT doc FROM agents \
             WHERE silent_since < $1::timestamptz + interval '1 millisecond' \
             ORDER BY silent_since LIMIT $2",
            &[&cutoff, &limit],
        )
        .await?,
    )?;
    Ok(candidates
        .into_iter()
        .filter(|a| rules::is_silent(a, cutoff))
        .map(|a| (a.org_id, a.id))
        .collect())
}

pub(super) async fn mark_silent(
    db: &Db,
    candidates: Vec<(OrgId, AgentId)>,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<(OrgId, AgentId)>> {
    let mut marked = Vec::new();
    for (org, id) in candidates {
        let mut agent = match agent_for_write(db, org, id).await {
            Ok(agent) => agent,
            Err(Error::NotFound) => continue,
            Err(e) => return Err(e),
        };
        // Heard from since the read (here or on another instance): not silent.
        if !rules::is_silent(&agent, cutoff) {
            continue;
        }
        let alert = rules::silenced(&mut agent, cutoff, now);
        set_presence(db, org, id, false).await?;
        alerts::raise(db, &alert).await?;
        super::events::append(db, crate::events::agent_silent(&agent, cutoff), now).await?;
        put_agent(db, &agent).await?;
        marked.push((org, id));
    }
    Ok(marked)
}

/// Save last-seen times kept in memory (only ever moving them forward).
pub(super) async fn touch_agents(
    db: &Db,
    seen: Vec<(OrgId, AgentId, DateTime<Utc>)>,
) -> Result<()> {
    for (org, agent, at) in seen {
        let mut record = match agent_for_write(db, org, agent).await {
            Ok(record) => record,
            Err(Error::NotFound) => continue,
            Err(e) => return Err(e),
        };
        if record.last_seen_at.is_none_or(|prev| prev < at) {
            record.last_seen_at = Some(at);
            put_agent(db, &record).await?;
        }
    }
    Ok(())
}

pub(super) async fn create_enroll_secret(db: &Db, secret: &EnrollSecret) -> Result<()> {
    let statement = db
        .prepare_cached(
            "INSERT INTO enroll_secrets (org, id, secret_hash, doc) VALUES ($1, $2, $3, $4)",
        )
        .await?;
    match db
        .execute(
            &statement,
            &[
                &secret.org_id.0,
                &secret.id.0,
                &secret.secret_hash.as_slice(),
                &json(secret)?,
            ],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(Error::Conflict("enroll secret collision")),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn list_enroll_secrets(db: &Db, org: OrgId) -> Result<Vec<EnrollSecret>> {
    docs(
        &rows(
            db,
            "SELECT doc FROM enroll_secrets WHERE org = $1 ORDER BY id",
            &[&org.0],
        )
        .await?,
    )
}

pub(super) async fn delete_enroll_secret(db: &Db, org: OrgId, id: EnrollSecretId) -> Result<()> {
    let removed = exec(
        db,
        "DELETE FROM enroll_secrets WHERE org = $1 AND id = $2",
        &[&org.0, &id.0],
    )
    .await?;
    if removed == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Delete dormant servers last seen before `before` (with their history and alerts),
/// visiting up to `limit` agents after `cursor` (org·agent).
pub(super) async fn prune_dormant(
    db: &Db,
    before: DateTime<Utc>,
    cursor: Option<Vec<u8>>,
    limit: usize,
) -> Result<(u64, u64, Option<Vec<u8>>)> {
    let (org, id) = alerts::split_cursor(cursor.as_deref())?;
    let n = i64::try_from(limit).unwrap_or(i64::MAX);
    let batch = rows(
        db,
        "SELECT org, id FROM agents WHERE (org, id) > ($1, $2) ORDER BY org, id LIMIT $3",
        &[&org, &id, &n],
    )
    .await?;
    let mut keys = Vec::with_capacity(batch.len());
    for r in &batch {
        keys.push((get::<uuid::Uuid>(r, 0)?, get::<uuid::Uuid>(r, 1)?));
    }
    let next = (keys.len() == limit)
        .then(|| {
            keys.last()
                .map(|(o, a)| [o.as_bytes().as_slice(), a.as_bytes()].concat())
        })
        .flatten();
    let (mut servers_gone, mut alerts_gone) = (0, 0);
    for (org, agent) in keys {
        let (org, agent) = (OrgId(org), AgentId(agent));
        let mut gone: Vec<ServerId> = Vec::new();
        for server in servers::dormant_servers(db, org, agent, before).await? {
            servers::remove_server(db, &server).await?;
            gone.push(server.id);
        }
        if !gone.is_empty() {
            servers_gone += gone.len() as u64;
            alerts_gone += alerts::remove_alerts_of(db, org, &gone).await?;
        }
    }
    Ok((servers_gone, alerts_gone, next))
}
