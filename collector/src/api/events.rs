//! `GET /events`: the organisation's events as a live stream (Server-Sent Events), for
//! the console; audit events (`audit.*`) only to admins, who alone read the audit log. Each event is `id:` (the event id), `event:` (its name) and `data:`
//! (the event as JSON); comments keep the connection alive. Without `Last-Event-ID`
//! the stream starts with the next event; with it, it first replays what the outbox
//! still holds after that event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use mcpwatch_protocol::ids::OrgId;

use super::error::ApiError;
use super::extract::AuthUser;
use crate::events::{Event, EventName};
use crate::model::Role;
use crate::state::SharedState;
use crate::store::Store;

/// Events read from the store at a time.
const BATCH: usize = 100;
/// How long a reader waits before trying again when the store cannot be read.
const RETRY: Duration = Duration::from_secs(1);

/// Where a stream is: after which event, and what it has read but not sent.
struct Cursor {
    store: std::sync::Arc<dyn Store>,
    org: OrgId,
    after: Option<u64>,
    signal: tokio::sync::watch::Receiver<u64>,
    pending: VecDeque<Event>,
    /// Whether audit events are sent (to admins only, as `GET /audit` is).
    audit: bool,
}

impl Cursor {
    /// The next event: read from the store if none is pending, waiting for the next
    /// commit when there is nothing new. `None` when the store goes away.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.after = Some(event.id);
                if !self.audit && matches!(event.event, EventName::Audit(_)) {
                    continue;
                }
                return Some(event);
            }
            // Seen before reading, so a commit during the read wakes the wait below.
            self.signal.borrow_and_update();
            match self.store.events_after(self.org, self.after, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    self.pending.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Events could not be read for a live stream; retrying.");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
            self.signal.changed().await.ok()?;
        }
    }
}

fn sse(event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.event.as_str())
        .data(data)
}

/// `GET /events` (any user of the organisation).
pub async fn stream(
    State(state): State<SharedState>,
    auth: AuthUser,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "Last-Event-ID",
                        "Last-Event-ID must be an event id (a number)",
                    )
                })?,
        ),
    };
    let signal = state.store.event_signal();
    // From now on, unless resuming: ids grow across organisations, so the newest
    // committed id is where "now" is for every organisation.
    let after = after.or_else(|| Some(*signal.borrow()));
    let cursor = Cursor {
        signal,
        store: std::sync::Arc::clone(&state.store),
        org: auth.user.org_id,
        after,
        pending: VecDeque::new(),
        audit: auth.user.role >= Role::Admin,
    };
    let events = futures_util::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        Some((Ok(sse(&event)), cursor))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
