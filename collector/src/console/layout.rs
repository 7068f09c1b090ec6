//! The page shell (head, navigation, who is logged in) and the pieces pages share:
//! times shown relative and absolute, risk levels, pagers, small forms. maud escapes
//! every value it interpolates, in text and in attributes; URLs built here
//! percent-encode what goes into them.

use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::assets;
use super::session::{CSRF_FIELD, Cx};
use mcpwatch_protocol::risk::RiskLevel;

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Servers,
    Agents,
    Alerts,
    Census,
    Policy,
    Settings,
}

const SECTIONS: [(Nav, &str, &str, &str); 7] = [
    (Nav::Dashboard, "/ui/", "Dashboard", "/dashboard/stats"),
    (Nav::Servers, "/ui/servers", "Servers", "/mcp/servers"),
    (Nav::Agents, "/ui/agents", "Agents", "/agents"),
    (Nav::Alerts, "/ui/alerts", "Alerts", "/alerts"),
    (Nav::Census, "/ui/census", "Census", "/mcp/census"),
    (Nav::Policy, "/ui/policy", "Policy", "/policy"),
    (Nav::Settings, "/ui/settings", "Settings", "/users"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · mcpwatch" }
            link rel="stylesheet" href=(assets::css_url());
            script src=(assets::js_url()) defer {}
        }
    }
}

/// A page for a logged-in person: navigation (the sections their role may read),
/// who they are, a live banner for new alerts, and `body` under the title.
pub fn page(cx: &Cx, nav: Nav, title: &str, body: Markup) -> Response {
    let user = &cx.user.user;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/ui/" { "mcpwatch" }
                        ul {
                            @for (section, href, label, api) in SECTIONS {
                                @if cx.may(&Method::GET, api) {
                                    li { a href=(href) aria-current=[(section == nav).then_some("page")] { (label) } }
                                }
                            }
                        }
                    }
                    div.who {
                        span { (user.email) " · " (user.role.as_str()) }
                        form.inline method="post" action="/ui/logout" {
                            (csrf(cx))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                div #live role="status" aria-live="polite" hidden {}
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page with no navigation (login, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main #main { (body) } }
        }
    }
}

/// A refusal or failure as a page, with the status.
pub fn problem(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let markup = bare(
        title,
        html! {
            h1 { (title) }
            p.error { (message) }
            p { a href="/ui/" { "Back to the dashboard" } }
        },
    );
    (status, Html(markup.into_string())).into_response()
}

/// `GET /ui/...` for a page that does not exist.
pub async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "There is no such page.")
}

/// The hidden CSRF field of a form.
pub fn csrf(cx: &Cx) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(cx.csrf); }
}

/// A one-button form that posts `fields` to `action`; `confirm` asks first.
pub fn button(
    cx: &Cx,
    action: &str,
    label: &str,
    fields: &[(&str, &str)],
    confirm: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf(cx))
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" class=[confirm.map(|_| "danger")] { (label) }
        }
    }
}

/// A time, relative ("3 min ago") with the absolute UTC time as its tooltip and
/// machine-readable value.
pub fn when(at: DateTime<Utc>) -> Markup {
    let absolute = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! {
        time datetime=(at.to_rfc3339()) title=(absolute) { (relative(at, Utc::now())) }
    }
}

/// An optional time, or a dash.
pub fn maybe_when(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => when(at),
        None => html! { span.muted { "never" } },
    }
}

/// `at` relative to `now`, in the largest unit that fits.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let text = match n {
        0..=59 => {
            return if future {
                "in a moment".into()
            } else {
                "just now".into()
            };
        }
        60..=3599 => format!("{} min", n / 60),
        3600..=86_399 => format!("{} h", n / 3600),
        _ => format!("{} days", n / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A risk level as a coloured label (the word is always there, not only the colour).
pub fn level(level: RiskLevel) -> Markup {
    html! { span class={ "level " (level.as_str()) } { (level.as_str()) } }
}

/// Previous/next links for a page of `total` rows, keeping the query's other
/// parameters.
pub fn pager(
    base: &str,
    query: &[(String, String)],
    page: u64,
    page_size: u64,
    total: u64,
) -> Markup {
    let pages = total.div_ceil(page_size.max(1)).max(1);
    let link = |to: u64| {
        let mut q: Vec<(String, String)> =
            query.iter().filter(|(k, _)| k != "page").cloned().collect();
        q.push(("page".into(), to.to_string()));
        format!(
            "{base}?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    };
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Previous" } }
            span { "Page " (page) " of " (pages) " · " (total) " in all" }
            @if page < pages { a href=(link(page + 1)) rel="next" { "Next →" } }
        }
    }
}

/// A path segment, percent-encoded (ids are UUIDs, but nothing is assumed).
pub fn seg(value: impl std::fmt::Display) -> String {
    percent_encoding::utf8_percent_encode(&value.to_string(), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

/// The message a page shows after a post redirected back to it: fixed wording per
/// code, so that a link cannot put words in the console's mouth.
pub fn done(code: Option<&str>, messages: &[(&str, &str)]) -> Markup {
    match code.and_then(|c| messages.iter().find(|(k, _)| *k == c)) {
        Some((_, text)) => html! { p.done role="status" { (text) } },
        None => html! {},
    }
}

/// A serialisable value's wire name (`stdio`, `user`, `alert.created`).
pub fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Text that may be long (commands, paths): wrapped anywhere, in a monospace font.
pub fn mono(text: &str) -> Markup {
    html! { code.wrap { (text) } }
}

/// An empty state: what is missing and what to do next.
pub fn empty(text: &str, next: Option<(&str, &str)>) -> Markup {
    html! {
        div.empty {
            p { (text) }
            @if let Some((href, label)) = next { p { a href=(href) { (label) } } }
        }
    }
}

/// Raw markup that is not user text (a chart made here).
pub fn trusted(svg: String) -> Markup {
    PreEscaped(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_pick_the_largest_unit() {
        let now = Utc::now();
        assert_eq!(relative(now, now), "just now");
        assert_eq!(
            relative(now - chrono::Duration::minutes(3), now),
            "3 min ago"
        );
        assert_eq!(relative(now - chrono::Duration::hours(5), now), "5 h ago");
        assert_eq!(relative(now - chrono::Duration::days(9), now), "9 days ago");
        assert_eq!(relative(now + chrono::Duration::hours(2), now), "in 2 h");
    }

    #[test]
    fn hostile_text_is_escaped_in_text_and_attributes() {
        let evil = r#""><script>alert(1)</script><img src=x onerror=alert(1)>"#;
        let out =
            html! { a title=(evil) href={ "/ui/servers/" (seg(evil)) } { (evil) } }.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(!out.contains(r#""><"#), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
    }

    #[test]
    fn the_done_message_is_the_consoles_own_words() {
        let msgs = [("verified", "The server is verified.")];
        assert!(
            done(Some("verified"), &msgs)
                .into_string()
                .contains("The server is verified.")
        );
        assert_eq!(
            done(Some("<b>you were hacked</b>"), &msgs).into_string(),
            ""
        );
    }
}
