//! Alerts: the list with its filters, dismissing one or all (analysts), and the live
//! stream the pages follow (the API's `/events`, for the console's session).

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::api::PageResponse;
use crate::model::Alert;

use super::layout::{self, Nav, done, empty, level, pager, seg, when};
use super::servers::{known_pairs, value};
use super::session::{Cx, NoFields, Posted, Refusal};
use crate::api::alerts;

const LIST_KEYS: [&str; 5] = ["dismissed", "severity", "sort", "page", "page_size"];

/// `GET /ui/alerts` (open alerts unless told otherwise).
pub async fn list(cx: Cx, RawQuery(raw): RawQuery) -> Result<Response, Refusal> {
    let mut pairs = known_pairs(raw.as_deref(), &LIST_KEYS);
    let shown = match value(&pairs, "dismissed") {
        "" => {
            pairs.push(("dismissed".into(), "false".into()));
            "false"
        }
        "all" => {
            pairs.retain(|(k, _)| k != "dismissed");
            "all"
        }
        other => {
            if other == "true" {
                "true"
            } else {
                "false"
            }
        }
    };
    cx.check(&Method::GET, "/alerts")?;
    let page = alerts::list(
        cx.state(),
        cx.user.clone(),
        super::dashboard::query(&pairs)?,
    )
    .await?
    .0;
    let done_code = known_pairs(raw.as_deref(), &["done"]);
    let can_dismiss = cx.may(&Method::POST, "/alerts/{id}/dismiss");
    let v = |k| value(&pairs, k);
    let body = html! {
        (done(Some(value(&done_code, "done")), &[
            ("dismissed", "The alert is dismissed."),
            ("dismissed_all", "Every open alert is dismissed."),
        ]))
        form.filters method="get" action="/ui/alerts" {
            label { "Show" select name="dismissed" data-autosubmit {
                option value="false" selected[shown == "false"] { "open" }
                option value="true" selected[shown == "true"] { "dismissed" }
                option value="all" selected[shown == "all"] { "all" }
            } }
            label { "Severity" select name="severity" data-autosubmit {
                option value="" { "any" }
                @for s in ["critical", "high", "medium", "low"] { option value=(s) selected[v("severity") == s] { (s) } }
            } }
            label { "Sort" select name="sort" data-autosubmit {
                option value="" { "newest first" }
                option value="created_at:asc" selected[v("sort") == "created_at:asc"] { "oldest first" }
                option value="severity" selected[v("sort") == "severity"] { "most severe first" }
                option value="updated_at" selected[v("sort") == "updated_at"] { "recently repeated" }
            } }
            button type="submit" { "Apply" }
        }
        @if can_dismiss && shown == "false" && !page.items.is_empty() {
            p { (layout::button(&cx, "/ui/alerts/dismiss-all", "Dismiss all open alerts", &[],
                Some("Dismiss every open alert of the organisation?"))) }
        }
        (table(&cx, &page, can_dismiss, &pairs))
    };
    Ok(layout::page(&cx, Nav::Alerts, "Alerts", body))
}

fn table(
    cx: &Cx,
    page: &PageResponse<Alert>,
    can_dismiss: bool,
    pairs: &[(String, String)],
) -> Markup {
    html! {
        @if page.items.is_empty() {
            (empty("No alerts here. New alerts appear at the top of every page as they are raised.", None))
        } @else {
            div.scroll {
                table #alerts {
                    thead { tr { th { "Severity" } th { "Alert" } th.optional { "About" } th { "Raised" } th { "" } } }
                    tbody {
                        @for a in &page.items {
                            tr {
                                td { (level(a.severity)) }
                                td.wrap {
                                    strong { (a.title) } br;
                                    span.muted { (a.message) }
                                    @if a.occurrences > 1 { br; span.muted { "seen " (a.occurrences) " times" } }
                                }
                                td.optional {
                                    @if let Some(s) = a.server_id { a href={ "/ui/servers/" (seg(s)) } { "server" } " " }
                                    @if let Some(g) = a.agent_id { a href={ "/ui/agents/" (seg(g)) } { "agent" } }
                                }
                                td { (when(a.created_at)) }
                                td {
                                    @if a.dismissed { span.muted { "dismissed" } }
                                    @else if can_dismiss {
                                        (layout::button(cx, &format!("/ui/alerts/{}/dismiss", seg(a.id)), "Dismiss", &[], None))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/ui/alerts", pairs, page.page, page.page_size, page.total))
        }
    }
}

/// `POST /ui/alerts/{id}/dismiss`: the API's `POST /alerts/{id}/dismiss`.
pub async fn dismiss(
    Path(id): Path<String>,
    Posted(cx, NoFields {}): Posted<NoFields>,
) -> Result<Response, Refusal> {
    cx.send(Method::POST, &format!("/alerts/{}/dismiss", seg(&id)), None)
        .await?;
    Ok(Redirect::to("/ui/alerts?done=dismissed").into_response())
}

/// `POST /ui/alerts/dismiss-all`: the API's `POST /alerts/dismiss-all`.
pub async fn dismiss_all(Posted(cx, NoFields {}): Posted<NoFields>) -> Result<Response, Refusal> {
    cx.send(Method::POST, "/alerts/dismiss-all", None).await?;
    Ok(Redirect::to("/ui/alerts?done=dismissed_all").into_response())
}

/// `GET /ui/events`: the organisation's events as Server-Sent Events, for the
/// console's session (the API's stream, with `Last-Event-ID`).
pub async fn events(cx: Cx, headers: HeaderMap) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/events")?;
    Ok(
        crate::api::events::stream(cx.state(), cx.user.clone(), headers)
            .await?
            .into_response(),
    )
}
