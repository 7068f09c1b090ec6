//! The route table: every path, method, who may call it, and the layers around it.
//! Each path answers with and without a trailing slash.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api::{self, error::ApiError};
use crate::auth::keys;
use crate::state::SharedState;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health probes, register, login, refresh, enroll with a secret).
    Public,
    /// A logged-in person (`Authorization: Bearer`); the handler checks the role.
    User,
    /// An agent (`X-API-Key`, signed once a public key is bound).
    Agent,
}

/// One row of the route table.
pub struct Route {
    pub path: &'static str,
    pub method: Method,
    pub access: Access,
    pub handler: MethodRouter<SharedState>,
}

fn r(
    path: &'static str,
    method: Method,
    access: Access,
    handler: MethodRouter<SharedState>,
) -> Route {
    Route {
        path,
        method,
        access,
        handler,
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use Access::{Agent, Public, User};
    use api::{agents, alerts, auth, dashboard, enroll, health, policy, servers, users};
    vec![
        r("/health", Method::GET, Public, get(health::health)),
        r("/health/live", Method::GET, Public, get(health::live)),
        r("/health/ready", Method::GET, Public, get(health::ready)),
        r("/auth/register", Method::POST, Public, post(auth::register)),
        r("/auth/login", Method::POST, Public, post(auth::login)),
        r("/auth/refresh", Method::POST, Public, post(auth::refresh)),
        r("/auth/logout", Method::POST, User, post(auth::logout)),
        r("/auth/me", Method::GET, User, get(auth::me)),
        r("/auth/me", Method::PATCH, User, patch(auth::update_me)),
        r(
            "/auth/me/password",
            Method::PUT,
            User,
            put(auth::change_password),
        ),
        r(
            "/auth/organization",
            Method::GET,
            User,
            get(auth::get_organization),
        ),
        r(
            "/auth/organization",
            Method::PATCH,
            User,
            patch(auth::update_organization),
        ),
        r("/users", Method::GET, User, get(users::list)),
        r("/users", Method::POST, User, post(users::create)),
        r("/users/{id}", Method::GET, User, get(users::get)),
        r("/users/{id}", Method::PATCH, User, patch(users::update)),
        r("/users/{id}", Method::DELETE, User, delete(users::delete)),
        r("/agents", Method::GET, User, get(agents::list)),
        r("/agents", Method::POST, User, post(agents::create)),
        r("/agents/enroll", Method::POST, Public, post(enroll::enroll)),
        r(
            "/agents/heartbeat",
            Method::POST,
            Agent,
            post(agents::heartbeat),
        ),
        r("/agents/{id}", Method::GET, User, get(agents::get)),
        r("/agents/{id}", Method::DELETE, User, delete(agents::delete)),
        r("/enroll-secrets", Method::GET, User, get(enroll::list)),
        r("/enroll-secrets", Method::POST, User, post(enroll::create)),
        r(
            "/enroll-secrets/{id}",
            Method::DELETE,
            User,
            delete(enroll::delete),
        ),
        r("/mcp/report", Method::POST, Agent, post(servers::report)),
        r("/mcp/servers", Method::GET, User, get(servers::list)),
        r("/mcp/servers/{id}", Method::GET, User, get(servers::get)),
        r(
            "/mcp/servers/{id}",
            Method::PATCH,
            User,
            patch(servers::update),
        ),
        r("/dashboard/stats", Method::GET, User, get(dashboard::stats)),
        r(
            "/dashboard/risk-distribution",
            Method::GET,
            User,
            get(dashboard::risk_distribution),
        ),
        r(
            "/dashboard/top-risks",
            Method::GET,
            User,
            get(dashboard::top_risks),
        ),
        r("/policy", Method::GET, User, get(policy::get)),
        r("/policy", Method::PUT, User, put(policy::put)),
        r("/alerts", Method::GET, User, get(alerts::list)),
        r(
            "/alerts/dismiss-all",
            Method::POST,
            User,
            post(alerts::dismiss_all),
        ),
        r(
            "/alerts/{id}/dismiss",
            Method::POST,
            User,
            post(alerts::dismiss),
        ),
    ]
}

/// The application: routes, limits, CORS, timeouts, tracing.
/// The prefix every route is also served under (the seed API's).
pub const API_PREFIX: &str = "/api/v1";

pub fn build(state: SharedState) -> Router {
    let mut router: Router<SharedState> = Router::new();
    let mut merged: Vec<(&'static str, MethodRouter<SharedState>)> = Vec::new();
    for route in routes() {
        let handler = if route.access == Access::Agent {
            route.handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                agent_rate_limit,
            ))
        } else {
            route.handler
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
    let settings = &state.settings;
    router
        .fallback(api::error::not_found_fallback)
        .method_not_allowed_fallback(api::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(cors(&settings.cors_origins))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
