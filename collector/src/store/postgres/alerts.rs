//! Alerts: one open alert per subject and kind (a partial unique index), the open
//! count (kept by a trigger), dismissal, listing, and their removal by retention.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AlertId, OrgId, ServerId, UserId};

use super::sql::{Db, count, decode, doc, docs, exec, get, json, row, rows, uuid, window};
use crate::alerts as rules;
use crate::events::{AlertContext, EventName};
use crate::model::{Agent, Alert, Server};
use crate::store::{AlertQuery, AlertSort, Direction, Error, FleetGauges, Page, Result};

/// Insert an alert's row with its index columns, `conflict` saying what to do when
/// its key is taken; answers the rows written.
async fn write_alert(db: &Db, alert: &Alert, conflict: &str) -> Result<u64> {
    exec(
        db,
        &format!(
            "INSERT INTO alerts (org, id, subject, kind, severity, dismissed, server, created_at, \
             updated_at, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT {conflict}"
        ),
        &[
            &alert.org_id.0,
            &alert.id.0,
            &uuid(alert.subject()),
            &i16::from(alert.kind.code()),
            &i16::from(alert.severity.rank()),
            &alert.dismissed,
            &alert.server_id.map(|s| s.0),
            &alert.created_at,
            &alert.updated_at.unwrap_or(alert.created_at),
            &json(alert)?,
        ],
    )
    .await
}

/// Store an alert (new or changed).
async fn put_alert(db: &Db, alert: &Alert) -> Result<()> {
    write_alert(
        db,
        alert,
        "(org, id) DO UPDATE SET severity = EXCLUDED.severity, dismissed = EXCLUDED.dismissed, \
         updated_at = EXCLUDED.updated_at, doc = EXCLUDED.doc",
    )
    .await?;
    Ok(())
}

/// An alert copied in from another store (kept if there already); answers 1 if new.
pub(super) async fn copy_in(db: &Db, alert: &Alert) -> Result<u64> {
    write_alert(db, alert, "DO NOTHING").await
}

/// Raise an alert, unless one of the same kind is open for the same subject: then
/// that one is updated as [`rules::repeat`] says. Answers whether a new alert was
/// created.
pub(super) async fn raise(db: &Db, alert: &Alert) -> Result<bool> {
    let open = row(
        db,
        "SELECT doc FROM alerts WHERE org = $1 AND subject = $2 AND kind = $3 AND NOT dismissed \
         FOR UPDATE",
        &[
            &alert.org_id.0,
            &uuid(alert.subject()),
            &i16::from(alert.kind.code()),
        ],
    )
    .await?;
    if let Some(open) = open {
        let mut previous: Alert = doc(&open, 0)?;
        rules::repeat(&mut previous, alert.clone());
        put_alert(db, &previous).await?;
        append_event(db, &previous, EventName::AlertUpdated, alert.created_at).await?;
        return Ok(false);
    }
    put_alert(db, alert).await?;
    append_event(db, alert, EventName::AlertCreated, alert.created_at).await?;
    Ok(true)
}

/// Record the event of an alert's change, with its server and agent as stored now.
async fn append_event(db: &Db, alert: &Alert, event: EventName, at: DateTime<Utc>) -> Result<()> {
    // Both read in one trip.
    let found = row(
        db,
        "SELECT (SELECT doc FROM servers WHERE org = $1 AND id = $2), \
                (SELECT doc FROM agents WHERE org = $1 AND id = $3)",
        &[
            &alert.org_id.0,
            &alert.server_id.map(|s| s.0),
            &alert.agent_id.map(|a| a.0),
        ],
    )
    .await?
    .ok_or_else(|| Error::internal("the alert's context answered nothing"))?;
    let bytes = |i: usize| get::<Option<Vec<u8>>>(&found, i);
    let server: Option<Server> = bytes(0)?.map(|b| decode(&b)).transpose()?;
    let agent: Option<Agent> = bytes(1)?.map(|b| decode(&b)).transpose()?;
    let context = AlertContext {
        server: server.as_ref(),
        agent: agent.as_ref(),
    };
    super::events::append(db, crate::events::alert_changed(alert, event, context), at).await?;
    Ok(())
}

/// The `ORDER BY` of an alert query (ties broken by id).
fn order_of(query: &AlertQuery) -> &'static str {
    match query.sort {
        None => "id DESC",
        Some((AlertSort::CreatedAt, Direction::Asc)) => "created_at, id",
        Some((AlertSort::CreatedAt, Direction::Desc)) => "created_at DESC, id",
        Some((AlertSort::UpdatedAt, Direction::Asc)) => "updated_at, id",
        Some((AlertSort::UpdatedAt, Direction::Desc)) => "updated_at DESC, id",
        // The rank runs from critical (0) to low (3): ascending severity is descending rank.
        Some((AlertSort::Severity, Direction::Asc)) => "severity DESC, id",
        Some((AlertSort::Severity, Direction::Desc)) => "severity, id",
    }
}

pub(super) async fn list_alerts(db: &Db, org: OrgId, query: &AlertQuery) -> Result<Page<Alert>> {
    let severity = query.severity.map(|s| i16::from(s.rank()));
    let where_clause = "org = $1 AND ($2::smallint IS NULL OR severity = $2) \
                        AND ($3::boolean IS NULL OR dismissed = $3)";
    let total = row(
        db,
        &format!("SELECT count(*) FROM alerts WHERE {where_clause}"),
        &[&org.0, &severity, &query.dismissed],
    )
    .await?
    .map(|r| get::<i64>(&r, 0))
    .transpose()?
    .map_or(0, count);
    let (offset, size) = window(query.page, query.page_size);
    let items = docs(
        &rows(
            db,
            &format!(
                "SELECT doc FROM alerts WHERE {where_clause} ORDER BY {} OFFSET $4 LIMIT $5",
                order_of(query)
            ),
            &[&org.0, &severity, &query.dismissed, &offset, &size],
        )
        .await?,
    )?;
    Ok(Page { items, total })
}

