//! Servers: the list (the filters, search, sort and paging of `GET /mcp/servers`)
//! and one server (its launch, findings with their remediation, its change history
//! as before and after, the host and user it runs for, and verification for
//! analysts).

use axum::extract::{Path, RawQuery};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use mcpwatch_protocol::risk::RULES;
use serde::Deserialize;
use serde_json::json;

use super::layout::{self, Nav, done, empty, level, maybe_when, mono, pager, seg, when, wire};
use super::session::{Cx, Posted, Refusal};
use crate::api::servers::{self, ServerDetail, ServerView};
use crate::model::ServerChange;

/// The list's query parameters the console passes on (the API's own names).
const LIST_KEYS: [&str; 7] = [
    "risk_level",
    "status",
    "agent_id",
    "search",
    "sort",
    "page",
    "page_size",
];

/// The query's pairs the list understands, in order.
pub fn known_pairs(raw: Option<&str>, keys: &[&str]) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| keys.contains(&k.as_str()) && !v.trim().is_empty())
        .collect()
}

/// The first value of `key` in `pairs`.
pub fn value<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// A link to a server, by name.
pub fn server_link(s: &ServerView) -> Markup {
    html! { a href={ "/ui/servers/" (seg(s.id)) } { (s.record.server_name) } }
}

fn select(name: &str, label: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        label { (label)
            select name=(name) data-autosubmit {
                @for (v, text) in options {
                    option value=(v) selected[*v == current] { (text) }
                }
            }
        }
    }
}

/// `GET /ui/servers`.
pub async fn list(cx: Cx, RawQuery(raw): RawQuery) -> Result<Response, Refusal> {
    let pairs = known_pairs(raw.as_deref(), &LIST_KEYS);
    cx.check(&Method::GET, "/mcp/servers")?;
    let page = servers::list(
        cx.state(),
        cx.user.clone(),
        super::dashboard::query(&pairs)?,
    )
    .await?
    .0;
    let v = |k| value(&pairs, k);
    let export = serde_urlencoded::to_string(
        pairs
            .iter()
            .filter(|(k, _)| k != "page" && k != "page_size")
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/ui/servers" role="search" {
            label { "Search names" input type="search" name="search" value=(v("search")) maxlength="200"; }
            (select("risk_level", "Level", v("risk_level"), &[("", "any"), ("critical", "critical"), ("high", "high"), ("medium", "medium"), ("low", "low")]))
            (select("status", "Status", v("status"), &[("", "any"), ("active", "active"), ("dormant", "dormant")]))
            (select("sort", "Sort", v("sort"), &[
                ("", "riskiest first"), ("risk_score:asc", "least risky first"),
                ("server_name", "name A–Z"), ("server_name:desc", "name Z–A"),
                ("hostname", "host A–Z"), ("last_seen_at:desc", "last seen, newest"),
                ("first_seen_at:desc", "first seen, newest"),
            ]))
            @if !v("agent_id").is_empty() { input type="hidden" name="agent_id" value=(v("agent_id")); }
            button type="submit" { "Apply" }
            a href="/ui/servers" { "Clear" }
        }
        @if page.items.is_empty() {
            (empty("No servers match. Servers appear when agents report them; try other filters.", None))
        } @else {
            div.scroll {
                table #servers {
                    thead { tr {
                        th { "Server" } th { "Level" } th { "Host" } th.optional { "User" }
                        th.optional { "Client" } th { "Status" } th.optional { "Last seen" }
                    } }
                    tbody {
                        @for s in &page.items {
                            tr {
                                td.wrap { (server_link(s)) @if s.is_verified { " " span.ok title="verified" { "✓" } } }
                                td { (level(s.risk_level)) " " (s.risk_score) }
                                td.wrap { (s.hostname.as_deref().unwrap_or("")) }
                                td.wrap.optional { (s.record.os_user.as_deref().unwrap_or("")) }
                                td.wrap.optional { (s.record.client.as_deref().unwrap_or("")) }
                                td { (wire(&s.status)) }
                                td.optional { (when(s.last_seen_at)) }
                            }
                        }
                    }
                }
            }
            (pager("/ui/servers", &pairs, page.page, page.page_size, page.total))
        }
        p.muted {
            "Export every server that matches: "
            a href={ "/ui/servers/export?format=csv&" (export) } download { "CSV" } " · "
            a href={ "/ui/servers/export?format=json&" (export) } download { "JSON" } " · "
            a href={ "/ui/servers/export?format=cyclonedx&" (export) } download { "CycloneDX" }
        }
    };
    Ok(layout::page(&cx, Nav::Servers, "Servers", body))
}

/// `GET /ui/servers/export`: the API's export, streamed.
pub async fn export(cx: Cx, RawQuery(raw): RawQuery) -> Result<Response, Refusal> {
    let mut keys = LIST_KEYS.to_vec();
    keys.push("format");
    let pairs = known_pairs(raw.as_deref(), &keys);
    cx.check(&Method::GET, "/mcp/servers/export")?;
    let params = super::dashboard::query(&pairs)?;
    Ok(crate::api::export::export(cx.state(), cx.user.clone(), params).await?)
}

