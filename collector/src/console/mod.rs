//! The web console under `/ui/`: pages rendered on the server (maud) from the same
//! handlers, route table and store as the JSON API. One binary, no CDN, no inline
//! script: a session cookie, a CSRF token on every form, a strict
//! Content-Security-Policy, and every string a laptop wrote escaped by the templates.
//!
//! - [`session`]: the cookie, who is logged in, CSRF, and the bridge to the API (a page
//!   reads through the API's handler after the route table's rule, and writes through
//!   the API's own route, so authorisation and audit are the API's);
//! - [`assets`]: the stylesheet and script, served under their content hash;
//! - [`layout`]: the page shell and the pieces pages share (times, levels, pagers,
//!   forms); [`chart`]: the risk distribution as SVG;
//! - a module per page group: [`login`], [`dashboard`], [`servers`], [`agents`],
//!   [`alerts`], [`census`], [`policy`], [`settings`].

pub mod agents;
pub mod alerts;
pub mod assets;
pub mod census;
pub mod chart;
pub mod dashboard;
pub mod layout;
pub mod login;
pub mod policy;
pub mod servers;
pub mod session;
pub mod settings;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::state::SharedState;

/// What the console's handlers share: the API's state, and the API's router for the
/// writes that go through it.
pub struct Console {
    pub state: SharedState,
    pub api: Router,
    /// Whether cookies are marked `Secure` (the collector is reached over HTTPS).
    pub secure_cookies: bool,
    /// Whether the collector serves TLS itself (then pages carry HSTS).
    pub tls: bool,
}

pub type ConsoleState = Arc<Console>;

/// The policy every console response carries: scripts and styles from this origin
/// only, nothing inline, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The console's routes, over `api` (the API's router, with its state).
pub fn router(state: SharedState, api: Router) -> Router {
    let tls = state.settings.tls.is_some();
    let secure_cookies = tls
        || state
            .settings
            .notify
            .public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https");
    let console = Arc::new(Console {
        state,
        api,
        secure_cookies,
        tls,
    });
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(dashboard::page))
        .route("/ui/", get(dashboard::page))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/events", get(alerts::events))
        .route("/ui/assets/{file}", get(assets::serve))
        .merge(pages())
        .route("/ui/{*rest}", get(layout::not_found))
        .layer(middleware::from_fn_with_state(tls, security_headers))
        .with_state(console)
}

/// The pages behind the login.
fn pages() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/servers", get(servers::list))
        .route("/ui/servers/export", get(servers::export))
        .route("/ui/servers/{id}", get(servers::detail))
        .route("/ui/servers/{id}/verify", post(servers::verify))
        .route("/ui/agents", get(agents::list))
        .route("/ui/agents/{id}", get(agents::detail))
        .route("/ui/agents/{id}/delete", post(agents::delete))
        .route("/ui/alerts", get(alerts::list))
        .route("/ui/alerts/dismiss-all", post(alerts::dismiss_all))
        .route("/ui/alerts/{id}/dismiss", post(alerts::dismiss))
        .route("/ui/census", get(census::page))
        .route("/ui/policy", get(policy::page).post(policy::save))
        .merge(settings::routes())
}

/// Headers on every console response: the CSP, no sniffing, no referrer beyond this
/// origin, no framing; `no-store` unless the response chose its own caching (the
/// hashed assets); and HSTS when the collector serves TLS itself.
async fn security_headers(State(tls): State<bool>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response.into_response()
}