pub(super) async fn dismiss_alert(
    db: &Db,
    org: OrgId,
    alert: AlertId,
    (by, at): (UserId, DateTime<Utc>),
) -> Result<Alert> {
    let found = row(
        db,
        "SELECT doc FROM alerts WHERE org = $1 AND id = $2 FOR UPDATE",
        &[&org.0, &alert.0],
    )
    .await?;
    let mut record: Alert = doc(&found.ok_or(Error::NotFound)?, 0)?;
    if !record.dismissed {
        rules::dismiss(&mut record, by, at);
        put_alert(db, &record).await?;
        append_event(db, &record, EventName::AlertDismissed, at).await?;
    }
    Ok(record)
}

pub(super) async fn dismiss_all_alerts(
    db: &Db,
    org: OrgId,
    by: UserId,
    at: DateTime<Utc>,
) -> Result<u64> {
    let open: Vec<Alert> = docs(
        &rows(
            db,
            "SELECT doc FROM alerts WHERE org = $1 AND NOT dismissed ORDER BY id DESC FOR UPDATE",
            &[&org.0],
        )
        .await?,
    )?;
    let mut dismissed = 0;
    for mut record in open {
        rules::dismiss(&mut record, by, at);
        put_alert(db, &record).await?;
        append_event(db, &record, EventName::AlertDismissed, at).await?;
        dismissed += 1;
    }
    Ok(dismissed)
}

pub(super) async fn open_alert_count(db: &Db, org: OrgId) -> Result<u64> {
    let found = row(
        db,
        "SELECT n FROM counts WHERE org = $1 AND key = 'A'",
        &[&org.0],
    )
    .await?;
    Ok(found
        .map(|r| get::<i64>(&r, 0))
        .transpose()?
        .map_or(0, count))
}

/// Figures across every organisation, for the metrics.
pub(super) async fn fleet_gauges(db: &Db) -> Result<FleetGauges> {
    let mut out = FleetGauges {
        servers: super::servers::fleet_levels(db).await?,
        ..FleetGauges::default()
    };
    for r in rows(
        db,
        "SELECT severity, count(*) FROM alerts WHERE NOT dismissed GROUP BY severity",
        &[],
    )
    .await?
    {
        let rank: i16 = get(&r, 0)?;
        if let Some(slot) = usize::try_from(rank)
            .ok()
            .and_then(|i| out.open_alerts.get_mut(i))
        {
            *slot = count(get(&r, 1)?);
        }
    }
    let one = |sql: &'static str| async move {
        let found = row(db, sql, &[]).await?;
        Ok::<u64, Error>(
            found
                .map(|r| get::<i64>(&r, 0))
                .transpose()?
                .map_or(0, count),
        )
    };
    out.agents = one("SELECT count(*) FROM agents").await?;
    out.pending_deliveries = one("SELECT count(*) FROM deliveries WHERE due IS NOT NULL").await?;
    out.database_bytes = one("SELECT pg_database_size(current_database())").await?;
    Ok(out)
}

/// Remove the alerts about `servers` (retention); answers how many went.
pub(super) async fn remove_alerts_of(db: &Db, org: OrgId, servers: &[ServerId]) -> Result<u64> {
    let ids: Vec<uuid::Uuid> = servers.iter().map(|s| s.0).collect();
    exec(
        db,
        "DELETE FROM alerts WHERE org = $1 AND server = ANY($2)",
        &[&org.0, &ids],
    )
    .await
}

/// Delete alerts dismissed before `before`, reading up to `rows` alerts after
/// `cursor` (an org·alert key); answers how many went and where to go on.
pub(super) async fn prune_dismissed(
    db: &Db,
    before: DateTime<Utc>,
    cursor: Option<Vec<u8>>,
    limit: usize,
) -> Result<(u64, Option<Vec<u8>>)> {
    let (org, id) = split_cursor(cursor.as_deref())?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let batch = rows(
        db,
        "SELECT org, id, dismissed, doc FROM alerts WHERE (org, id) > ($1, $2) \
         ORDER BY org, id LIMIT $3",
        &[&org, &id, &limit],
    )
    .await?;
    let next = if batch.len() as i64 == limit {
        batch
            .last()
            .map(|r| -> Result<Vec<u8>> {
                let (o, i): (uuid::Uuid, uuid::Uuid) = (get(r, 0)?, get(r, 1)?);
                Ok([o.as_bytes().as_slice(), i.as_bytes()].concat())
            })
            .transpose()?
    } else {
        None
    };
    let mut removed = 0;
    for r in &batch {
        let alert: Alert = doc(r, 3)?;
        if alert.dismissed && alert.dismissed_at.unwrap_or(alert.created_at) < before {
            removed += exec(
                db,
                "DELETE FROM alerts WHERE org = $1 AND id = $2",
                &[&alert.org_id.0, &alert.id.0],
            )
            .await?;
        }
    }
    Ok((removed, next))
}

/// A retention cursor: org·id (nil ids before the first).
pub(super) fn split_cursor(cursor: Option<&[u8]>) -> Result<(uuid::Uuid, uuid::Uuid)> {
    let Some(cursor) = cursor else {
        return Ok((uuid::Uuid::nil(), uuid::Uuid::nil()));
    };
    let part = |range: std::ops::Range<usize>| {
        cursor
            .get(range)
            .and_then(|b| uuid::Uuid::from_slice(b).ok())
            .ok_or_else(|| Error::internal("retention cursor has the wrong length"))
    };
    Ok((part(0..16)?, part(16..32)?))
}
