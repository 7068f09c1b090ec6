//! Enrollment: admins manage enroll secrets (`/enroll-secrets`); an agent exchanges
//! one, with its host facts and public key, for its own identity (`POST /agents/enroll`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::EnrollSecretId;
use mcpwatch_protocol::signing;
use mcpwatch_protocol::wire::{EnrollRequest, EnrollResponse};
use serde::{Deserialize, Serialize};

use super::agents::new_agent;
use super::audit::AuditNote;
use super::error::{ApiError, or_not_found};
use super::extract::{ApiJson, AuthUser};
use super::{ClientAddr, check_name, path_id};
use crate::audit::{Actor, ActorKind};
use crate::auth::keys;
use crate::model::{EnrollSecret, Enrollment, HostFacts};
use crate::state::SharedState;
use crate::store;

/// How an enroll secret is shown after creation: never the secret itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnrollSecretView {
    pub id: EnrollSecretId,
    pub name: String,
    pub secret_prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub enrolled_count: u64,
}

impl From<&EnrollSecret> for EnrollSecretView {
    fn from(s: &EnrollSecret) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            secret_prefix: s.secret_prefix.clone(),
            created_at: s.created_at,
            expires_at: s.expires_at,
            enrolled_count: s.enrolled_count,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretRequest {
    pub name: String,
    /// Days until the secret stops working; none means it does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedSecret {
    #[serde(flatten)]
    pub view: EnrollSecretView,
    /// Shown this once.
    pub secret: String,
}

/// `POST /enroll-secrets` (admin).
pub async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateSecretRequest>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<CreatedSecret>), ApiError> {
    let name = check_name("name", &body.name)?;
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(Utc::now() + chrono::Duration::days(i64::from(days))),
        Some(_) => {
            return Err(ApiError::validation(
                "expires_in_days",
                "expires_in_days must be from 1 to 3650",
            ));
        }
    };
    let secret = keys::new_enroll_secret()?;
    let record = EnrollSecret {
        id: EnrollSecretId::new(),
        org_id: auth.user.org_id,
        name,
        secret_hash: keys::hash(&secret),
        secret_prefix: keys::display_prefix(&secret),
        created_by: auth.user.id,
        created_at: Utc::now(),
        expires_at,
        enrolled_count: 0,
    };
    state.store.create_enroll_secret(record.clone()).await?;
    let note = AuditNote::made(
        record.id,
        serde_json::json!({ "name": record.name, "secret_prefix": record.secret_prefix, "expires_at": record.expires_at }),
    );
    Ok((
        StatusCode::CREATED,
        Extension(note),
        Json(CreatedSecret {
            view: EnrollSecretView::from(&record),
            secret,
        }),
    ))
}

/// `GET /enroll-secrets` (admin).
pub async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<Vec<EnrollSecretView>>, ApiError> {
    let secrets = state.store.list_enroll_secrets(auth.user.org_id).await?;
    Ok(Json(secrets.iter().map(EnrollSecretView::from).collect()))
}

/// `DELETE /enroll-secrets/{id}` (admin). Agents already enrolled keep their keys.
pub async fn delete(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: EnrollSecretId = path_id(&id, "enroll secret")?;
    state
        .store
        .delete_enroll_secret(auth.user.org_id, id)
        .await
        .map_err(or_not_found("enroll secret"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /agents/enroll` (enroll secret in the body). Wrong secrets count as failed
/// logins of the caller's address.
pub async fn enroll(
    State(state): State<SharedState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<EnrollResponse>), ApiError> {
    if let Some(secs) = state.login_by_address.locked_for(&addr) {
        return Err(ApiError::rate_limited(
            secs,
            "too many failed attempts; try again later",
        ));
    }
    mcpwatch_protocol::limits::check_enroll(&body)
        .map_err(|v| ApiError::validation(&v.field, v.to_string()))?;
    let public_key = signing::parse_public_key(&body.public_key)
        .map_err(|e| ApiError::validation("public_key", e.to_string()))?;
    let name = match body.name.as_deref().or(body.hostname.as_deref()) {
        Some(n) if !n.trim().is_empty() => check_name("name", n)?,
        _ => "agent".to_owned(),
    };
    // The organisation comes from the secret: the store sets it when it checks the secret.
    let (mut agent, api_key) = new_agent(
        name,
        mcpwatch_protocol::ids::OrgId::new(),
        Enrollment::EnrollSecret,
    )?;
    agent.public_key = Some(*public_key.as_bytes());
    agent.facts = HostFacts {
        hostname: body.hostname,
        os_type: body.os_type,
        os_version: body.os_version,
        username: body.username,
        agent_version: body.agent_version,
        machine: body.machine,
        report_error: None,
    };
    let now = Utc::now();
    agent.last_seen_at = Some(now);
    let agent = match state
        .store
        .enroll_agent(keys::hash(body.enroll_secret.trim()), agent, now)
        .await
    {
        Ok(a) => a,
        Err(store::Error::InvalidEnrollSecret) => {
            state.login_by_address.record_failure(&addr);
            return Err(ApiError::unauthorized(
                "enroll secret is not valid (unknown, deleted or expired)",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(org = %agent.org_id, agent = %agent.id, key_id = %agent.key_prefix, "Agent enrolled.");
    let note = AuditNote {
        org: Some(agent.org_id),
        actor: Some(Actor {
            kind: ActorKind::Agent,
            id: Some(agent.id.to_string()),
            email: None,
            user_id: None,
        }),
        ..AuditNote::made(
            agent.id,
            serde_json::json!({ "name": agent.name, "hostname": agent.facts.hostname, "key_id": agent.key_prefix }),
        )
    };
    Ok((
        StatusCode::CREATED,
        Extension(note),
        Json(EnrollResponse {
            agent_id: agent.id,
            api_key,
            heartbeat_interval_seconds: state.settings.heartbeat_interval.as_secs(),
        }),
    ))
}
