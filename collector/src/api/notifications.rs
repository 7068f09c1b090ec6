//! Notification channels and deliveries (`/notifications/...`, admin): create, read,
//! change, delete and test channels; list deliveries. A channel's secret (a webhook's
//! signing secret) is shown once, at creation; its target is shown without the path
//! and query of a URL, which often hold a token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{ChannelId, DeliveryId};
use mcpwatch_protocol::risk::RiskLevel;
use serde::{Deserialize, Serialize};

use super::audit::AuditNote;
use super::error::{ApiError, or_not_found};
use super::extract::{ApiJson, ApiQuery, AuthUser};
use super::{PageResponse, check_name, paging, param, path_id};
use crate::auth::keys;
use crate::events::{Event, EventName};
use crate::notify::targets::TargetError;
use crate::notify::{self, Channel, ChannelKind, ChannelSource, Delivery, DeliveryStatus, Outcome};
use crate::state::SharedState;
use crate::store::DeliveryQuery;

/// The most channels an organisation may have.
pub const MAX_CHANNELS: usize = 50;
/// The longest target and secret.
const MAX_TARGET_CHARS: usize = 2048;
const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;

/// A channel as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub id: ChannelId,
    pub name: String,
    pub kind: ChannelKind,
    /// The target without what may be secret in it.
    pub target: String,
    pub has_secret: bool,
    pub min_severity: RiskLevel,
    pub events: Vec<EventName>,
    pub enabled: bool,
    /// `api`, or `alert_email` for the organisation's alert address (change that with
    /// `PATCH /auth/organization`).
    pub source: ChannelSource,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            kind: c.kind,
            target: notify::targets::redacted(c.kind.target_is_url(), &c.target),
            has_secret: c.secret.is_some(),
            min_severity: c.min_severity,
            events: c.events.clone(),
            enabled: c.enabled,
            source: c.source,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    pub name: String,
    pub kind: String,
    pub target: String,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub min_severity: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub min_severity: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A channel just made: its view, and its secret this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedChannel {
    #[serde(flatten)]
    pub view: ChannelView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn parse_kind(raw: &str) -> Result<ChannelKind, ApiError> {
    ChannelKind::ALL
        .into_iter()
        .find(|k| k.as_str() == raw.trim())
        .ok_or_else(|| {
            ApiError::validation(
                "kind",
                format!(
                    "kind must be webhook, slack, email or syslog, not {:?}",
                    notify::text::clean(raw, 40)
                ),
            )
        })
}

fn parse_severity(raw: &str) -> Result<RiskLevel, ApiError> {
    RiskLevel::ALL
        .into_iter()
        .find(|l| l.as_str() == raw.trim())
        .ok_or_else(|| {
            ApiError::validation(
                "min_severity",
                format!(
                    "min_severity must be low, medium, high or critical, not {:?}",
                    notify::text::clean(raw, 40)
                ),
            )
        })
}

fn parse_events(raw: &[String]) -> Result<Vec<EventName>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::validation(
            "events",
            "events must name at least one event",
        ));
    }
    let mut out = Vec::new();
    for name in raw {
        let event = EventName::parse(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = EventName::ALL.iter().map(|e| e.as_str()).collect();
            ApiError::validation(
                "events",
                format!(
                    "unknown event {:?}; events are {}",
                    notify::text::clean(name, 60),
                    known.join(", ")
                ),
            )
        })?;
        if !out.contains(&event) {
            out.push(event);
        }
    }
    Ok(out)
}

/// Check a target for `kind`, as it would be sent to.
async fn check_target(
    state: &SharedState,
    kind: ChannelKind,
    raw: &str,
) -> Result<String, ApiError> {
    let target = raw.trim();
    if target.is_empty() || target.chars().count() > MAX_TARGET_CHARS {
        return Err(ApiError::validation(
            "target",
            format!("target must be 1 to {MAX_TARGET_CHARS} characters long"),
        ));
    }
    if kind == ChannelKind::Email && !state.notifier.can_email() {
        return Err(ApiError::validation(
            "kind",
            "email channels need the collector's SMTP settings (--smtp-url and --smtp-from)",
        ));
    }
    match state.notifier.check_target(kind, target).await {
        Ok(()) => Ok(target.to_owned()),
        // Never echo the target: it may hold a token.
        Err(e @ (TargetError::Invalid(_) | TargetError::Private { .. })) => {
            Err(ApiError::validation("target", e.to_string()))
        }
        Err(TargetError::Unresolved(host)) => Err(ApiError::validation(
            "target",
            format!("target host {host} does not resolve"),
        )),
    }
}

