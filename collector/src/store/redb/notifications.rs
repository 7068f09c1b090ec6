//! Notification channels and deliveries: channel records, the deliveries an appended
//! event makes for the channels that want it (in the event's transaction), the index
//! of deliveries still to try by when, and the bounded history of finished ones.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{ChannelId, OrgId};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{
    CHANNELS, COUNTS, DELIVERIES, DELIVERY_DUE, ORGS, add_count, count, count_key_deliveries,
    decode, due_key, get_record, list_records, org_key, put_record, walk_prefix,
};
use crate::events::Event;
use crate::model::{Alert, Org};
use crate::notify::{self, Channel, Delivery};
use crate::store::{DeliveryQuery, Error, Page, Result};

/// The most finished deliveries one new delivery removes (so that it stays cheap).
const PRUNE_PER_DELIVERY: usize = 4;

fn channel_key(org: OrgId, id: ChannelId) -> Vec<u8> {
    org_key(org, id.to_bytes())
}

fn delivery_key(d: &Delivery) -> Vec<u8> {
    org_key(d.org_id, d.id.to_bytes())
}

pub(super) fn create_channel(txn: &WriteTransaction, channel: &Channel) -> Result<()> {
    put_record(
        txn,
        CHANNELS,
        &channel_key(channel.org_id, channel.id),
        channel,
    )
}

pub(super) fn list_channels(txn: &ReadTransaction, org: OrgId) -> Result<Vec<Channel>> {
    list_records(&txn.open_table(CHANNELS)?, &org.to_bytes())
}

pub(super) fn get_channel(txn: &ReadTransaction, org: OrgId, id: ChannelId) -> Result<Channel> {
    get_record(&txn.open_table(CHANNELS)?, &channel_key(org, id))?.ok_or(Error::NotFound)
}

pub(super) fn update_channel(txn: &WriteTransaction, channel: &Channel) -> Result<()> {
    let key = channel_key(channel.org_id, channel.id);
    if txn.open_table(CHANNELS)?.get(key.as_slice())?.is_none() {
        return Err(Error::NotFound);
    }
    put_record(txn, CHANNELS, &key, channel)
}

