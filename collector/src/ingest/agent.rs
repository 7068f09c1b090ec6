//! What an agent's heartbeats, reports and silence do to its own record, and to the
//! presence of its servers.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::risk;
use mcpwatch_protocol::wire::ConfigError;

use super::ServerWrite;
use crate::alerts;
use crate::model::{Agent, Alert, HostFacts, Server, ServerStatus};

/// A heartbeat's effect on the stored agent.
#[derive(Debug, Clone)]
pub struct HeartbeatUpdate {
    pub facts: HostFacts,
    pub seen_at: DateTime<Utc>,
    /// Bind this signing key if the agent has none yet.
    pub bind_public_key: Option<[u8; 32]>,
}

/// What a report says of its agent, besides its servers.
#[derive(Debug, Clone)]
pub struct AgentReport {
    pub config_errors: Vec<ConfigError>,
    pub facts: HostFacts,
    pub sequence: Option<u64>,
    pub received_at: DateTime<Utc>,
}

/// The agent was heard from at `at`: its last-seen time moves forward (never back).
fn seen(record: &mut Agent, at: DateTime<Utc>) {
    record.last_seen_at = Some(record.last_seen_at.map_or(at, |prev| prev.max(at)));
}

/// The agent is heard from again: answers whether it was silent, in which case its
/// snapshot servers must be shown active again (see [`presence`]).
pub fn heard_from(record: &mut Agent) -> bool {
    std::mem::take(&mut record.stale)
}

/// Apply a heartbeat to the agent's record.
pub fn heartbeat(record: &mut Agent, update: HeartbeatUpdate) {
    record.facts.merge(update.facts);
    seen(record, update.seen_at);
    if record.public_key.is_none() {
        record.public_key = update.bind_public_key;
    }
}

/// Apply an accepted report to the agent's record: facts, errors, combinations and
/// counts. Answers the alerts it raises: config files it could not read that it had
/// not reported before, and combinations it did not have.
pub fn reported(
    record: &mut Agent,
    report: AgentReport,
    combinations: Vec<risk::Combination>,
    active_count: u64,
) -> Vec<Alert> {
    let AgentReport {
        config_errors,
        facts,
        sequence,
        received_at,
    } = report;
    let mut raised = Vec::new();
    let new_errors: Vec<&ConfigError> = config_errors
        .iter()
        .filter(|e| !record.config_errors.iter().any(|k| k.path == e.path))
        .collect();
    if !new_errors.is_empty() {
        raised.push(alerts::config_errors(record, &new_errors, received_at));
    }
    raised.extend(super::combination_alert(record, &combinations, received_at));
    record.combinations = combinations;
    record.facts.merge(facts);
    record.last_report_at = Some(received_at);
    seen(record, received_at);
    record.server_count = active_count;
    record.config_errors = config_errors;
    record.last_sequence = sequence.or(record.last_sequence);
    raised
}

/// When an agent was last heard from (enrolled, if never), for an agent that can
/// become silent: one with servers, not already marked silent. `None` for the others.
pub fn silent_since(agent: &Agent) -> Option<DateTime<Utc>> {
    (!agent.stale && agent.server_count > 0).then(|| agent.last_seen_at.unwrap_or(agent.created_at))
}

/// Whether an agent with servers has not been heard from since `cutoff` (and is not
/// already marked silent).
pub fn is_silent(agent: &Agent, cutoff: DateTime<Utc>) -> bool {
    silent_since(agent).is_some_and(|at| at < cutoff)
}

/// The collector began listening again at `started`, after a time in which nothing
/// could be heard: since the newest `silent_since` it had stored, `last_heard`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumed {
    pub started: DateTime<Utc>,
    pub last_heard: DateTime<Utc>,
}

impl Resumed {
    /// How long nothing could be heard before the start (zero if something was heard
    /// after it: another instance on the same database was listening).
    pub fn unheard(&self) -> chrono::Duration {
        (self.started - self.last_heard).max(chrono::Duration::zero())
    }
}

/// The cutoff of a sweep for silent agents at `now`: an agent last heard from before
/// it has been silent for `threshold` of the time the collector was listening. The
/// time before a start in which nothing was heard (the collector was down) does not
/// count: after a stop longer than `threshold`, every agent still gets `threshold` of
/// listening before it is taken for silent, rather than all being marked (with an
/// alert each) at the first sweep. Once the collector has listened for `threshold`
/// since its start, that time is no longer needed, and the cutoff is `now -
/// threshold`.
pub fn silence_cutoff(
    now: DateTime<Utc>,
    threshold: chrono::Duration,
    resumed: Option<Resumed>,
) -> DateTime<Utc> {
    let cutoff = now
        .checked_sub_signed(threshold)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    match resumed {
        Some(r) if cutoff < r.started => cutoff
            .checked_sub_signed(r.unheard())
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
        _ => cutoff,
    }
}

/// Mark a silent agent: its servers are to be shown dormant (see [`presence`]).
/// Answers the alert.
pub fn silenced(agent: &mut Agent, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> Alert {
    agent.stale = true;
    alerts::agent_silent(agent, cutoff, now)
}

/// Show one of an agent's servers as active (agent heard from) or dormant (agent
/// silent); servers missing from its snapshot stay dormant either way. `None`: no
/// change.
pub fn presence(server: &Server, active: bool) -> Option<ServerWrite> {
    let target = if active {
        ServerStatus::Active
    } else {
        ServerStatus::Dormant
    };
    if !server.in_snapshot || server.status == target {
        return None;
    }
    let mut after = server.clone();
    after.status = target;
    Some(ServerWrite::silent(Some(server.clone()), after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::hours(hours)
    }

    #[test]
    fn the_time_the_collector_was_down_is_not_silence() {
        let day = Duration::hours(24);
        // Heard from an hour before a stop of 30 hours.
        let (heard, last_heard, started) = (at(-31), at(-30), at(0));
        let resumed = Some(Resumed {
            started,
            last_heard,
        });
        let silent = |now: DateTime<Utc>| heard < silence_cutoff(now, day, resumed);
        assert!(
            heard < silence_cutoff(started, day, None),
            "without it: at once"
        );
        assert!(!silent(started), "not at the start");
        // An hour of listening before the stop and 23 after it make 24 hours.
        assert!(!silent(at(23)));
        assert!(silent(at(23) + Duration::seconds(1)));
        // Once the collector has listened for the threshold, the plain cutoff.
        assert_eq!(silence_cutoff(at(24), day, resumed), at(0));
        assert_eq!(silence_cutoff(at(30), day, resumed), at(6));
    }

    #[test]
    fn time_heard_after_the_start_takes_nothing_off() {
        let day = Duration::hours(24);
        // Another instance on the same database heard an agent after this one started.
        let resumed = Some(Resumed {
            started: at(0),
            last_heard: at(1),
        });
        assert_eq!(silence_cutoff(at(2), day, resumed), at(-22));
        assert_eq!(silence_cutoff(at(2), day, None), at(-22));
    }

    #[test]
    fn a_threshold_beyond_the_calendar_never_marks_anyone() {
        let huge = Duration::days(100_000_000);
        let resumed = Some(Resumed {
            started: at(0),
            last_heard: at(-5),
        });
        assert_eq!(silence_cutoff(at(0), huge, None), DateTime::<Utc>::MIN_UTC);
        assert_eq!(
            silence_cutoff(at(0), huge, resumed),
            DateTime::<Utc>::MIN_UTC
        );
    }
}
