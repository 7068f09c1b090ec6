//! Agent presence: when each agent was last heard from. Heartbeats update memory only;
//! a background job (`jobs`) writes the new times to the store every few seconds in one batch, so
//! frequent heartbeats cost no fsync each, and a restart loses at most one interval
//! (an agent is then shown with a slightly older last-seen time, never offline forever).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId};

use crate::store::Store;

#[derive(Default)]
pub struct Presence {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashMap<AgentId, Seen>,
    /// Per organisation, how many agents were last heard from in each second: the
    /// online count sums the recent seconds instead of visiting every agent.
    by_second: HashMap<OrgId, BTreeMap<i64, u64>>,
}

struct Seen {
    org: OrgId,
    at: DateTime<Utc>,
    dirty: bool,
}

impl Inner {
    fn count(&mut self, org: OrgId, at: DateTime<Utc>, add: bool) {
        let seconds = self.by_second.entry(org).or_default();
        let slot = seconds.entry(at.timestamp()).or_insert(0);
        if add {
            *slot += 1;
        } else {
            *slot = slot.saturating_sub(1);
            if *slot == 0 {
                seconds.remove(&at.timestamp());
                if seconds.is_empty() {
                    self.by_second.remove(&org);
                }
            }
        }
    }

    /// Set an agent's time if newer; `dirty` marks it for the next flush.
    fn set(&mut self, org: OrgId, agent: AgentId, at: DateTime<Utc>, dirty: bool) {
        let previous = match self.seen.get_mut(&agent) {
            Some(entry) if at < entry.at => return,
            Some(entry) => {
                let previous = entry.at;
                entry.at = at;
                entry.dirty |= dirty;
                Some(previous)
            }
            None => {
                self.seen.insert(agent, Seen { org, at, dirty });
                None
            }
        };
        if let Some(previous) = previous {
            self.count(org, previous, false);
        }
        self.count(org, at, true);
    }
}

impl Presence {
    /// Note that an agent was heard from.
    pub fn record(&self, org: OrgId, agent: AgentId, at: DateTime<Utc>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.set(org, agent, at, true);
        }
    }

    /// When the agent was last heard from since the collector started.
    pub fn last_seen(&self, agent: AgentId) -> Option<DateTime<Utc>> {
        self.inner.lock().ok()?.seen.get(&agent).map(|s| s.at)
    }

    /// Times read from the store at start (already stored, so not to be flushed).
    pub fn load(&self, known: Vec<(OrgId, AgentId, DateTime<Utc>)>) {
        if let Ok(mut inner) = self.inner.lock() {
            for (org, agent, at) in known {
                inner.set(org, agent, at, false);
            }
        }
    }

    /// How many of `org`'s agents were heard from since `since`, to the second (an
    /// agent heard from earlier in the same second counts), without visiting every
    /// agent: the dashboard's online count.
    pub fn count_since(&self, org: OrgId, since: DateTime<Utc>) -> u64 {
        self.inner.lock().map_or(0, |inner| {
            inner.by_second.get(&org).map_or(0, |seconds| {
                seconds.range(since.timestamp()..).map(|(_, n)| n).sum()
            })
        })
    }

    /// Agents of every organisation heard from since `since`.
    pub fn count_all_since(&self, since: DateTime<Utc>) -> u64 {
        self.inner.lock().map_or(0, |inner| {
            inner
                .by_second
                .values()
                .map(|seconds| {
                    seconds
                        .range(since.timestamp()..)
                        .map(|(_, n)| n)
                        .sum::<u64>()
                })
                .sum()
        })
    }

    /// Forget a deleted agent.
    pub fn forget(&self, agent: AgentId) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(seen) = inner.seen.remove(&agent)
        {
            inner.count(seen.org, seen.at, false);
        }
    }

    /// The times not yet written to the store.
    fn take_dirty(&self) -> Vec<(OrgId, AgentId, DateTime<Utc>)> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        inner
            .seen
            .iter_mut()
            .filter(|(_, s)| s.dirty)
            .map(|(id, s)| {
                s.dirty = false;
                (s.org, *id, s.at)
            })
            .collect()
    }

    /// Write the pending times to the store now.
    pub async fn flush(&self, store: &dyn Store) {
        let batch = self.take_dirty();
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        if let Err(e) = store.touch_agents(batch).await {
            tracing::warn!(error = %e, agents = n, "Agent last-seen times could not be saved; will retry.");
            // They stay in memory; the next heartbeat marks them dirty again.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_time_wins_and_dirty_entries_are_taken_once() {
        let p = Presence::default();
        let (org, agent) = (OrgId::new(), AgentId::new());
        let t1 = Utc::now();
        let t0 = t1 - chrono::Duration::seconds(10);
        p.record(org, agent, t1);
        p.record(org, agent, t0);
        assert_eq!(p.last_seen(agent), Some(t1));
        assert_eq!(p.take_dirty(), vec![(org, agent, t1)]);
        assert!(p.take_dirty().is_empty());
        p.forget(agent);
        assert_eq!(p.last_seen(agent), None);
    }

    #[test]
    fn the_online_count_is_per_organisation_and_includes_times_loaded_at_start() {
        let p = Presence::default();
        let (org, other) = (OrgId::new(), OrgId::new());
        let now = Utc::now();
        let old = now - chrono::Duration::minutes(10);
        p.load(vec![
            (org, AgentId::new(), now),
            (org, AgentId::new(), old),
            (other, AgentId::new(), now),
        ]);
        p.record(org, AgentId::new(), now);
        let since = now - chrono::Duration::minutes(3);
        assert_eq!(p.count_since(org, since), 2);
        assert_eq!(p.count_since(other, since), 1);
        // Loaded times are already stored: nothing to flush but the new heartbeat.
        assert_eq!(p.take_dirty().len(), 1);
    }

    #[test]
    fn the_online_count_follows_each_agent_to_its_newest_time() {
        let p = Presence::default();
        let org = OrgId::new();
        let (a, b) = (AgentId::new(), AgentId::new());
        let now = Utc::now();
        let old = now - chrono::Duration::minutes(10);
        let since = now - chrono::Duration::minutes(3);
        p.load(vec![(org, a, old), (org, b, old)]);
        assert_eq!(p.count_since(org, since), 0);
        assert_eq!(p.count_since(org, old), 2);
        // Heard from again: counted once, at the new time.
        p.record(org, a, now);
        p.record(org, a, now + chrono::Duration::seconds(1));
        // An older time (a late flush, a reload) moves nothing.
        p.record(org, a, old);
        p.load(vec![(org, a, old)]);
        assert_eq!(p.count_since(org, since), 1);
        assert_eq!(p.count_since(org, old), 2);
        p.forget(a);
        assert_eq!(p.count_since(org, since), 0);
        assert_eq!(p.count_since(org, old), 1);
        p.forget(b);
        p.forget(b);
        assert_eq!(p.count_since(org, old), 0);
        assert!(
            p.inner.lock().unwrap().by_second.is_empty(),
            "no empty buckets left"
        );
    }
}
