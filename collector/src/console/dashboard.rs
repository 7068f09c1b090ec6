//! The dashboard: the seed's counts, the risk distribution, the top risks, recent
//! alerts and agents online and offline, each read through the API's handler.

use axum::http::Method;
use axum::response::Response;
use maud::{Markup, html};

use super::chart;
use super::layout::{self, Nav, empty, level, when};
use super::servers::server_link;
use super::session::{Cx, Refusal};
use crate::api::extract::ApiQuery;
use crate::api::servers::ServerView;
use crate::api::{alerts, dashboard};
use crate::model::Alert;
use mcpwatch_protocol::risk::RiskLevel;

/// A handler's query parameters from pairs, as a URL would carry them (the page's own
/// that it passes on, or the page's fixed ones).
pub fn query<T: serde::de::DeserializeOwned>(
    pairs: impl serde::Serialize,
) -> Result<ApiQuery<T>, Refusal> {
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    serde_urlencoded::from_str(&query)
        .map(ApiQuery)
        .map_err(|e| Refusal::new(axum::http::StatusCode::BAD_REQUEST, e.to_string()))
}

/// `GET /ui/`.
pub async fn page(cx: Cx) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/dashboard/stats")?;
    let stats = dashboard::stats(cx.state(), cx.user.clone()).await?.0;
    cx.check(&Method::GET, "/dashboard/top-risks")?;
    let top = dashboard::top_risks(cx.state(), cx.user.clone(), query([("limit", "5")])?)
        .await?
        .0;
    cx.check(&Method::GET, "/alerts")?;
    let recent = alerts::list(
        cx.state(),
        cx.user.clone(),
        query([("dismissed", "false"), ("page_size", "5")])?,
    )
    .await?
    .0;
    // The agents' numbers, not their records: a count of their keys, and the online
    // count the stats already hold (the same the API answers).
    cx.check(&Method::GET, "/agents")?;
    let agents = cx
        .console
        .state
        .store
        .agent_count(cx.user.user.org_id)
        .await
        .map_err(crate::api::error::ApiError::from)?;
    let online = stats.active_agents;
    let distribution = [
        (RiskLevel::Critical, stats.critical_count),
        (RiskLevel::High, stats.high_count),
        (RiskLevel::Medium, stats.medium_count),
        (RiskLevel::Low, stats.low_count),
    ];
    let body = html! {
        @if agents == 0 {
            (empty("No agents yet: create an enroll secret and install the agent on a laptop.",
                Some(("/ui/settings/enroll", "Create an enroll secret"))))
        }
        (cards(&stats))
        div.grid2 {
            section {
                h2 { "Risk distribution" }
                div.card { (chart::distribution(&distribution)) }
                h2 { "Agents" }
                p {
                    span data-stat="agents_online" { (online) } " online, "
                    span data-stat="agents_offline" { (agents.saturating_sub(online)) } " offline · "
                    a href="/ui/agents" { "all agents" }
                }
            }
            section {
                h2 { "Top risks" }
                (top_risks(&top))
                h2 { "Recent alerts" }
                (recent_alerts(&recent.items))
            }
        }
    };
    Ok(layout::page(&cx, Nav::Dashboard, "Dashboard", body))
}

/// The seed's counts, each a link to what it counts.
fn cards(stats: &dashboard::Stats) -> Markup {
    let cards = [
        (
            "total_servers",
            "Servers",
            stats.total_servers,
            "/ui/servers",
        ),
        (
            "critical_count",
            "Critical",
            stats.critical_count,
            "/ui/servers?risk_level=critical",
        ),
        (
            "high_count",
            "High",
            stats.high_count,
            "/ui/servers?risk_level=high",
        ),
        (
            "medium_count",
            "Medium",
            stats.medium_count,
            "/ui/servers?risk_level=medium",
        ),
        (
            "low_count",
            "Low",
            stats.low_count,
            "/ui/servers?risk_level=low",
        ),
        (
            "active_agents",
            "Agents online",
            stats.active_agents,
            "/ui/agents",
        ),
        (
            "unresolved_alerts",
            "Open alerts",
            stats.unresolved_alerts,
            "/ui/alerts",
        ),
    ];
    html! {
        section.cards aria-label="Counts" {
            @for (key, label, n, href) in cards {
                a.card href=(href) {
                    div.n data-stat=(key) { (n) }
                    div.label { (label) }
                }
            }
        }
    }
}

fn top_risks(top: &[ServerView]) -> Markup {
    if top.is_empty() {
        return empty("No active servers.", None);
    }
    html! {
        table {
            thead { tr { th { "Server" } th { "Level" } th { "Host" } } }
            tbody {
                @for s in top {
                    tr {
                        td.wrap { (server_link(s)) }
                        td { (level(s.risk_level)) " " (s.risk_score) }
                        td.wrap { (s.hostname.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

fn recent_alerts(recent: &[Alert]) -> Markup {
    if recent.is_empty() {
        return empty("No open alerts.", None);
    }
    html! {
        ul {
            @for a in recent {
                li { (level(a.severity)) " " span.wrap { (a.title) } " · " (when(a.created_at)) }
            }
        }
        p { a href="/ui/alerts" { "All alerts" } }
    }
}
