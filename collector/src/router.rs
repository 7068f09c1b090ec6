//! The route table: every path, method, who may call it, and the layers around it.
//! Each path answers with and without a trailing slash.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use tower::ServiceBuilder;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api::audit::AuditSource;
use crate::api::extract::{AuthUser, Authenticated};
use crate::api::{self, error::ApiError};
use crate::audit::Action;
use crate::auth::keys;
use crate::model::Role;
use crate::model::{Alert, OrgPolicy};
use crate::openapi::{Doc, Payload};
use crate::state::SharedState;
use mcpwatch_protocol::wire::{
    EnrollRequest, EnrollResponse, HeartbeatRequest, HeartbeatResponse, ReportRequest,
    ReportResponse,
};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health probes, register, login, refresh, enroll with a secret).
    Public,
    /// A logged-in person (`Authorization: Bearer`) whose role is at least this one;
    /// checked before the handler runs.
    Person(Role),
    /// An agent (`X-API-Key`, signed once a public key is bound).
    Agent,
}

const VIEWER: Access = Access::Person(Role::Viewer);
const ANALYST: Access = Access::Person(Role::Analyst);
const ADMIN: Access = Access::Person(Role::Admin);

/// One row of the route table.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<SharedState>,
    /// The audit log's action for this route and the kind of thing it acts on.
    pub audit: Option<(Action, &'static str)>,
    /// What the OpenAPI document says of it.
    pub doc: Option<Doc>,
}

impl Route {
    /// Describe the route in the OpenAPI document.
    fn doc(mut self, doc: Doc) -> Self {
        self.doc = Some(doc);
        self
    }

    /// Record `action` on a `target` kind in the audit log when this route succeeds.
    fn audit(mut self, action: Action, target: &'static str) -> Self {
        self.audit = Some((action, target));
        self
    }
}

