//! Settings: users and roles, enroll secrets (with the install commands to copy),
//! notification channels (with "send test"), API tokens and the audit log. Each tab
//! is shown to whoever the route table lets read it; every change is the API's own
//! route. Secrets the API shows once are shown once here, on the answer to the post.

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ConsoleState;
use super::layout::{self, Nav, done, empty, maybe_when, mono, pager, seg, when, wire};
use super::servers::{known_pairs, value};
use super::session::{Cx, NoFields, Posted, Refusal};
use crate::api::{audit, enroll, notifications, tokens, users};

/// The settings routes.
pub fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/settings", get(index))
        .route("/ui/settings/users", get(users_page).post(create_user))
        .route("/ui/settings/users/{id}", post(update_user))
        .route("/ui/settings/enroll", get(enroll_page).post(create_secret))
        .route("/ui/settings/enroll/{id}/delete", post(delete_secret))
        .route(
            "/ui/settings/channels",
            get(channels_page).post(create_channel),
        )
        .route("/ui/settings/channels/{id}/test", post(test_channel))
        .route("/ui/settings/channels/{id}/delete", post(delete_channel))
        .route("/ui/settings/tokens", get(tokens_page).post(create_token))
        .route("/ui/settings/tokens/{id}/delete", post(delete_token))
        .route("/ui/settings/audit", get(audit_page))
}

/// The tabs: (path, label, the API route that reads it).
const TABS: [(&str, &str, &str); 5] = [
    ("/ui/settings/users", "Users", "/users"),
    ("/ui/settings/enroll", "Enroll secrets", "/enroll-secrets"),
    (
        "/ui/settings/channels",
        "Notifications",
        "/notifications/channels",
    ),
    ("/ui/settings/tokens", "API tokens", "/api-tokens"),
    ("/ui/settings/audit", "Audit log", "/audit"),
];

const ROLES: [&str; 3] = ["viewer", "analyst", "admin"];

fn settings_page(cx: &Cx, current: &str, title: &str, body: Markup) -> Response {
    let markup = html! {
        nav.tabs aria-label="Settings" {
            @for (href, label, api) in TABS {
                @if cx.may(&Method::GET, api) {
                    a href=(href) aria-current=[(href == current).then_some("page")] { (label) }
                }
            }
        }
        (body)
    };
    layout::page(cx, Nav::Settings, title, markup)
}

/// A secret the API showed once, with a copy button.
fn shown_once(id: &str, label: &str, secret: &str) -> Markup {
    html! {
        div.notice {
            p { strong { (label) } " It is shown only now: copy it." }
            pre #(id) { (secret) }
            button.secondary type="button" data-copy=(id) hidden { "Copy" }
        }
    }
}

fn role_select(name: &str, current: &str) -> Markup {
    html! {
        select name=(name) {
            @for r in ROLES { option value=(r) selected[r == current] { (r) } }
        }
    }
}

/// `GET /ui/settings`: the first tab this user may read.
pub async fn index(cx: Cx) -> Response {
    let first = TABS
        .iter()
        .find(|(_, _, api)| cx.may(&Method::GET, api))
        .map_or("/ui/", |(href, _, _)| href);
    Redirect::to(first).into_response()
}

/// `GET /ui/settings/users`.
pub async fn users_page(cx: Cx, RawQuery(raw): RawQuery) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/users")?;
    let list = users::list(cx.state(), cx.user.clone()).await?.0;
    let code = known_pairs(raw.as_deref(), &["done"]);
    let body = html! {
        (done(Some(value(&code, "done")), &[("created", "The user is added."), ("updated", "The user is changed.")]))
        div.scroll { table #users {
            thead { tr { th { "Email" } th { "Name" } th { "Role" } th { "State" } th.optional { "Added" } } }
            tbody { @for u in &list {
                tr {
                    td.wrap { (u.email) }
                    td.wrap { (u.full_name) }
                    td {
                        form.inline method="post" action={ "/ui/settings/users/" (seg(u.id)) } {
                            (layout::csrf(&cx)) (role_select("role", u.role.as_str()))
                            " " button.secondary type="submit" { "Change role" }
                        }
                    }
                    td {
                        @if u.is_active { "active " } @else { span.muted { "deactivated " } }
                        @if u.id != cx.user.user.id {
                            (layout::button(&cx, &format!("/ui/settings/users/{}", seg(u.id)),
                                if u.is_active { "Deactivate" } else { "Activate" },
                                &[("is_active", if u.is_active { "false" } else { "true" })], None))
                        }
                    }
                    td.optional { (when(u.created_at)) }
                }
            } }
        } }
        h2 { "Add a user" }
        form.stack method="post" action="/ui/settings/users" {
            (layout::csrf(&cx))
            label { "Email" input type="email" name="email" required; }
            label { "Full name" input type="text" name="full_name"; }
            label { "Password (at least 8 characters)" input type="password" name="password" autocomplete="new-password" required; }
            label { "Role" (role_select("role", "viewer")) }
            button type="submit" { "Add user" }
        }
    };
    Ok(settings_page(&cx, "/ui/settings/users", "Users", body))
}

