//! The daemon's scans: run on the blocking pool, one at a time (a trigger during a
//! scan queues one more), partial when a change touches only some homes, and what a
//! finished scan spools for the collector.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::Utc;
use tokio::time::Instant;

use super::{Daemon, Error};
use crate::discovery::{self, ScanOptions, Target, users};
use crate::inventory;

/// A scan in progress, and whether another must follow it.
pub(super) struct RunningScan {
    task: tokio::task::JoinHandle<inventory::Fitted>,
    force: bool,
    /// A trigger that came while it ran: (force, changed paths).
    again: Option<(bool, Vec<PathBuf>)>,
}

impl Daemon {
    /// Start a scan on the blocking pool unless one is running (then it runs again
    /// once this one is done, covering `changed` too). The daemon loop goes on meanwhile:
    /// a slow scan never delays a heartbeat.
    pub(super) fn start_scan(&mut self, force: bool, changed: Vec<PathBuf>) {
        if let Some(running) = &mut self.scan {
            running.again = Some(match running.again.take() {
                Some((f, mut paths)) => {
                    // An empty list means "everything": keep it so.
                    if paths.is_empty() || changed.is_empty() {
                        paths.clear();
                    } else {
                        paths.extend(changed);
                    }
                    (f || force, paths)
                }
                None => (force, changed),
            });
            return;
        }
        let options = super::scan_options(&self.settings);
        // A copy: the watch set keeps coming from the last scan while this one runs.
        let cached = self.cache.clone();
        let budget = self.state.report_budget_bytes;
        let task = tokio::task::spawn_blocking(move || {
            inventory::fit(partial_scan(&options, cached, &changed), budget)
        });
        self.scan = Some(RunningScan {
            task,
            force,
            again: None,
        });
    }

    /// A scan finished: spool a new report if the inventory changed since the last
    /// accepted one, or always with `force` (at start and at each full rescan, so the
    /// collector's view is refreshed even when nothing changed) — but never the very
    /// report the collector refused for good, until it changes or a day has passed.
    pub(super) fn scan_done(
        &mut self,
        result: Result<inventory::Fitted, tokio::task::JoinError>,
    ) -> Result<(), Error> {
        let Some(done) = self.scan.take() else {
            return Ok(());
        };
        let fitted = match result {
            Ok(fitted) => Some(fitted),
            Err(_) => {
                tracing::error!("The scan stopped unexpectedly; will retry at the next rescan.");
                None
            }
        };
        if let Some(fitted) = &fitted {
            self.cache = Some(fitted.scanned.clone());
        }
        if let Some((force, changed)) = done.again {
            self.start_scan(force, changed);
        }
        let Some(fitted) = fitted else {
            return Ok(());
        };
        tracing::debug!(
            servers = fitted.fitted.servers.len(),
            config_errors = fitted.fitted.config_errors.len(),
            "Scan finished."
        );
        let mut report = inventory::report(fitted.fitted);
        let pending_hash = self.dir.pending().and_then(|p| p.inventory_hash);
        if !done.force
            && report.inventory_hash == self.state.last_report_hash
            && pending_hash.is_none()
        {
            return Ok(());
        }
        if report.inventory_hash == pending_hash {
            return Ok(());
        }
        if let Some(refused) = &self.state.refused_report
            && Some(&refused.inventory_hash) == report.inventory_hash.as_ref()
            && Utc::now().signed_duration_since(refused.at) < chrono::Duration::days(1)
        {
            return Ok(());
        }
        self.state.sequence += 1;
        report.sequence = Some(self.state.sequence);
        self.dir.set_pending(&report)?;
        self.save();
        self.retry_report_at = Some(Instant::now());
        self.report_backoff.reset();
        Ok(())
    }
}

/// The running scan's result; never ready when none runs.
pub(super) async fn scan_finished(
    scan: &mut Option<RunningScan>,
) -> Result<inventory::Fitted, tokio::task::JoinError> {
    match scan {
        Some(running) => (&mut running.task).await,
        None => std::future::pending().await,
    }
}