fn check_secret(kind: ChannelKind, secret: &str) -> Result<String, ApiError> {
    if kind != ChannelKind::Webhook {
        return Err(ApiError::validation(
            "secret",
            "only webhook channels have a signing secret",
        ));
    }
    let secret = secret.trim();
    if !SECRET_CHARS.contains(&secret.chars().count()) || secret.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "secret",
            format!(
                "secret must be {} to {} printable characters",
                SECRET_CHARS.start(),
                SECRET_CHARS.end()
            ),
        ));
    }
    Ok(secret.to_owned())
}

/// Every channel of the organisation: its own, then its `alert_email`.
async fn all_channels(state: &SharedState, auth: &AuthUser) -> Result<Vec<Channel>, ApiError> {
    let org = auth.user.org_id;
    let mut channels = state.store.list_channels(org).await?;
    let record = state.store.get_org(org).await?;
    channels.extend(notify::alert_email_channel(&record));
    Ok(channels)
}

async fn find(state: &SharedState, auth: &AuthUser, id: &str) -> Result<Channel, ApiError> {
    let id: ChannelId = path_id(id, "channel")?;
    all_channels(state, auth)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::not_found("channel"))
}

fn not_alert_email(channel: &Channel) -> Result<(), ApiError> {
    if channel.source == ChannelSource::AlertEmail {
        return Err(ApiError::conflict(
            "this channel is the organisation's alert_email; change or clear it with PATCH /auth/organization",
        ));
    }
    Ok(())
}

/// `GET /notifications/channels` (admin).
pub async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<Vec<ChannelView>>, ApiError> {
    let channels = all_channels(&state, &auth).await?;
    Ok(Json(channels.iter().map(ChannelView::from).collect()))
}

/// `POST /notifications/channels` (admin).
pub async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateChannel>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<CreatedChannel>), ApiError> {
    let name = check_name("name", &body.name)?;
    let kind = parse_kind(&body.kind)?;
    let min_severity = match body.min_severity.as_deref() {
        Some(raw) => parse_severity(raw)?,
        None => notify::DEFAULT_MIN_SEVERITY,
    };
    let events = match &body.events {
        Some(raw) => parse_events(raw)?,
        None => notify::DEFAULT_EVENTS.to_vec(),
    };
    let secret = match (&body.secret, kind) {
        (Some(s), _) => Some(check_secret(kind, s)?),
        (None, ChannelKind::Webhook) => Some(keys::new_webhook_secret()?),
        (None, _) => None,
    };
    let target = check_target(&state, kind, &body.target).await?;
    if state.store.list_channels(auth.user.org_id).await?.len() >= MAX_CHANNELS {
        return Err(ApiError::conflict(format!(
            "an organisation has at most {MAX_CHANNELS} channels"
        )));
    }
    let now = Utc::now();
    let channel = Channel {
        id: ChannelId::new(),
        org_id: auth.user.org_id,
        name,
        kind,
        target,
        secret: secret.clone(),
        min_severity,
        events,
        enabled: body.enabled.unwrap_or(true),
        source: ChannelSource::Api,
        created_by: Some(auth.user.id),
        created_at: now,
        updated_at: now,
    };
    state.store.create_channel(channel.clone()).await?;
    tracing::info!(org = %channel.org_id, channel = %channel.id, kind = kind.as_str(), "Notification channel created.");
    let note = AuditNote::made(channel.id, audit_view(&channel));
    Ok((
        StatusCode::CREATED,
        Extension(note),
        Json(CreatedChannel {
            view: ChannelView::from(&channel),
            secret,
        }),
    ))
}

/// `GET /notifications/channels/{id}` (admin).
pub async fn get(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let channel = find(&state, &auth, &id).await?;
    Ok(Json(ChannelView::from(&channel)))
}

/// `PATCH /notifications/channels/{id}` (admin). The kind stays; a new secret
/// replaces the old one (and is not shown back: the caller has it).
pub async fn update(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateChannel>,
) -> Result<(Extension<AuditNote>, Json<ChannelView>), ApiError> {
    let mut channel = find(&state, &auth, &id).await?;
    let changed = super::changed_fields(&[
        ("name", body.name.is_some()),
        ("target", body.target.is_some()),
        ("secret", body.secret.is_some()),
        ("min_severity", body.min_severity.is_some()),
        ("events", body.events.is_some()),
        ("enabled", body.enabled.is_some()),
    ]);
    not_alert_email(&channel)?;
    if let Some(name) = &body.name {
        channel.name = check_name("name", name)?;
    }
    if let Some(raw) = &body.min_severity {
        channel.min_severity = parse_severity(raw)?;
    }
    if let Some(raw) = &body.events {
        channel.events = parse_events(raw)?;
    }
    if let Some(secret) = &body.secret {
        channel.secret = Some(check_secret(channel.kind, secret)?);
    }
    if let Some(target) = &body.target {
        channel.target = check_target(&state, channel.kind, target).await?;
    }
    if let Some(enabled) = body.enabled {
        channel.enabled = enabled;
    }
    channel.updated_at = Utc::now();
    state
        .store
        .update_channel(channel.clone())
        .await
        .map_err(or_not_found("channel"))?;
    let mut details = audit_view(&channel);
    details["changed"] = serde_json::json!(changed);
    Ok((
        Extension(AuditNote::details(details)),
        Json(ChannelView::from(&channel)),
    ))
}