/// `GET /ui/servers/{id}`.
pub async fn detail(
    cx: Cx,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/mcp/servers/{id}")?;
    let d = servers::get(cx.state(), cx.user.clone(), Path(id)).await?.0;
    let done_code = known_pairs(raw.as_deref(), &["done"]);
    let title = d.summary.record.server_name.clone();
    let body = html! {
        (done(Some(value(&done_code, "done")), &[
            ("verified", "The server is marked as verified."),
            ("unverified", "The server is no longer marked as verified."),
        ]))
        p { (level(d.summary.risk_level)) " risk score " strong { (d.summary.risk_score) } " · " (wire(&d.summary.status)) }
        (verification(&cx, &d))
        h2 { "Launch" }
        (facts(&d))
        h2 { "Findings" }
        (findings(&d))
        h2 { "Change history" }
        (history(&d.changes))
    };
    Ok(layout::page(&cx, Nav::Servers, &title, body))
}

fn verification(cx: &Cx, d: &ServerDetail) -> Markup {
    let action = format!("/ui/servers/{}/verify", seg(d.summary.id));
    let can = cx.may(&Method::PATCH, "/mcp/servers/{id}");
    html! {
        div #verification {
            @if d.summary.is_verified {
                span.ok { "Verified" } " " (maybe_when(d.summary.verified_at)) " "
                @if can { (layout::button(cx, &action, "Unverify", &[("verified", "false")], None)) }
            } @else {
                span.muted { "Not verified" } " "
                @if can { (layout::button(cx, &action, "Verify", &[("verified", "true")], None)) }
            }
        }
    }
}

fn facts(d: &ServerDetail) -> Markup {
    let s = &d.summary;
    let r = &s.record;
    let launch = std::iter::once(r.command.clone().unwrap_or_default())
        .chain(r.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        dl.facts {
            @if !launch.trim().is_empty() { dt { "Command" } dd { (mono(&launch)) } }
            @if let Some(url) = &r.url { dt { "URL" } dd { (mono(url)) } }
            @if let Some(t) = &r.transport { dt { "Transport" } dd { (wire(t)) } }
            @if let Some(p) = &r.package {
                dt { "Package" } dd { (p.ecosystem) " " (mono(&p.name)) @if let Some(v) = &p.version { " " (v) } }
            }
            dt { "Host" } dd { a href={ "/ui/agents/" (seg(s.agent_id)) } { (s.hostname.as_deref().unwrap_or("(unnamed host)")) } }
            dt { "User" } dd { (r.os_user.as_deref().unwrap_or("")) }
            dt { "Client" } dd { (r.client.as_deref().unwrap_or("")) }
            @if let Some(path) = &r.config_path { dt { "Config file" } dd { (mono(path)) } }
            @if let Some(scope) = &r.config_scope { dt { "Scope" } dd { (wire(scope)) } }
            @if let Some(project) = &r.project_path { dt { "Project" } dd { (mono(project)) } }
            @if !r.env_vars.is_empty() { dt { "Environment (names only)" } dd { (mono(&r.env_vars.join(", "))) } }
            @if !r.header_names.is_empty() { dt { "Headers (names only)" } dd { (mono(&r.header_names.join(", "))) } }
            dt { "First seen" } dd { (when(s.first_seen_at)) }
            dt { "Last seen" } dd { (when(s.last_seen_at)) }
            dt { "Elsewhere" } dd {
                a href={ "/ui/servers?search=" (seg(&r.server_name)) } { "Every server with this name, on every host" }
            }
        }
    }
}

fn findings(d: &ServerDetail) -> Markup {
    if d.findings.is_empty() {
        return empty(
            "No findings: nothing in this server's launch matched a risk rule.",
            None,
        );
    }
    html! {
        div.scroll {
            table #findings {
                thead { tr { th { "Rule" } th { "Severity" } th { "Finding" } th { "Evidence" } th { "Remediation" } } }
                tbody {
                    @for f in &d.findings {
                        tr {
                            td { code { (f.rule_id) } }
                            td { (f.severity.as_str()) }
                            td.wrap { (f.message) }
                            td.wrap { (mono(&f.evidence)) }
                            td.wrap { (RULES.iter().find(|r| r.id == f.rule_id).map_or("", |r| r.remediation)) }
                        }
                    }
                }
            }
        }
    }
}

fn history(changes: &[ServerChange]) -> Markup {
    if changes.is_empty() {
        return empty("No recorded changes.", None);
    }
    html! {
        ol #history reversed {
            @for c in changes.iter().rev() {
                li {
                    (when(c.at)) " " strong { (c.kind.as_str()) }
                    @if !c.fields.is_empty() { " (" (c.fields.join(", ")) ")" }
                    @if c.previous_command.is_some() || c.command.is_some() {
                        @if c.previous_command != c.command {
                            div { "launch: " del { (mono(c.previous_command.as_deref().unwrap_or("—"))) } " → " ins { (mono(c.command.as_deref().unwrap_or("—"))) } }
                        }
                    }
                    @if let (Some(before), Some(after)) = (c.previous_level, c.level) {
                        @if before != after { div { "level: " (level(before)) " → " (level(after)) } }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    verified: bool,
}

/// `POST /ui/servers/{id}/verify`: the API's `PATCH /mcp/servers/{id}`.
pub async fn verify(
    Path(id): Path<String>,
    Posted(cx, form): Posted<VerifyForm>,
) -> Result<Response, Refusal> {
    let path = format!("/mcp/servers/{}", seg(&id));
    cx.send(
        Method::PATCH,
        &path,
        Some(json!({ "is_verified": form.verified })),
    )
    .await?;
    let code = if form.verified {
        "verified"
    } else {
        "unverified"
    };
    Ok(Redirect::to(&format!("/ui/servers/{}?done={code}", seg(&id))).into_response())
}