/// Scan what `changed` touches: with a cached inventory and every changed path inside
/// one of the machine's user homes, only those users (and the machine-wide files) are
/// scanned again and merged with the cached rest; otherwise everything is.
fn partial_scan(
    options: &ScanOptions,
    cached: Option<discovery::Inventory>,
    changed: &[PathBuf],
) -> discovery::Inventory {
    let (Some(cached), Target::Root { root, user: None }) = (cached, &options.target) else {
        return discovery::scan(options);
    };
    if changed.is_empty() {
        return discovery::scan(options);
    }
    let homes = users::enumerate(options.os, root);
    let mut affected: BTreeSet<String> = BTreeSet::new();
    for path in changed {
        match homes.iter().find(|u| path.starts_with(&u.home)) {
            Some(u) => {
                affected.insert(u.name.clone());
            }
            None => return discovery::scan(options),
        }
    }
    // How each affected home appears in reported paths (relative to the scan root).
    let shown_homes: Vec<String> = homes
        .iter()
        .filter(|u| affected.contains(&u.name))
        .filter_map(|u| {
            u.home
                .strip_prefix(root)
                .ok()
                .map(|rel| format!("/{}/", rel.to_string_lossy().replace('\\', "/")))
        })
        .collect();
    let mut merged = discovery::Inventory {
        servers: cached
            .servers
            .into_iter()
            .filter(|s| s.os_user.as_ref().is_some_and(|u| !affected.contains(u)))
            .collect(),
        config_errors: cached
            .config_errors
            .into_iter()
            .filter(|e| {
                !shown_homes
                    .iter()
                    .any(|h| e.path.replace('\\', "/").starts_with(h.as_str()))
            })
            .collect(),
    };
    let mut machine_wide_taken = false;
    for user in affected {
        let one = ScanOptions {
            target: Target::Root {
                root: root.clone(),
                user: Some(user),
            },
            ..options.clone()
        };
        let found = discovery::scan(&one);
        for server in found.servers {
            if server.os_user.is_some() || !machine_wide_taken {
                merged.servers.push(server);
            }
        }
        machine_wide_taken = true;
        for error in found.config_errors {
            if !merged.config_errors.contains(&error) {
                merged.config_errors.push(error);
            }
        }
    }
    sort(&mut merged);
    merged
}

/// Where a server sorts: by user, client, file, project and name.
type Order<'a> = (
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
    &'a str,
);

fn order(s: &mcpwatch_protocol::server::ServerRecord) -> Order<'_> {
    (
        &s.os_user,
        &s.client,
        &s.config_path,
        &s.project_path,
        &s.server_name,
    )
}

/// The order a full scan gives.
fn sort(inventory: &mut discovery::Inventory) {
    inventory.servers.sort_by(|a, b| order(a).cmp(&order(b)));
    inventory
        .config_errors
        .sort_by(|a, b| (&a.path, &a.client).cmp(&(&b.path, &b.client)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{machine, put};

    #[test]
    fn a_change_in_one_home_rescans_that_home_and_matches_a_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(
            r,
            "etc/passwd",
            "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n",
        );
        put(
            r,
            "home/alice/.cursor/mcp.json",
            r#"{"mcpServers": {"a": {"command": "a"}}}"#,
        );
        put(
            r,
            "home/bob/.cursor/mcp.json",
            r#"{"mcpServers": {"b": {"command": "b"}}}"#,
        );
        put(r, "home/bob/.gemini/settings.json", "{ broken");
        put(
            r,
            "etc/claude-code/managed-mcp.json",
            r#"{"mcpServers": {"corp": {"command": "corp"}}}"#,
        );
        let options = machine(r);
        let first = discovery::scan(&options);
        put(
            r,
            "home/alice/.cursor/mcp.json",
            r#"{"mcpServers": {"a": {"command": "a"}, "a2": {"command": "a2"}}}"#,
        );
        let changed = vec![r.join("home/alice/.cursor/mcp.json")];
        let partial = partial_scan(&options, Some(first.clone()), &changed);
        let full = discovery::scan(&options);
        assert_eq!(partial.servers, full.servers);
        assert_eq!(partial.config_errors, full.config_errors);
        assert_eq!(
            inventory::inventory_hash(&partial),
            inventory::inventory_hash(&full)
        );
        // Bob's cached servers were kept, not rescanned: prove it by changing his file
        // without telling partial_scan.
        put(
            r,
            "home/bob/.cursor/mcp.json",
            r#"{"mcpServers": {"b-new": {"command": "b"}}}"#,
        );
        let again = partial_scan(&options, Some(full.clone()), &changed);
        assert!(again.servers.iter().any(|s| s.server_name == "b"));
        // A change outside every home rescans everything.
        let everything = partial_scan(
            &options,
            Some(full),
            &[r.join("etc/claude-code/managed-mcp.json")],
        );
        assert!(everything.servers.iter().any(|s| s.server_name == "b-new"));
    }
}
