//! Logging in and out of the console. The login goes through the API's own
//! `POST /auth/login` (its rate limits, lockouts and audit entries); the session it
//! starts is the console's, as a cookie. Before there is a session, the login form's
//! CSRF token is bound to a nonce cookie of its own.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::ConsoleState;
use super::layout::bare;
use super::session::{
    self, CSRF_FIELD, Cx, LOGIN_COOKIE, NoFields, Posted, Refusal, cookie, same_origin,
    session_cookie, set_cookie,
};
use crate::auth::tokens::TokenType;

/// How long a login form may stay open.
const LOGIN_FORM_TTL: chrono::Duration = chrono::Duration::hours(1);

fn login_scope(nonce: &str) -> Vec<u8> {
    [b"login:".as_slice(), nonce.as_bytes()].concat()
}

/// The login page, with a fresh nonce cookie for its CSRF token.
fn login_page(
    console: &ConsoleState,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let mut nonce = [0u8; 16];
    if crate::auth::random_bytes(&mut nonce).is_err() {
        return super::layout::problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the system's random number generator failed",
        );
    }
    let nonce = hex::encode(nonce);
    let token = console.state.tokens.csrf_token(&login_scope(&nonce));
    let markup: Markup = bare(
        "Log in",
        html! {
            div.login {
                h1 { "mcpwatch" }
                p.muted { "Log in to see your organisation's MCP servers." }
                @if let Some(error) = error { p.error role="alert" { (error) } }
                form method="post" action="/ui/login" {
                    input type="hidden" name=(CSRF_FIELD) value=(token);
                    label { "Email" input type="email" name="email" value=(email) autocomplete="username" required autofocus; }
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { "Log in" }
                }
            }
        },
    );
    let cookie = set_cookie(console, LOGIN_COOKIE, nonce, "/ui/login", LOGIN_FORM_TTL);
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Html(markup.into_string()),
    )
        .into_response()
}

/// `GET /ui/login`: the form, or the dashboard for someone already logged in.
pub async fn form(State(console): State<ConsoleState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    if Cx::from_request_parts(&mut parts, &console).await.is_ok() {
        return Redirect::to("/ui/").into_response();
    }
    login_page(&console, StatusCode::OK, "", None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// `POST /ui/login`: the API's login, then the session cookie.
pub async fn submit(State(console): State<ConsoleState>, req: Request) -> Response {
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().cloned();
    let headers = req.headers().clone();
    let Ok(Form(form)) = Form::<LoginForm>::from_request(req, &console).await else {
        return login_page(
            &console,
            StatusCode::BAD_REQUEST,
            "",
            Some("The login form could not be read."),
        );
    };
    let nonce = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let scope = login_scope(&nonce);
    if same_origin(&headers).is_err()
        || nonce.is_empty()
        || !console.state.tokens.csrf_ok(&scope, &form.csrf)
    {
        let message = "The login form had expired or did not come from this console. Try again.";
        return login_page(&console, StatusCode::FORBIDDEN, &form.email, Some(message));
    }
    let body = json!({ "email": form.email, "password": form.password });
    let answer = session::send(
        &console,
        None,
        client,
        Method::POST,
        "/auth/login",
        Some(body),
    )
    .await;
    let started = answer.and_then(|tokens| {
        let access = tokens["access_token"].as_str().unwrap_or_default();
        let claims = console
            .state
            .tokens
            .verify(access, TokenType::Access)
            .map_err(|_| {
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the login answered no session",
                )
            })?;
        let issued = console
            .state
            .tokens
            .issue(claims.sub, claims.org, claims.sid, TokenType::Console)
            .map_err(|_| {
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the session could not be signed",
                )
            })?;
        Ok(issued.token)
    });
    match started {
        Ok(token) => logged_in(&console, token),
        Err(refusal) => {
            let status = match refusal.status {
                s if s.is_server_error() => s,
                StatusCode::TOO_MANY_REQUESTS => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            login_page(&console, status, &form.email, Some(&refusal.message))
        }
    }
}

/// The answer to a login: the session cookie, the nonce cookie gone, the dashboard.
fn logged_in(console: &ConsoleState, token: String) -> Response {
    let nonce_gone = set_cookie(
        console,
        LOGIN_COOKIE,
        String::new(),
        "/ui/login",
        chrono::Duration::zero(),
    );
    (
        AppendHeaders([
            (header::SET_COOKIE, session_cookie(console, token)),
            (header::SET_COOKIE, nonce_gone),
        ]),
        Redirect::to("/ui/"),
    )
        .into_response()
}

/// `POST /ui/logout`: end the session (the API's logout) and drop the cookie.
pub async fn logout(Posted(cx, NoFields {}): Posted<NoFields>) -> Response {
    // An ended session cannot be ended twice: the cookie goes either way.
    let _ = cx.send(Method::POST, "/auth/logout", None).await;
    let gone = set_cookie(
        &cx.console,
        session::SESSION_COOKIE,
        String::new(),
        "/",
        chrono::Duration::zero(),
    );
    ([(header::SET_COOKIE, gone)], Redirect::to("/ui/login")).into_response()
}
