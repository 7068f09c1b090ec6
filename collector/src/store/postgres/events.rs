//! The outbox: events appended in the transaction of the change that caused them,
//! numbered by one sequence, kept per organisation within the bounds of
//! [`crate::events`], and the signal that wakes live readers: after this instance's
//! commits, and by a poll for the events other instances append.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::OrgId;
use tokio::sync::watch;

use super::sql::{Db, doc, docs, exec, get, json, row, rows};
use crate::events::{self, Draft, Event, MAX_EVENTS_PER_ORG};
use crate::store::Result;

/// The most expired events one append removes (so an append stays cheap).
const PRUNE_PER_APPEND: i64 = 8;

/// How often an instance looks for events appended by the others.
pub(super) const POLL: Duration = Duration::from_secs(1);

/// Record `draft` at `now` and let the organisation's oldest events go beyond the
/// outbox's bounds; make its deliveries. Answers the event's id.
pub(super) async fn append(db: &Db, draft: Draft, now: DateTime<Utc>) -> Result<u64> {
    let next = row(db, "SELECT nextval('event_seq')", &[]).await;
    let id: i64 = get(
        &next?.ok_or_else(|| crate::store::Error::internal("no event id"))?,
        0,
    )?;
    let org = draft.organization_id;
    let event = draft.numbered(super::sql::count(id), now);
    exec(
        db,
        "INSERT INTO events (org, id, at, doc) VALUES ($1, $2, $3, $4)",
        &[&org.0, &id, &now, &json(&event)?],
    )
    .await?;
    prune(db, org, now).await?;
    super::notifications::fan_out(db, &event, now).await?;
    Ok(event.id)
}

/// Remove the organisation's oldest events while there are too many or they are too
/// old (a few per call): one trip to see whether any must go, one to remove them.
async fn prune(db: &Db, org: OrgId, now: DateTime<Utc>) -> Result<()> {
    let found = row(
        db,
        "SELECT COALESCE((SELECT n FROM counts WHERE org = $1 AND key = 'E'), 0), \
                (SELECT doc FROM events WHERE org = $1 ORDER BY id LIMIT 1)",
        &[&org.0],
    )
    .await?
    .ok_or_else(|| crate::store::Error::internal("the outbox's size answered nothing"))?;
    let kept = super::sql::count(get(&found, 0)?);
    let oldest: Option<Event> = get::<Option<Vec<u8>>>(&found, 1)?
        .map(|b| super::sql::decode(&b))
        .transpose()?;
    let Some(oldest) = oldest else {
        return Ok(());
    };
    if kept <= MAX_EVENTS_PER_ORG && !events::expired(oldest.timestamp, now) {
        return Ok(());
    }
    let oldest = rows(
        db,
        "SELECT id, doc FROM events WHERE org = $1 ORDER BY id LIMIT $2",
        &[&org.0, &PRUNE_PER_APPEND],
    )
    .await?;
    let mut left = kept;
    let mut gone: Vec<i64> = Vec::new();
    for r in &oldest {
        let event: Event = doc(r, 1)?;
        if left <= MAX_EVENTS_PER_ORG && !events::expired(event.timestamp, now) {
            break;
        }
        gone.push(get(r, 0)?);
        left -= 1;
    }
    exec(
        db,
        "DELETE FROM events WHERE org = $1 AND id = ANY($2)",
        &[&org.0, &gone],
    )
    .await?;
    Ok(())
}

pub(super) async fn events_after(
    db: &Db,
    org: OrgId,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<Event>> {
    let after = after.map_or(0, |a| i64::try_from(a).unwrap_or(i64::MAX));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    docs(
        &rows(
            db,
            "SELECT doc FROM events WHERE org = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&org.0, &after, &limit],
        )
        .await?,
    )
}

/// Tell live readers the newest event id, if it moved.
pub(super) async fn publish(db: &Db, signal: &watch::Sender<u64>) {
    let Ok(Some(found)) = row(db, "SELECT last_value, is_called FROM event_seq", &[]).await else {
        return;
    };
    let (Ok(last), Ok(called)) = (get::<i64>(&found, 0), get::<bool>(&found, 1)) else {
        return;
    };
    let id = if called { super::sql::count(last) } else { 0 };
    signal.send_if_modified(|seen| {
        let moved = *seen != id;
        *seen = id;
        moved
    });
}

/// Publish, every [`POLL`], what other instances appended.
pub(super) async fn watch_others(pool: deadpool_postgres::Pool, signal: watch::Sender<u64>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if signal.is_closed() && signal.receiver_count() == 0 {
            return;
        }
        if let Ok(client) = pool.get().await {
            publish(&client, &signal).await;
        }
    }
}
