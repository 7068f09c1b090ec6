//! `/users`: an admin manages the organisation's people and their roles.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use mcpwatch_protocol::ids::UserId;
use serde::Deserialize;
use serde_json::json;

use super::audit::AuditNote;
use super::auth::UserView;
use super::error::{ApiError, or_not_found};
use super::extract::{ApiJson, AuthUser};
use super::{blocking, changed_fields, check_name, check_password, normalise_email, path_id};
use crate::audit::Action;
use crate::auth::password;
use crate::model::{Role, User};
use crate::state::SharedState;
use crate::store::UserPatch;

/// `GET /users` (admin).
pub async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let users = state.store.list_users(auth.user.org_id).await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// `GET /users/{id}` (admin).
pub async fn get(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let id: UserId = path_id(&id, "user")?;
    let user = state
        .store
        .get_user(auth.user.org_id, id)
        .await
        .map_err(or_not_found("user"))?;
    Ok(Json(UserView::from(&user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub full_name: Option<String>,
    pub role: Role,
}

/// `POST /users` (admin).
pub async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<UserView>), ApiError> {
    let email = normalise_email("email", &body.email)?;
    check_password("password", &body.password)?;
    let full_name = match body.full_name.as_deref() {
        Some(n) if !n.trim().is_empty() => check_name("full_name", n)?,
        _ => String::new(),
    };
    let pw = body.password;
    let hash = blocking(move || password::hash(&pw)).await??;
    let now = Utc::now();
    let user = User {
        id: UserId::new(),
        org_id: auth.user.org_id,
        email,
        full_name,
        role: body.role,
        password_hash: hash,
        is_active: true,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_user(auth.user.org_id, user.clone())
        .await?;
    tracing::info!(org = %user.org_id, user = %user.id, role = user.role.as_str(), "User created.");
    let note = AuditNote::made(user.id, json!({ "email": user.email, "role": user.role }));
    Ok((
        StatusCode::CREATED,
        Extension(note),
        Json(UserView::from(&user)),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub password: Option<String>,
}

/// `PATCH /users/{id}` (admin). Setting a password or deactivating ends the user's sessions.
pub async fn update(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> Result<(Extension<AuditNote>, Json<UserView>), ApiError> {
    let id: UserId = path_id(&id, "user")?;
    let changed = changed_fields(&[
        ("email", body.email.is_some()),
        ("full_name", body.full_name.is_some()),
        ("role", body.role.is_some()),
        ("is_active", body.is_active.is_some()),
        ("password", body.password.is_some()),
    ]);
    // The most telling name for what changed.
    let action = match (body.is_active, body.role) {
        (Some(false), _) => Action::UserDeactivated,
        (_, Some(_)) => Action::UserRoleChanged,
        _ => Action::UserUpdated,
    };
    let password_hash = match body.password {
        Some(pw) => {
            check_password("password", &pw)?;
            Some(blocking(move || password::hash(&pw)).await??)
        }
        None => None,
    };
    let end_sessions = password_hash.is_some() || body.is_active == Some(false);
    let patch = UserPatch {
        email: body
            .email
            .as_deref()
            .map(|e| normalise_email("email", e))
            .transpose()?,
        full_name: body
            .full_name
            .as_deref()
            .map(|n| check_name("full_name", n))
            .transpose()?,
        role: body.role,
        is_active: body.is_active,
        password_hash,
    };
    let user = state
        .store
        .update_user(auth.user.org_id, id, patch, Utc::now())
        .await
        .map_err(or_not_found("user"))?;
    if end_sessions {
        let keep = auth.session().filter(|_| id == auth.user.id).map(|s| s.id);
        state
            .store
            .delete_user_sessions(auth.user.org_id, id, keep)
            .await?;
    }
    let note = AuditNote {
        action: Some(action),
        ..AuditNote::details(json!({
            "changed": changed,
            "email": user.email,
            "role": user.role,
            "is_active": user.is_active,
        }))
    };
    Ok((Extension(note), Json(UserView::from(&user))))
}

/// `DELETE /users/{id}` (admin). The last active admin cannot be removed.
pub async fn delete(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: UserId = path_id(&id, "user")?;
    state
        .store
        .delete_user(auth.user.org_id, id)
        .await
        .map_err(or_not_found("user"))?;
    Ok(StatusCode::NO_CONTENT)
}
