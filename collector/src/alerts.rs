//! Alerts: one constructor per kind, the only place their titles, messages and
//! details are worded, and how a repeat of an open alert updates it.
//!
//! Pure: the report path ([`crate::ingest`]), rescoring and the silent-agent sweep
//! call these, and every store backend stores what they answer.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::AlertId;
use mcpwatch_protocol::risk::{self, RiskLevel};
use mcpwatch_protocol::wire::ConfigError;

use crate::model::{Agent, Alert, AlertKind, Server};
use crate::notify::{Channel, Delivery};

/// Why a server's level rose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RiseCause {
    /// Its agent reported it changed.
    Reported,
    /// The rules or the organisation's policy changed, and it was scored again.
    Rescored,
}

/// What an alert is about: a server (of an agent), an agent, or a notification channel.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Server(&'a Server),
    Agent(&'a Agent),
    Channel(&'a Channel),
}

/// A new open alert about `subject`.
fn open(
    subject: Subject<'_>,
    kind: AlertKind,
    severity: RiskLevel,
    (title, message): (String, String),
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> Alert {
    let (org_id, server_id, agent_id, channel_id) = match subject {
        Subject::Server(s) => (s.org_id, Some(s.id), Some(s.agent_id), None),
        Subject::Agent(a) => (a.org_id, None, Some(a.id), None),
        Subject::Channel(c) => (c.org_id, None, None, Some(c.id)),
    };
    Alert {
        id: AlertId::new(),
        org_id,
        kind,
        severity,
        title,
        message,
        server_id,
        agent_id,
        channel_id,
        created_at: now,
        updated_at: None,
        occurrences: 1,
        details,
        dismissed: false,
        dismissed_at: None,
        dismissed_by: None,
    }
}

/// The name an alert gives a machine: its host name, else the agent's name.
fn host(agent: &Agent) -> &str {
    agent.facts.hostname.as_deref().unwrap_or(&agent.name)
}

/// What an alert shows of a server at one moment.
pub fn server_view(server: &Server) -> serde_json::Value {
    serde_json::json!({
        "command": server.record.launch_line(),
        "package": server.record.package,
        "fingerprint": server.fingerprint,
        "risk_level": server.risk_level,
        "risk_score": server.risk_score,
        "rules_version": server.rules_version,
    })
}

/// A server seen for the first time at level high or critical.
pub fn new_risky_server(server: &Server, now: DateTime<Utc>) -> Alert {
    let top = server
        .findings
        .first()
        .map(|f| f.message.as_str())
        .unwrap_or_default();
    open(
        Subject::Server(server),
        AlertKind::NewRiskyServer,
        server.risk_level,
        (
            format!(
                "New {} risk MCP server \"{}\"",
                server.risk_level, server.record.server_name
            ),
            format!("Score {}: {top}", server.risk_score),
        ),
        serde_json::json!({ "after": server_view(server) }),
        now,
    )
}

/// A server's level rose, reported or rescored: the same title and details either way.
pub fn risk_increased(
    before: &Server,
    after: &Server,
    cause: RiseCause,
    now: DateTime<Utc>,
) -> Alert {
    let why = match cause {
        RiseCause::Reported => String::new(),
        RiseCause::Rescored => format!(" under rules v{}", after.rules_version),
    };
    open(
        Subject::Server(after),
        AlertKind::RiskIncreased,
        after.risk_level,
        (
            format!(
                "Risk of MCP server \"{}\" rose to {}",
                after.record.server_name, after.risk_level
            ),
            format!(
                "Score {} → {} (level {} → {}){why}.",
                before.risk_score, after.risk_score, before.risk_level, after.risk_level
            ),
        ),
        serde_json::json!({ "before": server_view(before), "after": server_view(after) }),
        now,
    )
}

/// A server's command or URL changed under the same name (the rug-pull pattern);
/// critical when what replaced it is riskier.
pub fn server_changed(before: &Server, after: &Server, now: DateTime<Utc>) -> Alert {
    let severity = if after.risk_level > before.risk_level {
        RiskLevel::Critical
    } else {
        after.risk_level.max(RiskLevel::Medium)
    };
    open(
        Subject::Server(after),
        AlertKind::ServerChanged,
        severity,
        (
            format!(
                "MCP server \"{}\" now runs something else",
                after.record.server_name
            ),
            format!(
                "The command or URL changed under the same name (level {} → {}).",
                before.risk_level, after.risk_level
            ),
        ),
        serde_json::json!({ "before": server_view(before), "after": server_view(after) }),
        now,
    )
}

/// A server launches a package the organisation's policy blocks.
pub fn blocked_package(server: &Server, now: DateTime<Utc>) -> Alert {
    let evidence = server
        .findings
        .iter()
        .find(|f| f.rule_id == risk::BLOCKED_RULE)
        .map_or_else(String::new, |f| f.evidence.clone());
    open(
        Subject::Server(server),
        AlertKind::BlockedPackage,
        RiskLevel::Critical,
        (
            format!(
                "Blocked package in MCP server \"{}\"",
                server.record.server_name
            ),
            evidence,
        ),
        serde_json::json!({ "after": server_view(server) }),
        now,
    )
}

/// An agent has been silent since before `cutoff`.
pub fn agent_silent(agent: &Agent, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> Alert {
    open(
        Subject::Agent(agent),
        AlertKind::AgentSilent,
        RiskLevel::Medium,
        (
            format!("Agent on {} has gone silent", host(agent)),
            "No heartbeat or report since the last-seen time; its servers are now shown as dormant.".to_owned(),
        ),
        serde_json::json!({ "last_seen_at": agent.last_seen_at, "cutoff": cutoff }),
        now,
    )
}

/// Config files an agent could not read or parse (`errors`: the ones it had not
/// reported before).
pub fn config_errors(agent: &Agent, errors: &[&ConfigError], now: DateTime<Utc>) -> Alert {
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    open(
        Subject::Agent(agent),
        AlertKind::ConfigErrors,
        RiskLevel::Medium,
        (
            format!("MCP config files on {} cannot be read", host(agent)),
            format!(
                "{} config file(s) could not be read or parsed; servers in them are not visible.",
                paths.len()
            ),
        ),
        serde_json::json!({ "paths": paths, "errors": errors }),
        now,
    )
}

/// Combinations of an agent's servers it did not have before: critical when one of
/// them is.
pub fn dangerous_combination(
    agent: &Agent,
    fresh: &[&risk::Combination],
    now: DateTime<Utc>,
) -> Alert {
    let severity = if fresh.iter().any(|c| c.severity == risk::Severity::Critical) {
        RiskLevel::Critical
    } else {
        RiskLevel::High
    };
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
    open(
        Subject::Agent(agent),
        AlertKind::DangerousCombination,
        severity,
        (
            format!("Dangerous combination of MCP servers on {}", host(agent)),
            summary.join("; "),
        ),
        serde_json::json!({ "combinations": fresh }),
        now,
    )
}

/// A repeat of the situation an open alert is about: the severity rises to the
/// higher of the two, the wording is the newest, and one more occurrence is counted.
pub fn repeat(open: &mut Alert, again: Alert) {
    open.severity = open.severity.max(again.severity);
    open.title = again.title;
    open.message = again.message;
    open.details = again.details;
    open.updated_at = Some(again.created_at);
    open.occurrences = open.occurrences.saturating_add(1);
}

/// A channel gave up on a delivery (the receiver refused it, or the retry horizon
/// passed). One open alert per channel; each further failure is an occurrence.
pub fn notification_failed(channel: &Channel, delivery: &Delivery, now: DateTime<Utc>) -> Alert {
    open(
        Subject::Channel(channel),
        AlertKind::NotificationFailed,
        RiskLevel::High,
        (
            format!(
                "Notification channel \"{}\" ({}) cannot deliver",
                channel.name,
                channel.kind.as_str()
            ),
            format!(
                "Event {} ({}) was not delivered after {} attempt(s): {}",
                delivery.event.id,
                delivery.event.event.as_str(),
                delivery.attempts,
                delivery.last_error.as_deref().unwrap_or("no answer")
            ),
        ),
        serde_json::json!({
            "channel_id": channel.id,
            "delivery_id": delivery.id,
            "event_id": delivery.event.id,
            "last_status": delivery.last_status,
        }),
        now,
    )
}

/// Dismiss an alert (a dismissed one stays as it was).
pub fn dismiss(alert: &mut Alert, by: mcpwatch_protocol::ids::UserId, at: DateTime<Utc>) {
    if !alert.dismissed {
        alert.dismissed = true;
        alert.dismissed_at = Some(at);
        alert.dismissed_by = Some(by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::tests::record;
    use crate::ingest::{self, rescore};
    use crate::model::{Enrollment, HostFacts, OrgPolicy, ServerStatus};
    use mcpwatch_protocol::ids::{AgentId, OrgId};

    /// A server as the report path stores it.
    fn stored(name: &str, args: &[&str]) -> Server {
        let (org, agent, now) = (OrgId::new(), AgentId::new(), Utc::now());
        let plan = ingest::plan(
            org,
            agent,
            vec![],
            vec![record(name, args)],
            &OrgPolicy::default(),
            now,
        );
        plan.writes.into_iter().next().expect("one write").after
    }

    fn agent(hostname: Option<&str>) -> Agent {
        Agent {
            id: AgentId::new(),
            org_id: OrgId::new(),
            name: "agent-7".into(),
            key_hash: [0; 32],
            key_prefix: String::new(),
            public_key: None,
            enrollment: Enrollment::Manual,
            facts: HostFacts {
                hostname: hostname.map(str::to_owned),
                ..HostFacts::default()
            },
            created_at: Utc::now(),
            last_seen_at: None,
            last_report_at: None,
            server_count: 1,
            config_errors: vec![],
            last_sequence: None,
            stale: false,
            combinations: vec![],
        }
    }

    /// `before` as if an older rule set had scored it low.
    fn scored_low_by_old_rules(mut before: Server) -> Server {
        before.rules_version = 1;
        before.risk_score = 5;
        before.risk_level = RiskLevel::Low;
        before
    }

    #[test]
    fn the_report_path_and_the_rescore_path_word_a_rise_alike() {
        let before = scored_low_by_old_rules(stored(
            "shell",
            &["-y", "@modelcontextprotocol/server-everything"],
        ));
        let policy = OrgPolicy::default();
        let now = Utc::now();
        let via_rescore = rescore::rescore(&before, &policy, now)
            .expect("outdated")
            .alert
            .expect("a rise raises an alert");
        let key = ingest::identity_key(&before.record);
        let plan = ingest::plan(
            before.org_id,
            before.agent_id,
            vec![(before.clone(), key)],
            vec![before.record.clone()],
            &policy,
            now,
        );
        let [via_report] = plan.alerts.as_slice() else {
            panic!("one alert: {:?}", plan.alerts);
        };
        assert_eq!(via_report.kind, AlertKind::RiskIncreased);
        assert_eq!(via_rescore.kind, AlertKind::RiskIncreased);
        assert_eq!(via_report.title, via_rescore.title);
        assert_eq!(via_report.details, via_rescore.details);
        assert_eq!(via_report.severity, via_rescore.severity);
        assert_eq!(via_report.server_id, Some(before.id));
        assert!(
            via_rescore
                .message
                .ends_with(&format!("under rules v{}.", risk::RULES_VERSION))
        );
        assert!(!via_report.message.contains("under rules"));
        assert_eq!(via_report.details["before"]["risk_score"], 5);
        assert_eq!(via_report.details["before"]["rules_version"], 1);
    }

    #[test]
    fn each_kind_names_its_subject() {
        let now = Utc::now();
        let risky = stored(
            "db",
            &[
                "-y",
                "@modelcontextprotocol/server-postgres",
                "postgres://x",
            ],
        );
        let new = new_risky_server(&risky, now);
        assert_eq!(new.kind, AlertKind::NewRiskyServer);
        assert_eq!(new.severity, risky.risk_level);
        assert!(new.title.contains("\"db\""), "{}", new.title);
        assert!(
            new.message
                .starts_with(&format!("Score {}", risky.risk_score))
        );
        assert_eq!(
            (new.server_id, new.agent_id),
            (Some(risky.id), Some(risky.agent_id))
        );

        let mut replaced = risky.clone();
        replaced.fingerprint = "other".into();
        replaced.risk_level = RiskLevel::Critical;
        let changed = server_changed(&risky, &replaced, now);
        assert_eq!(changed.kind, AlertKind::ServerChanged);
        assert_eq!(changed.severity, RiskLevel::Critical, "riskier replacement");
        let lateral = server_changed(&risky, &risky, now);
        assert_eq!(lateral.severity, risky.risk_level.max(RiskLevel::Medium));
        assert!(changed.details["before"].is_object() && changed.details["after"].is_object());

        let blocked = blocked_package(&risky, now);
        assert_eq!(
            (blocked.kind, blocked.severity),
            (AlertKind::BlockedPackage, RiskLevel::Critical)
        );
        assert!(blocked.title.contains("\"db\""));

        let laptop = agent(Some("laptop-1"));
        let cutoff = now - chrono::Duration::hours(1);
        let silent = agent_silent(&laptop, cutoff, now);
        assert_eq!(
            (silent.kind, silent.severity),
            (AlertKind::AgentSilent, RiskLevel::Medium)
        );
        assert_eq!(silent.title, "Agent on laptop-1 has gone silent");
        assert_eq!((silent.server_id, silent.agent_id), (None, Some(laptop.id)));
        assert!(silent.details["cutoff"].is_string());

        let unnamed = agent(None);
        let error = ConfigError {
            path: "/home/a/.cursor/mcp.json".into(),
            error: "expected value at line 1".into(),
            client: None,
        };
        let errors = config_errors(&unnamed, &[&error], now);
        assert_eq!(errors.kind, AlertKind::ConfigErrors);
        assert_eq!(errors.title, "MCP config files on agent-7 cannot be read");
        assert!(errors.message.starts_with("1 config file(s)"));
        assert_eq!(errors.details["paths"][0], "/home/a/.cursor/mcp.json");

        let combo = risk::Combination {
            rule_id: "COMBO-001".into(),
            severity: risk::Severity::Critical,
            message: "reads secrets and talks to the network".into(),
            os_user: None,
            client: Some("cursor".into()),
            servers: vec!["fs".into(), "fetch".into()],
            members: vec![],
        };
        let combined = dangerous_combination(&laptop, &[&combo], now);
        assert_eq!(
            (combined.kind, combined.severity),
            (AlertKind::DangerousCombination, RiskLevel::Critical)
        );
        assert_eq!(
            combined.message,
            "reads secrets and talks to the network (cursor: fs + fetch)"
        );
        let high = risk::Combination {
            severity: risk::Severity::High,
            ..combo.clone()
        };
        assert_eq!(
            dangerous_combination(&laptop, &[&high], now).severity,
            RiskLevel::High
        );
        assert_eq!(risky.status, ServerStatus::Active);
    }

    #[test]
    fn a_repeat_keeps_the_higher_severity_and_counts() {
        let now = Utc::now();
        let server = stored("db", &["-y", "@modelcontextprotocol/server-postgres"]);
        let mut first = new_risky_server(&server, now);
        first.severity = RiskLevel::Critical;
        let later = now + chrono::Duration::minutes(1);
        let again = risk_increased(&server, &server, RiseCause::Reported, later);
        repeat(&mut first, again.clone());
        assert_eq!(first.severity, RiskLevel::Critical);
        assert_eq!(first.title, again.title);
        assert_eq!(first.occurrences, 2);
        assert_eq!(first.updated_at, Some(later));
        let by = mcpwatch_protocol::ids::UserId::new();
        dismiss(&mut first, by, later);
        dismiss(&mut first, mcpwatch_protocol::ids::UserId::new(), now);
        assert_eq!(
            (first.dismissed, first.dismissed_by, first.dismissed_at),
            (true, Some(by), Some(later))
        );
    }
}