#[derive(Deserialize)]
pub struct NewUser {
    email: String,
    #[serde(default)]
    full_name: String,
    password: String,
    role: String,
}

/// `POST /ui/settings/users`: the API's `POST /users`.
pub async fn create_user(Posted(cx, f): Posted<NewUser>) -> Result<Response, Refusal> {
    let full_name = (!f.full_name.trim().is_empty()).then_some(f.full_name);
    let body =
        json!({ "email": f.email, "password": f.password, "full_name": full_name, "role": f.role });
    cx.send(Method::POST, "/users", Some(body)).await?;
    Ok(Redirect::to("/ui/settings/users?done=created").into_response())
}

#[derive(Deserialize)]
pub struct UserChange {
    role: Option<String>,
    is_active: Option<bool>,
}

/// `POST /ui/settings/users/{id}`: the API's `PATCH /users/{id}`.
pub async fn update_user(
    Path(id): Path<String>,
    Posted(cx, f): Posted<UserChange>,
) -> Result<Response, Refusal> {
    let mut body = serde_json::Map::new();
    if let Some(role) = f.role {
        body.insert("role".into(), Value::String(role));
    }
    if let Some(active) = f.is_active {
        body.insert("is_active".into(), Value::Bool(active));
    }
    cx.send(
        Method::PATCH,
        &format!("/users/{}", seg(&id)),
        Some(Value::Object(body)),
    )
    .await?;
    Ok(Redirect::to("/ui/settings/users?done=updated").into_response())
}

/// The collector's address as agents should use it: `--public-url`, else this
/// request's host.
fn collector_url(cx: &Cx, headers: &HeaderMap) -> String {
    if let Some(url) = &cx.console.state.settings.notify.public_url {
        return url.as_str().trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("COLLECTOR-HOST");
    let scheme = if cx.console.secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

fn install_commands(url: &str, secret: &str) -> Markup {
    let version = env!("CARGO_PKG_VERSION");
    let commands = [
        (
            "deb",
            format!(
                "sudo MCPWATCH_COLLECTOR_URL={url} MCPWATCH_ENROLL_SECRET={secret} \\\n     DEBIAN_FRONTEND=noninteractive apt-get install -y ./mcpwatch-agent_{version}-1_amd64.deb </dev/null"
            ),
        ),
        (
            "rpm",
            format!(
                "sudo MCPWATCH_COLLECTOR_URL={url} MCPWATCH_ENROLL_SECRET={secret} \\\n     dnf install -y ./mcpwatch-agent-{version}-1.x86_64.rpm"
            ),
        ),
        (
            "msi",
            format!(
                "msiexec /i mcpwatch-agent-{version}-x64.msi /qn SERVER_URL={url} ENROLL_SECRET={secret}"
            ),
        ),
        (
            "install",
            format!("sudo ./mcpwatch-agent install --collector-url {url} --enroll-secret {secret}"),
        ),
    ];
    html! {
        h2 { "Install the agent with it" }
        @for (kind, command) in &commands {
            h3 { (match *kind { "deb" => "Debian, Ubuntu (deb)", "rpm" => "Fedora, RHEL, SUSE (rpm)", "msi" => "Windows (MSI, as administrator)", _ => "macOS or by hand" }) }
            pre #{ "install-" (kind) } { (command) }
            button.secondary type="button" data-copy={ "install-" (kind) } hidden { "Copy" }
        }
    }
}

async fn enroll_body(cx: &Cx, created: Option<Markup>) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/enroll-secrets")?;
    let list = enroll::list(cx.state(), cx.user.clone()).await?.0;
    let body = html! {
        @if let Some(created) = created { (created) }
        @if list.is_empty() {
            (empty("No enroll secrets yet. Make one, then install the agent on laptops with it.", None))
        } @else {
            div.scroll { table #enroll-secrets {
                thead { tr { th { "Name" } th { "Secret" } th { "Agents enrolled" } th.optional { "Made" } th { "Expires" } th {} } }
                tbody { @for s in &list {
                    tr {
                        td.wrap { (s.name) } td { code { (s.secret_prefix) "…" } } td { (s.enrolled_count) }
                        td.optional { (when(s.created_at)) } td { (maybe_when(s.expires_at)) }
                        td { (layout::button(cx, &format!("/ui/settings/enroll/{}/delete", seg(s.id)), "Delete", &[],
                            Some("Delete this enroll secret? Agents already enrolled keep working."))) }
                    }
                } }
            } }
        }
        h2 { "Make an enroll secret" }
        form.stack method="post" action="/ui/settings/enroll" {
            (layout::csrf(cx))
            label { "Name (where it is used, e.g. \"laptops 2026\")" input type="text" name="name" required maxlength="200"; }
            label { "Expires after days (empty: never)" input type="number" name="expires_in_days" min="1" max="3650"; }
            button type="submit" { "Make secret" }
        }
    };
    Ok(settings_page(
        cx,
        "/ui/settings/enroll",
        "Enroll secrets",
        body,
    ))
}

