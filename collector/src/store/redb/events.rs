//! The outbox: events appended in the transaction of the change that caused them,
//! numbered from one counter, kept per organisation within the bounds of
//! [`crate::events`], and the signal that wakes live readers once they are committed.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::OrgId;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use super::schema::{
    EVENTS, META, add_count, count_key_events, decode, event_key, put_record, walk_prefix,
};
use crate::events::{self, Draft, Event, EventStamp, MAX_EVENTS_PER_ORG};
use crate::store::{Error, Result};

const SEQ_KEY: &str = "event_seq";
/// The most expired events one append removes (so an append stays cheap).
const PRUNE_PER_APPEND: usize = 8;

/// The newest event id recorded (0: none yet).
fn last_id<T: ReadableTable<&'static str, &'static [u8]>>(meta: &T) -> Result<u64> {
    match meta.get(SEQ_KEY)? {
        Some(v) => {
            Ok(u64::from_be_bytes(v.value().try_into().map_err(|_| {
                Error::internal("event counter is damaged")
            })?))
        }
        None => Ok(0),
    }
}

/// Record `draft` at `now`, and let the organisation's oldest events go beyond the
/// outbox's bounds. Answers the event's id.
pub(super) fn append(txn: &WriteTransaction, draft: Draft, now: DateTime<Utc>) -> Result<u64> {
    let id = {
        let mut meta = txn.open_table(META)?;
        let id = last_id(&meta)? + 1;
        meta.insert(SEQ_KEY, id.to_be_bytes().as_slice())?;
        id
    };
    let org = draft.organization_id;
    let event = draft.numbered(id, now);
    put_record(txn, EVENTS, &event_key(org, id), &event)?;
    let kept = add_count(txn, &count_key_events(org), 1)?;
    prune(txn, org, kept, now)?;
    super::notifications::fan_out(txn, &event, now)?;
    Ok(id)
}

/// Remove the organisation's oldest events while there are too many or they are too
/// old (at most [`PRUNE_PER_APPEND`], found in one walk from the oldest); `kept` is
/// how many the organisation holds.
fn prune(txn: &WriteTransaction, org: OrgId, kept: u64, now: DateTime<Utc>) -> Result<()> {
    let mut events = txn.open_table(EVENTS)?;
    let mut gone = Vec::new();
    walk_prefix(&events, &org.to_bytes(), |k, v: &[u8]| {
        let stamp: EventStamp = decode(v)?;
        let left = kept.saturating_sub(gone.len() as u64);
        if gone.len() >= PRUNE_PER_APPEND
            || (left <= MAX_EVENTS_PER_ORG && !events::expired(stamp.timestamp, now))
        {
            return Ok(ControlFlow::Break(()));
        }
        gone.push(k.to_vec());
        Ok(ControlFlow::Continue(()))
    })?;
    for key in &gone {
        events.remove(key.as_slice())?;
    }
    drop(events);
    if !gone.is_empty() {
        add_count(txn, &count_key_events(org), -(gone.len() as i64))?;
    }
    Ok(())
}

/// The organisation's events after `after` (every retained one when `None`), oldest
/// first, at most `limit`.
pub(super) fn events_after(
    txn: &ReadTransaction,
    org: OrgId,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<Event>> {
    let table = txn.open_table(EVENTS)?;
    let start = event_key(org, after.map_or(0, |a| a.saturating_add(1)));
    let mut out = Vec::new();
    for entry in table.range::<&[u8]>(start.as_slice()..)? {
        let (k, v) = entry?;
        if !k.value().starts_with(&org.to_bytes()) || out.len() >= limit {
            break;
        }
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// After a commit: tell live readers the newest event id, if it moved.
pub(super) fn publish(db: &Database, signal: &tokio::sync::watch::Sender<u64>) {
    let Ok(txn) = db.begin_read() else { return };
    let Ok(meta) = txn.open_table(META) else {
        return;
    };
    if let Ok(id) = last_id(&meta) {
        signal.send_if_modified(|seen| {
            let moved = *seen != id;
            *seen = id;
            moved
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventName, MAX_EVENT_AGE_DAYS};

    fn draft(org: OrgId, n: u64) -> Draft {
        Draft {
            organization_id: org,
            event: EventName::AgentSilent,
            data: serde_json::json!({ "n": n }),
        }
    }

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("events.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        super::super::schema::create_tables(&txn).unwrap();
        txn.open_table(META).unwrap();
        txn.commit().unwrap();
        (dir, db)
    }

    #[test]
    fn the_stamp_of_an_event_reads_from_either_encoding() {
        let at = Utc::now();
        let event = draft(OrgId::new(), 7).numbered(41, at);
        let compact = super::super::schema::encode(&event).unwrap();
        let json = serde_json::to_vec(&event).unwrap();
        for bytes in [compact, json] {
            let stamp: EventStamp = decode(&bytes).unwrap();
            assert_eq!(
                (stamp.id, stamp.event, stamp.timestamp),
                (41, event.event, at)
            );
            assert_eq!(decode::<Event>(&bytes).unwrap(), event);
        }
    }

    #[test]
    fn events_are_numbered_in_order_and_read_per_organisation() {
        let (_dir, db) = db();
        let (a, b) = (OrgId::new(), OrgId::new());
        let now = Utc::now();
        let txn = db.begin_write().unwrap();
        for n in 0..3 {
            append(&txn, draft(a, n), now).unwrap();
            append(&txn, draft(b, n), now).unwrap();
        }
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let of_a = events_after(&read, a, None, 100).unwrap();
        assert_eq!(of_a.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3, 5]);
        assert!(of_a.iter().all(|e| e.organization_id == a));
        let after = events_after(&read, a, Some(3), 100).unwrap();
        assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), [5]);
        assert_eq!(events_after(&read, b, Some(6), 100).unwrap(), []);
        assert_eq!(events_after(&read, b, None, 2).unwrap().len(), 2);
        let (signal, _) = tokio::sync::watch::channel(0);
        publish(&db, &signal);
        assert_eq!(*signal.borrow(), 6);
    }

    #[test]
    fn the_outbox_keeps_the_newest_and_nothing_too_old() {
        let (_dir, db) = db();
        let org = OrgId::new();
        let old = Utc::now() - chrono::Duration::days(MAX_EVENT_AGE_DAYS + 1);
        let txn = db.begin_write().unwrap();
        for n in 0..3 {
            append(&txn, draft(org, n), old).unwrap();
        }
        // A new event lets the expired ones go.
        append(&txn, draft(org, 3), Utc::now()).unwrap();
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let kept = events_after(&read, org, None, 100).unwrap();
        assert_eq!(kept.iter().map(|e| e.id).collect::<Vec<_>>(), [4]);
        drop(read);

        let txn = db.begin_write().unwrap();
        let now = Utc::now();
        for n in 0..MAX_EVENTS_PER_ORG + 5 {
            append(&txn, draft(org, n), now).unwrap();
        }
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let kept = events_after(&read, org, None, usize::MAX).unwrap();
        assert_eq!(kept.len() as u64, MAX_EVENTS_PER_ORG);
        assert_eq!(kept.last().unwrap().id, MAX_EVENTS_PER_ORG + 5 + 4);
    }
}
