//! Report semantics: how one agent's full snapshot changes its stored servers.
//!
//! Pure: given the agent's stored servers and the snapshot, [`plan`] decides which
//! servers are created, updated, reactivated or become dormant, scores each one with
//! `protocol`'s rules, records what changed, and decides which alerts to raise;
//! [`combine`] then adds the dangerous combinations of the resulting inventory. The
//! store applies the plan in one transaction.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId, ServerId};
use mcpwatch_protocol::risk::{self, RiskLevel};
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::ReportResponse;
use sha2::{Digest, Sha256};

use crate::model::{Agent, Alert, AlertKind, OrgPolicy, Server, ServerChange, ServerStatus};

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

fn alert(
    server: &Server,
    kind: AlertKind,
    severity: RiskLevel,
    title: String,
    message: String,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> Alert {
    Alert::new(
        server.org_id,
        kind,
        severity,
        title,
        message,
        Some(server.id),
        Some(server.agent_id),
        details,
        now,
    )
}

fn is_blocked(server: &Server) -> bool {
    server
        .findings
        .iter()
        .any(|f| f.rule_id == risk::BLOCKED_RULE)
}

fn blocked_alert(server: &Server, now: DateTime<Utc>) -> Alert {
    alert(
        server,
        AlertKind::BlockedPackage,
        RiskLevel::Critical,
        format!(
            "Blocked package in MCP server \"{}\"",
            server.record.server_name
        ),
        server
            .findings
            .iter()
            .find(|f| f.rule_id == risk::BLOCKED_RULE)
            .map_or_else(String::new, |f| f.evidence.clone()),
        serde_json::json!({ "after": alert_view(server) }),
        now,
    )
}

/// What an alert shows of a server at one moment.
fn alert_view(server: &Server) -> serde_json::Value {
    serde_json::json!({
        "command": server.record.launch_line(),
        "package": server.record.package,
        "fingerprint": server.fingerprint,
        "risk_level": server.risk_level,
        "risk_score": server.risk_score,
    })
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

    // Last entry wins when a snapshot names the same server twice (found by hash:
    // a 10,000-server report must not cost 50 million comparisons).
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
            None => {
                let server = scored(org, agent, record, policy, now);
                let change = ServerChange {
                    at: now,
                    kind: "created".to_owned(),
                    fields: Vec::new(),
                    previous_fingerprint: None,
                    fingerprint: Some(server.fingerprint.clone()),
                    previous_level: None,
                    level: Some(server.risk_level),
                    previous_command: None,
                    command: Some(server.record.launch_line()),
                };
                if policy.approves(&server.record) {
                    // Approved: reported, no alert.
                } else if is_blocked(&server) {
                    plan.alerts.push(blocked_alert(&server, now));
                } else if server.risk_level >= RiskLevel::High {
                    let top = server
                        .findings
                        .first()
                        .map(|f| f.message.clone())
                        .unwrap_or_default();
                    plan.alerts.push(alert(
                        &server,
                        AlertKind::NewRiskyServer,
                        server.risk_level,
                        format!(
                            "New {} risk MCP server \"{}\"",
                            server.risk_level, server.record.server_name
                        ),
                        format!("Score {}: {top}", server.risk_score),
                        serde_json::json!({ "after": alert_view(&server) }),
                        now,
                    ));
                }
                plan.outcome.created += 1;
                plan.writes
                    .push(ServerWrite::recording(None, server, change));
            }
            Some((before, _)) => {
                let reactivated = before.status == ServerStatus::Dormant;
                let fields = changed_fields(&before.record, &record);
                let rescore = before.rules_version != risk::RULES_VERSION
                    || before.policy_version != policy.version;
                if fields.is_empty() && !reactivated && !rescore {
                    plan.outcome.unchanged += 1;
                    plan.untouched.push(before);
                    continue;
                }
                let fresh = scored(org, agent, record, policy, now);
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
                let change = ServerChange {
                    at: now,
                    kind: if reactivated {
                        "reactivated"
                    } else {
                        "updated"
                    }
                    .to_owned(),
                    fields,
                    previous_fingerprint: Some(before.fingerprint.clone()),
                    fingerprint: Some(after.fingerprint.clone()),
                    previous_level: Some(before.risk_level),
                    level: Some(after.risk_level),
                    previous_command: launch_changed.then(|| before.record.launch_line()),
                    command: launch_changed.then(|| after.record.launch_line()),
                };
                if !after.is_verified
                    && !policy.approves(&after.record)
                    && is_blocked(&after)
                    && !is_blocked(&before)
                {
                    plan.alerts.push(blocked_alert(&after, now));
                } else if !after.is_verified && !policy.approves(&after.record) {
                    let name = &after.record.server_name;
                    if launch_changed {
                        // Riskier than what was there before: the rug-pull pattern at its worst.
                        let severity = if after.risk_level > before.risk_level {
                            RiskLevel::Critical
                        } else {
                            after.risk_level.max(RiskLevel::Medium)
                        };
                        plan.alerts.push(alert(
                            &after,
                            AlertKind::ServerChanged,
                            severity,
                            format!("MCP server \"{name}\" now runs something else"),
                            format!(
                                "The command or URL changed under the same name (level {} → {}).",
                                before.risk_level, after.risk_level
                            ),
                            serde_json::json!({ "before": alert_view(&before), "after": alert_view(&after) }),
                            now,
                        ));
                    } else if after.risk_level > before.risk_level {
                        plan.alerts.push(alert(
                            &after,
                            AlertKind::RiskIncreased,
                            after.risk_level,
                            format!("Risk of MCP server \"{name}\" rose to {}", after.risk_level),
                            format!(
                                "Score {} → {} (level {} → {}).",
                                before.risk_score,
                                after.risk_score,
                                before.risk_level,
                                after.risk_level
                            ),
                            serde_json::json!({ "before": alert_view(&before), "after": alert_view(&after) }),
                            now,
                        ));
                    }
                }
                plan.outcome.updated += 1;
                plan.writes
                    .push(ServerWrite::recording(Some(before), after, change));
            }
        }
    }

    for (before, _) in stored.into_iter().flatten() {
        if !before.in_snapshot {
            plan.untouched.push(before);
            continue;
        }
        let mut after = before.clone();
        after.status = ServerStatus::Dormant;
        after.in_snapshot = false;
        after.updated_at = now;
        plan.outcome.dormant += 1;
        plan.writes.push(ServerWrite::recording(
            Some(before),
            after,
            ServerChange::event(now, "dormant", &[]),
        ));
    }
    plan.outcome.alerts_raised = plan.alerts.len();
    plan
}

