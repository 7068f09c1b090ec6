//! Dangerous combinations of one agent's inventory: which servers' combination
//! findings a report changes, and the alert for combinations the agent did not have.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::risk;
use mcpwatch_protocol::server::ServerRecord;

use super::{Plan, ServerWrite};
use crate::alerts;
use crate::model::{Agent, Alert, Server};

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

fn is_combo(f: &risk::Finding) -> bool {
    risk::COMBO_RULES.contains(&f.rule_id.as_str())
}

/// A server's findings without the combination ones, scored again: what it is worth
/// out of any combination.
fn without_combinations(s: &Server) -> risk::Assessment {
    let own = s
        .findings
        .iter()
        .filter(|f| !is_combo(f))
        .cloned()
        .collect();
    risk::score_findings(own, s.record.disabled)
}

/// The combination findings a server carries.
pub(crate) fn combination_findings(s: &Server) -> impl Iterator<Item = &risk::Finding> {
    s.findings.iter().filter(|f| is_combo(f))
}

/// Recompute the dangerous combinations of the inventory the plan leaves (its writes
/// and the untouched servers): servers whose combination findings change are written
/// too. Servers no longer in the snapshot take no part in a combination. Answers the
/// agent's combinations.
pub fn combine(plan: &mut Plan, now: DateTime<Utc>) -> Vec<risk::Combination> {
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
            rescored.push((slot, without_combinations(s)));
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
    (!fresh.is_empty()).then(|| alerts::dangerous_combination(agent, &fresh, now))
}
