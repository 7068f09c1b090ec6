//! Notifications: the channels an organisation sends its events to (webhook, Slack,
//! email, syslog), which events each wants, the deliveries the outbox makes for them,
//! and how a delivery is retried. Pure rules here; sending lives in [`send`] and the
//! background loop that works the deliveries in [`worker`].
//!
//! A delivery is made in the same transaction as its event (the store calls
//! [`wants`] for every channel of the organisation when it appends an event), so a
//! crash after the commit loses nothing: the worker finds it pending at the next start.

pub mod email;
pub mod send;
pub mod syslog;
pub mod targets;
pub mod text;
pub mod webhook;
pub mod worker;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{ChannelId, DeliveryId, OrgId, UserId};
use mcpwatch_protocol::risk::RiskLevel;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::events::{Event, EventName};
use crate::model::Org;

/// Where a channel sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// `POST` of the event as JSON, signed with HMAC-SHA256.
    Webhook,
    /// Slack's incoming-webhook message format (`text`), which Microsoft Teams and
    /// Mattermost incoming webhooks take too.
    Slack,
    /// Mail through the collector's SMTP server.
    Email,
    /// RFC 5424 syslog over UDP, TCP or TLS.
    Syslog,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [Self::Webhook, Self::Slack, Self::Email, Self::Syslog];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Email => "email",
            Self::Syslog => "syslog",
        }
    }

    /// Whether the target is a URL whose path and query may hold a token.
    pub fn target_is_url(self) -> bool {
        matches!(self, Self::Webhook | Self::Slack)
    }
}

/// Who made a channel: an admin through the API, or the organisation's `alert_email`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelSource {
    Api,
    /// The organisation's `alert_email` (set with `PATCH /auth/organization`).
    AlertEmail,
}

/// A notification channel of an organisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Channel {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub name: String,
    pub kind: ChannelKind,
    /// The URL, addresses or syslog URL; never shown whole after creation.
    pub target: String,
    /// The webhook signing secret.
    #[serde(default)]
    pub secret: Option<String>,
    pub min_severity: RiskLevel,
    pub events: Vec<EventName>,
    pub enabled: bool,
    pub source: ChannelSource,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The severity an alert channel gets unless told otherwise.
pub const DEFAULT_MIN_SEVERITY: RiskLevel = RiskLevel::High;
/// The events a channel gets unless told otherwise.
pub const DEFAULT_EVENTS: [EventName; 1] = [EventName::AlertCreated];

/// The channel an organisation's `alert_email` stands for: alerts raised at high
/// and above. Its id is derived from the organisation, so it is the same every time.
pub fn alert_email_channel(org: &Org) -> Option<Channel> {
    let address = org.alert_email.as_deref()?.trim();
    if address.is_empty() {
        return None;
    }
    let digest = sha2::Sha256::digest([b"alert_email:".as_slice(), &org.id.to_bytes()].concat());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    Some(Channel {
        id: ChannelId::from_bytes(id),
        org_id: org.id,
        name: "Organisation alert email".to_owned(),
        kind: ChannelKind::Email,
        target: address.to_owned(),
        secret: None,
        min_severity: RiskLevel::High,
        events: vec![EventName::AlertCreated],
        enabled: true,
        source: ChannelSource::AlertEmail,
        created_by: None,
        created_at: org.created_at,
        updated_at: org.updated_at,
    })
}

/// The severity of an alert event (`None` for other events).
pub fn event_severity(event: &Event) -> Option<RiskLevel> {
    serde_json::from_value(event.data.get("alert")?.get("severity")?.clone()).ok()
}

/// The channel an alert event is about (a channel whose deliveries failed).
fn event_channel(event: &Event) -> Option<ChannelId> {
    serde_json::from_value(event.data.get("alert")?.get("channel_id")?.clone()).ok()
}

/// Whether `channel` wants `event`: enabled, the event named, an alert at or above the
/// minimum severity, and never the news that this very channel is failing (it could
/// not be told, and each failure would raise the next).
pub fn wants(channel: &Channel, event: &Event) -> bool {
    channel.enabled
        && channel.org_id == event.organization_id
        && channel.events.contains(&event.event)
        && event_severity(event).is_none_or(|s| s >= channel.min_severity)
        && event_channel(event) != Some(channel.id)
}

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not tried yet.
    Pending,
    Delivered,
    /// Tried and failed; tried again at `next_attempt_at`.
    Retrying,
    /// Given up: the horizon passed, the receiver refused it for good, or the channel
    /// went away.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] =
        [Self::Pending, Self::Delivered, Self::Retrying, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
        }
    }

    /// Whether the worker still has to try it.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Retrying)
    }
}