/// Recompute the dangerous combinations of the inventory the plan leaves (its writes
/// and the untouched servers): servers whose combination findings change are written
/// too. Servers no longer in the snapshot take no part in a combination. Answers the
/// agent's combinations.
pub fn combine(plan: &mut Plan, now: DateTime<Utc>) -> Vec<risk::Combination> {
    /// A server of the inventory: one of the plan's writes, or untouched.
    #[derive(Clone, Copy)]
    enum Slot {
        Write(usize),
        Untouched(usize),
    }
    fn server(plan: &Plan, slot: Slot) -> &Server {
        match slot {
            Slot::Write(i) => &plan.writes[i].after,
            Slot::Untouched(i) => &plan.untouched[i],
        }
    }
    let is_combo = |f: &risk::Finding| risk::COMBO_RULES.contains(&f.rule_id.as_str());

    let (active, inactive): (Vec<Slot>, Vec<Slot>) = (0..plan.writes.len())
        .map(Slot::Write)
        .chain((0..plan.untouched.len()).map(Slot::Untouched))
        .partition(|&slot| server(plan, slot).in_snapshot);
    let records: Vec<ServerRecord> = active
        .iter()
        .map(|&slot| server(plan, slot).record.clone())
        .collect();
    let stored: Vec<risk::Assessment> = active
        .iter()
        .map(|&slot| {
            let s = server(plan, slot);
            risk::Assessment {
                score: s.risk_score,
                level: s.risk_level,
                findings: s.findings.clone(),
                rules_version: s.rules_version,
            }
        })
        .collect();
    let (assessed, combos) = risk::apply_combinations(&records, stored);

    let mut rescored: Vec<(Slot, risk::Assessment)> = active.into_iter().zip(assessed).collect();
    for slot in inactive {
        let s = server(plan, slot);
        if s.findings.iter().any(is_combo) {
            let own = s
                .findings
                .iter()
                .filter(|f| !is_combo(f))
                .cloned()
                .collect();
            rescored.push((slot, risk::score_findings(own, s.record.disabled)));
        }
    }
    for (slot, a) in rescored {
        let s = server(plan, slot);
        if s.findings == a.findings && s.risk_score == a.score {
            continue;
        }
        let after = match slot {
            Slot::Write(i) => &mut plan.writes[i].after,
            Slot::Untouched(i) => {
                let before = plan.untouched[i].clone();
                plan.writes
                    .push(ServerWrite::silent(Some(before.clone()), before));
                let last = plan.writes.len() - 1;
                &mut plan.writes[last].after
            }
        };
        after.findings = a.findings;
        after.risk_score = a.score;
        after.risk_level = a.level;
        after.updated_at = now;
    }
    combos
}

/// The alert for combinations the agent did not have before, if any.
pub fn combination_alert(
    agent: &Agent,
    combos: &[risk::Combination],
    now: DateTime<Utc>,
) -> Option<Alert> {
    let is_new = |c: &risk::Combination| {
        !agent.combinations.iter().any(|p| {
            p.rule_id == c.rule_id
                && p.os_user == c.os_user
                && p.client == c.client
                && p.servers == c.servers
        })
    };
    let fresh: Vec<&risk::Combination> = combos.iter().filter(|c| is_new(c)).collect();
    if fresh.is_empty() {
        return None;
    }
    let severity = if fresh.iter().any(|c| c.severity == risk::Severity::Critical) {
        RiskLevel::Critical
    } else {
        RiskLevel::High
    };
    let host = agent
        .facts
        .hostname
        .clone()
        .unwrap_or_else(|| agent.name.clone());
    let summary: Vec<String> = fresh
        .iter()
        .map(|c| {
            format!(
                "{} ({}: {})",
                c.message,
                c.client.as_deref().unwrap_or("?"),
                c.servers.join(" + ")
            )
        })
        .collect();
    Some(Alert::new(
        agent.org_id,
        AlertKind::DangerousCombination,
        severity,
        format!("Dangerous combination of MCP servers on {host}"),
        summary.join("; "),
        None,
        Some(agent.id),
        serde_json::json!({ "combinations": fresh }),
        now,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, args: &[&str]) -> ServerRecord {
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
