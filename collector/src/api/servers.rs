//! `/mcp/*`: agents report their inventory; people list, inspect and verify servers.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, ServerId, UserId};
use mcpwatch_protocol::limits;
use mcpwatch_protocol::risk::{Finding, RiskLevel};
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::{ReportRequest, ReportResponse};
use serde::{Deserialize, Serialize};

use super::audit::AuditNote;
use super::error::{ApiError, or_not_found};
use super::extract::{AgentRequest, ApiJson, AuthUser};
use super::extract::{ApiQuery, agent_store_error};
use super::{PageResponse, paging, param, path_id};
use crate::audit::Action;
use crate::model::{Agent, HostFacts, Server, ServerChange, ServerStatus};
use crate::state::SharedState;
use crate::store::{self, Direction, ReportInput, ServerQuery, ServerSort};

/// `POST /mcp/report` (agent key): a full snapshot, answered once it is durable.
pub async fn report(
    State(state): State<SharedState>,
    req: AgentRequest<ReportRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    let mut body = req.body;
    for server in &mut body.servers {
        server.normalise();
    }
    limits::check_report(&body).map_err(|v| ApiError::validation(&v.field, v.to_string()))?;
    let now = Utc::now();
    let agent = req.agent;
    let input = ReportInput {
        servers: body.servers,
        config_errors: body.config_errors,
        facts: HostFacts {
            hostname: body.hostname,
            agent_version: body.agent_version,
            ..HostFacts::default()
        },
        sequence: body.sequence,
        received_at: now,
    };
    let outcome = state
        .store
        .apply_report(agent.org_id, agent.id, input)
        .await
        .map_err(agent_store_error)?;
    state.presence.record(agent.org_id, agent.id, now);
    crate::metrics::METRICS.reports.inc();
    crate::metrics::METRICS
        .servers_ingested
        .inc_by(outcome.received as u64);
    tracing::debug!(org = %agent.org_id, agent = %agent.id, received = outcome.received, created = outcome.created,
        updated = outcome.updated, dormant = outcome.dormant, "Report stored.");
    Ok(Json(outcome))
}

/// How a server is shown in lists.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServerView {
    pub id: ServerId,
    pub agent_id: AgentId,
    /// The agent's host name.
    pub hostname: Option<String>,
    #[serde(flatten)]
    pub record: ServerRecord,
    pub fingerprint: String,
    pub risk_score: u8,
    pub risk_level: RiskLevel,
    pub status: ServerStatus,
    pub is_verified: bool,
    pub verified_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub findings_count: usize,
    /// The most severe finding's message.
    pub top_finding: Option<String>,
}

/// How one server is shown in full.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServerDetail {
    #[serde(flatten)]
    pub summary: ServerView,
    pub findings: Vec<Finding>,
    pub rules_version: u32,
    pub verified_by: Option<UserId>,
    /// Newest last.
    pub changes: Vec<ServerChange>,
}

impl ServerView {
    fn new(server: &Server, agent: Option<&Agent>) -> Self {
        let mut record = server.record.clone();
        record.fingerprint = None;
        let last_seen_at = match (server.status, agent.and_then(|a| a.last_report_at)) {
            (ServerStatus::Active, Some(at)) => at.max(server.last_seen_at),
            _ => server.last_seen_at,
        };
        Self {
            id: server.id,
            agent_id: server.agent_id,
            hostname: agent.and_then(|a| a.facts.hostname.clone()),
            record,
            fingerprint: server.fingerprint.clone(),
            risk_score: server.risk_score,
            risk_level: server.risk_level,
            status: server.status,
            is_verified: server.is_verified,
            verified_at: server.verified_at,
            first_seen_at: server.first_seen_at,
            last_seen_at,
            updated_at: server.updated_at,
            findings_count: server.findings.len(),
            top_finding: server.findings.first().map(|f| f.message.clone()),
        }
    }
}

impl ServerDetail {
    fn new(server: Server, agent: Option<&Agent>, changes: Vec<ServerChange>) -> Self {
        Self {
            summary: ServerView::new(&server, agent),
            findings: server.findings,
            rules_version: server.rules_version,
            verified_by: server.verified_by,
            changes,
        }
    }
}

