//! Dangerous combinations on one machine: pairs no single server shows. Within one
//! user's client, a server that reads private data (files, databases, mail, code,
//! SaaS data) next to one that sends data out or takes untrusted input (web fetch,
//! browser, messaging, web search, any remote server) lets a prompt injection carry
//! the data away; shell execution next to untrusted input lets it run commands.
//! Disabled servers do not count. Each participating server gets a `MCP-COMBO-*`
//! finding (weight 10), and the combination is reported on the agent.

use serde::{Deserialize, Serialize};

use super::{Assessment, Policy, Severity, assess_with, rules, score_findings};
use crate::server::{ServerRecord, Transport};

/// (OS user, client): the scope in which servers combine.
type ClientOfUser = (Option<String>, Option<String>);

/// The per-server rules of the combinations.
pub const COMBO_RULES: [&str; 2] = ["MCP-COMBO-001", "MCP-COMBO-002"];

const PRIVATE: &[&str] = &[
    "MCP-CAP-002",
    "MCP-CAP-004",
    "MCP-CAP-006",
    "MCP-CAP-007",
    "MCP-CAP-010",
];
const OUTBOUND: &[&str] = &["MCP-CAP-003", "MCP-CAP-007", "MCP-CAP-009", "MCP-CAP-012"];
const SHELL: &[&str] = &["MCP-CAP-001"];
const UNTRUSTED: &[&str] = &["MCP-CAP-003", "MCP-CAP-009", "MCP-CAP-012"];

/// One dangerous combination found on a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Combination {
    /// `MCP-COMBO-001` (private data + outbound) or `MCP-COMBO-002` (shell + untrusted input).
    pub rule_id: String,
    pub severity: Severity,
    pub message: String,
    pub os_user: Option<String>,
    pub client: Option<String>,
    /// The servers involved, by name, sorted.
    pub servers: Vec<String>,
    /// Their positions in the inventory given to [`combinations`].
    #[serde(skip)]
    pub members: Vec<usize>,
}

fn has(a: &Assessment, ids: &[&str]) -> bool {
    a.findings
        .iter()
        .any(|f| ids.contains(&f.rule_id.as_str()) && f.weight > 0)
}

fn remote(s: &ServerRecord) -> bool {
    matches!(
        s.transport,
        Some(Transport::Http | Transport::Sse | Transport::Ws)
    ) || s.url.is_some()
}

/// Pairs of distinct servers `(a, b)` with `a` in `left` and `b` in `right`: the
/// members of every such pair, or none.
fn pair_members(left: &[usize], right: &[usize]) -> Vec<usize> {
    let mut members: Vec<usize> = Vec::new();
    for &a in left {
        for &b in right {
            if a != b {
                members.push(a);
                members.push(b);
            }
        }
    }
    members.sort_unstable();
    members.dedup();
    members
}

