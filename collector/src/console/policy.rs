//! The policy editor (admins; everyone may read it): approved and blocked names and
//! rule severity overrides, with a preview that scores the organisation's servers
//! under the proposed policy (the rescoring rule itself) before anything is saved.

use std::collections::BTreeMap;

use axum::extract::RawQuery;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use mcpwatch_protocol::risk::{RULES, Severity};
use serde::Deserialize;

use super::layout::{self, Nav, done, level};
use super::servers::{known_pairs, value};
use super::session::{Cx, Posted, Refusal};
use crate::api::policy::{self, PutPolicyRequest};
use crate::model::OrgPolicy;
use crate::store::ServerQuery;
use mcpwatch_protocol::risk::RiskLevel;

/// The most servers a preview scores; beyond it the preview says it looked at a part.
const PREVIEW_LIMIT: usize = 200_000;
/// The servers a preview names.
const PREVIEW_EXAMPLES: usize = 20;

#[derive(Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    approved: String,
    #[serde(default)]
    blocked: String,
    #[serde(default)]
    overrides: String,
    #[serde(default)]
    intent: String,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl PolicyForm {
    fn of(policy: &OrgPolicy) -> Self {
        Self {
            approved: policy.approved.join("\n"),
            blocked: policy.scoring.blocked.join("\n"),
            overrides: policy
                .scoring
                .severity_overrides
                .iter()
                .map(|(rule, sev)| format!("{rule} {}", sev.as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
            intent: String::new(),
        }
    }

    /// The API's request body, or which override line could not be read.
    fn request(&self) -> Result<PutPolicyRequest, Refusal> {
        let mut severity_overrides = BTreeMap::new();
        for line in lines(&self.overrides) {
            let mut words = line.split_whitespace();
            let (Some(rule), Some(sev), None) = (words.next(), words.next(), words.next()) else {
                return Err(Refusal::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "override {line:?}: write a rule id and a severity, as \"MCP-CAP-001 low\""
                    ),
                ));
            };
            let sev: Severity = serde_json::from_value(serde_json::Value::String(sev.to_lowercase()))
                .map_err(|_| Refusal::new(StatusCode::UNPROCESSABLE_ENTITY,
                    format!("override {line:?}: the severity is one of info, low, medium, high, critical")))?;
            severity_overrides.insert(rule.to_owned(), sev);
        }
        Ok(PutPolicyRequest {
            approved: lines(&self.approved),
            blocked: lines(&self.blocked),
            severity_overrides,
        })
    }
}

fn editor(cx: &Cx, form: &PolicyForm, editable: bool) -> Markup {
    html! {
        form.stack method="post" action="/ui/policy" {
            (layout::csrf(cx))
            label { "Blocked packages (one per line): a server launching one is critical"
                textarea name="blocked" rows="5" readonly[!editable] { (form.blocked) } }
            label { "Approved packages or server names (one per line): reported, but raise no alert"
                textarea name="approved" rows="5" readonly[!editable] { (form.approved) } }
            label { "Severity overrides (one per line: rule id and severity; info removes the rule's weight)"
                textarea name="overrides" rows="4" readonly[!editable] { (form.overrides) } }
            @if editable {
                p {
                    button.secondary type="submit" name="intent" value="preview" { "Preview what it rescores" } " "
                    button type="submit" name="intent" value="save" { "Save and rescore" }
                }
            }
        }
        details {
            summary { "Rule ids" }
            ul { @for r in RULES.iter() { li { code { (r.id) } " " (r.severity.as_str()) ": " (r.message) } } }
        }
    }
}

/// `GET /ui/policy`.
pub async fn page(cx: Cx, RawQuery(raw): RawQuery) -> Result<Response, Refusal> {
    cx.check(&Method::GET, "/policy")?;
    let current = policy::get(cx.state(), cx.user.clone()).await?.0;
    let editable = cx.may(&Method::PUT, "/policy");
    let code = known_pairs(raw.as_deref(), &["done"]);
    let body = html! {
        (done(Some(value(&code, "done")), &[("saved", "The policy is saved; servers are being rescored.")]))
        p.muted { "Version " (current.version) @if let Some(at) = current.updated_at { ", changed " (layout::when(at)) } }
        (editor(&cx, &PolicyForm::of(&current), editable))
    };
    Ok(layout::page(&cx, Nav::Policy, "Policy", body))
}

/// `POST /ui/policy`: preview (score every server under the proposal, change
/// nothing) or save (the API's `PUT /policy`).
pub async fn save(Posted(cx, form): Posted<PolicyForm>) -> Result<Response, Refusal> {
    let request = form.request()?;
    if form.intent == "save" {
        let body = serde_json::to_value(&request).unwrap_or_default();
        cx.send(Method::PUT, "/policy", Some(body)).await?;
        return Ok(Redirect::to("/ui/policy?done=saved").into_response());
    }
    cx.check(&Method::PUT, "/policy")?;
    let proposed = policy::checked(request, cx.user.user.id)?;
    let preview = preview(&cx, proposed).await?;
    let body = html! {
        (preview)
        (editor(&cx, &form, true))
    };
    Ok(layout::page(&cx, Nav::Policy, "Policy: preview", body))
}

/// What the proposal would do: the servers whose level it would move.
async fn preview(cx: &Cx, mut proposed: OrgPolicy) -> Result<Markup, Refusal> {
    let org = cx.user.user.org_id;
    let store = &cx.console.state.store;
    proposed.version = store
        .get_policy(org)
        .await
        .map_err(crate::api::error::ApiError::from)?
        .version
        + 1;
    let mut servers = store
        .export_servers(org, ServerQuery::default())
        .await
        .map_err(crate::api::error::ApiError::from)?;
    let now = chrono::Utc::now();
    let (mut scanned, mut moved) = (0usize, 0usize);
    let mut by_move: BTreeMap<(RiskLevel, RiskLevel), usize> = BTreeMap::new();
    let mut examples = Vec::new();
    while let Some(server) = servers.recv().await {
        let server = server.map_err(crate::api::error::ApiError::from)?;
        scanned += 1;
        if let Some(r) = crate::ingest::rescore::rescore(&server, &proposed, now) {
            let after = r.write.after.risk_level;
            if after != server.risk_level {
                moved += 1;
                *by_move.entry((server.risk_level, after)).or_default() += 1;
                if examples.len() < PREVIEW_EXAMPLES {
                    examples.push((
                        server.id,
                        server.record.server_name.clone(),
                        server.risk_level,
                        after,
                    ));
                }
            }
        }
        if scanned >= PREVIEW_LIMIT {
            break;
        }
    }
    Ok(html! {
        section.notice #preview {
            h2 { "Preview: nothing is saved yet" }
            p { "Saving rescores every server. Under this policy, " strong { (moved) } " of the " (scanned)
                " servers checked would change level." @if scanned >= PREVIEW_LIMIT { " (Only the first " (PREVIEW_LIMIT) " were checked.)" } }
            @if !by_move.is_empty() {
                ul { @for ((from, to), n) in &by_move { li { (n) ": " (level(*from)) " → " (level(*to)) } } }
                p { "For example:" }
                ul { @for (id, name, from, to) in &examples {
                    li { a href={ "/ui/servers/" (layout::seg(id)) } { (name) } " " (level(*from)) " → " (level(*to)) }
                } }
            }
        }
    })
}
