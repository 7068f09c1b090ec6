//! Notification channels and their deliveries: made when an event is appended (for
//! the channels that want it), due by time for the delivery job, and kept within the
//! bounds of [`crate::notify`].

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{ChannelId, OrgId};

use super::sql::{Db, count, doc, docs, exec, get, json, row, rows, window};
use crate::events::Event;
use crate::model::{Alert, Org};
use crate::notify::{self, Channel, Delivery, DeliveryStatus};
use crate::store::{DeliveryQuery, Error, Page, Result};

/// The most expired deliveries one new delivery removes.
const PRUNE_PER_DELIVERY: i64 = 4;

pub(super) async fn create_channel(db: &Db, channel: &Channel) -> Result<()> {
    exec(
        db,
        "INSERT INTO channels (org, id, doc) VALUES ($1, $2, $3)",
        &[&channel.org_id.0, &channel.id.0, &json(channel)?],
    )
    .await?;
    Ok(())
}

pub(super) async fn list_channels(db: &Db, org: OrgId) -> Result<Vec<Channel>> {
    docs(
        &rows(
            db,
            "SELECT doc FROM channels WHERE org = $1 ORDER BY id",
            &[&org.0],
        )
        .await?,
    )
}

pub(super) async fn get_channel(db: &Db, org: OrgId, id: ChannelId) -> Result<Channel> {
    let found = row(
        db,
        "SELECT doc FROM channels WHERE org = $1 AND id = $2",
        &[&org.0, &id.0],
    )
    .await?;
    doc(&found.ok_or(Error::NotFound)?, 0)
}

