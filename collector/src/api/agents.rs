//! `/agents`: admins create and remove agents; agents heartbeat.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::AgentId;
use mcpwatch_protocol::limits;
use mcpwatch_protocol::signing;
use mcpwatch_protocol::wire::{ConfigError, HeartbeatRequest, HeartbeatResponse};
use serde::{Deserialize, Serialize};

use super::audit::AuditNote;
use super::error::{ApiError, or_not_found};
use super::extract::agent_store_error;
use super::extract::{AgentRequest, ApiJson, AuthUser};
use super::{check_name, path_id};
use crate::auth::keys;
use crate::model::{Agent, Enrollment, HostFacts};
use crate::state::{AppState, SharedState};
use crate::store::HeartbeatUpdate;

/// How an agent is shown. Never includes its key or key hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub id: AgentId,
    pub name: String,
    pub hostname: Option<String>,
    pub os_type: Option<String>,
    pub os_version: Option<String>,
    pub username: Option<String>,
    pub agent_version: Option<String>,
    /// Kernel, architecture, hardware, boot time and users, when the agent sent them.
    #[serde(flatten)]
    pub machine: mcpwatch_protocol::wire::MachineFacts,
    /// Why the collector refused the agent's last report, while the agent says so.
    pub report_error: Option<String>,
    /// `online` when heard from within the offline threshold, else `offline`.
    pub status: &'static str,
    pub is_online: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_report_at: Option<DateTime<Utc>>,
    pub server_count: u64,
    pub created_at: DateTime<Utc>,
    pub enrollment: Enrollment,
    /// Whether the agent's requests must be signed (a public key is bound).
    pub signing_enabled: bool,
    pub api_key_prefix: String,
    pub config_errors: Vec<ConfigError>,
    /// Dangerous combinations of this machine's servers, with the servers involved.
    pub combinations: Vec<mcpwatch_protocol::risk::Combination>,
}

