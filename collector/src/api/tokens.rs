//! `/api-tokens`: people make tokens (`mcp_pat_...`) for scripts and services, with a
//! role at most their own and an expiry; the token is shown once and only its hash is
//! kept. Everyone sees and revokes their own; an admin sees and revokes every token of
//! the organisation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{ApiTokenId, UserId};
use serde::{Deserialize, Serialize};

use super::audit::AuditNote;
use super::error::{ApiError, or_not_found};
use super::extract::{ApiJson, AuthUser};
use super::{check_name, path_id};
use crate::auth::keys;
use crate::model::{ApiToken, Role};
use crate::state::SharedState;

/// Days a token lives unless told otherwise, and at most.
pub const DEFAULT_DAYS: u32 = 90;
pub const MAX_DAYS: u32 = 365;
/// The most tokens one person may hold.
pub const MAX_TOKENS_PER_USER: usize = 50;

/// A token as listed: never the token itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: ApiTokenId,
    pub name: String,
    pub role: Role,
    pub token_prefix: String,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn view(state: &SharedState, t: &ApiToken) -> TokenView {
    let unsaved = state.token_use.unsaved(t.org_id, t.id);
    TokenView {
        id: t.id,
        name: t.name.clone(),
        role: t.role,
        token_prefix: t.token_prefix.clone(),
        user_id: t.user_id,
        created_at: t.created_at,
        expires_at: t.expires_at,
        last_used_at: t.last_used_at.max(unsaved),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: TokenView,
    /// Shown this once.
    pub token: String,
}

/// `POST /api-tokens` (any person).
pub async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<CreatedToken>), ApiError> {
    let name = check_name("name", &body.name)?;
    let role = body.role.unwrap_or(auth.user.role);
    if role > auth.user.role {
        return Err(ApiError::forbidden(format!(
            "a token's role is at most yours ({}); {} was asked",
            auth.user.role.as_str(),
            role.as_str()
        ))
        .with_details(serde_json::json!({ "field": "role" })));
    }
    let days = body.expires_in_days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::validation(
            "expires_in_days",
            format!("expires_in_days must be from 1 to {MAX_DAYS}"),
        ));
    }
    let mine = state
        .store
        .list_api_tokens(auth.user.org_id, Some(auth.user.id))
        .await?;
    if mine.len() >= MAX_TOKENS_PER_USER {
        return Err(ApiError::conflict(format!(
            "a person holds at most {MAX_TOKENS_PER_USER} API tokens; revoke one first"
        )));
    }
    let token = keys::new_api_token()?;
    let now = Utc::now();
    let record = ApiToken {
        id: ApiTokenId::new(),
        org_id: auth.user.org_id,
        user_id: auth.user.id,
        name,
        role,
        token_hash: keys::hash(&token),
        token_prefix: keys::display_prefix(&token),
        created_at: now,
        expires_at: now + chrono::Duration::days(i64::from(days)),
        last_used_at: None,
    };
    state.store.create_api_token(record.clone()).await?;
    tracing::info!(org = %record.org_id, user = %record.user_id, token = %record.id, role = role.as_str(), "API token created.");
    let note = AuditNote::made(
        record.id,
        serde_json::json!({ "name": record.name, "role": record.role, "expires_at": record.expires_at, "token_prefix": record.token_prefix }),
    );
    Ok((
        StatusCode::CREATED,
        Extension(note),
        Json(CreatedToken {
            view: view(&state, &record),
            token,
        }),
    ))
}

/// `GET /api-tokens`: the caller's tokens; an admin's list has the organisation's.
pub async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let only = (auth.user.role < Role::Admin).then_some(auth.user.id);
    let tokens = state.store.list_api_tokens(auth.user.org_id, only).await?;
    Ok(Json(tokens.iter().map(|t| view(&state, t)).collect()))
}

/// `DELETE /api-tokens/{id}`: revoke one of the caller's tokens (an admin: any of the
/// organisation's). Another person's token is a 404 to a non-admin.
pub async fn delete(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Extension<AuditNote>), ApiError> {
    let id: ApiTokenId = path_id(&id, "API token")?;
    let org = auth.user.org_id;
    let token = state
        .store
        .get_api_token(org, id)
        .await
        .map_err(or_not_found("API token"))?;
    if token.user_id != auth.user.id && auth.user.role < Role::Admin {
        return Err(ApiError::not_found("API token"));
    }
    state
        .store
        .delete_api_token(org, id)
        .await
        .map_err(or_not_found("API token"))?;
    tracing::info!(org = %org, token = %id, "API token revoked.");
    let note =
        AuditNote::details(serde_json::json!({ "name": token.name, "owner": token.user_id }));
    Ok((StatusCode::NO_CONTENT, Extension(note)))
}
