//! `/auth/*`: registration, login, token refresh and logout, the caller's own profile
//! and password, and the caller's organisation.

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::{Extension, Json};
use chrono::Utc;
use mcpwatch_protocol::ids::{OrgId, SessionId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{AuditNote, user_actor};
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::{
    ClientAddr, blocking, changed_fields, check_name, check_password, double_option,
    normalise_email,
};
use crate::audit::Action;
use crate::auth::password;
use crate::auth::tokens::{ACCESS_TTL, REFRESH_TTL, TokenType};
use crate::model::{Org, Role, Session, User};
use crate::state::SharedState;
use crate::store::{self, OrgPatch, UserPatch};

/// How a user is shown. Never includes the password hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub organization_id: OrgId,
    pub is_active: bool,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            role: u.role,
            organization_id: u.org_id,
            is_active: u.is_active,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrgView {
    pub id: OrgId,
    pub name: String,
    pub alert_email: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<&Org> for OrgView {
    fn from(o: &Org) -> Self {
        Self {
            id: o.id,
            name: o.name.clone(),
            alert_email: o.alert_email.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub organization_name: Option<String>,
}

/// `POST /auth/register`: the first registration creates the organisation and its
/// admin; later ones are refused unless the operator opened registration.
pub async fn register(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<serde_json::Value>), ApiError> {
    let email = normalise_email("email", &body.email)?;
    check_password("password", &body.password)?;
    let full_name = match body.full_name.as_deref() {
        Some(name) if !name.trim().is_empty() => check_name("full_name", name)?,
        _ => String::new(),
    };
    let org_name = match body.organization_name.as_deref() {
        Some(name) => check_name("organization_name", name)?,
        None => email
            .split_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default(),
    };
    let pw = body.password;
    let hash = blocking(move || password::hash(&pw)).await??;
    let now = Utc::now();
    let org = Org {
        id: OrgId::new(),
        name: org_name,
        alert_email: None,
        created_at: now,
        updated_at: now,
    };
    let user = User {
        id: UserId::new(),
        org_id: org.id,
        email,
        full_name,
        role: Role::Admin,
        password_hash: hash,
        is_active: true,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_org_with_admin(org.clone(), user.clone(), !state.settings.open_registration)
        .await?;
    tracing::info!(org = %org.id, user = %user.id, "Organisation registered.");
    let mut view = serde_json::to_value(UserView::from(&user)).map_err(ApiError::internal)?;
    if let Some(obj) = view.as_object_mut() {
        obj.insert(
            "organization".into(),
            serde_json::to_value(OrgView::from(&org)).map_err(ApiError::internal)?,
        );
    }
    let note = AuditNote {
        org: Some(org.id),
        actor: Some(user_actor(&user)),
        ..AuditNote::made(
            org.id,
            json!({ "organization_name": org.name, "email": user.email }),
        )
    };
    Ok((StatusCode::CREATED, Extension(note), Json(view)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct FormLogin {
    username: String,
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct JsonLogin {
    #[serde(alias = "username")]
    pub email: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
}

fn issue_pair(
    state: &SharedState,
    session: &Session,
    refresh_jti_token: String,
) -> Result<TokenResponse, ApiError> {
    let access = state.tokens.issue(
        session.user_id,
        session.org_id,
        session.id,
        TokenType::Access,
    )?;
    Ok(TokenResponse {
        access_token: access.token,
        refresh_token: refresh_jti_token,
        token_type: "bearer",
        expires_in: ACCESS_TTL.num_seconds(),
        refresh_expires_in: REFRESH_TTL.num_seconds(),
    })
}

/// How long a login for an account waits, once it has `failures` recent failures from
/// anywhere: nothing up to `free`, then 100 ms more per failure, at most a second.
fn login_delay(failures: u32, free: u32) -> std::time::Duration {
    let over = failures.saturating_sub(free);
    std::time::Duration::from_millis(u64::from(over.min(10)) * 100)
}

/// `POST /auth/login`: form (`username`, `password`, as in the seed) or JSON
/// (`email`, `password`). Failures count per account and per address.
pub async fn login(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    req: Request,
) -> Result<(Extension<AuditNote>, Json<TokenResponse>), ApiError> {
    let (email, pw) = credentials(req, &state).await?;
    let email = email.trim().to_lowercase();
    let pair = (email.clone(), addr);
    let locked = state
        .login_by_pair
        .locked_for(&pair)
        .or(state.login_by_address.locked_for(&addr));
    if let Some(secs) = locked {
        return Err(ApiError::rate_limited(
            secs,
            "too many failed logins; try again later",
        ));
    }
    // Failures against this account from anywhere slow every attempt down (a second
    // at most), which costs a guesser far more than the owner.
    let delay = login_delay(
        state.login_by_account.failures(&email),
        state.settings.login_failures_per_account,
    );
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let user = state.store.find_user_by_email(&email).await?;
    let matched = match &user {
        Some(u) => {
            let hash = u.password_hash.clone();
            blocking(move || password::verify(&pw, &hash)).await?
        }
        None => {
            blocking(move || password::verify_dummy(&pw)).await?;
            false
        }
    };
    // A failure for a known account is in its organisation's audit log (never the
    // password); one for an unknown email has no organisation to be filed under.
    let failed = |user: &User, reason: &str| AuditNote {
        org: Some(user.org_id),
        actor: Some(user_actor(user)),
        action: Some(Action::LoginFailed),
        ..AuditNote::made(user.id, json!({ "reason": reason }))
    };
    let user = match user {
        Some(user) if matched => user,
        known => {
            state.login_by_pair.record_failure(&pair);
            state.login_by_account.record_failure(&email);
            state.login_by_address.record_failure(&addr);
            tracing::info!(client = %addr, "Login failed.");
            let refusal = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "email or password is incorrect",
            );
            return Err(match known {
                Some(user) => refusal.audited(failed(&user, "wrong password")),
                None => refusal,
            });
        }
    };
    if !user.is_active {
        return Err(ApiError::forbidden("account is disabled")
            .audited(failed(&user, "account is disabled")));
    }
    state.login_by_pair.reset(&pair);
    let (session, tokens) = start_session(&state, &user).await?;
    let note = AuditNote {
        org: Some(user.org_id),
        actor: Some(user_actor(&user)),
        ..AuditNote::made(user.id, json!({ "session_id": session.id }))
    };
    Ok((Extension(note), Json(tokens)))
}

/// The email and password of a login: a form (`username`, `password`) or JSON.
async fn credentials(req: Request, state: &SharedState) -> Result<(String, String), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    Ok(if is_json {
        let ApiJson(body) = ApiJson::<JsonLogin>::from_request(req, state).await?;
        (body.email, body.password)
    } else {
        let axum::Form(body) = axum::Form::<FormLogin>::from_request(req, state).await?;
        (body.username, body.password)
    })
}

/// A new session for `user`, and its first tokens.
async fn start_session(
    state: &SharedState,
    user: &User,
) -> Result<(Session, TokenResponse), ApiError> {
    let session_id = SessionId::new();
    let refresh = state
        .tokens
        .issue(user.id, user.org_id, session_id, TokenType::Refresh)?;
    let session = Session {
        id: session_id,
        user_id: user.id,
        org_id: user.org_id,
        refresh_jti: refresh.jti,
        created_at: Utc::now(),
        expires_at: refresh.expires_at,
    };
    state.store.create_session(session.clone()).await?;
    let tokens = issue_pair(state, &session, refresh.token)?;
    Ok((session, tokens))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /auth/refresh`: exchange a refresh token for a new pair. Each refresh token
/// works once; using one twice ends its session.
pub async fn refresh(
    State(state): State<SharedState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let claims = state
        .tokens
        .verify(&body.refresh_token, TokenType::Refresh)?;
    let next = state
        .tokens
        .issue(claims.sub, claims.org, claims.sid, TokenType::Refresh)?;
    let session = match state
        .store
        .rotate_session(claims.sid, &claims.jti, next.jti, next.expires_at)
        .await
    {
        Ok(s) => s,
        Err(store::Error::NotFound) => {
            return Err(ApiError::unauthorized(
                "refresh token is no longer valid; log in again",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    // A concurrent refresh of the same token may have ended the session meanwhile
    // (reuse of a rotated refresh token ends it): that is a refused token, not a
    // missing resource.
    let gone = || ApiError::unauthorized("refresh token is no longer valid; log in again");
    let (_, user) = match state.store.get_session(session.id).await {
        Ok(found) => found,
        Err(store::Error::NotFound) => return Err(gone()),
        Err(e) => return Err(e.into()),
    };
    if !user.is_active {
        match state.store.delete_session(session.id).await {
            Ok(()) | Err(store::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        return Err(ApiError::unauthorized("account is disabled"));
    }
    Ok(Json(issue_pair(&state, &session, next.token)?))
}

/// `POST /auth/logout`: end the caller's session (its access and refresh tokens).
pub async fn logout(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<StatusCode, ApiError> {
    let Some(session) = auth.session() else {
        return Err(ApiError::bad_request(
            "an API token has no session to end; revoke it with DELETE /api-tokens/{id}",
        ));
    };
    state.store.delete_session(session.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /auth/me`.
pub async fn me(auth: AuthUser) -> Json<UserView> {
    Json(UserView::from(&auth.user))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `PATCH /auth/me`: change one's name or email.
pub async fn update_me(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<UpdateMeRequest>,
) -> Result<(Extension<AuditNote>, Json<UserView>), ApiError> {
    let changed = changed_fields(&[
        ("full_name", body.full_name.is_some()),
        ("email", body.email.is_some()),
    ]);
    let patch = UserPatch {
        full_name: body
            .full_name
            .as_deref()
            .map(|n| check_name("full_name", n))
            .transpose()?,
        email: body
            .email
            .as_deref()
            .map(|e| normalise_email("email", e))
            .transpose()?,
        ..UserPatch::default()
    };
    let user = state
        .store
        .update_user(auth.user.org_id, auth.user.id, patch, Utc::now())
        .await?;
    let note = AuditNote::made(user.id, json!({ "changed": changed, "email": user.email }));
    Ok((Extension(note), Json(UserView::from(&user))))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// `PUT /auth/me/password`: needs the current password; ends the user's other sessions.
pub async fn change_password(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    auth: AuthUser,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_password("new_password", &body.new_password)?;
    let account = (auth.user.email.clone(), addr);
    if let Some(secs) = state.login_by_pair.locked_for(&account) {
        return Err(ApiError::rate_limited(
            secs,
            "too many wrong passwords; try again later",
        ));
    }
    let (current, hash) = (body.current_password, auth.user.password_hash.clone());
    if !blocking(move || password::verify(&current, &hash)).await? {
        state.login_by_pair.record_failure(&account);
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "wrong_password",
            "current_password is incorrect",
        )
        .with_details(json!({ "field": "current_password" })));
    }
    let new = body.new_password;
    let new_hash = blocking(move || password::hash(&new)).await??;
    let patch = UserPatch {
        password_hash: Some(new_hash),
        ..UserPatch::default()
    };
    state
        .store
        .update_user(auth.user.org_id, auth.user.id, patch, Utc::now())
        .await?;
    state
        .store
        .delete_user_sessions(auth.user.org_id, auth.user.id, auth.session().map(|s| s.id))
        .await?;
    Ok(Json(
        json!({ "message": "password changed; other sessions were ended" }),
    ))
}

/// `GET /auth/organization`.
pub async fn get_organization(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<OrgView>, ApiError> {
    let org = state.store.get_org(auth.user.org_id).await?;
    Ok(Json(OrgView::from(&org)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub alert_email: Option<Option<String>>,
}

/// `PATCH /auth/organization` (admin).
pub async fn update_organization(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<UpdateOrgRequest>,
) -> Result<(Extension<AuditNote>, Json<OrgView>), ApiError> {
    let changed = changed_fields(&[
        ("name", body.name.is_some()),
        ("alert_email", body.alert_email.is_some()),
    ]);
    let patch = OrgPatch {
        name: body
            .name
            .as_deref()
            .map(|n| check_name("name", n))
            .transpose()?,
        alert_email: match body.alert_email {
            None => None,
            Some(None) => Some(None),
            Some(Some(e)) if e.trim().is_empty() => Some(None),
            Some(Some(e)) => Some(Some(normalise_email("alert_email", &e)?)),
        },
    };
    let org = state
        .store
        .update_org(auth.user.org_id, patch, Utc::now())
        .await?;
    let note = AuditNote::made(
        org.id,
        json!({ "changed": changed, "alert_email": org.alert_email }),
    );
    Ok((Extension(note), Json(OrgView::from(&org))))
}
