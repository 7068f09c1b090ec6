//! In-memory rate limits: a fixed window of requests per key ([`WindowLimiter`], for
//! agent API keys, answered with `X-RateLimit-*` headers), and a failure counter that
//! locks a key out after too many failures ([`FailureLimiter`], for logins per account
//! and per address). Both forget idle keys so memory stays bounded, without sweeping
//! the map on every request ([`Windows`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A map this small is never swept.
const PRUNE_AT: usize = 100_000;

/// Per-key fixed windows (start, count). Expired keys are swept once the map holds
/// twice as many keys as after the last sweep (and at least [`PRUNE_AT`]): sweeping
/// costs amortised constant time per request even when every key is live (100,000
/// agents), and the map stays within twice the keys seen in one window.
struct Windows<K> {
    map: HashMap<K, (Instant, u32)>,
    sweep_at: usize,
}

impl<K: Eq + Hash + Clone> Windows<K> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: PRUNE_AT,
        }
    }

    /// `key`'s window at `now`, started afresh if the last one has ended.
    fn current(&mut self, key: &K, now: Instant, window: Duration) -> &mut (Instant, u32) {
        if self.map.len() >= self.sweep_at {
            self.map
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            self.sweep_at = (self.map.len() * 2).max(PRUNE_AT);
        }
        let entry = self.map.entry(key.clone()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry
    }
}

/// The outcome of a request against a [`WindowLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

pub struct WindowLimiter<K> {
    limit: u32,
    window: Duration,
    windows: Mutex<Windows<K>>,
}

impl<K: Eq + Hash + Clone> WindowLimiter<K> {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: Mutex::new(Windows::new()),
        }
    }

    /// Count one request for `key`.
    pub fn check(&self, key: &K) -> Decision {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Decision {
        let Ok(mut windows) = self.windows.lock() else {
            return Decision {
                allowed: true,
                limit: self.limit,
                remaining: self.limit,
                reset_secs: 0,
            };
        };
        let entry = windows.current(key, now, self.window);
        let allowed = entry.1 < self.limit;
        if allowed {
            entry.1 += 1;
        }
        let reset = self.window.saturating_sub(now.duration_since(entry.0));
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - entry.1,
            reset_secs: reset.as_secs() + u64::from(reset.subsec_nanos() > 0),
        }
    }
}

pub struct FailureLimiter<K> {
    max_failures: u32,
    window: Duration,
    failures: Mutex<Windows<K>>,
}

impl<K: Eq + Hash + Clone> FailureLimiter<K> {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(Windows::new()),
        }
    }

    /// Seconds until `key` may try again, if it is locked out.
    pub fn locked_for(&self, key: &K) -> Option<u64> {
        self.locked_for_at(key, Instant::now())
    }

    fn locked_for_at(&self, key: &K, now: Instant) -> Option<u64> {
        let failures = self.failures.lock().ok()?;
        let (start, count) = failures.map.get(key)?;
        let elapsed = now.duration_since(*start);
        (*count >= self.max_failures && elapsed < self.window)
            .then(|| self.window.saturating_sub(elapsed).as_secs().max(1))
    }

    /// Count one failure for `key`.
    pub fn record_failure(&self, key: &K) {
        self.record_failure_at(key, Instant::now());
    }

    fn record_failure_at(&self, key: &K, now: Instant) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let entry = failures.current(key, now, self.window);
        entry.1 = entry.1.saturating_add(1);
    }

    /// How many failures `key` has in its current window.
    pub fn failures(&self, key: &K) -> u32 {
        let now = Instant::now();
        let Ok(failures) = self.failures.lock() else {
            return 0;
        };
        failures
            .map
            .get(key)
            .filter(|(start, _)| now.duration_since(*start) < self.window)
            .map_or(0, |(_, count)| *count)
    }

    /// Forget `key`'s failures (after a success).
    pub fn reset(&self, key: &K) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limiter_allows_the_limit_then_refuses_until_reset() {
        let limiter = WindowLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(limiter.check_at(&"k", t0).allowed);
        let second = limiter.check_at(&"k", t0);
        assert!(second.allowed && second.remaining == 0);
        let third = limiter.check_at(&"k", t0 + Duration::from_secs(1));
        assert!(!third.allowed);
        assert_eq!(third.reset_secs, 59);
        assert!(limiter.check_at(&"other", t0).allowed);
        assert!(limiter.check_at(&"k", t0 + Duration::from_secs(60)).allowed);
    }

    #[test]
    fn live_keys_are_not_swept_on_every_request_and_expired_ones_go() {
        let window = Duration::from_secs(60);
        let mut windows = Windows::new();
        let t0 = Instant::now();
        for k in 0..PRUNE_AT {
            windows.current(&k, t0, window);
        }
        // Full of live keys: one sweep keeps them all and puts the next one far off.
        windows.current(&PRUNE_AT, t0, window);
        assert_eq!(windows.map.len(), PRUNE_AT + 1);
        assert_eq!(windows.sweep_at, 2 * PRUNE_AT);
        // A window later, the next sweep (once the map has doubled) drops the old keys.
        let later = t0 + window;
        for k in PRUNE_AT + 1..2 * PRUNE_AT + 1 {
            windows.current(&k, later, window);
        }
        assert!(windows.map.len() <= PRUNE_AT + 1, "{}", windows.map.len());
        assert!(windows.map.contains_key(&(2 * PRUNE_AT)));
        assert!(!windows.map.contains_key(&0));
    }

    #[test]
    fn failure_limiter_locks_after_max_failures_and_resets() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(900));
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter.record_failure_at(&"a", t0);
        }
        assert_eq!(limiter.locked_for_at(&"a", t0), None);
        limiter.record_failure_at(&"a", t0);
        assert_eq!(
            limiter.locked_for_at(&"a", t0 + Duration::from_secs(100)),
            Some(800)
        );
        assert_eq!(
            limiter.locked_for_at(&"a", t0 + Duration::from_secs(900)),
            None
        );
        limiter.reset(&"a");
        assert_eq!(limiter.locked_for_at(&"a", t0), None);
    }
}