/// `GET /ui/settings/enroll`.
pub async fn enroll_page(cx: Cx) -> Result<Response, Refusal> {
    enroll_body(&cx, None).await
}

#[derive(Deserialize)]
pub struct NewSecret {
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

/// A number field that may be empty.
fn days(raw: &str) -> Result<Option<u32>, Refusal> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| {
        Refusal::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            format!("days must be a whole number, got {raw:?}"),
        )
    })
}

/// `POST /ui/settings/enroll`: the API's `POST /enroll-secrets`; the secret and the
/// install commands are shown on the answer.
pub async fn create_secret(
    headers: HeaderMap,
    Posted(cx, f): Posted<NewSecret>,
) -> Result<Response, Refusal> {
    let body = json!({ "name": f.name, "expires_in_days": days(&f.expires_in_days)? });
    let made = cx.send(Method::POST, "/enroll-secrets", Some(body)).await?;
    let secret = made["secret"].as_str().unwrap_or_default().to_owned();
    let url = collector_url(&cx, &headers);
    let shown = html! {
        (shown_once("enroll-secret", "The enroll secret.", &secret))
        (install_commands(&url, &secret))
    };
    enroll_body(&cx, Some(shown)).await
}

/// `POST /ui/settings/enroll/{id}/delete`.
pub async fn delete_secret(
    Path(id): Path<String>,
    Posted(cx, NoFields {}): Posted<NoFields>,
) -> Result<Response, Refusal> {
    cx.send(
        Method::DELETE,
        &format!("/enroll-secrets/{}", seg(&id)),
        None,
    )
    .await?;
    Ok(Redirect::to("/ui/settings/enroll").into_response())
}