/// Remove a channel; its deliveries still to try are marked failed.
pub(super) fn delete_channel(txn: &WriteTransaction, org: OrgId, id: ChannelId) -> Result<()> {
    if txn
        .open_table(CHANNELS)?
        .remove(channel_key(org, id).as_slice())?
        .is_none()
    {
        return Err(Error::NotFound);
    }
    let mut open = Vec::new();
    walk_prefix(
        &txn.open_table(DELIVERIES)?,
        &org.to_bytes(),
        |_, v: &[u8]| {
            let d: Delivery = decode(v)?;
            if d.channel_id == id && d.status.is_open() {
                open.push(d);
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for mut d in open {
        let before = d.clone();
        d.status = notify::DeliveryStatus::Failed;
        d.last_error = Some("the channel was deleted".to_owned());
        d.next_attempt_at = None;
        put_delivery(txn, &d, Some(&before))?;
    }
    Ok(())
}

/// The channels of `org` that want `event`: its own, and its `alert_email`.
fn channels_wanting(txn: &WriteTransaction, event: &Event) -> Result<Vec<Channel>> {
    let org = event.organization_id;
    let mut channels: Vec<Channel> = list_records(&txn.open_table(CHANNELS)?, &org.to_bytes())?;
    let record: Option<Org> = get_record(&txn.open_table(ORGS)?, &org.to_bytes())?;
    channels.extend(record.as_ref().and_then(notify::alert_email_channel));
    channels.retain(|c| notify::wants(c, event));
    Ok(channels)
}

/// Make the deliveries of a just-appended event (called by the outbox's append).
pub(super) fn fan_out(txn: &WriteTransaction, event: &Event, now: DateTime<Utc>) -> Result<()> {
    for channel in channels_wanting(txn, event)? {
        put_delivery(txn, &Delivery::new(&channel, event, now), None)?;
        add_count(txn, &count_key_deliveries(event.organization_id), 1)?;
        prune(txn, event.organization_id, now)?;
    }
    Ok(())
}

/// Store a delivery, keeping its entry in `delivery_due` with it (`before`: the
/// stored version, `None` for a new one).
fn put_delivery(txn: &WriteTransaction, d: &Delivery, before: Option<&Delivery>) -> Result<()> {
    let mut due = txn.open_table(DELIVERY_DUE)?;
    if let Some(at) = before
        .filter(|b| b.status.is_open())
        .and_then(|b| b.next_attempt_at)
    {
        due.remove(due_key(at, d.org_id, d.id.to_bytes()).as_slice())?;
    }
    if d.status.is_open()
        && let Some(at) = d.next_attempt_at
    {
        due.insert(due_key(at, d.org_id, d.id.to_bytes()).as_slice(), ())?;
    }
    drop(due);
    put_record(txn, DELIVERIES, &delivery_key(d), d)
}

/// Remove the organisation's oldest finished deliveries beyond the bounds of
/// [`crate::notify`] (a few per call).
fn prune(txn: &WriteTransaction, org: OrgId, now: DateTime<Utc>) -> Result<()> {
    let kept = count(&txn.open_table(COUNTS)?, &count_key_deliveries(org))?;
    let mut gone = Vec::new();
    walk_prefix(
        &txn.open_table(DELIVERIES)?,
        &org.to_bytes(),
        |k, v: &[u8]| {
            let d: Delivery = decode(v)?;
            if gone.len() >= PRUNE_PER_DELIVERY {
                return Ok(ControlFlow::Break(()));
            }
            if notify::expired(&d, kept.saturating_sub(gone.len() as u64), now) {
                gone.push(k.to_vec());
                return Ok(ControlFlow::Continue(()));
            }
            // The oldest are looked at only: a younger one that is not expired means none
            // after it is (by age), or the count is within bounds.
            if d.status.is_open() {
                Ok(ControlFlow::Continue(()))
            } else {
                Ok(ControlFlow::Break(()))
            }
        },
    )?;
    let mut table = txn.open_table(DELIVERIES)?;
    for key in &gone {
        table.remove(key.as_slice())?;
    }
    drop(table);
    add_count(txn, &count_key_deliveries(org), -(gone.len() as i64))?;
    Ok(())
}

/// Deliveries due before `before`, soonest first, at most `limit`.
pub(super) fn due_deliveries(
    txn: &ReadTransaction,
    before: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Delivery>> {
    let end = due_key(before, OrgId::from_bytes([0xff; 16]), [0xff; 16]);
    let due = txn.open_table(DELIVERY_DUE)?;
    let deliveries = txn.open_table(DELIVERIES)?;
    let mut out = Vec::new();
    for entry in due.range::<&[u8]>(..end.as_slice())? {
        let (k, _) = entry?;
        let key = k
            .value()
            .get(8..)
            .ok_or_else(|| Error::internal("bad due key"))?;
        if let Some(d) = get_record::<Delivery, _>(&deliveries, key)? {
            out.push(d);
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// When the next delivery is due (`None`: none is).
pub(super) fn next_due(txn: &ReadTransaction) -> Result<Option<DateTime<Utc>>> {
    let due = txn.open_table(DELIVERY_DUE)?;
    let Some(first) = due.first()? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = first
        .0
        .value()
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::internal("bad due key"))?;
    let millis = (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64;
    Ok(DateTime::from_timestamp_millis(millis))
}

/// Store what an attempt gave; `failure` is the alert to raise when it failed for
/// good. A delivery removed meanwhile (its channel deleted) stays removed.
pub(super) fn record_attempt(
    txn: &WriteTransaction,
    delivery: &Delivery,
    failure: Option<&Alert>,
) -> Result<()> {
    let before: Option<Delivery> =
        get_record(&txn.open_table(DELIVERIES)?, &delivery_key(delivery))?;
    let Some(before) = before.filter(|b| b.status.is_open()) else {
        return Ok(());
    };
    put_delivery(txn, delivery, Some(&before))?;
    if let Some(alert) = failure {
        super::alerts::raise(txn, alert.clone())?;
    }
    Ok(())
}

/// A page of an organisation's deliveries, newest first.
pub(super) fn list_deliveries(
    txn: &ReadTransaction,
    org: OrgId,
    query: &DeliveryQuery,
) -> Result<Page<Delivery>> {
    let table = txn.open_table(DELIVERIES)?;
    let start = org_key(org, [0; 16]);
    let end = org_key(org, [0xff; 16]);
    let offset = query.page.saturating_sub(1).saturating_mul(query.page_size);
    let mut items = Vec::new();
    let mut total = 0u64;
    for entry in table
        .range::<&[u8]>(start.as_slice()..=end.as_slice())?
        .rev()
    {
        let (_, v) = entry?;
        let d: Delivery = decode(v.value())?;
        if query.channel_id.is_some_and(|c| c != d.channel_id)
            || query.status.is_some_and(|s| s != d.status)
        {
            continue;
        }
        if total >= offset && (items.len() as u64) < query.page_size {
            items.push(d);
        }
        total += 1;
    }
    Ok(Page { items, total })
}
