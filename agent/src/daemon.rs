//! `mcpwatch-agent run`: the daemon the OS service starts. It scans at start and
//! whenever a watched config directory changes (debounced) or the rescan interval
//! passes, sends a report when the inventory changed (keeping it on disk until the
//! collector accepts it), heartbeats on the interval the collector gives, signs every
//! request, backs off when the collector is away, and stops uploading when the
//! collector keeps refusing its key. Timers and file events only: no polling.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use mcpwatch_protocol::wire::HeartbeatRequest;
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::discovery::catalog::Os;
use crate::discovery::{self, ScanOptions, Target, paths, users};
use crate::inventory;
use crate::state::{State, StateDir};
use crate::upload::{self, Backoff, Client};

/// How long the config files must be quiet before a rescan.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How many refusals of our key in a row mean it was revoked (one may be a fluke).
const REFUSALS_BEFORE_REVOKED: u32 = 3;

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Overrides the URL saved at enrollment (a collector that moved).
    pub collector_url: Option<String>,
    pub state_dir: PathBuf,
    pub ca_file: Option<PathBuf>,
    /// Enroll with this at start when the agent has no identity yet.
    pub enroll_secret: Option<String>,
    pub heartbeat_interval: Duration,
    pub rescan_interval: Duration,
    pub project_roots: Vec<PathBuf>,
    pub project_depth: usize,
    /// Scan this directory as the filesystem root (tests, offline images).
    pub root: Option<PathBuf>,
    pub os: Os,
}

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "this agent is not enrolled; run `mcpwatch-agent enroll --server URL --enroll-secret SECRET`"
    )]
    NotEnrolled,
    #[error(
        "the collector keeps refusing this agent's key (revoked or deleted); re-enroll with `mcpwatch-agent enroll`"
    )]
    Revoked,
    #[error("cannot enroll: {0}")]
    Enroll(#[from] crate::enroll::Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
    #[error(transparent)]
    Upload(#[from] upload::Error),
}

/// As root (a service): every user of the machine. As a normal user: one's own home.
fn scan_options(settings: &Settings) -> ScanOptions {
    let own_home = (settings.root.is_none() && !cfg!(windows) && !crate::paths::is_root())
        .then(dirs::home_dir)
        .flatten();
    let target = match own_home {
        Some(home) => Target::Home {
            home,
            user: std::env::var("USER").unwrap_or_else(|_| "user".into()),
            env: Some(paths::Env::from_process()),
        },
        None => Target::Root {
            root: settings.root.clone().unwrap_or_else(|| {
                PathBuf::from(if settings.os == Os::Windows {
                    "C:\\"
                } else {
                    "/"
                })
            }),
            user: None,
        },
    };
    ScanOptions {
        os: settings.os,
        target,
        project_roots: settings.project_roots.clone(),
        project_depth: settings.project_depth,
    }
}

/// The directories to watch: the parent of every place a config may be, or its
/// nearest existing ancestor when the directory does not exist yet.
fn watch_dirs(options: &ScanOptions, found: &discovery::Inventory) -> BTreeSet<PathBuf> {
    let (root, files): (PathBuf, Vec<PathBuf>) = match &options.target {
        Target::Root { root, .. } => {
            let mut files: Vec<PathBuf> = paths::system_candidates(options.os, root)
                .into_iter()
                .map(|c| c.path)
                .collect();
            for user in users::enumerate(options.os, root) {
                files.extend(
                    paths::user_candidates(options.os, &user.home, None)
                        .into_iter()
                        .map(|c| c.path),
                );
            }
            (root.clone(), files)
        }
        Target::Home { home, env, .. } => (
            PathBuf::from("/"),
            paths::user_candidates(options.os, home, env.as_ref())
                .into_iter()
                .map(|c| c.path)
                .collect(),
        ),
    };
    let root = &root;
    let mut dirs = BTreeSet::new();
    for file in files {
        // Up to the first `*` component.
        let mut dir = PathBuf::new();
        for c in file.components() {
            if c.as_os_str().to_string_lossy().contains('*') {
                break;
            }
            dir.push(c);
        }
        if dir == file {
            dir.pop();
        }
        dirs.insert(nearest_existing(&dir));
    }
    // Project configs that were found: watch where they are.
    for path in found
        .servers
        .iter()
        .filter_map(|s| s.config_path.as_deref())
        .chain(found.config_errors.iter().map(|e| e.path.as_str()))
    {
        let local = if root == Path::new("/") || root == Path::new("C:\\") {
            PathBuf::from(path)
        } else {
            paths::under_root(root, path).unwrap_or_else(|| PathBuf::from(path))
        };
        if let Some(parent) = local.parent() {
            dirs.insert(nearest_existing(parent));
        }
    }
    dirs
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
    merged.servers.sort_by(|a, b| {
        (
            &a.os_user,
            &a.client,
            &a.config_path,
            &a.project_path,
            &a.server_name,
        )
            .cmp(&(
                &b.os_user,
                &b.client,
                &b.config_path,
                &b.project_path,
                &b.server_name,
            ))
    });
    merged
        .config_errors
        .sort_by(|a, b| (&a.path, &a.client).cmp(&(&b.path, &b.client)));
    merged
}

fn nearest_existing(dir: &Path) -> PathBuf {
    let mut d = dir.to_path_buf();
    while !d.is_dir() {
        if !d.pop() {
            break;
        }
    }
    d
}

fn host_facts(settings: &Settings, public_key: Option<String>) -> HeartbeatRequest {
    HeartbeatRequest {
        hostname: gethostname::gethostname().into_string().ok(),
        os_type: Some(settings.os.as_str().to_owned()),
        os_version: crate::host::os_version(),
        username: std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .ok(),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        public_key,
        ..HeartbeatRequest::default()
    }
}

/// The filesystem root the daemon scans (whose users it counts).
fn scan_root(settings: &Settings) -> PathBuf {
    settings.root.clone().unwrap_or_else(|| {
        PathBuf::from(if settings.os == Os::Windows {
            "C:\\"
        } else {
            "/"
        })
    })
}

struct Daemon {
    settings: Settings,
    dir: StateDir,
    state: State,
    client: Client,
    refusals: u32,
    /// The last scan's result, so that a change in one home rescans only that home.
    cache: Option<discovery::Inventory>,
    report_backoff: Backoff,
    retry_report_at: Option<Instant>,
    /// The scan running on the blocking pool, if any.
    scan: Option<RunningScan>,
}

/// A scan in progress, and whether another must follow it.
struct RunningScan {
    task: tokio::task::JoinHandle<inventory::Fitted>,
    force: bool,
    /// A trigger that came while it ran: (force, changed paths).
    again: Option<(bool, Vec<PathBuf>)>,
}

impl Daemon {
    fn save(&self) {
        if let Err(e) = self.dir.save(&self.state) {
            tracing::error!(error = %e, "Agent state could not be saved.");
        }
    }

    /// Count a refusal of our key; `Err(Revoked)` once it is clearly not a fluke.
    fn refused(&mut self, what: &str, message: &str) -> Result<(), Error> {
        self.refusals += 1;
        tracing::warn!(
            request = what,
            refusals = self.refusals,
            reason = %crate::printable::cell(message, 300),
            "The collector refused this agent's key."
        );
        if self.refusals >= REFUSALS_BEFORE_REVOKED {
            self.state.revoked = true;
            self.state.last_error = Some(format!("key refused {} times: {message}", self.refusals));
            self.save();
            tracing::error!(
                "The collector keeps refusing this agent's key: it was revoked or the agent was deleted. Uploads stop; re-enroll with `mcpwatch-agent enroll`."
            );
            return Err(Error::Revoked);
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<Option<Duration>, Error> {
        let public_key = (!self.state.key_bound).then(|| self.client.public_key());
        let mut request = host_facts(&self.settings, public_key);
        // The machine's facts only when they changed since the collector last took them.
        let machine = crate::host::machine_facts(self.settings.os, &scan_root(&self.settings));
        let facts_hash = crate::host::facts_hash(&machine);
        let send_facts = self.state.facts_hash.as_deref() != Some(facts_hash.as_str());
        if send_facts {
            request.machine = machine;
        }
        request.report_error = self.state.refused_report.as_ref().map(|r| {
            mcpwatch_protocol::limits::shorten(&r.error, mcpwatch_protocol::limits::MAX_ERROR_CHARS)
                .unwrap_or_else(|| r.error.clone())
        });
        mcpwatch_protocol::limits::fit_host(request.host_mut());
        match self.client.heartbeat(&request).await {
            Ok(answer) => {
                self.refusals = 0;
                if send_facts {
                    self.state.facts_hash = Some(facts_hash);
                }
                self.state.last_heartbeat_at = Some(Utc::now());
                if answer.signing_required && !self.state.key_bound {
                    self.state.key_bound = true;
                    self.client.sign = true;
                }
                let interval = answer.heartbeat_interval_seconds.clamp(5, 86_400);
                let changed = self.state.heartbeat_interval_secs != Some(interval);
                self.state.heartbeat_interval_secs = Some(interval);
                self.save();
                Ok(changed.then(|| Duration::from_secs(interval)))
            }
            Err(upload::Error::Unauthorized(m)) => self.refused("heartbeat", &m).map(|()| None),
            Err(e) => {
                tracing::warn!(error = %e, "Heartbeat failed; will retry at the next interval.");
                Ok(None)
            }
        }
    }

    /// Start a scan on the blocking pool unless one is running (then it runs again
    /// once this one is done, covering `changed` too). The daemon loop goes on meanwhile:
    /// a slow scan never delays a heartbeat.
    fn start_scan(&mut self, force: bool, changed: Vec<PathBuf>) {
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
        let options = scan_options(&self.settings);
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
    fn scan_done(
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

    /// Send the spooled report, if any.
    async fn send_pending(&mut self) -> Result<(), Error> {
        self.retry_report_at = None;
        let Some(report) = self.dir.pending() else {
            return Ok(());
        };
        match self.client.report(&report).await {
            Ok(answer) => {
                self.refusals = 0;
                self.report_backoff.reset();
                self.state.last_report_hash = report.inventory_hash.clone();
                self.state.last_report_at = Some(Utc::now());
                self.state.last_error = None;
                self.state.refused_report = None;
                // Keep a newer spooled report, if a rescan wrote one meanwhile.
                if self.dir.pending().and_then(|p| p.inventory_hash) == report.inventory_hash {
                    self.dir.clear_pending()?;
                } else {
                    self.retry_report_at = Some(Instant::now());
                }
                self.save();
                tracing::info!(
                    servers = answer.received,
                    created = answer.created,
                    updated = answer.updated,
                    dormant = answer.dormant,
                    "Report accepted."
                );
                Ok(())
            }
            Err(upload::Error::Unauthorized(m)) => {
                self.refused("report", &m)?;
                self.retry_report_at = Some(Instant::now() + self.report_backoff.next(None));
                Ok(())
            }
            Err(upload::Error::Rejected { status, message }) if status != 408 => {
                let budget = self
                    .state
                    .report_budget_bytes
                    .unwrap_or(inventory::REPORT_BUDGET_BYTES);
                let reason = crate::printable::cell(&message, 300);
                if status == 413 && budget > inventory::MIN_REPORT_BUDGET_BYTES {
                    // The collector takes less than we thought: halve what we send and
                    // build the report again (the users with the most are cut first).
                    let smaller = (budget / 2).max(inventory::MIN_REPORT_BUDGET_BYTES);
                    tracing::warn!(
                        status,
                        bytes = smaller,
                        "The collector refused the report as too large; sending less."
                    );
                    self.state.report_budget_bytes = Some(smaller);
                    self.state.last_error = Some(format!(
                        "the collector refused a report as too large (HTTP 413); reports are now cut to {smaller} bytes"
                    ));
                    self.start_scan(true, Vec::new());
                } else {
                    // The collector will refuse this same body every time: never resend
                    // it (a retry loop would stop the whole machine from being
                    // reported). Say so in `status` and in the heartbeats; the next
                    // change of the inventory is reported again.
                    let problem = format!(
                        "the collector refused the report for good (HTTP {status}): {reason}"
                    );
                    tracing::error!(status, reason = %reason, "The collector refused the report; it is not sent again until the inventory changes.");
                    self.state.refused_report = Some(crate::state::RefusedReport {
                        inventory_hash: report.inventory_hash.clone().unwrap_or_default(),
                        at: Utc::now(),
                        error: problem.clone(),
                    });
                    self.state.last_error = Some(problem);
                }
                if self.dir.pending().and_then(|p| p.inventory_hash) == report.inventory_hash {
                    self.dir.clear_pending()?;
                } else {
                    self.retry_report_at = Some(Instant::now());
                }
                self.save();
                Ok(())
            }
            Err(e) => {
                let wait = self.report_backoff.next(e.retry_after());
                self.state.last_error = Some(e.to_string());
                self.save();
                tracing::warn!(error = %e, retry_in_secs = wait.as_secs(), "Report not delivered; it is kept on disk and retried.");
                self.retry_report_at = Some(Instant::now() + wait);
                Ok(())
            }
        }
    }
}

/// The running scan's result; never ready when none runs.
async fn scan_finished(
    scan: &mut Option<RunningScan>,
) -> Result<inventory::Fitted, tokio::task::JoinError> {
    match scan {
        Some(running) => (&mut running.task).await,
        None => std::future::pending().await,
    }
}

fn rewatch(
    daemon: &mut Daemon,
    watcher: &mut notify::RecommendedWatcher,
    watched: &mut BTreeSet<PathBuf>,
) {
    let options = scan_options(&daemon.settings);
    // What the last scan found (the spooled report is gone once accepted: watching
    // from it left project directories unwatched until the next full rescan).
    let found = daemon.cache.clone().unwrap_or_default();
    let dirs = watch_dirs(&options, &found);
    for dir in &dirs {
        // Re-adding also covers a directory deleted and created again.
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::debug!(dir = %crate::printable::escape(&dir.to_string_lossy()), error = %e, "Directory could not be watched.");
        }
    }
    for gone in watched.difference(&dirs) {
        let _ = watcher.unwatch(gone);
    }
    daemon.state.watched_dirs = dirs.len();
    *watched = dirs;
}

/// Run until `shutdown` completes (Ok) or the agent must stop (Err).
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    run_with_ready(settings, shutdown, || {}).await
}

/// [`run`], calling `ready` once the agent has its settings, state and watcher and
/// only the network remains (a service reports "running" then).
pub async fn run_with_ready(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(),
) -> Result<(), Error> {
    let mut ready = Some(ready);
    let mut signal_ready = || {
        if let Some(ready) = ready.take() {
            ready();
        }
    };
    tokio::pin!(shutdown);
    let dir = StateDir::open(&settings.state_dir)?;
    let mut state = dir.load()?;
    // A report budget cut after a 413 is tried afresh at each start: the collector's
    // limit may have been raised meanwhile.
    state.report_budget_bytes = None;
    if state.revoked {
        return Err(Error::Revoked);
    }
    let url = settings
        .collector_url
        .clone()
        .or_else(|| state.collector_url.clone());
    if state.api_key.is_none() || dir.signing_key()?.is_none() {
        let (Some(url), Some(secret)) = (&url, &settings.enroll_secret) else {
            return Err(Error::NotEnrolled);
        };
        signal_ready();
        if !self_enroll(&dir, &settings, url, secret, shutdown.as_mut()).await? {
            return Ok(());
        }
        state = dir.load()?;
    }
    let (Some(url), Some(api_key), Some(key)) = (url, state.api_key.clone(), dir.signing_key()?)
    else {
        return Err(Error::NotEnrolled);
    };
    let http = upload::http_client(settings.ca_file.as_deref())?;
    let client = Client::new(http, &url, api_key, key, state.key_bound);
    let heartbeat_every = state
        .heartbeat_interval_secs
        .map_or(settings.heartbeat_interval, Duration::from_secs);
    let mut daemon = Daemon {
        settings,
        dir,
        state,
        client,
        refusals: 0,
        cache: None,
        report_backoff: Backoff::default(),
        retry_report_at: None,
        scan: None,
    };
    tracing::info!(collector = %url, agent = daemon.state.agent_id.as_deref().unwrap_or("?"), "Agent started.");

    let (events_tx, mut events) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // An error (e.g. overflow) has no paths: an empty list means "rescan everything".
        let _ = events_tx.send(event.map(|e| e.paths).unwrap_or_default());
    })
    .map_err(|e| upload::Error::Setup(format!("cannot watch config directories: {e}")))?;
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    signal_ready();

    // At start: send what is pending from before, heartbeat, and scan (the scan's
    // report is sent when it is done).
    if daemon.dir.pending().is_some() {
        daemon.send_pending().await?;
    }
    daemon.start_scan(true, Vec::new());
    if let Some(changed) = daemon.heartbeat().await? {
        tracing::debug!(
            secs = changed.as_secs(),
            "Heartbeat interval set by the collector."
        );
    }

    let mut heartbeat = tokio::time::interval_at(
        Instant::now()
            + daemon
                .state
                .heartbeat_interval_secs
                .map_or(heartbeat_every, Duration::from_secs),
        daemon
            .state
            .heartbeat_interval_secs
            .map_or(heartbeat_every, Duration::from_secs),
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let rescan_every = daemon.settings.rescan_interval;
    let mut rescan = tokio::time::interval_at(Instant::now() + rescan_every, rescan_every);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut debounce: Option<Instant> = None;
    let mut changed: Vec<PathBuf> = Vec::new();
    let mut full_rescan_needed = false;
    loop {
        let far = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            () = &mut shutdown => break,
            Some(paths) = events.recv() => {
                if paths.is_empty() {
                    full_rescan_needed = true;
                }
                changed.extend(paths);
                debounce = Some(Instant::now() + DEBOUNCE);
            }
            () = sleep_until(debounce.unwrap_or(far)), if debounce.is_some() => {
                debounce = None;
                let paths = std::mem::take(&mut changed);
                let paths = if std::mem::take(&mut full_rescan_needed) { Vec::new() } else { paths };
                daemon.start_scan(false, paths);
            }
            result = scan_finished(&mut daemon.scan), if daemon.scan.is_some() => {
                daemon.scan_done(result)?;
                rewatch(&mut daemon, &mut watcher, &mut watched);
                if daemon.retry_report_at.is_some_and(|at| at <= Instant::now()) {
                    daemon.send_pending().await?;
                }
            }
            () = sleep_until(daemon.retry_report_at.unwrap_or(far)), if daemon.retry_report_at.is_some() => {
                daemon.send_pending().await?;
            }
            _ = heartbeat.tick() => {
                if let Some(every) = daemon.heartbeat().await? {
                    heartbeat = tokio::time::interval_at(Instant::now() + every, every);
                    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                }
            }
            _ = rescan.tick() => {
                daemon.start_scan(true, Vec::new());
            }
        }
    }
    daemon.save();
    tracing::info!("Agent stopped.");
    Ok(())
}

/// Enroll with `secret`, waiting out a collector that cannot be reached (backing off,
/// noting the error in the state for `status`). Returns false if `shutdown` came first.
async fn self_enroll(
    dir: &StateDir,
    settings: &Settings,
    url: &str,
    secret: &str,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<bool, Error> {
    let mut backoff = Backoff::default();
    loop {
        let http = upload::http_client(settings.ca_file.as_deref())?;
        match crate::enroll::enroll(
            dir,
            http,
            url,
            crate::enroll::Credential::EnrollSecret(secret),
        )
        .await
        {
            Ok(agent_id) => {
                tracing::info!(agent = %agent_id, collector = %url, "Enrolled.");
                return Ok(true);
            }
            Err(e) if e.is_transient() => {
                let wait = backoff.next(e.retry_after());
                tracing::warn!(error = %e, retry_in_secs = wait.as_secs(), "Cannot enroll yet.");
                let mut state = dir.load()?;
                state.last_error = Some(format!("enrolling: {e}"));
                dir.save(&state)?;
                tokio::select! {
                    () = &mut shutdown => return Ok(false),
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => return Err(Error::Enroll(e)),
        }
    }
}

/// What `status` shows.
pub fn status(state_dir: &Path) -> Result<String, Error> {
    let dir = StateDir::open(state_dir)?;
    let s = dir.load()?;
    let show =
        |v: Option<String>| v.map_or_else(|| "-".into(), |v| crate::printable::cell(&v, 400));
    let pending = dir.pending();
    Ok(format!(
        "agent id:          {}\ncollector:         {}\nenrolled:          {}\nkey revoked:       {}\nsigning:           {}\nlast heartbeat:    {}\nlast report:       {}\npending report:    {}\nrefused report:    {}\nwatched dirs:      {}\nlast error:        {}\n",
        show(s.agent_id.clone()),
        show(s.collector_url.clone()),
        if s.api_key.is_some() { "yes" } else { "no" },
        if s.revoked {
            "YES: re-enroll with `mcpwatch-agent enroll`"
        } else {
            "no"
        },
        if s.key_bound {
            "on"
        } else {
            "off (key not bound yet)"
        },
        show(s.last_heartbeat_at.map(|t| t.to_rfc3339())),
        show(s.last_report_at.map(|t| t.to_rfc3339())),
        pending.map_or_else(
            || "none".to_owned(),
            |p| format!(
                "yes ({} servers, sequence {})",
                p.servers.len(),
                p.sequence.unwrap_or(0)
            )
        ),
        show(
            s.refused_report
                .as_ref()
                .map(|r| format!("{} ({})", r.error, r.at.to_rfc3339()))
        ),
        s.watched_dirs,
        show(s.last_error),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scan options for the machine tree at `r`.
    fn machine(r: &Path) -> ScanOptions {
        ScanOptions {
            os: Os::Linux,
            target: Target::Root {
                root: r.to_path_buf(),
                user: None,
            },
            project_roots: vec![],
            project_depth: 1,
        }
    }

    fn put(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

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

    #[test]
    fn project_config_directories_are_watched_from_the_last_scan() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        put(r, "etc/passwd", "alice:x:1000:1000::/home/alice:/bin/sh\n");
        put(
            r,
            "home/alice/.claude.json",
            r#"{"projects": {"/home/alice/work/app": {}}}"#,
        );
        put(
            r,
            "home/alice/work/app/.mcp.json",
            r#"{"mcpServers": {"p": {"command": "p"}}}"#,
        );
        let options = machine(r);
        let found = discovery::scan(&options);
        let dirs = watch_dirs(&options, &found);
        let project = dunce::canonicalize(r.join("home/alice/work/app")).unwrap();
        assert!(
            dirs.iter()
                .any(|d| dunce::canonicalize(d).is_ok_and(|d| d == project)),
            "{dirs:?}"
        );
    }
}
