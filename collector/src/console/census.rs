//! The fleet census: one row per package, URL or server name, with how many hosts,
//! users and clients run it, its versions, and whether the policy approves or blocks
//! it.

use axum::extract::RawQuery;
use axum::http::Method;
use axum::response::Response;
use maud::html;

use super::layout::{self, Nav, empty, level, maybe_when, mono, pager};
use super::servers::{known_pairs, value};
use super::session::{Cx, Refusal};
use crate::api::census;

const KEYS: [&str; 4] = ["group_by", "sort", "page", "page_size"];

/// `GET /ui/census`.
pub async fn page(cx: Cx, RawQuery(raw): RawQuery) -> Result<Response, Refusal> {
    let pairs = known_pairs(raw.as_deref(), &KEYS);
    cx.check(&Method::GET, "/mcp/census")?;
    let rows = census::census(
        cx.state(),
        cx.user.clone(),
        super::dashboard::query(&pairs)?,
    )
    .await?
    .0;
    let group = match value(&pairs, "group_by") {
        "" => "package",
        g => g,
    };
    let sort = value(&pairs, "sort");
    let body = html! {
        form.filters method="get" action="/ui/census" {
            label { "One row per" select name="group_by" data-autosubmit {
                @for (v, text) in [("package", "package"), ("url", "URL"), ("server_name", "server name")] {
                    option value=(v) selected[group == v] { (text) }
                }
            } }
            label { "Sort" select name="sort" data-autosubmit {
                option value="" { "most hosts first" }
                option value="key" selected[sort == "key"] { "A–Z" }
                option value="hosts:asc" selected[sort == "hosts:asc"] { "fewest hosts first" }
            } }
            button type="submit" { "Apply" }
        }
        @if rows.items.is_empty() {
            (empty("Nothing counted yet: the census fills as agents report their servers.", None))
        } @else {
            div.scroll {
                table #census {
                    thead { tr {
                        th { "Name" } th { "Hosts" } th.optional { "Users" } th.optional { "Servers" }
                        th.optional { "Versions" } th { "Highest risk" } th { "Policy" } th.optional { "Last seen" }
                    } }
                    tbody {
                        @for r in &rows.items {
                            tr {
                                td.wrap { (mono(&r.key)) @if let Some(e) = &r.ecosystem { " " span.muted { (e) } }
                                    @if r.launches > 1 { br; span.muted { (r.launches) " different launches" } } }
                                td { (r.hosts) }
                                td.optional { (r.users) }
                                td.optional { (r.servers) }
                                td.wrap.optional {
                                    @for (i, v) in r.versions.iter().enumerate() {
                                        @if i > 0 { ", " } (v.version) " (" (v.hosts) ")"
                                    }
                                }
                                td { @if let Some(l) = r.max_risk_level { (level(l)) } }
                                td { @if r.blocked { "blocked" } @else if r.approved { "approved" } }
                                td.optional { (maybe_when(r.last_seen_at)) }
                            }
                        }
                    }
                }
            }
            (pager("/ui/census", &pairs, rows.page, rows.page_size, rows.total))
        }
    };
    Ok(layout::page(&cx, Nav::Census, "Census", body))
}
