//! `/alerts/*`: list (filters `dismissed`, `severity`; paged), dismiss one, dismiss all.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::Utc;
use mcpwatch_protocol::ids::AlertId;
use serde::Deserialize;
use serde_json::json;

use super::audit::AuditNote;
use super::error::{ApiError, or_not_found};
use super::extract::{ApiQuery, AuthUser};
use super::servers::parse_level;
use super::{PageResponse, paging, param, path_id};
use crate::model::Alert;
use crate::state::SharedState;
use crate::store::{AlertQuery, AlertSort, Direction};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    #[param(value_type = Option<bool>)]
    pub dismissed: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    #[param(value_type = Option<String>, pattern = "^\\s*(low|medium|high|critical)?\\s*$")]
    pub severity: Option<String>,
    /// `<field>[:asc|desc]`: `created_at` (the default), `updated_at`, `severity`.
    #[param(value_type = Option<String>, pattern = "^\\s*((created_at|updated_at|severity)(:(asc|desc))?)?\\s*$")]
    pub sort: Option<String>,
    /// From 1 (default 1).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub page: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
}

/// The fields `GET /alerts/` sorts by.
const ALERT_SORTS: [(&str, AlertSort); 3] = [
    ("created_at", AlertSort::CreatedAt),
    ("updated_at", AlertSort::UpdatedAt),
    ("severity", AlertSort::Severity),
];

/// `GET /alerts/`: newest first.
pub async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<PageResponse<Alert>>, ApiError> {
    let (page, page_size) = paging(&params.page, &params.page_size)?;
    let dismissed = match param(&params.dismissed) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "dismissed",
                format!("dismissed: expected true or false, got {other:?}"),
            ));
        }
    };
    let query = AlertQuery {
        dismissed,
        severity: parse_level("severity", &params.severity)?,
        sort: super::parse_sort(&params.sort, &ALERT_SORTS, Direction::Desc)?,
        page,
        page_size,
    };
    let found = state.store.list_alerts(auth.user.org_id, query).await?;
    Ok(Json(PageResponse::new(
        found.items,
        found.total,
        page,
        page_size,
    )))
}

/// `POST /alerts/{id}/dismiss` (analyst).
pub async fn dismiss(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<(Extension<AuditNote>, Json<Alert>), ApiError> {
    let id: AlertId = path_id(&id, "alert")?;
    let alert = state
        .store
        .dismiss_alert(auth.user.org_id, id, auth.user.id, Utc::now())
        .await
        .map_err(or_not_found("alert"))?;
    let note = AuditNote::details(json!({
        "title": alert.title,
        "severity": alert.severity,
        "kind": alert.kind,
    }));
    Ok((Extension(note), Json(alert)))
}

/// `POST /alerts/dismiss-all` (analyst).
pub async fn dismiss_all(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<(Extension<AuditNote>, Json<serde_json::Value>), ApiError> {
    let n = state
        .store
        .dismiss_all_alerts(auth.user.org_id, auth.user.id, Utc::now())
        .await?;
    let note = AuditNote::details(json!({ "dismissed": n }));
    Ok((Extension(note), Json(json!({ "dismissed": n }))))
}
