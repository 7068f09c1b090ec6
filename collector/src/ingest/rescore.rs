//! Scoring stored servers again, outside any report: under a newer rule set or policy
//! version, and when a person verifies a server.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::UserId;
use mcpwatch_protocol::risk;

use super::{ServerWrite, combine};
use crate::alerts::{self, RiseCause};
use crate::model::{Alert, ChangeKind, OrgPolicy, Server, ServerChange};

/// A server scored again, and the alert its rise raises.
#[derive(Debug)]
pub struct Rescored {
    pub write: ServerWrite,
    pub alert: Option<Alert>,
}

/// Score a stored server again under the current rules and `policy`; `None` when it
/// is not outdated. Combination findings depend on the agent's other servers: they
/// carry over, and are recomputed at the agent's next report. A server whose level
/// rose raises an alert unless it is verified or approved.
pub fn rescore(before: &Server, policy: &OrgPolicy, now: DateTime<Utc>) -> Option<Rescored> {
    if !super::is_outdated(before, policy.version) {
        return None;
    }
    let mut findings = risk::assess_with(&before.record, &policy.scoring).findings;
    findings.extend(combine::combination_findings(before).cloned());
    let assessment = risk::score_findings(findings, before.record.disabled);
    let mut after = before.clone();
    after.risk_score = assessment.score;
    after.risk_level = assessment.level;
    after.findings = assessment.findings;
    after.rules_version = assessment.rules_version;
    after.policy_version = policy.version;
    let moved = after.risk_level != before.risk_level || after.risk_score != before.risk_score;
    let alert = (after.risk_level > before.risk_level
        && !after.is_verified
        && !policy.approves(&after.record))
    .then(|| alerts::risk_increased(before, &after, RiseCause::Rescored, now));
    let write = if moved {
        after.updated_at = now;
        let change = ServerChange {
            previous_level: Some(before.risk_level),
            level: Some(after.risk_level),
            ..ServerChange::event(now, ChangeKind::Rescored, &["risk_score"])
        };
        ServerWrite::recording(Some(before.clone()), after, change)
    } else {
        ServerWrite::silent(Some(before.clone()), after)
    };
    Some(Rescored { write, alert })
}

/// A person marks a server verified (or takes it back); `None` when it already is.
pub fn verification(
    before: &Server,
    verified: bool,
    by: UserId,
    at: DateTime<Utc>,
) -> Option<ServerWrite> {
    if before.is_verified == verified {
        return None;
    }
    let mut after = before.clone();
    after.is_verified = verified;
    after.verified_by = verified.then_some(by);
    after.verified_at = verified.then_some(at);
    after.updated_at = at;
    let kind = if verified {
        ChangeKind::Verified
    } else {
        ChangeKind::Unverified
    };
    let change = ServerChange::event(at, kind, &["is_verified"]);
    Some(ServerWrite::recording(Some(before.clone()), after, change))
}
