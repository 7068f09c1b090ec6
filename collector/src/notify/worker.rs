//! The delivery worker: one task that sends every delivery still to try, as soon as
//! the outbox commits one or a retry comes due, and stores what each attempt gave.
//! At start every delivery still to try is sent at once, however long it was to wait.
//! A slow receiver holds up only the deliveries sent with it, never reports.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use super::send::Notifier;
use super::{Channel, Delivery, DeliveryStatus, Outcome};
use crate::alerts;
use crate::store::{self, Store};

/// Deliveries read per round.
const BATCH: usize = 64;
/// Deliveries sent at the same time.
const CONCURRENT: usize = 16;
/// The longest the worker sleeps without looking (a safety net for missed signals).
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How long it waits after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// The channel a delivery is for: a stored one, or the organisation's `alert_email`.
pub async fn find_channel(
    store: &dyn Store,
    delivery: &Delivery,
) -> store::Result<Option<Channel>> {
    match store
        .get_channel(delivery.org_id, delivery.channel_id)
        .await
    {
        Ok(c) => Ok(Some(c)),
        Err(store::Error::NotFound) => {
            let org = store.get_org(delivery.org_id).await?;
            Ok(super::alert_email_channel(&org).filter(|c| c.id == delivery.channel_id))
        }
        Err(e) => Err(e),
    }
}

/// How often an instance that does not deliver asks whether it should now (the one
/// that did has gone).
const FOLLOWER_WAIT: Duration = Duration::from_secs(2);

/// Work deliveries until the task is dropped.
pub async fn run(store: Arc<dyn Store>, notifier: Arc<Notifier>) {
    let mut signal = store.event_signal();
    // At start: everything still to try is due now.
    let mut horizon: Option<DateTime<Utc>> = Some(DateTime::<Utc>::MAX_UTC);
    loop {
        signal.borrow_and_update();
        // With several instances on one database, one delivers (each delivery once).
        if !store.lead().await {
            horizon = Some(DateTime::<Utc>::MAX_UTC);
            tokio::time::sleep(FOLLOWER_WAIT).await;
            continue;
        }
        let before = horizon.take().unwrap_or_else(Utc::now);
        let due = match store.due_deliveries(before, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "Reading notification deliveries failed; will retry.");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
        };
        let full = due.len() >= BATCH;
        let resumed = before == DateTime::<Utc>::MAX_UTC;
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENT, |d| attempt(store.as_ref(), &notifier, d))
            .await;
        if full {
            // More may be due: keep the start's horizon while resuming.
            if resumed {
                horizon = Some(DateTime::<Utc>::MAX_UTC);
            }
            continue;
        }
        let wait = match store.next_delivery_due().await {
            Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            Ok(None) => MAX_IDLE,
            Err(_) => STORE_RETRY,
        }
        .min(MAX_IDLE);
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            changed = signal.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Send one delivery and store the outcome.
async fn attempt(store: &dyn Store, notifier: &Notifier, mut delivery: Delivery) {
    let channel = match find_channel(store, &delivery).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "Reading a notification channel failed; will retry.");
            return;
        }
    };
    let now = Utc::now();
    let jitter = f64::from(rand_u8()) / 255.0;
    let failure = match channel {
        None => {
            delivery.status = DeliveryStatus::Failed;
            delivery.last_error = Some("the channel no longer exists".to_owned());
            delivery.next_attempt_at = None;
            None
        }
        Some(channel) if !channel.enabled => {
            delivery.status = DeliveryStatus::Failed;
            delivery.last_error = Some("the channel was disabled before it was sent".to_owned());
            delivery.next_attempt_at = None;
            None
        }
        Some(channel) => {
            let outcome = notifier.send(&channel, &delivery.event).await;
            log(&channel, &delivery, &outcome);
            let failed = super::after_attempt(&mut delivery, outcome, Utc::now(), jitter);
            crate::metrics::METRICS.delivery(match delivery.status {
                DeliveryStatus::Delivered => "delivered",
                DeliveryStatus::Failed => "failed",
                _ => "retry",
            });
            failed.then(|| alerts::notification_failed(&channel, &delivery, now))
        }
    };
    if let Err(e) = store.record_attempt(delivery, failure).await {
        tracing::warn!(error = %e, "Storing a notification attempt failed; it will be sent again.");
    }
}

fn log(channel: &Channel, delivery: &Delivery, outcome: &Outcome) {
    // Never the target: its URL may hold a token.
    let (status, error) = match outcome {
        Outcome::Delivered { status } => (status, None),
        Outcome::Retry { status, error, .. } | Outcome::Refused { status, error } => {
            (status, Some(error.as_str()))
        }
    };
    match error {
        None => tracing::info!(
            org = %channel.org_id, channel = %channel.id, kind = channel.kind.as_str(),
            event = delivery.event.id, attempt = delivery.attempts + 1, status = ?status,
            "Notification delivered."
        ),
        Some(error) => tracing::warn!(
            org = %channel.org_id, channel = %channel.id, kind = channel.kind.as_str(),
            event = delivery.event.id, attempt = delivery.attempts + 1, status = ?status, error,
            "Notification not delivered."
        ),
    }
}

fn rand_u8() -> u8 {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    b[0]
}
