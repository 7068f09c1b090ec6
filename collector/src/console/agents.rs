//! Agents: the list (online state, servers, errors) and one agent (host facts, the
//! config files it could not read, dangerous combinations, its servers), and
//! removal for admins.

use axum::extract::{Path, RawQuery};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::layout::{self, Nav, done, empty, level, maybe_when, mono, pager, seg};
use super::servers::{known_pairs, server_link, value};
use super::session::{Cx, NoFields, Posted, Refusal};
use crate::api::agents::{self, AgentView};

const PAGE_SIZE: u64 = 50;

fn online(a: &AgentView) -> Markup {
    html! {
        @if a.is_online { span.ok { "online" } } @else { span.muted { "offline" } }
    }
}

/// `GET /ui/agents`.
pub async fn list(cx: Cx, RawQuery(raw): RawQuery) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/agents")?;
    let mut fleet = agents::list(cx.state(), cx.user.clone()).await?.0;
    let pairs = known_pairs(raw.as_deref(), &["page", "done"]);
    let total = fleet.len() as u64;
    let page = value(&pairs, "page")
        .parse::<u64>()
        .unwrap_or(1)
        .clamp(1, total.div_ceil(PAGE_SIZE).max(1));
    fleet.sort_by(|a, b| {
        let name = |x: &AgentView| {
            x.hostname
                .clone()
                .unwrap_or_else(|| x.name.clone())
                .to_lowercase()
        };
        name(a).cmp(&name(b))
    });
    let start = usize::try_from((page - 1) * PAGE_SIZE).unwrap_or(usize::MAX);
    let shown: Vec<&AgentView> = fleet.iter().skip(start).take(PAGE_SIZE as usize).collect();
    let body = html! {
        (done(Some(value(&pairs, "done")), &[("deleted", "The agent, its key and its servers were removed.")]))
        @if fleet.is_empty() {
            (empty("No agents yet: create an enroll secret and install the agent with it.",
                Some(("/ui/settings/enroll", "Create an enroll secret"))))
        } @else {
            div.scroll {
                table #agents {
                    thead { tr {
                        th { "Host" } th { "State" } th.optional { "User" } th.optional { "OS" }
                        th { "Servers" } th.optional { "Last seen" } th { "Problems" }
                    } }
                    tbody {
                        @for a in shown {
                            tr {
                                td.wrap { a href={ "/ui/agents/" (seg(a.id)) } { (a.hostname.as_deref().unwrap_or(&a.name)) } }
                                td { (online(a)) }
                                td.wrap.optional { (a.username.as_deref().unwrap_or("")) }
                                td.wrap.optional { (a.os_type.as_deref().unwrap_or("")) " " (a.os_version.as_deref().unwrap_or("")) }
                                td { (a.server_count) }
                                td.optional { (maybe_when(a.last_seen_at)) }
                                td {
                                    @if !a.config_errors.is_empty() { (a.config_errors.len()) " unreadable config files " }
                                    @if a.report_error.is_some() { "report refused" }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/ui/agents", &[], page, PAGE_SIZE, total))
        }
    };
    Ok(layout::page(&cx, Nav::Agents, "Agents", body))
}

/// `GET /ui/agents/{id}`.
pub async fn detail(cx: Cx, Path(id): Path<String>) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/agents/{id}")?;
    let a = agents::get(cx.state(), cx.user.clone(), Path(id)).await?.0;
    cx.check(&Method::GET, "/mcp/servers")?;
    let agent_id = a.id.to_string();
    let servers = crate::api::servers::list(
        cx.state(),
        cx.user.clone(),
        super::dashboard::query([("agent_id", agent_id.as_str()), ("page_size", "50")])?,
    )
    .await?
    .0;
    let title = a.hostname.clone().unwrap_or_else(|| a.name.clone());
    let body = html! {
        p { (online(&a)) " · last seen " (maybe_when(a.last_seen_at)) " · last report " (maybe_when(a.last_report_at)) }
        @if let Some(e) = &a.report_error { p.error { "The collector refused its last report: " (e) } }
        (host_facts(&a))
        h2 { "Config files it could not read" }
        @if a.config_errors.is_empty() { p.muted { "None." } } @else {
            ul #config-errors {
                @for e in &a.config_errors {
                    li.wrap { (mono(&e.path)) @if let Some(c) = &e.client { " (" (c) ")" } ": " (e.error) }
                }
            }
        }
        @if !a.combinations.is_empty() {
            h2 { "Dangerous combinations" }
            ul {
                @for c in &a.combinations {
                    li.wrap { code { (c.rule_id) } " " (c.severity.as_str()) ": " (c.message) " — " (c.servers.join(", ")) }
                }
            }
        }
        h2 { "Servers (" (servers.total) ")" }
        @if servers.items.is_empty() { (empty("This agent has reported no servers.", None)) } @else {
            ul {
                @for s in &servers.items { li { (server_link(s)) " " (level(s.risk_level)) } }
            }
            @if servers.has_more { p { a href={ "/ui/servers?agent_id=" (seg(a.id)) } { "All of its servers" } } }
        }
        @if cx.may(&Method::DELETE, "/agents/{id}") {
            h2 { "Remove" }
            p.muted { "Removing an agent revokes its key and deletes its servers. A running agent must enroll again." }
            (layout::button(&cx, &format!("/ui/agents/{}/delete", seg(a.id)), "Remove this agent", &[],
                Some("Remove this agent, its key and its servers?")))
        }
    };
    Ok(layout::page(&cx, Nav::Agents, &title, body))
}

fn host_facts(a: &AgentView) -> Markup {
    let m = &a.machine;
    let facts: [(&str, Option<String>); 12] = [
        ("Agent name", Some(a.name.clone())),
        ("User", a.username.clone()),
        (
            "OS",
            Some(format!(
                "{} {}",
                a.os_type.as_deref().unwrap_or(""),
                a.os_version.as_deref().unwrap_or("")
            )),
        ),
        ("OS name", m.os_name.clone()),
        ("Kernel", m.kernel_version.clone()),
        ("Architecture", m.arch.clone()),
        (
            "Hardware",
            Some(format!(
                "{} {}",
                m.hardware_vendor.as_deref().unwrap_or(""),
                m.hardware_model.as_deref().unwrap_or("")
            )),
        ),
        ("Serial", m.hardware_serial.clone()),
        ("IP address", m.ip_address.clone()),
        ("Boot time", m.boot_time.clone()),
        ("Users", m.users.as_ref().map(|u| u.join(", "))),
        ("Agent version", a.agent_version.clone()),
    ];
    html! {
        dl.facts {
            @for (label, value) in &facts {
                @if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) { dt { (label) } dd { (v) } }
            }
            dt { "Enrolled" } dd { (layout::when(a.created_at)) }
            dt { "Requests signed" } dd { @if a.signing_enabled { "yes" } @else { "no" } }
            dt { "API key" } dd { code { (a.api_key_prefix) "…" } }
        }
    }
}

/// `POST /ui/agents/{id}/delete`: the API's `DELETE /agents/{id}`.
pub async fn delete(
    Path(id): Path<String>,
    Posted(cx, NoFields {}): Posted<NoFields>,
) -> Result<Response, Refusal> {
    cx.send(Method::DELETE, &format!("/agents/{}", seg(&id)), None)
        .await?;
    Ok(Redirect::to("/ui/agents?done=deleted").into_response())
}