/// `DELETE /notifications/channels/{id}` (admin).
pub async fn delete(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Extension<AuditNote>), ApiError> {
    let channel = find(&state, &auth, &id).await?;
    not_alert_email(&channel)?;
    state
        .store
        .delete_channel(auth.user.org_id, channel.id)
        .await
        .map_err(or_not_found("channel"))?;
    tracing::info!(org = %channel.org_id, channel = %channel.id, "Notification channel deleted.");
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditNote::details(audit_view(&channel))),
    ))
}

/// What a test send gave.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestResult {
    pub delivered: bool,
    /// The receiver's answer (an HTTP status or an SMTP reply code), if any.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// `POST /notifications/channels/{id}/test` (admin): send a `channel.test` event now
/// (also to a disabled channel) and say what the receiver answered. Nothing is stored.
pub async fn test(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<(Extension<AuditNote>, Json<TestResult>), ApiError> {
    let channel = find(&state, &auth, &id).await?;
    let event = Event {
        id: 0,
        event: EventName::ChannelTest,
        timestamp: Utc::now(),
        organization_id: channel.org_id,
        data: serde_json::json!({
            "channel": { "id": channel.id, "name": channel.name, "kind": channel.kind },
            "message": "This is a test notification from mcpwatch.",
        }),
    };
    let outcome = state.notifier.send(&channel, &event).await;
    let delivered = matches!(outcome, Outcome::Delivered { .. });
    let mut details = audit_view(&channel);
    details["delivered"] = serde_json::json!(delivered);
    let result = match outcome {
        Outcome::Delivered { status } => TestResult {
            delivered: true,
            status,
            error: None,
        },
        Outcome::Retry { status, error, .. } | Outcome::Refused { status, error } => TestResult {
            delivered: false,
            status,
            error: Some(error),
        },
    };
    Ok((Extension(AuditNote::details(details)), Json(result)))
}

/// What the audit log says of a channel: never its target or secret.
fn audit_view(channel: &Channel) -> serde_json::Value {
    serde_json::json!({
        "name": channel.name,
        "kind": channel.kind,
        "min_severity": channel.min_severity,
        "events": channel.events,
        "enabled": channel.enabled,
    })
}

/// A delivery as the API shows it (without the event's data; `event_id` finds it).
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: DeliveryId,
    pub channel_id: ChannelId,
    pub event_id: u64,
    pub event: EventName,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            channel_id: d.channel_id,
            event_id: d.event.id,
            event: d.event.event,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    #[param(value_type = Option<String>, format = Uuid)]
    pub channel_id: Option<String>,
    /// `pending`, `delivered`, `retrying` or `failed`.
    #[param(value_type = Option<String>, pattern = "^\\s*(pending|delivered|retrying|failed)?\\s*$")]
    pub status: Option<String>,
    /// From 1 (default 1).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub page: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
}

/// `GET /notifications/deliveries?channel_id=&status=&page=&page_size=` (admin),
/// newest first.
pub async fn deliveries(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<DeliveryParams>,
) -> Result<Json<PageResponse<DeliveryView>>, ApiError> {
    let (page, page_size) = paging(&params.page, &params.page_size)?;
    let channel_id = match param(&params.channel_id) {
        None => None,
        Some(raw) => Some(raw.parse::<ChannelId>().map_err(|_| {
            ApiError::invalid_field("channel_id", "channel_id must be a channel id")
        })?),
    };
    let status = match param(&params.status) {
        None => None,
        Some(raw) => Some(
            DeliveryStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == raw)
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "status",
                        "status must be pending, delivered, retrying or failed",
                    )
                })?,
        ),
    };
    let query = DeliveryQuery {
        channel_id,
        status,
        page,
        page_size,
    };
    let result = state.store.list_deliveries(auth.user.org_id, query).await?;
    let items = result.items.into_iter().map(DeliveryView::from).collect();
    Ok(Json(PageResponse::new(
        items,
        result.total,
        page,
        page_size,
    )))
}