/// Views for a page of servers, fetching each distinct agent once.
pub async fn views(
    state: &SharedState,
    org: mcpwatch_protocol::ids::OrgId,
    servers: &[Server],
) -> Result<Vec<ServerView>, ApiError> {
    let mut agents: HashMap<AgentId, Option<Agent>> = HashMap::new();
    for server in servers {
        if let std::collections::hash_map::Entry::Vacant(slot) = agents.entry(server.agent_id) {
            let agent = match state.store.get_agent(org, server.agent_id).await {
                Ok(a) => Some(a),
                Err(store::Error::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            slot.insert(agent);
        }
    }
    Ok(servers
        .iter()
        .map(|s| ServerView::new(s, agents.get(&s.agent_id).and_then(Option::as_ref)))
        .collect())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `low`, `medium`, `high` or `critical`.
    #[param(value_type = Option<String>, pattern = "^\\s*(low|medium|high|critical)?\\s*$")]
    pub risk_level: Option<String>,
    /// `active` or `dormant`.
    #[param(value_type = Option<String>, pattern = "^\\s*(active|dormant)?\\s*$")]
    pub status: Option<String>,
    /// An agent's id.
    #[param(value_type = Option<String>, format = Uuid)]
    pub agent_id: Option<String>,
    /// A part of the server name (case-insensitive).
    #[param(max_length = 200)]
    pub search: Option<String>,
    /// `<field>[:asc|desc]`: `risk_score` (the default), `server_name`, `hostname`,
    /// `first_seen_at`, `last_seen_at`.
    #[param(value_type = Option<String>, pattern = "^\\s*((risk_score|server_name|hostname|first_seen_at|last_seen_at)(:(asc|desc))?)?\\s*$")]
    pub sort: Option<String>,
    /// From 1 (default 1).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub page: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
    /// For exports: `csv` (the default), `json` or `cyclonedx`.
    #[param(value_type = Option<String>, pattern = "^\\s*(csv|json|cyclonedx)?\\s*$")]
    pub format: Option<String>,
}

/// The fields `GET /mcp/servers` sorts by.
pub const SERVER_SORTS: [(&str, ServerSort); 5] = [
    ("risk_score", ServerSort::RiskScore),
    ("server_name", ServerSort::ServerName),
    ("hostname", ServerSort::Hostname),
    ("first_seen_at", ServerSort::FirstSeenAt),
    ("last_seen_at", ServerSort::LastSeenAt),
];

/// Parse a `risk_level` or `severity` parameter.
pub fn parse_level(field: &str, value: &Option<String>) -> Result<Option<RiskLevel>, ApiError> {
    param(value)
        .map(|v| {
            v.parse::<RiskLevel>().map_err(|e| {
                ApiError::invalid_field(field, format!("{field}: {e}"))
                    .with_details(serde_json::json!({ "field": field, "allowed": ["critical", "high", "medium", "low"] }))
            })
        })
        .transpose()
}

/// The filters, sort and page of a server listing (also what an export takes).
pub fn server_query(params: &ListParams) -> Result<ServerQuery, ApiError> {
    let (page, page_size) = paging(&params.page, &params.page_size)?;
    let status = match param(&params.status) {
        None => None,
        Some("active") => Some(ServerStatus::Active),
        Some("dormant") => Some(ServerStatus::Dormant),
        Some(other) => {
            return Err(ApiError::invalid_field(
                "status",
                format!("status: unknown value {other:?}, expected active or dormant"),
            )
            .with_details(
                serde_json::json!({ "field": "status", "allowed": ["active", "dormant"] }),
            ));
        }
    };
    let agent_id = param(&params.agent_id)
        .map(|v| {
            v.parse::<AgentId>().map_err(|_| {
                ApiError::invalid_field("agent_id", format!("agent_id: {v:?} is not a UUID"))
            })
        })
        .transpose()?;
    let search = param(&params.search).map(str::to_owned);
    if search
        .as_ref()
        .is_some_and(|s| s.chars().count() > super::MAX_NAME_CHARS)
    {
        return Err(ApiError::invalid_field(
            "search",
            format!(
                "search must be at most {} characters long",
                super::MAX_NAME_CHARS
            ),
        ));
    }
    let query = ServerQuery {
        risk_level: parse_level("risk_level", &params.risk_level)?,
        status,
        agent_id,
        search,
        sort: super::parse_sort(&params.sort, &SERVER_SORTS, Direction::Desc)?,
        page,
        page_size,
    };
    Ok(query)
}

/// `GET /mcp/servers`: filters `risk_level`, `status`, `agent_id`, `search`; paged.
pub async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<PageResponse<ServerView>>, ApiError> {
    let query = server_query(&params)?;
    let (page, page_size) = (query.page, query.page_size);
    let org = auth.user.org_id;
    let found = state.store.list_servers(org, query).await?;
    let items = views(&state, org, &found.items).await?;
    Ok(Json(PageResponse::new(items, found.total, page, page_size)))
}

async fn detail(state: &SharedState, server: Server) -> Result<ServerDetail, ApiError> {
    let agent = match state.store.get_agent(server.org_id, server.agent_id).await {
        Ok(a) => Some(a),
        Err(store::Error::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let stored = state.store.server_changes(server.org_id, server.id).await?;
    let changes = crate::model::history(&server, stored);
    Ok(ServerDetail::new(server, agent.as_ref(), changes))
}

/// `GET /mcp/servers/{id}`: with findings and change history.
pub async fn get(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ServerDetail>, ApiError> {
    let id: ServerId = path_id(&id, "server")?;
    let server = state
        .store
        .get_server(auth.user.org_id, id)
        .await
        .map_err(or_not_found("server"))?;
    Ok(Json(detail(&state, server).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServerRequest {
    pub is_verified: bool,
}

/// `PATCH /mcp/servers/{id}` (analyst): mark verified. A verified server keeps its
/// findings and raises no alerts until what it launches changes.
pub async fn update(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateServerRequest>,
) -> Result<(Extension<AuditNote>, Json<ServerDetail>), ApiError> {
    let id: ServerId = path_id(&id, "server")?;
    let server = state
        .store
        .set_server_verified(
            auth.user.org_id,
            id,
            body.is_verified,
            auth.user.id,
            Utc::now(),
        )
        .await
        .map_err(or_not_found("server"))?;
    tracing::info!(org = %auth.user.org_id, server = %id, user = %auth.user.id, verified = body.is_verified, "Server verification changed.");
    let note = AuditNote {
        action: Some(if body.is_verified {
            Action::ServerVerified
        } else {
            Action::ServerUnverified
        }),
        ..AuditNote::details(serde_json::json!({
            "server_name": server.record.server_name,
            "risk_level": server.risk_level,
        }))
    };
    Ok((Extension(note), Json(detail(&state, server).await?)))
}