pub(super) async fn update_channel(db: &Db, channel: &Channel) -> Result<()> {
    let changed = exec(
        db,
        "UPDATE channels SET doc = $3 WHERE org = $1 AND id = $2",
        &[&channel.org_id.0, &channel.id.0, &json(channel)?],
    )
    .await?;
    if changed == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

pub(super) async fn delete_channel(db: &Db, org: OrgId, id: ChannelId) -> Result<()> {
    let removed = exec(
        db,
        "DELETE FROM channels WHERE org = $1 AND id = $2",
        &[&org.0, &id.0],
    )
    .await?;
    if removed == 0 {
        return Err(Error::NotFound);
    }
    let open: Vec<Delivery> = docs(
        &rows(
            db,
            "SELECT doc FROM deliveries WHERE org = $1 AND channel = $2 AND is_open FOR UPDATE",
            &[&org.0, &id.0],
        )
        .await?,
    )?;
    for mut d in open {
        d.status = DeliveryStatus::Failed;
        d.last_error = Some("the channel was deleted".to_owned());
        d.next_attempt_at = None;
        put_delivery(db, &d).await?;
    }
    Ok(())
}

/// Make a delivery of `event` for every channel of its organisation that wants it.
pub(super) async fn fan_out(db: &Db, event: &Event, now: DateTime<Utc>) -> Result<()> {
    let org = event.organization_id;
    // The organisation (its alert email) and its channels in one trip.
    let (mut channels, mut record): (Vec<Channel>, Option<Org>) = (Vec::new(), None);
    for r in rows(
        db,
        "SELECT false, doc FROM orgs WHERE id = $1 \
         UNION ALL (SELECT true, doc FROM channels WHERE org = $1 ORDER BY id)",
        &[&org.0],
    )
    .await?
    {
        if get::<bool>(&r, 0)? {
            channels.push(doc(&r, 1)?);
        } else {
            record = Some(doc(&r, 1)?);
        }
    }
    channels.extend(record.as_ref().and_then(notify::alert_email_channel));
    channels.retain(|c| notify::wants(c, event));
    for channel in channels {
        put_delivery(db, &Delivery::new(&channel, event, now)).await?;
        prune(db, org, now).await?;
    }
    Ok(())
}

/// A status's name as the API spells it.
fn status_name(status: DeliveryStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Insert a delivery's row, `conflict` saying what to do when its key is taken;
/// answers the rows written.
async fn write_delivery(db: &Db, d: &Delivery, conflict: &str) -> Result<u64> {
    let open = d.status.is_open();
    let due = d.next_attempt_at.filter(|_| open);
    exec(
        db,
        &format!(
            "INSERT INTO deliveries (org, id, channel, is_open, status, due, doc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT {conflict}"
        ),
        &[
            &d.org_id.0,
            &d.id.0,
            &d.channel_id.0,
            &open,
            &status_name(d.status),
            &due,
            &json(d)?,
        ],
    )
    .await
}

async fn put_delivery(db: &Db, d: &Delivery) -> Result<()> {
    write_delivery(
        db,
        d,
        "(org, id) DO UPDATE SET is_open = EXCLUDED.is_open, status = EXCLUDED.status, \
         due = EXCLUDED.due, doc = EXCLUDED.doc",
    )
    .await?;
    Ok(())
}

/// A delivery copied in from another store (kept if there already); answers 1 if new.
pub(super) async fn copy_in(db: &Db, d: &Delivery) -> Result<u64> {
    write_delivery(db, d, "DO NOTHING").await
}

/// Remove a few of the organisation's oldest deliveries that are done and beyond
/// the bounds.
async fn prune(db: &Db, org: OrgId, now: DateTime<Utc>) -> Result<()> {
    let kept = row(
        db,
        "SELECT n FROM counts WHERE org = $1 AND key = 'D'",
        &[&org.0],
    )
    .await?
    .map(|r| get::<i64>(&r, 0))
    .transpose()?
    .map_or(0, count);
    let oldest = rows(
        db,
        "SELECT doc FROM deliveries WHERE org = $1 ORDER BY id LIMIT $2",
        &[&org.0, &PRUNE_PER_DELIVERY],
    )
    .await?;
    let mut gone = 0u64;
    for r in &oldest {
        let d: Delivery = doc(r, 0)?;
        if notify::expired(&d, kept.saturating_sub(gone), now) {
            exec(
                db,
                "DELETE FROM deliveries WHERE org = $1 AND id = $2",
                &[&org.0, &d.id.0],
            )
            .await?;
            gone += 1;
        } else if !d.status.is_open() {
            break;
        }
    }
    Ok(())
}

pub(super) async fn due_deliveries(
    db: &Db,
    before: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Delivery>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    docs(
        &rows(
            db,
            "SELECT doc FROM deliveries WHERE due < $1 ORDER BY due, org, id LIMIT $2",
            &[&before, &limit],
        )
        .await?,
    )
}

pub(super) async fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>> {
    row(
        db,
        "SELECT due FROM deliveries WHERE due IS NOT NULL ORDER BY due LIMIT 1",
        &[],
    )
    .await?
    .map(|r| get(&r, 0))
    .transpose()
}

/// Store what an attempt gave (unless the delivery is no longer open: another
/// instance finished it, or its channel went); with `failure`, raise that alert.
pub(super) async fn record_attempt(
    db: &Db,
    delivery: &Delivery,
    failure: Option<&Alert>,
) -> Result<()> {
    let open = row(
        db,
        "SELECT 1 FROM deliveries WHERE org = $1 AND id = $2 AND is_open FOR UPDATE",
        &[&delivery.org_id.0, &delivery.id.0],
    )
    .await?;
    if open.is_none() {
        return Ok(());
    }
    put_delivery(db, delivery).await?;
    if let Some(alert) = failure {
        super::alerts::raise(db, alert).await?;
    }
    Ok(())
}

pub(super) async fn list_deliveries(
    db: &Db,
    org: OrgId,
    query: &DeliveryQuery,
) -> Result<Page<Delivery>> {
    let channel = query.channel_id.map(|c| c.0);
    let status = query.status.map(status_name);
    let where_clause =
        "org = $1 AND ($2::uuid IS NULL OR channel = $2) AND ($3::text IS NULL OR status = $3)";
    let total = row(
        db,
        &format!("SELECT count(*) FROM deliveries WHERE {where_clause}"),
        &[&org.0, &channel, &status],
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
                "SELECT doc FROM deliveries WHERE {where_clause} ORDER BY id DESC OFFSET $4 LIMIT $5"
            ),
            &[&org.0, &channel, &status, &offset, &size],
        )
        .await?,
    )?;
    Ok(Page { items, total })
}