/// The combinations in an inventory, given each server's assessment.
pub fn combinations(servers: &[ServerRecord], assessments: &[Assessment]) -> Vec<Combination> {
    let mut groups: Vec<(ClientOfUser, Vec<usize>)> = Vec::new();
    for (i, s) in servers.iter().enumerate().filter(|(_, s)| !s.disabled) {
        let key = (s.os_user.clone(), s.client.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let mut out = Vec::new();
    for ((os_user, client), members) in groups {
        let Some(assessed) = members
            .iter()
            .map(|&i| assessments.get(i).map(|a| (i, a)))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let pick = |f: &dyn Fn(usize, &Assessment) -> bool| -> Vec<usize> {
            assessed
                .iter()
                .filter(|(i, a)| f(*i, a))
                .map(|(i, _)| *i)
                .collect()
        };
        let readers = pick(&|_, a| has(a, PRIVATE));
        let senders = pick(&|i, a| has(a, OUTBOUND) || remote(&servers[i]));
        let shells = pick(&|_, a| has(a, SHELL));
        let untrusted = pick(&|i, a| has(a, UNTRUSTED) || remote(&servers[i]));
        for (rule_id, severity, message, members) in [
            (
                "MCP-COMBO-001",
                Severity::High,
                "One client can read private data and send data out or take untrusted input",
                pair_members(&readers, &senders),
            ),
            (
                "MCP-COMBO-002",
                Severity::Critical,
                "One client can run shell commands and take untrusted input",
                pair_members(&shells, &untrusted),
            ),
        ] {
            if !members.is_empty() {
                out.push(Combination {
                    rule_id: rule_id.to_owned(),
                    severity,
                    message: message.to_owned(),
                    os_user: os_user.clone(),
                    client: client.clone(),
                    servers: {
                        let mut names: Vec<String> = members
                            .iter()
                            .map(|&i| servers[i].server_name.clone())
                            .collect();
                        names.sort();
                        names
                    },
                    members,
                });
            }
        }
    }
    out
}

/// Score a whole inventory: each server by itself, then the combinations, whose
/// participants get their `MCP-COMBO-*` finding and are scored again.
pub fn assess_inventory(
    servers: &[ServerRecord],
    policy: &Policy,
) -> (Vec<Assessment>, Vec<Combination>) {
    let assessments: Vec<Assessment> = servers.iter().map(|s| assess_with(s, policy)).collect();
    apply_combinations(servers, assessments)
}

/// Given each server's own assessment (without `MCP-COMBO-*` findings), find the
/// combinations and add their findings to the participants.
pub fn apply_combinations(
    servers: &[ServerRecord],
    mut assessments: Vec<Assessment>,
) -> (Vec<Assessment>, Vec<Combination>) {
    for (a, s) in assessments.iter_mut().zip(servers) {
        if a.findings
            .iter()
            .any(|f| COMBO_RULES.contains(&f.rule_id.as_str()))
        {
            let own: Vec<_> = std::mem::take(&mut a.findings)
                .into_iter()
                .filter(|f| !COMBO_RULES.contains(&f.rule_id.as_str()))
                .collect();
            *a = score_findings(own, s.disabled);
        }
    }
    let combos = combinations(servers, &assessments);
    for combo in &combos {
        for &m in &combo.members {
            let others: Vec<&str> = combo
                .members
                .iter()
                .filter(|&&o| o != m)
                .map(|&o| servers[o].server_name.as_str())
                .collect();
            let Some(a) = assessments.get_mut(m) else {
                continue;
            };
            if a.findings.iter().any(|f| f.rule_id == combo.rule_id) {
                continue;
            }
            // The member is told it is part of a combination, and its own level stays
            // its own: the combination's severity is the agent's finding and alert.
            let mut findings = std::mem::take(&mut a.findings);
            findings.extend(
                rules::finding(&combo.rule_id, format!("with {}", others.join(", "))).map(
                    |mut f| {
                        f.weight = 0;
                        f.severity = Severity::Info;
                        f
                    },
                ),
            );
            *a = score_findings(findings, servers[m].disabled);
        }
    }
    (assessments, combos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, client: &str, args: &[&str]) -> ServerRecord {
        ServerRecord {
            server_name: name.into(),
            client: Some(client.into()),
            os_user: Some("alice".into()),
            command: Some("npx".into()),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            transport: Some(Transport::Stdio),
            ..ServerRecord::default()
        }
    }

    #[test]
    fn private_data_next_to_web_fetch_is_a_combination_in_one_client_only() {
        let fs = s(
            "fs",
            "cursor",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@2026.9.1",
                "/home/alice/src",
            ],
        );
        let fetch = s("fetch", "cursor", &["-y", "firecrawl-mcp@1.12.0"]);
        let time = s(
            "time",
            "cursor",
            &["-y", "@modelcontextprotocol/server-memory@2025.4.25"],
        );
        let other_client_fetch = s("fetch", "zed", &["-y", "firecrawl-mcp@1.12.0"]);
        let inventory = vec![fs.clone(), fetch.clone(), time, other_client_fetch];
        let (assessed, combos) = assess_inventory(&inventory, &Policy::default());
        assert_eq!(combos.len(), 1, "{combos:?}");
        assert_eq!(combos[0].rule_id, "MCP-COMBO-001");
        assert_eq!(combos[0].servers, ["fetch", "fs"]);
        let alone = assess_with(&fs, &Policy::default());
        // Told of the combination, its own level stays its own.
        assert_eq!(assessed[0].score, alone.score);
        assert_eq!(assessed[0].level, alone.level);
        assert!(
            assessed[1]
                .findings
                .iter()
                .any(|f| f.rule_id == "MCP-COMBO-001" && f.evidence == "with fs")
        );
        assert_eq!(
            assessed[2].score,
            assess_with(&inventory[2], &Policy::default()).score,
            "bystanders unchanged"
        );
        assert!(
            !assessed[3]
                .findings
                .iter()
                .any(|f| f.rule_id.starts_with("MCP-COMBO"))
        );
    }

    #[test]
    fn shell_next_to_a_remote_server_is_critical_and_disabled_servers_do_not_count() {
        let shell = s(
            "dc",
            "claude_code",
            &["-y", "@wonderwhy-er/desktop-commander@0.2.3"],
        );
        let mut remote = s("docs", "claude_code", &[]);
        remote.url = Some("https://docs.example.com/mcp".into());
        remote.transport = Some(Transport::Http);
        let (_, combos) = assess_inventory(&[shell.clone(), remote.clone()], &Policy::default());
        assert!(
            combos
                .iter()
                .any(|c| c.rule_id == "MCP-COMBO-002" && c.severity == Severity::Critical)
        );
        let mut off = remote;
        off.disabled = true;
        let (_, combos) = assess_inventory(&[shell, off], &Policy::default());
        assert!(combos.is_empty());
    }
}