/// One event's delivery to one channel. It carries the event itself, so that the
/// outbox's retention never takes away what is still to be sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub event: Event,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The receiver's last answer (an HTTP status, or an SMTP reply code).
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Delivery {
    /// A new delivery of `event` to `channel`, due at once.
    pub fn new(channel: &Channel, event: &Event, now: DateTime<Utc>) -> Self {
        Self {
            id: DeliveryId::new(),
            org_id: channel.org_id,
            channel_id: channel.id,
            event: event.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            next_attempt_at: Some(now),
            delivered_at: None,
            created_at: now,
        }
    }
}

/// How long a delivery is retried before it is marked failed.
pub const RETRY_HORIZON: chrono::Duration = chrono::Duration::hours(24);
/// The first retry's delay; each next one doubles, up to [`MAX_RETRY_DELAY`].
pub const FIRST_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest wait between two attempts (a longer `Retry-After` is cut to this).
pub const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(3600);
/// How many finished deliveries an organisation keeps, and for how long.
pub const MAX_DELIVERIES_PER_ORG: u64 = 10_000;
pub const MAX_DELIVERY_AGE_DAYS: i64 = 7;

/// What one attempt gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        status: Option<u16>,
    },
    /// Worth trying again (network error, timeout, 5xx, 429), after `retry_after` when
    /// the receiver said so.
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<std::time::Duration>,
    },
    /// Trying again would not help (a 4xx other than 408 and 429, a bad address).
    Refused {
        status: Option<u16>,
        error: String,
    },
}

