//! The audit log over HTTP: what a handler tells the audit layer ([`AuditNote`]), the
//! layer itself ([`layer`], put by the router on every route that names an action),
//! and `GET /audit` (admin).
//!
//! The layer records an entry when its route answers 2xx, or when a refusal's handler
//! asks for one (a failed login for a known account): who (the authenticated person or token, or whom a public route's
//! handler names), the action (the route's, or the handler's more precise one), the
//! target (the route's `{id}`, or what the handler made), the client address, and the
//! handler's details. The entry is written before the answer is sent.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AuditId, OrgId};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser, Credential};
use super::{PageResponse, paging, param};
use crate::audit::{Action, Actor, ActorKind, Entry, Target};
use crate::model::User;
use crate::state::SharedState;
use crate::store::AuditQuery;

/// What a handler adds to its answer for the audit layer. Never a secret.
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    /// The organisation, when no authenticated person says it (public routes).
    pub org: Option<OrgId>,
    /// Who acted, when no authenticated person did (public routes).
    pub actor: Option<Actor>,
    /// A more precise action than the route's (a role change rather than an update).
    pub action: Option<Action>,
    /// What was made, when the path names no id.
    pub target_id: Option<String>,
    pub details: serde_json::Value,
}

impl AuditNote {
    /// A note with details.
    pub fn details(details: serde_json::Value) -> Self {
        Self {
            details,
            ..Self::default()
        }
    }

    /// A note naming what was made.
    pub fn made(id: impl ToString, details: serde_json::Value) -> Self {
        Self {
            target_id: Some(id.to_string()),
            details,
            ..Self::default()
        }
    }
}

/// Who an authenticated request came from, as the authorising layer found it.
#[derive(Clone, Debug)]
pub struct AuditSource {
    pub org: OrgId,
    pub actor: Actor,
}

/// A person as an actor.
pub fn user_actor(user: &User) -> Actor {
    Actor {
        kind: ActorKind::User,
        id: Some(user.id.to_string()),
        email: Some(user.email.clone()),
        user_id: None,
    }
}

impl From<&AuthUser> for AuditSource {
    fn from(auth: &AuthUser) -> Self {
        let actor = match &auth.via {
            Credential::Session(_) => user_actor(&auth.user),
            Credential::ApiToken(token) => Actor {
                kind: ActorKind::ApiToken,
                id: Some(token.id.to_string()),
                email: Some(auth.user.email.clone()),
                user_id: Some(auth.user.id.to_string()),
            },
        };
        Self {
            org: auth.user.org_id,
            actor,
        }
    }
}

/// The `{id}` of `matched` (a route pattern) in `path`.
fn path_id(matched: &str, path: &str) -> Option<String> {
    let pattern: Vec<&str> = matched.trim_end_matches('/').split('/').collect();
    let actual: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let at = pattern.iter().position(|p| *p == "{id}")?;
    (pattern.len() == actual.len()).then(|| actual[at].to_owned())
}

/// The audit layer of a route whose action is `action` on a `target` kind.
pub async fn layer(
    state: SharedState,
    (action, target): (Action, &'static str),
    req: Request,
    next: Next,
) -> Response {
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let id = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| path_id(m.as_str(), req.uri().path()));
    let mut response = next.run(req).await;
    let status = response.status();
    let note = response
        .extensions_mut()
        .remove::<AuditNote>()
        .unwrap_or_default();
    let source = response.extensions_mut().remove::<AuditSource>();
    // A refusal is recorded only when its handler asks (a failed login).
    let action = match (status.is_success(), note.action) {
        (true, chosen) => chosen.unwrap_or(action),
        (false, Some(chosen)) => chosen,
        (false, None) => return response,
    };
    let (org, actor) = match (source, note.org, note.actor) {
        (Some(s), _, _) => (s.org, s.actor),
        (None, Some(org), Some(actor)) => (org, actor),
        // Nobody to file it under (a failed login for an unknown email).
        _ => return response,
    };
    let entry = Entry {
        id: AuditId::new(),
        organization_id: org,
        at: Utc::now(),
        actor,
        action,
        target: Target {
            kind: target.to_owned(),
            id: note.target_id.or(id),
        },
        source_ip,
        details: note.details,
    };
    if let Err(e) = state.store.record_audit(entry).await {
        tracing::error!(error = %e, action = action.as_str(), "Writing an audit log entry failed.");
    }
    response
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    pub actor_id: Option<String>,
    /// One of the actions (`user.created`, ...).
    #[param(value_type = Option<String>, pattern = "^[a-z_]+\\.[a-z_]+$")]
    pub action: Option<String>,
    pub target_id: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// From 1 (default 1).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub page: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
}

fn time(field: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    param(value)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid_field(
                        field,
                        format!("{field} must be an RFC 3339 time (2026-12-01T00:00:00Z)"),
                    )
                })
        })
        .transpose()
}

/// `GET /audit?actor_id=&action=&target_id=&since=&until=&page=&page_size=` (admin),
/// newest first.
pub async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<PageResponse<Entry>>, ApiError> {
    let (page, page_size) = paging(&params.page, &params.page_size)?;
    let action = param(&params.action)
        .map(|a| {
            Action::parse(a).ok_or_else(|| {
                ApiError::invalid_field("action", "action is not one the audit log records")
                    .with_details(serde_json::json!({
                        "field": "action",
                        "actions": Action::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                    }))
            })
        })
        .transpose()?;
    let query = AuditQuery {
        actor_id: param(&params.actor_id).map(str::to_owned),
        action,
        target_id: param(&params.target_id).map(str::to_owned),
        since: time("since", &params.since)?,
        until: time("until", &params.until)?,
        page,
        page_size,
    };
    let result = state.store.list_audit(auth.user.org_id, query).await?;
    Ok(Json(PageResponse::new(
        result.items,
        result.total,
        page,
        page_size,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_id_is_where_the_pattern_has_it() {
        assert_eq!(path_id("/users/{id}", "/users/abc").as_deref(), Some("abc"));
        assert_eq!(
            path_id("/api/v1/users/{id}/", "/api/v1/users/abc/").as_deref(),
            Some("abc")
        );
        assert_eq!(
            path_id(
                "/notifications/channels/{id}/test",
                "/notifications/channels/x/test"
            )
            .as_deref(),
            Some("x")
        );
        assert_eq!(path_id("/users", "/users"), None);
    }
}