/// A row: the method is stated once, and the handler is routed for it alone.
fn r<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, SharedState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route {
        method,
        path,
        access,
        handler: on(filter, handler),
        audit: None,
        doc: None,
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    [
        accounts(),
        people(),
        fleet(),
        inventory(),
        alerting(),
        notifications(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Health, the API's description, registration and sign-in.
fn accounts() -> Vec<Route> {
    use Access::Public;
    use Method as M;
    use api::{auth, docs, health};
    vec![
        r(M::GET, "/openapi.json", Public, docs::openapi)
            .doc(Doc::new("This document (OpenAPI 3.1)").answers(200, Payload::object())),
        r(M::GET, "/docs", Public, docs::page)
            .doc(Doc::new("The API reference page").answers(200, Payload::text("text/html"))),
        r(M::GET, "/health", Public, health::health)
            .doc(Doc::new("Health, as the seed API answers it").answers(200, Payload::object())),
        r(M::GET, "/health/live", Public, health::live).doc(
            Doc::new("Liveness: 200 while the process answers").answers(200, Payload::object()),
        ),
        r(M::GET, "/health/ready", Public, health::ready).doc(
            Doc::new("Readiness: 200 when the store can be read and written, else 503")
                .answers(200, Payload::object()),
        ),
        r(M::POST, "/auth/register", Public, auth::register)
            .doc(
                Doc::new("Register: the first registration makes the organisation and its admin")
                    .body(Payload::json::<auth::RegisterRequest>())
                    .answers(201, Payload::object()),
            )
            .audit(Action::Registered, "organization"),
        r(M::POST, "/auth/login", Public, auth::login)
            .doc(
                Doc::new("Log in (JSON, or the seed's form body username/password)")
                    .body(Payload::json::<auth::JsonLogin>())
                    .answers(200, Payload::json::<auth::TokenResponse>()),
            )
            .audit(Action::Login, "user"),
        r(M::POST, "/auth/refresh", Public, auth::refresh).doc(
            Doc::new("Exchange a refresh token for a new pair")
                .body(Payload::json::<auth::RefreshRequest>())
                .answers(200, Payload::json::<auth::TokenResponse>()),
        ),
        r(M::POST, "/auth/logout", VIEWER, auth::logout)
            .doc(Doc::new("End the caller's session").no_content())
            .audit(Action::Logout, "session"),
    ]
}

/// The caller, the organisation, its users and their API tokens.
fn people() -> Vec<Route> {
    use Method as M;
    use api::{auth, tokens, users};
    vec![
        r(M::GET, "/auth/me", VIEWER, auth::me)
            .doc(Doc::new("The caller").answers(200, Payload::json::<auth::UserView>())),
        r(M::PATCH, "/auth/me", VIEWER, auth::update_me)
            .doc(
                Doc::new("Change one's name or email")
                    .body(Payload::json::<auth::UpdateMeRequest>())
                    .answers(200, Payload::json::<auth::UserView>()),
            )
            .audit(Action::ProfileUpdated, "user"),
        r(M::PUT, "/auth/me/password", VIEWER, auth::change_password)
            .doc(
                Doc::new("Change one's password; ends one's other sessions")
                    .body(Payload::json::<auth::ChangePasswordRequest>())
                    .answers(200, Payload::object()),
            )
            .audit(Action::PasswordChanged, "user"),
        r(M::GET, "/auth/organization", VIEWER, auth::get_organization).doc(
            Doc::new("The caller's organisation").answers(200, Payload::json::<auth::OrgView>()),
        ),
        r(
            M::PATCH,
            "/auth/organization",
            ADMIN,
            auth::update_organization,
        )
        .doc(
            Doc::new("Rename the organisation or set its alert email")
                .body(Payload::json::<auth::UpdateOrgRequest>())
                .answers(200, Payload::json::<auth::OrgView>()),
        )
        .audit(Action::OrganizationUpdated, "organization"),
        r(M::GET, "/users", ADMIN, users::list).doc(
            Doc::new("The organisation's users").answers(200, Payload::list::<auth::UserView>()),
        ),
        r(M::POST, "/users", ADMIN, users::create)
            .doc(
                Doc::new("Add a user")
                    .body(Payload::json::<users::CreateUserRequest>())
                    .answers(201, Payload::json::<auth::UserView>()),
            )
            .audit(Action::UserCreated, "user"),
        r(M::GET, "/users/{id}", ADMIN, users::get)
            .doc(Doc::new("A user").answers(200, Payload::json::<auth::UserView>())),
        r(M::PATCH, "/users/{id}", ADMIN, users::update)
            .doc(
                Doc::new("Change a user (role, activity, password, name, email)")
                    .body(Payload::json::<users::UpdateUserRequest>())
                    .answers(200, Payload::json::<auth::UserView>()),
            )
            .audit(Action::UserUpdated, "user"),
        r(M::DELETE, "/users/{id}", ADMIN, users::delete)
            .doc(Doc::new("Remove a user and their API tokens").no_content())
            .audit(Action::UserDeleted, "user"),
        r(M::GET, "/api-tokens", VIEWER, tokens::list).doc(
            Doc::new("The caller's API tokens (an admin: every one of the organisation)")
                .answers(200, Payload::list::<tokens::TokenView>()),
        ),
        r(M::POST, "/api-tokens", VIEWER, tokens::create)
            .doc(
                Doc::new("Make an API token (shown once)")
                    .body(Payload::json::<tokens::CreateToken>())
                    .answers(201, Payload::json::<tokens::CreatedToken>()),
            )
            .audit(Action::ApiTokenCreated, "api_token"),
        r(M::DELETE, "/api-tokens/{id}", VIEWER, tokens::delete)
            .doc(Doc::new("Revoke an API token").no_content())
            .audit(Action::ApiTokenRevoked, "api_token"),
    ]
}

/// Agents and enrollment.
fn fleet() -> Vec<Route> {
    use Access::{Agent, Public};
    use Method as M;
    use api::{agents, enroll};
    vec![
        r(M::GET, "/agents", VIEWER, agents::list).doc(
            Doc::new("The organisation's agents")
                .answers(200, Payload::list::<agents::AgentView>()),
        ),
        r(M::POST, "/agents", ADMIN, agents::create)
            .doc(
                Doc::new("Make an agent by hand (its key shown once)")
                    .body(Payload::json::<agents::CreateAgentRequest>())
                    .answers(201, Payload::json::<agents::CreatedAgent>()),
            )
            .audit(Action::AgentCreated, "agent"),
        r(M::POST, "/agents/enroll", Public, enroll::enroll)
            .doc(
                Doc::new("An agent exchanges an enroll secret and its public key for its own key")
                    .body(Payload::json::<EnrollRequest>())
                    .answers(201, Payload::json::<EnrollResponse>()),
            )
            .audit(Action::AgentEnrolled, "agent"),
        r(M::POST, "/agents/heartbeat", Agent, agents::heartbeat).doc(
            Doc::new("An agent's heartbeat")
                .body(Payload::json::<HeartbeatRequest>())
                .answers(200, Payload::json::<HeartbeatResponse>()),
        ),
        r(M::GET, "/agents/{id}", VIEWER, agents::get)
            .doc(Doc::new("An agent").answers(200, Payload::json::<agents::AgentView>())),
        r(M::DELETE, "/agents/{id}", ADMIN, agents::delete)
            .doc(Doc::new("Remove an agent, its key and its servers").no_content())
            .audit(Action::AgentDeleted, "agent"),
        r(M::GET, "/enroll-secrets", ADMIN, enroll::list).doc(
            Doc::new("Enroll secrets (never the secret)")
                .answers(200, Payload::list::<enroll::EnrollSecretView>()),
        ),
        r(M::POST, "/enroll-secrets", ADMIN, enroll::create)
            .doc(
                Doc::new("Make an enroll secret (shown once)")
                    .body(Payload::json::<enroll::CreateSecretRequest>())
                    .answers(201, Payload::json::<enroll::CreatedSecret>()),
            )
            .audit(Action::EnrollSecretCreated, "enroll_secret"),
        r(M::DELETE, "/enroll-secrets/{id}", ADMIN, enroll::delete)
            .doc(Doc::new("Delete an enroll secret").no_content())
            .audit(Action::EnrollSecretDeleted, "enroll_secret"),
    ]
}

/// The inventory, the census, exports, the dashboard and policy.
fn inventory() -> Vec<Route> {
    use Access::Agent;
    use Method as M;
    use api::{dashboard, policy, servers};
    vec![
        r(M::POST, "/mcp/report", Agent, servers::report).doc(
            Doc::new("An agent's full snapshot of its servers")
                .body(Payload::json::<ReportRequest>())
                .answers(200, Payload::json::<ReportResponse>()),
        ),
        r(M::GET, "/mcp/servers", VIEWER, servers::list).doc(
            Doc::new("Servers, riskiest first, filtered, sorted and paged")
                .query::<servers::ListParams>()
                .answers(200, Payload::page::<servers::ServerView>()),
        ),
        r(M::GET, "/mcp/census", VIEWER, api::census::census).doc(
            Doc::new("The fleet census: one row per package, URL or server name")
                .query::<api::census::CensusParams>()
                .answers(200, Payload::page::<crate::census::Row>()),
        ),
        r(M::GET, "/mcp/servers/export", VIEWER, api::export::export).doc(
            Doc::new("Every matching server as CSV, JSON or CycloneDX 1.6, streamed")
                .query::<servers::ListParams>()
                .answers(
                    200,
                    Payload::files(&[
                        "text/csv",
                        "application/json",
                        "application/vnd.cyclonedx+json",
                    ]),
                ),
        ),
        r(M::GET, "/mcp/servers/{id}", VIEWER, servers::get).doc(
            Doc::new("A server with its findings and change history")
                .answers(200, Payload::json::<servers::ServerDetail>()),
        ),
        r(M::PATCH, "/mcp/servers/{id}", ANALYST, servers::update)
            .doc(
                Doc::new("Verify or unverify a server")
                    .body(Payload::json::<servers::UpdateServerRequest>())
                    .answers(200, Payload::json::<servers::ServerDetail>()),
            )
            .audit(Action::ServerVerified, "server"),
        r(M::GET, "/dashboard/stats", VIEWER, dashboard::stats).doc(
            Doc::new("The seed's dashboard counts")
                .answers(200, Payload::json::<dashboard::Stats>()),
        ),
        r(
            M::GET,
            "/dashboard/risk-distribution",
            VIEWER,
            dashboard::risk_distribution,
        )
        .doc(
            Doc::new("Servers by risk level")
                .answers(200, Payload::json::<dashboard::Distribution>()),
        ),
        r(M::GET, "/dashboard/top-risks", VIEWER, dashboard::top_risks).doc(
            Doc::new("The riskiest active servers")
                .query::<dashboard::TopParams>()
                .answers(200, Payload::list::<servers::ServerView>()),
        ),
        r(M::GET, "/policy", VIEWER, policy::get)
            .doc(Doc::new("The organisation's policy").answers(200, Payload::json::<OrgPolicy>())),
        r(M::PUT, "/policy", ADMIN, policy::put)
            .doc(
                Doc::new("Replace the policy (servers are rescored)")
                    .body(Payload::json::<policy::PutPolicyRequest>())
                    .answers(200, Payload::json::<OrgPolicy>()),
            )
            .audit(Action::PolicyUpdated, "policy"),
    ]
}

/// Alerts and the live event stream.
fn alerting() -> Vec<Route> {
    use Method as M;
    use api::{alerts, events};
    vec![
        r(M::GET, "/alerts", VIEWER, alerts::list).doc(
            Doc::new("Alerts, newest first, filtered, sorted and paged")
                .query::<alerts::ListParams>()
                .answers(200, Payload::page::<Alert>()),
        ),
        r(M::POST, "/alerts/dismiss-all", ANALYST, alerts::dismiss_all)
            .doc(Doc::new("Dismiss every open alert").answers(200, Payload::object()))
            .audit(Action::AlertsDismissedAll, "alert"),
        r(M::POST, "/alerts/{id}/dismiss", ANALYST, alerts::dismiss)
            .doc(Doc::new("Dismiss an alert").answers(200, Payload::json::<Alert>()))
            .audit(Action::AlertDismissed, "alert"),
        r(M::GET, "/events", VIEWER, events::stream).doc(
            Doc::new("The organisation's events as Server-Sent Events (Last-Event-ID resumes)")
                .answers(200, Payload::text("text/event-stream")),
        ),
    ]
}

/// Notification channels and deliveries, and the audit log.
fn notifications() -> Vec<Route> {
    use Method as M;
    use api::notifications as n;
    vec![
        r(M::GET, "/notifications/channels", ADMIN, n::list)
            .doc(Doc::new("Notification channels").answers(200, Payload::list::<n::ChannelView>())),
        r(M::POST, "/notifications/channels", ADMIN, n::create)
            .doc(
                Doc::new("Make a notification channel (a webhook's secret shown once)")
                    .body(Payload::json::<n::CreateChannel>())
                    .answers(201, Payload::json::<n::CreatedChannel>()),
            )
            .audit(Action::ChannelCreated, "channel"),
        r(M::GET, "/notifications/channels/{id}", ADMIN, n::get).doc(
            Doc::new("A notification channel").answers(200, Payload::json::<n::ChannelView>()),
        ),
        r(M::PATCH, "/notifications/channels/{id}", ADMIN, n::update)
            .doc(
                Doc::new("Change a notification channel")
                    .body(Payload::json::<n::UpdateChannel>())
                    .answers(200, Payload::json::<n::ChannelView>()),
            )
            .audit(Action::ChannelUpdated, "channel"),
        r(M::DELETE, "/notifications/channels/{id}", ADMIN, n::delete)
            .doc(Doc::new("Delete a notification channel").no_content())
            .audit(Action::ChannelDeleted, "channel"),
        r(M::POST, "/notifications/channels/{id}/test", ADMIN, n::test)
            .doc(
                Doc::new("Send a test event to a channel now")
                    .answers(200, Payload::json::<n::TestResult>()),
            )
            .audit(Action::ChannelTested, "channel"),
        r(M::GET, "/notifications/deliveries", ADMIN, n::deliveries).doc(
            Doc::new("Deliveries of events to channels, newest first")
                .query::<n::DeliveryParams>()
                .answers(200, Payload::page::<n::DeliveryView>()),
        ),
        r(M::GET, "/audit", ADMIN, api::audit::list).doc(
            Doc::new("The audit log, newest first")
                .query::<api::audit::AuditParams>()
                .answers(200, Payload::page::<crate::audit::Entry>()),
        ),
    ]
}

/// The prefix every route is also served under (the seed API's).
pub const API_PREFIX: &str = "/api/v1";

/// Who may call `method path` (`path` as the table writes it, `/mcp/servers/{id}`):
/// the one rule the API and the console both apply.
pub fn access(method: &Method, path: &str) -> Option<Access> {
    static TABLE: std::sync::LazyLock<Vec<(Method, &'static str, Access)>> =
        std::sync::LazyLock::new(|| {
            routes()
                .into_iter()
                .map(|r| (r.method, r.path, r.access))
                .collect()
        });
    TABLE
        .iter()
        .find(|(m, p, _)| m == method && *p == path)
        .map(|(_, _, a)| *a)
}

/// The application: the API's routes, the console over them, limits, CORS,
/// timeouts, tracing.
pub fn build(state: SharedState) -> Router {
    let api = api(state.clone());
    let console = crate::console::router(state.clone(), api.clone());
    let settings = &state.settings;
    api.merge(console)
        .route(
            "/metrics",
            axum::routing::get(crate::metrics::scrape).with_state(state.clone()),
        )
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(cors(&settings.cors_origins))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(drop_unusable_request_id))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TraceLayer::new_for_http().make_span_with(request_span)),
        )
}

/// The API: every route of the table with its access check and audit layer.
fn api(state: SharedState) -> Router {
    let mut router: Router<SharedState> = Router::new();
    let mut merged: Vec<(&'static str, MethodRouter<SharedState>)> = Vec::new();
    for route in routes() {
        let handler = match route.access {
            Access::Public => route.handler,
            Access::Agent => route.handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                agent_rate_limit,
            )),
            Access::Person(role) => route.handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                move |state: State<SharedState>, req: Request, next: Next| {
                    authorize(state, role, req, next)
                },
            )),
        };
        let handler = match route.audit {
            None => handler,
            Some(audit) => handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                move |State(state): State<SharedState>, req: Request, next: Next| {
                    api::audit::layer(state, audit, req, next)
                },
            )),
        };
        match merged.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(handler),
            None => merged.push((route.path, handler)),
        }
    }
    // One route table, mounted twice: at the root and under `/api/v1` (the prefix the
    // seed platform's own agent calls), each path with and without a trailing slash.
    for (path, handler) in merged {
        for prefix in ["", API_PREFIX] {
            router = router
                .route(&format!("{prefix}{path}/"), handler.clone())
                .route(&format!("{prefix}{path}"), handler.clone());
        }
    }
    router
        .fallback(api::error::not_found_fallback)
        .method_not_allowed_fallback(api::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .with_state(state)
}