/// The delay before retry number `attempts` (1: after the first failure): doubling
/// from [`FIRST_RETRY_DELAY`], capped, with up to a fifth taken off at random so that
/// many deliveries to one receiver spread out.
pub fn backoff(attempts: u32, jitter: f64) -> std::time::Duration {
    let doubled = FIRST_RETRY_DELAY.saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
    doubled
        .min(MAX_RETRY_DELAY)
        .mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

/// The delivery after an attempt at `now` that gave `outcome`. Answers whether it has
/// just failed for good (the caller raises an alert).
pub fn after_attempt(
    delivery: &mut Delivery,
    outcome: Outcome,
    now: DateTime<Utc>,
    jitter: f64,
) -> bool {
    delivery.attempts = delivery.attempts.saturating_add(1);
    match outcome {
        Outcome::Delivered { status } => {
            delivery.status = DeliveryStatus::Delivered;
            delivery.last_status = status;
            delivery.last_error = None;
            delivery.next_attempt_at = None;
            delivery.delivered_at = Some(now);
            false
        }
        Outcome::Refused { status, error } => {
            delivery.last_status = status;
            delivery.last_error = Some(error);
            delivery.status = DeliveryStatus::Failed;
            delivery.next_attempt_at = None;
            true
        }
        Outcome::Retry {
            status,
            error,
            retry_after,
        } => {
            delivery.last_status = status;
            let wait = retry_after
                .map(|r| r.clamp(std::time::Duration::from_secs(1), MAX_RETRY_DELAY))
                .unwrap_or_else(|| backoff(delivery.attempts, jitter));
            let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
            if next > delivery.created_at + RETRY_HORIZON {
                delivery.last_error = Some(format!(
                    "{error} (gave up after {} attempts in {} hours)",
                    delivery.attempts,
                    RETRY_HORIZON.num_hours()
                ));
                delivery.status = DeliveryStatus::Failed;
                delivery.next_attempt_at = None;
                true
            } else {
                delivery.last_error = Some(error);
                delivery.status = DeliveryStatus::Retrying;
                delivery.next_attempt_at = Some(next);
                false
            }
        }
    }
}

/// Whether a finished delivery may leave the store at `now`, given how many the
/// organisation keeps.
pub fn expired(delivery: &Delivery, kept: u64, now: DateTime<Utc>) -> bool {
    !delivery.status.is_open()
        && (kept > MAX_DELIVERIES_PER_ORG
            || delivery.created_at < now - chrono::Duration::days(MAX_DELIVERY_AGE_DAYS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(org: OrgId) -> Channel {
        Channel {
            id: ChannelId::new(),
            org_id: org,
            name: "c".into(),
            kind: ChannelKind::Webhook,
            target: "https://example.com/".into(),
            secret: Some("s".into()),
            min_severity: RiskLevel::High,
            events: vec![EventName::AlertCreated, EventName::AgentEnrolled],
            enabled: true,
            source: ChannelSource::Api,
            created_by: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn event(org: OrgId, name: EventName, data: serde_json::Value) -> Event {
        Event {
            id: 1,
            event: name,
            timestamp: Utc::now(),
            organization_id: org,
            data,
        }
    }

    #[test]
    fn a_channel_wants_its_events_at_its_severity_in_its_organisation() {
        let org = OrgId::new();
        let c = channel(org);
        let alert = |sev: &str| serde_json::json!({ "alert": { "severity": sev } });
        assert!(wants(
            &c,
            &event(org, EventName::AlertCreated, alert("critical"))
        ));
        assert!(wants(
            &c,
            &event(org, EventName::AlertCreated, alert("high"))
        ));
        assert!(!wants(
            &c,
            &event(org, EventName::AlertCreated, alert("medium"))
        ));
        assert!(!wants(
            &c,
            &event(org, EventName::AlertUpdated, alert("critical"))
        ));
        assert!(wants(
            &c,
            &event(org, EventName::AgentEnrolled, serde_json::json!({}))
        ));
        assert!(!wants(
            &c,
            &event(OrgId::new(), EventName::AlertCreated, alert("critical"))
        ));
        let own_failure =
            serde_json::json!({ "alert": { "severity": "high", "channel_id": c.id } });
        assert!(!wants(
            &c,
            &event(org, EventName::AlertCreated, own_failure)
        ));
        let disabled = Channel {
            enabled: false,
            ..c
        };
        assert!(!wants(
            &disabled,
            &event(org, EventName::AlertCreated, alert("critical"))
        ));
    }

    #[test]
    fn retries_back_off_honour_retry_after_and_give_up_at_the_horizon() {
        assert_eq!(backoff(1, 0.0), FIRST_RETRY_DELAY);
        assert_eq!(backoff(2, 0.0), FIRST_RETRY_DELAY * 2);
        assert_eq!(backoff(30, 0.0), MAX_RETRY_DELAY);
        assert!(backoff(3, 1.0) < backoff(3, 0.0));

        let org = OrgId::new();
        let c = channel(org);
        let start = Utc::now();
        let mut d = Delivery::new(
            &c,
            &event(org, EventName::AlertCreated, serde_json::json!({})),
            start,
        );
        let retry = |after| Outcome::Retry {
            status: Some(503),
            error: "HTTP 503".into(),
            retry_after: after,
        };
        assert!(!after_attempt(
            &mut d,
            retry(Some(std::time::Duration::from_secs(2))),
            start,
            0.0
        ));
        assert_eq!(d.status, DeliveryStatus::Retrying);
        assert_eq!(
            d.next_attempt_at,
            Some(start + chrono::Duration::seconds(2))
        );
        assert!(!after_attempt(&mut d, retry(None), start, 0.0));
        assert_eq!(
            d.next_attempt_at,
            Some(start + chrono::Duration::seconds(10))
        );
        // Past the horizon: failed, said why.
        let late = start + RETRY_HORIZON;
        assert!(after_attempt(&mut d, retry(None), late, 0.0));
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert!(
            d.last_error
                .as_deref()
                .unwrap()
                .contains("gave up after 3 attempts")
        );

        let mut ok = Delivery::new(&c, &d.event, start);
        assert!(!after_attempt(
            &mut ok,
            Outcome::Delivered { status: Some(200) },
            start,
            0.0
        ));
        assert_eq!(
            (ok.status, ok.attempts, ok.delivered_at),
            (DeliveryStatus::Delivered, 1, Some(start))
        );
        let mut refused = Delivery::new(&c, &d.event, start);
        assert!(after_attempt(
            &mut refused,
            Outcome::Refused {
                status: Some(404),
                error: "HTTP 404".into()
            },
            start,
            0.0
        ));
        assert_eq!(refused.status, DeliveryStatus::Failed);
    }

    #[test]
    fn the_alert_email_channel_is_stable_and_wants_high_alerts() {
        let now = Utc::now();
        let mut org = Org {
            id: OrgId::new(),
            name: "o".into(),
            alert_email: None,
            created_at: now,
            updated_at: now,
        };
        assert!(alert_email_channel(&org).is_none());
        org.alert_email = Some("sec@example.com".into());
        let a = alert_email_channel(&org).unwrap();
        assert_eq!(a.id, alert_email_channel(&org).unwrap().id);
        assert_eq!(
            (a.kind, a.min_severity),
            (ChannelKind::Email, RiskLevel::High)
        );
    }
}
