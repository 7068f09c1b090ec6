//! Who is using the console, and the console's way into the API.
//!
//! - The session cookie (`mcpwatch_session`: `HttpOnly`, `SameSite=Strict`, `Secure`
//!   behind HTTPS) holds a token of a login session, checked like an access token on
//!   every request: logout, a password change, deactivation or removal end it.
//! - Every form carries a CSRF token derived from the session (HMAC under a key
//!   derived from the collector's signing key); a post without it, or from another
//!   origin, is refused.
//! - A page reads by calling the API's handler after checking the route table's rule
//!   for that route ([`Cx::check`]); it writes by sending the request through the
//!   API's own route ([`Cx::send`]), so authorisation, validation and the audit log
//!   are the API's, not a copy.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt as _;

use super::ConsoleState;
use crate::api::error::ApiError;
use crate::api::extract::{AuthUser, Authenticated, by_session_token};
use crate::auth::tokens::{CONSOLE_TTL, TokenType};
use crate::router::{self, Access};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mcpwatch_session";
/// The login form's nonce cookie (CSRF before there is a session).
pub const LOGIN_COOKIE: &str = "mcpwatch_login";
/// The form field every post carries.
pub const CSRF_FIELD: &str = "_csrf";
/// The largest form the console accepts.
const MAX_FORM_BYTES: usize = 256 * 1024;
/// The largest API answer the console reads back.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Why a console request was not done: shown as a page, or a redirect to the login.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Self::new(e.status, e.message)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/ui/login").into_response();
        }
        super::layout::problem(self.status, &self.message)
    }
}

/// The person using the console in this request.
pub struct Cx {
    pub user: AuthUser,
    pub console: ConsoleState,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    client: Option<ConnectInfo<SocketAddr>>,
}

impl FromRequestParts<ConsoleState> for Cx {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "log in"))?;
        let user = by_session_token(&token, TokenType::Console, &console.state).await?;
        let session = user
            .session()
            .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "log in"))?;
        let csrf = console
            .state
            .tokens
            .csrf_token(session.id.to_string().as_bytes());
        Ok(Self {
            user,
            csrf,
            console: console.clone(),
            client: parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
        })
    }
}

impl Cx {
    /// The role the route table asks of `method path` (a path as the table writes it,
    /// `/mcp/servers/{id}`), when this user has it.
    pub fn may(&self, method: &Method, path: &str) -> bool {
        self.check(method, path).is_ok()
    }

    /// Refuse unless the route table lets this user call `method path`: the rule a
    /// page checks before it calls the API's handler to read.
    pub fn check(&self, method: &Method, path: &str) -> Result<(), Refusal> {
        match router::access(method, path) {
            Some(Access::Person(role)) => Ok(self.user.require(role)?),
            _ => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("{method} {path} is not for people"),
            )),
        }
    }

    /// The API's state, for a handler call.
    pub fn state(&self) -> axum::extract::State<crate::state::SharedState> {
        axum::extract::State(self.console.state.clone())
    }

    /// Send `method uri` with `body` (JSON) through the API's own route as this user:
    /// the route's role check, validation, handler and audit entry. Answers the
    /// API's JSON (`null` for an empty answer) or its refusal.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Result<Value, Refusal> {
        send(
            &self.console,
            Some(&self.user),
            self.client,
            method,
            uri,
            body,
        )
        .await
    }

    /// The session cookie's scope for CSRF tokens.
    fn csrf_ok(&self, given: &str) -> bool {
        self.user.session().is_some_and(|s| {
            self.console
                .state
                .tokens
                .csrf_ok(s.id.to_string().as_bytes(), given)
        })
    }
}

/// A request through the API's router: as `user` when given (the router's
/// authorisation takes them as authenticated), else as an anonymous caller.
pub async fn send(
    console: &ConsoleState,
    user: Option<&AuthUser>,
    client: Option<ConnectInfo<SocketAddr>>,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> Result<Value, Refusal> {
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if let Some(user) = user {
        req.extensions_mut().insert(Authenticated(user.clone()));
    }
    if let Some(client) = client {
        req.extensions_mut().insert(client);
    }
    let response = match console.api.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                "the API's answer could not be read",
            )
        })?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        let message = value["error"]["message"]
            .as_str()
            .unwrap_or("the request was refused")
            .to_owned();
        Err(Refusal::new(status, message))
    }
}

/// A form with nothing but its CSRF token.
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// A posted form, after the session and its CSRF token were checked.
pub struct Posted<T>(pub Cx, pub T);

impl<T: DeserializeOwned> FromRequest<ConsoleState> for Posted<T> {
    type Rejection = Refusal;

    async fn from_request(req: Request, console: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let cx = Cx::from_request_parts(&mut parts, console).await?;
        same_origin(&parts.headers)?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("unreadable form: {e}")))?;
        let given = pairs
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map_or("", |(_, v)| v.as_str());
        if !cx.csrf_ok(given) {
            return Err(forged());
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("unreadable form: {e}")))?;
        Ok(Self(cx, form))
    }
}

/// The refusal of a post without this session's CSRF token.
pub fn forged() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "this form did not come from this console session (its CSRF token is missing or \
         stale); reload the page and try again",
    )
}

/// Refuse a post whose `Origin` (when the browser sent one) is not this host.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "a form posted from another site is refused",
        ))
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, for `path`, living `max_age`
/// (zero removes it), `Secure` when the console is reached over HTTPS.
pub fn set_cookie(
    console: &ConsoleState,
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: chrono::Duration,
) -> String {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(console.secure_cookies)
        .path(path)
        .max_age(cookie::time::Duration::seconds(max_age.num_seconds()))
        .build()
        .to_string()
}

/// The session cookie for a new console session.
pub fn session_cookie(console: &ConsoleState, token: String) -> String {
    set_cookie(console, SESSION_COOKIE, token, "/", CONSOLE_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&[("cookie", "a=1; mcpwatch_session=tok; mcpwatch_sessionx=no")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn posts_from_another_origin_are_refused() {
        let ok = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000"),
        ]);
        assert!(same_origin(&ok).is_ok());
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8000")])).is_ok());
        for bad in ["http://evil.example", "null", "http://127.0.0.1:8001"] {
            let h = headers(&[("host", "127.0.0.1:8000"), ("origin", bad)]);
            assert!(same_origin(&h).is_err(), "{bad}");
        }
    }
}