/// The agent's last-seen time, from memory when newer than the store.
pub fn last_seen(state: &AppState, agent: &Agent) -> Option<DateTime<Utc>> {
    match (agent.last_seen_at, state.presence.last_seen(agent.id)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

pub fn is_online(state: &AppState, agent: &Agent, now: DateTime<Utc>) -> bool {
    let threshold =
        chrono::Duration::from_std(state.settings.offline_after).unwrap_or(chrono::Duration::MAX);
    last_seen(state, agent).is_some_and(|at| now.signed_duration_since(at) <= threshold)
}

impl AgentView {
    pub fn new(state: &AppState, agent: &Agent, now: DateTime<Utc>) -> Self {
        let online = is_online(state, agent, now);
        Self {
            id: agent.id,
            name: agent.name.clone(),
            hostname: agent.facts.hostname.clone(),
            os_type: agent.facts.os_type.clone(),
            os_version: agent.facts.os_version.clone(),
            username: agent.facts.username.clone(),
            agent_version: agent.facts.agent_version.clone(),
            machine: agent.facts.machine.clone(),
            report_error: agent.facts.report_error.clone(),
            status: if online { "online" } else { "offline" },
            is_online: online,
            last_seen_at: last_seen(state, agent),
            last_report_at: agent.last_report_at,
            server_count: agent.server_count,
            created_at: agent.created_at,
            enrollment: agent.enrollment,
            signing_enabled: agent.public_key.is_some(),
            api_key_prefix: agent.key_prefix.clone(),
            config_errors: agent.config_errors.clone(),
            combinations: agent.combinations.clone(),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedAgent {
    #[serde(flatten)]
    pub agent: AgentView,
    /// Shown this once; only its hash is stored.
    pub api_key: String,
}

/// A fresh agent record with a new key; answers the record and the key.
pub fn new_agent(
    name: String,
    org: mcpwatch_protocol::ids::OrgId,
    enrollment: Enrollment,
) -> Result<(Agent, String), ApiError> {
    let key = keys::new_api_key()?;
    let agent = Agent {
        id: AgentId::new(),
        org_id: org,
        name,
        key_hash: keys::hash(&key),
        key_prefix: keys::display_prefix(&key),
        public_key: None,
        enrollment,
        facts: HostFacts::default(),
        created_at: Utc::now(),
        last_seen_at: None,
        last_report_at: None,
        server_count: 0,
        config_errors: Vec::new(),
        last_sequence: None,
        stale: false,
        combinations: Vec::new(),
    };
    Ok((agent, key))
}

/// `POST /agents/` (admin): answers the API key once.
pub async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateAgentRequest>,
) -> Result<(StatusCode, Extension<AuditNote>, Json<CreatedAgent>), ApiError> {
    let name = check_name("name", &body.name)?;
    let (agent, api_key) = new_agent(name, auth.user.org_id, Enrollment::Manual)?;
    state.store.create_agent(agent.clone()).await?;
    tracing::info!(org = %agent.org_id, agent = %agent.id, key_id = %agent.key_prefix, "Agent created.");
    let view = AgentView::new(&state, &agent, Utc::now());
    let note = AuditNote::made(
        agent.id,
        serde_json::json!({ "name": agent.name, "key_id": agent.key_prefix }),
    );
    Ok((
        StatusCode::CREATED,
        Extension(note),
        Json(CreatedAgent {
            agent: view,
            api_key,
        }),
    ))
}

/// `GET /agents/`.
pub async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    let now = Utc::now();
    let agents = state.store.list_agents(auth.user.org_id).await?;
    Ok(Json(
        agents
            .iter()
            .map(|a| AgentView::new(&state, a, now))
            .collect(),
    ))
}

/// `GET /agents/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let id: AgentId = path_id(&id, "agent")?;
    let agent = state
        .store
        .get_agent(auth.user.org_id, id)
        .await
        .map_err(or_not_found("agent"))?;
    Ok(Json(AgentView::new(&state, &agent, Utc::now())))
}

/// `DELETE /agents/{id}` (admin): revokes the key and removes the agent's servers.
pub async fn delete(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: AgentId = path_id(&id, "agent")?;
    state
        .store
        .delete_agent(auth.user.org_id, id, chrono::Utc::now())
        .await
        .map_err(or_not_found("agent"))?;
    state.presence.forget(id);
    tracing::info!(org = %auth.user.org_id, agent = %id, "Agent deleted; its key is revoked.");
    Ok(StatusCode::NO_CONTENT)
}

/// The facts a heartbeat gives (the store keeps a stored fact the heartbeat leaves out,
/// and replaces the report error, which the agent sends for as long as it holds).
fn facts_of(body: &HeartbeatRequest) -> HostFacts {
    HostFacts {
        hostname: body.hostname.clone(),
        os_type: body.os_type.clone(),
        os_version: body.os_version.clone(),
        username: body.username.clone(),
        agent_version: body.agent_version.clone(),
        machine: body.machine.clone(),
        report_error: body.report_error.clone(),
    }
}

/// Whether a heartbeat would change any stored fact (checked on every heartbeat, so
/// without building anything).
fn facts_change(stored: &HostFacts, body: &HeartbeatRequest) -> bool {
    let (s, m) = (&stored.machine, &body.machine);
    let pairs = [
        (&stored.hostname, &body.hostname),
        (&stored.os_type, &body.os_type),
        (&stored.os_version, &body.os_version),
        (&stored.username, &body.username),
        (&stored.agent_version, &body.agent_version),
        (&s.os_name, &m.os_name),
        (&s.kernel_version, &m.kernel_version),
        (&s.arch, &m.arch),
        (&s.hardware_vendor, &m.hardware_vendor),
        (&s.hardware_model, &m.hardware_model),
        (&s.hardware_serial, &m.hardware_serial),
        (&s.machine_id, &m.machine_id),
        (&s.boot_time, &m.boot_time),
        (&s.ip_address, &m.ip_address),
    ];
    pairs.iter().any(|(old, new)| new.is_some() && old != new)
        || (m.users.is_some() && s.users != m.users)
        || stored.report_error != body.report_error
}

/// `POST /agents/heartbeat` (agent key). Presence is kept in memory and flushed in
/// batches; the store is written at once only when host facts change or a key is bound.
pub async fn heartbeat(
    State(state): State<SharedState>,
    req: AgentRequest<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let now = Utc::now();
    let agent = req.agent;
    let bind = match (&req.body.public_key, agent.public_key) {
        (Some(encoded), None) => Some(
            *signing::parse_public_key(encoded)
                .map_err(|e| ApiError::validation("public_key", e.to_string()))?
                .as_bytes(),
        ),
        (Some(encoded), Some(bound)) => {
            let offered = signing::parse_public_key(encoded)
                .map_err(|e| ApiError::validation("public_key", e.to_string()))?;
            if *offered.as_bytes() != bound {
                return Err(ApiError::conflict(
                    "a different public key is already bound to this agent; re-enroll to change it",
                ));
            }
            None
        }
        (None, _) => None,
    };
    limits::check_heartbeat(&req.body)
        .map_err(|v| ApiError::validation(&v.field, v.to_string()))?;
    if bind.is_some()
        || agent.stale
        || agent.last_seen_at.is_none()
        || facts_change(&agent.facts, &req.body)
    {
        let update = HeartbeatUpdate {
            facts: facts_of(&req.body),
            seen_at: now,
            bind_public_key: bind,
        };
        state
            .store
            .record_heartbeat(agent.org_id, agent.id, update)
            .await
            .map_err(agent_store_error)?;
        if bind.is_some() {
            tracing::info!(org = %agent.org_id, agent = %agent.id, "Agent bound its signing key; its requests must now be signed.");
        }
    }
    state.presence.record(agent.org_id, agent.id, now);
    crate::metrics::METRICS.heartbeats.inc();
    Ok(Json(HeartbeatResponse {
        status: "ok".to_owned(),
        agent_id: agent.id,
        heartbeat_interval_seconds: state.settings.heartbeat_interval.as_secs(),
        signing_required: agent.public_key.is_some() || bind.is_some(),
        server_time: now.to_rfc3339(),
    }))
}