async fn channels_body(cx: &Cx, shown: Option<Markup>) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/notifications/channels")?;
    let list = notifications::list(cx.state(), cx.user.clone()).await?.0;
    let body = html! {
        @if let Some(shown) = shown { (shown) }
        @if list.is_empty() {
            (empty("No channels: alerts reach nobody until a webhook, Slack, email or syslog channel is added.", None))
        } @else {
            div.scroll { table #channels {
                thead { tr { th { "Name" } th { "Kind" } th { "Target" } th { "From" } th.optional { "Events" } th { "On" } th {} } }
                tbody { @for c in &list {
                    tr {
                        td.wrap { (c.name) } td { (wire(&c.kind)) } td.wrap { (mono(&c.target)) }
                        td { (c.min_severity.as_str()) } td.wrap.optional { (c.events.iter().map(wire).collect::<Vec<_>>().join(", ")) }
                        td { @if c.enabled { "yes" } @else { "no" } }
                        td {
                            (layout::button(cx, &format!("/ui/settings/channels/{}/test", seg(c.id)), "Send test", &[], None))
                            @if wire(&c.source) == "api" {
                                " " (layout::button(cx, &format!("/ui/settings/channels/{}/delete", seg(c.id)), "Delete", &[],
                                    Some("Delete this channel?")))
                            }
                        }
                    }
                } }
            } }
        }
        h2 { "Add a channel" }
        form.stack method="post" action="/ui/settings/channels" {
            (layout::csrf(cx))
            label { "Name" input type="text" name="name" required maxlength="200"; }
            label { "Kind" select name="kind" {
                @for k in ["webhook", "slack", "email", "syslog"] { option value=(k) { (k) } }
            } }
            label { "Target (https:// URL, email addresses, or syslog udp://, tcp://, tls:// host:port)" input type="text" name="target" required; }
            label { "Lowest severity" select name="min_severity" {
                @for s in ["critical", "high", "medium", "low"] { option value=(s) selected[s == "high"] { (s) } }
            } }
            label { "Events (comma-separated)" input type="text" name="events" value="alert.created"; }
            button type="submit" { "Add channel" }
        }
    };
    Ok(settings_page(
        cx,
        "/ui/settings/channels",
        "Notifications",
        body,
    ))
}

/// `GET /ui/settings/channels`.
pub async fn channels_page(cx: Cx) -> Result<Response, Refusal> {
    channels_body(&cx, None).await
}

#[derive(Deserialize)]
pub struct NewChannel {
    name: String,
    kind: String,
    target: String,
    min_severity: String,
    #[serde(default)]
    events: String,
}

/// `POST /ui/settings/channels`: the API's `POST /notifications/channels` (a
/// webhook's signing secret is shown once).
pub async fn create_channel(Posted(cx, f): Posted<NewChannel>) -> Result<Response, Refusal> {
    let events: Vec<&str> = f
        .events
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let body = json!({ "name": f.name, "kind": f.kind, "target": f.target, "min_severity": f.min_severity,
        "events": (!events.is_empty()).then_some(events) });
    let made = cx
        .send(Method::POST, "/notifications/channels", Some(body))
        .await?;
    let shown = made["secret"]
        .as_str()
        .map(|s| shown_once("channel-secret", "The webhook's signing secret.", s));
    channels_body(
        &cx,
        shown.or_else(|| Some(html! { p.done { "The channel is added." } })),
    )
    .await
}

/// `POST /ui/settings/channels/{id}/test`: the API's test, and what it answered.
pub async fn test_channel(
    Path(id): Path<String>,
    Posted(cx, NoFields {}): Posted<NoFields>,
) -> Result<Response, Refusal> {
    let r = cx
        .send(
            Method::POST,
            &format!("/notifications/channels/{}/test", seg(&id)),
            None,
        )
        .await?;
    let shown = if r["delivered"].as_bool() == Some(true) {
        html! { p.done #test-result { "The test event was delivered." } }
    } else {
        html! { p.error #test-result { "The test event was not delivered: " (r["error"].as_str().unwrap_or("no answer")) } }
    };
    channels_body(&cx, Some(shown)).await
}

/// `POST /ui/settings/channels/{id}/delete`.
pub async fn delete_channel(
    Path(id): Path<String>,
    Posted(cx, NoFields {}): Posted<NoFields>,
) -> Result<Response, Refusal> {
    cx.send(
        Method::DELETE,
        &format!("/notifications/channels/{}", seg(&id)),
        None,
    )
    .await?;
    Ok(Redirect::to("/ui/settings/channels").into_response())
}

async fn tokens_body(cx: &Cx, shown: Option<Markup>) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/api-tokens")?;
    let list = tokens::list(cx.state(), cx.user.clone()).await?.0;
    let body = html! {
        @if let Some(shown) = shown { (shown) }
        p.muted { "Scripts use a token as " code { "Authorization: Bearer mcp_pat_…" } "; its role is at most its owner's. "
            a href="/docs" { "API reference" } }
        @if list.is_empty() { (empty("No API tokens.", None)) } @else {
            div.scroll { table #api-tokens {
                thead { tr { th { "Name" } th { "Role" } th { "Token" } th { "Expires" } th.optional { "Last used" } th {} } }
                tbody { @for t in &list {
                    tr {
                        td.wrap { (t.name) } td { (t.role.as_str()) } td { code { (t.token_prefix) "…" } }
                        td { (when(t.expires_at)) } td.optional { (maybe_when(t.last_used_at)) }
                        td { (layout::button(cx, &format!("/ui/settings/tokens/{}/delete", seg(t.id)), "Revoke", &[],
                            Some("Revoke this token? Scripts using it stop working."))) }
                    }
                } }
            } }
        }
        h2 { "Make an API token" }
        form.stack method="post" action="/ui/settings/tokens" {
            (layout::csrf(cx))
            label { "Name (what uses it)" input type="text" name="name" required maxlength="200"; }
            label { "Role" (role_select("role", cx.user.user.role.as_str())) }
            label { "Expires after days (empty: the default)" input type="number" name="expires_in_days" min="1" max="3650"; }
            button type="submit" { "Make token" }
        }
    };
    Ok(settings_page(cx, "/ui/settings/tokens", "API tokens", body))
}

