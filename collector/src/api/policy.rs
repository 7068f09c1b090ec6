//! `/policy`: the organisation's scoring policy. Everyone reads it; admins change it.
//! A change rescores the organisation's servers in the background.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use chrono::Utc;
use mcpwatch_protocol::risk::{self, RULES, Severity};
use serde::Deserialize;

use super::audit::AuditNote;
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use crate::model::OrgPolicy;
use crate::state::SharedState;
use mcpwatch_protocol::ids::UserId;

/// The most entries a list of the policy may hold.
const MAX_ENTRIES: usize = 1000;

/// `GET /policy`.
pub async fn get(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<OrgPolicy>, ApiError> {
    Ok(Json(state.store.get_policy(auth.user.org_id).await?))
}

#[derive(Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicyRequest {
    /// Package or server names that are reported but raise no alert.
    #[serde(default)]
    pub approved: Vec<String>,
    /// Package names that make a server critical.
    #[serde(default)]
    pub blocked: Vec<String>,
    /// Rule id → severity.
    #[serde(default)]
    pub severity_overrides: BTreeMap<String, Severity>,
}

fn names(field: &str, list: Vec<String>) -> Result<Vec<String>, ApiError> {
    if list.len() > MAX_ENTRIES {
        return Err(ApiError::validation(
            field,
            format!("{field} may hold at most {MAX_ENTRIES} entries"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, name) in list.into_iter().enumerate() {
        let trimmed = super::check_name(&format!("{field}[{i}]"), &name)?;
        if !out
            .iter()
            .any(|o: &String| o.eq_ignore_ascii_case(&trimmed))
        {
            out.push(trimmed);
        }
    }
    Ok(out)
}

/// The policy `body` asks for, checked (known rule ids, names within bounds), as
/// `by` would save it: what `PUT /policy` stores and the console's preview scores.
pub fn checked(body: PutPolicyRequest, by: UserId) -> Result<OrgPolicy, ApiError> {
    for rule_id in body.severity_overrides.keys() {
        if !RULES.iter().any(|r| r.id == rule_id) {
            return Err(ApiError::validation(
                &format!("severity_overrides.{rule_id}"),
                format!("unknown rule id {rule_id:?}; see docs/risk-rules.md"),
            ));
        }
    }
    Ok(OrgPolicy {
        scoring: risk::Policy {
            blocked: names("blocked", body.blocked)?,
            severity_overrides: body.severity_overrides,
        },
        approved: names("approved", body.approved)?,
        version: 0,
        updated_at: Some(Utc::now()),
        updated_by: Some(by),
    })
}

/// `PUT /policy` (admin): replaces the whole policy.
pub async fn put(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<PutPolicyRequest>,
) -> Result<(Extension<AuditNote>, Json<OrgPolicy>), ApiError> {
    let policy = checked(body, auth.user.id)?;
    let saved = state.store.put_policy(auth.user.org_id, policy).await?;
    tracing::info!(org = %auth.user.org_id, user = %auth.user.id, version = saved.version, "Policy changed; rescoring servers.");
    state.rescore_wanted.notify_one();
    let note = AuditNote::details(serde_json::json!({
        "version": saved.version,
        "blocked": saved.scoring.blocked,
        "approved": saved.approved,
        "severity_overrides": saved.scoring.severity_overrides,
    }));
    Ok((Extension(note), Json(saved)))
}