/// The span every request runs in: method, matched route (not the raw path, which
/// holds ids) and request id.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %req.method(), route, request_id = id)
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's own `X-Request-Id` is kept when it is a plain token (up to 64 letters,
/// digits, `-`, `_`, `.`); any other is replaced by a new one, so that logs never
/// carry what a caller wrote beyond that.
async fn drop_unusable_request_id(mut req: Request, next: Next) -> Response {
    let usable = req.headers().get(REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        (1..=64).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
    });
    if !usable {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

/// Authenticate a person and check their role before the handler runs; the handler's
/// [`AuthUser`] is the one found here.
async fn authorize(
    State(state): State<SharedState>,
    role: Role,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let user = match AuthUser::from_request_parts(&mut parts, &state).await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = user.require(role) {
        return e.into_response();
    }
    let source = AuditSource::from(&user);
    parts.extensions.insert(Authenticated(user));
    let mut response = next.run(Request::from_parts(parts, body)).await;
    response.extensions_mut().insert(source);
    response
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        // Any origin, without credentials (browsers refuse both together).
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer
            .allow_origin(AllowOrigin::list(list))
            .allow_credentials(true)
    }
}

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Per-key request limit on agent routes, with `X-RateLimit-*` headers.
async fn agent_rate_limit(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let key = req
        .headers()
        .get(mcpwatch_protocol::wire::API_KEY_HEADER)
        .map(|v| keys::hash(v.to_str().unwrap_or_default().trim()));
    let Some(key) = key else {
        return next.run(req).await;
    };
    let decision = state.agent_requests.check(&key);
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        ApiError::rate_limited(decision.reset_secs, "too many requests for this API key")
            .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (LIMIT, u64::from(decision.limit)),
        (REMAINING, u64::from(decision.remaining)),
        (RESET, decision.reset_secs),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, v);
        }
    }
    response
}