/// `GET /ui/settings/tokens`.
pub async fn tokens_page(cx: Cx) -> Result<Response, Refusal> {
    tokens_body(&cx, None).await
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
    role: String,
    #[serde(default)]
    expires_in_days: String,
}

/// `POST /ui/settings/tokens`: the API's `POST /api-tokens` (the token shown once).
pub async fn create_token(Posted(cx, f): Posted<NewToken>) -> Result<Response, Refusal> {
    let body =
        json!({ "name": f.name, "role": f.role, "expires_in_days": days(&f.expires_in_days)? });
    let made = cx.send(Method::POST, "/api-tokens", Some(body)).await?;
    let token = made["token"].as_str().unwrap_or_default();
    tokens_body(&cx, Some(shown_once("api-token", "The API token.", token))).await
}

/// `POST /ui/settings/tokens/{id}/delete`.
pub async fn delete_token(
    Path(id): Path<String>,
    Posted(cx, NoFields {}): Posted<NoFields>,
) -> Result<Response, Refusal> {
    cx.send(Method::DELETE, &format!("/api-tokens/{}", seg(&id)), None)
        .await?;
    Ok(Redirect::to("/ui/settings/tokens").into_response())
}

/// `GET /ui/settings/audit`.
pub async fn audit_page(cx: Cx, RawQuery(raw): RawQuery) -> Result<Response, Refusal> {
    let pairs = known_pairs(raw.as_deref(), &["action", "page"]);
    cx.check(&Method::GET, "/audit")?;
    let page = audit::list(
        cx.state(),
        cx.user.clone(),
        super::dashboard::query(&pairs)?,
    )
    .await?
    .0;
    let body = html! {
        form.filters method="get" action="/ui/settings/audit" {
            label { "Action (e.g. server.verified)" input type="text" name="action" value=(value(&pairs, "action")); }
            button type="submit" { "Apply" }
        }
        @if page.items.is_empty() { (empty("Nothing recorded yet.", None)) } @else {
            div.scroll { table #audit {
                thead { tr { th { "When" } th { "Who" } th { "Action" } th { "On" } th.optional { "From" } th.optional { "Details" } } }
                tbody { @for e in &page.items {
                    tr {
                        td { (when(e.at)) }
                        td.wrap { (e.actor.email.as_deref().or(e.actor.id.as_deref()).unwrap_or("")) " " span.muted { (wire(&e.actor.kind)) } }
                        td { code { (wire(&e.action)) } }
                        td.wrap { (e.target.kind) " " span.muted { (e.target.id.as_deref().unwrap_or("")) } }
                        td.optional { (e.source_ip.as_deref().unwrap_or("")) }
                        td.wrap.optional { (mono(&e.details.to_string())) }
                    }
                } }
            } }
            (pager("/ui/settings/audit", &pairs, page.page, page.page_size, page.total))
        }
    };
    Ok(settings_page(&cx, "/ui/settings/audit", "Audit log", body))
}
