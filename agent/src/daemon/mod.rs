//! `mcpwatch-agent run`: the daemon the OS service starts. It scans at start and
//! whenever a watched config directory changes (debounced) or the rescan interval
//! passes, sends a report when the inventory changed (keeping it on disk until the
//! collector accepts it), heartbeats on the interval set in its settings (else the one the collector gives), signs every
//! request, backs off when the collector is away, and stops uploading when the
//! collector keeps refusing its key. Timers and file events only: no polling.

mod reports;
mod scans;
mod status;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use mcpwatch_protocol::wire::HeartbeatRequest;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

pub use status::status;

use crate::discovery::catalog::Os;
use crate::discovery::{self, ScanOptions, Target, paths};
use crate::state::{State, StateDir};
use crate::upload::{self, Backoff, Client};
use crate::watch::Watch;
use scans::{RunningScan, scan_finished};

/// How long the config files must be quiet before a rescan.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How many refusals of our key in a row mean it was revoked (one may be a fluke).
const REFUSALS_BEFORE_REVOKED: u32 = 3;
/// The heartbeat interval until the collector says otherwise (when none is set).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Overrides the URL saved at enrollment (a collector that moved).
    pub collector_url: Option<String>,
    pub state_dir: PathBuf,
    pub ca_file: Option<PathBuf>,
    /// Enroll with this at start when the agent has no identity yet.
    pub enroll_secret: Option<String>,
    /// Set by the config file, environment or command line: kept over the interval
    /// the collector suggests. `None`: the collector's (60 s until it says).
    pub heartbeat_interval: Option<Duration>,
    pub rescan_interval: Duration,
    pub project_roots: Vec<PathBuf>,
    pub project_depth: usize,
    /// Scan this directory as the filesystem root (tests, offline images).
    pub root: Option<PathBuf>,
    pub os: Os,
    /// The config files the settings were read from (an enroll secret in one of them
    /// is removed once the agent has enrolled).
    pub config_files: Vec<PathBuf>,
}

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "this agent is not enrolled; run `mcpwatch-agent enroll --collector-url URL --enroll-secret SECRET`"
    )]
    NotEnrolled,
    #[error(
        "the collector keeps refusing this agent's key (revoked or deleted); re-enroll with `mcpwatch-agent enroll`"
    )]
    Revoked,
    #[error("cannot enroll: {0}")]
    Enroll(#[from] crate::enroll::Error),
    #[error("the agent's state dir {0} is readable by root only: run `sudo mcpwatch-agent status`")]
    NeedsRoot(PathBuf),
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

    /// Send a heartbeat (the machine's facts only when they changed), and note the
    /// interval the collector asks for.
    async fn heartbeat(&mut self) -> Result<(), Error> {
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
                let (min, max) = crate::config::HEARTBEAT_SECS;
                self.state.heartbeat_interval_secs =
                    Some(answer.heartbeat_interval_seconds.clamp(min, max));
                self.save();
                Ok(())
            }
            Err(upload::Error::Unauthorized(m)) => self.refused("heartbeat", &m),
            Err(e) => {
                tracing::warn!(error = %e, "Heartbeat failed; will retry at the next interval.");
                Ok(())
            }
        }
    }
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
    let Some(mut daemon) = start(settings, shutdown.as_mut(), &mut signal_ready).await? else {
        return Ok(());
    };
    let (events_tx, events) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // An error (e.g. overflow) has no paths: an empty list means "rescan everything".
        match event {
            Ok(e) if crate::watch::is_change(&e.kind) => {
                let _ = events_tx.send(e.paths);
            }
            Ok(_) => {}
            Err(_) => {
                let _ = events_tx.send(Vec::new());
            }
        }
    })
    .map_err(|e| upload::Error::Setup(format!("cannot watch config directories: {e}")))?;
    let mut watch = Watch::new(watcher);
    signal_ready();

    // At start: send what is pending from before, heartbeat, and scan (the scan's
    // report is sent when it is done).
    if daemon.dir.pending().is_some() {
        daemon.send_pending().await?;
    }
    daemon.start_scan(true, Vec::new());
    daemon.heartbeat().await?;
    daemon.serve(shutdown, events, &mut watch).await?;
    daemon.save();
    tracing::info!("Agent stopped.");
    Ok(())
}

/// Load the state, enroll if the agent has no identity yet (answers `None` when
/// `shutdown` comes first), and make the client.
async fn start(
    settings: Settings,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    signal_ready: &mut impl FnMut(),
) -> Result<Option<Daemon>, Error> {
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
        // A secret in the settings, else the one `install` kept for us.
        let secret = settings
            .enroll_secret
            .clone()
            .or_else(|| dir.enroll_secret());
        let (Some(url), Some(secret)) = (&url, secret) else {
            return Err(Error::NotEnrolled);
        };
        signal_ready();
        if !self_enroll(&dir, &settings, url, &secret, shutdown.as_mut()).await? {
            return Ok(None);
        }
        consume_enroll_secret(&dir, &settings.config_files);
        state = dir.load()?;
    } else if settings.enroll_secret.is_some() || dir.enroll_secret().is_some() {
        // Enrolled already (a prepared config dropped on an enrolled machine): the
        // secret is not needed, so it does not stay either.
        consume_enroll_secret(&dir, &settings.config_files);
    }
    let (Some(url), Some(api_key), Some(key)) = (url, state.api_key.clone(), dir.signing_key()?)
    else {
        return Err(Error::NotEnrolled);
    };
    let http = upload::http_client(settings.ca_file.as_deref())?;
    let client = Client::new(http, &url, api_key, key, state.key_bound);
    tracing::info!(collector = %url, agent = state.agent_id.as_deref().unwrap_or("?"), "Agent started.");
    Ok(Some(Daemon {
        settings,
        dir,
        state,
        client,
        refusals: 0,
        cache: None,
        report_backoff: Backoff::default(),
        retry_report_at: None,
        scan: None,
    }))
}

/// A ticker every `every`, first after one period.
fn ticker(every: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

impl Daemon {
    /// The heartbeat interval: the one set in the settings when there is one (it wins
    /// over the collector's), else the one the collector last gave, else 60 s.
    fn heartbeat_every(&self) -> Duration {
        self.settings.heartbeat_interval.unwrap_or_else(|| {
            self.state
                .heartbeat_interval_secs
                .map_or(DEFAULT_HEARTBEAT, Duration::from_secs)
        })
    }

    /// The loop: file events (debounced), finished scans, report retries, heartbeats
    /// and rescans, until `shutdown`.
    async fn serve(
        &mut self,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
        mut events: mpsc::UnboundedReceiver<Vec<PathBuf>>,
        watch: &mut Watch,
    ) -> Result<(), Error> {
        let mut heartbeat_every = self.heartbeat_every();
        let mut heartbeat = ticker(heartbeat_every);
        let mut rescan = ticker(self.settings.rescan_interval);
        let mut debounce: Option<Instant> = None;
        let mut changed: Vec<PathBuf> = Vec::new();
        let mut full_rescan_needed = false;
        loop {
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                Some(paths) = events.recv() => {
                    full_rescan_needed |= paths.is_empty();
                    changed.extend(paths);
                    debounce = Some(Instant::now() + DEBOUNCE);
                }
                () = sleep_until(debounce.unwrap_or(far)), if debounce.is_some() => {
                    debounce = None;
                    let paths = std::mem::take(&mut changed);
                    let paths = if std::mem::take(&mut full_rescan_needed) { Vec::new() } else { paths };
                    self.start_scan(false, paths);
                }
                result = scan_finished(&mut self.scan), if self.scan.is_some() => {
                    self.scan_done(result)?;
                    // What the last scan found: the spooled report is gone once accepted.
                    let found = self.cache.clone().unwrap_or_default();
                    self.state.watched_dirs = watch.follow(&scan_options(&self.settings), &found);
                    if self.retry_report_at.is_some_and(|at| at <= Instant::now()) {
                        self.send_pending().await?;
                    }
                }
                () = sleep_until(self.retry_report_at.unwrap_or(far)), if self.retry_report_at.is_some() => {
                    self.send_pending().await?;
                }
                _ = heartbeat.tick() => {
                    self.heartbeat().await?;
                    if self.heartbeat_every() != heartbeat_every {
                        heartbeat_every = self.heartbeat_every();
                        tracing::debug!(secs = heartbeat_every.as_secs(), "Heartbeat interval set by the collector.");
                        heartbeat = ticker(heartbeat_every);
                    }
                }
                _ = rescan.tick() => self.start_scan(true, Vec::new()),
            }
        }
    }
}

/// Once enrolled (now or before), the enroll secret is no longer needed anywhere:
/// delete the one kept in the state dir and take it out of every config file that
/// holds it.
fn consume_enroll_secret(dir: &StateDir, config_files: &[PathBuf]) {
    if let Err(e) = dir.forget_enroll_secret() {
        tracing::warn!(error = %e, "The kept enroll secret could not be deleted.");
    }
    for file in config_files {
        let shown = crate::printable::escape(&file.to_string_lossy()).into_owned();
        match mcpwatch_installer::config::remove_enroll_secret(file) {
            Ok(true) => {
                tracing::info!(file = %shown, "Enrolled: the enroll secret was removed from the config file.")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(file = %shown, error = %e, "Enrolled, but the enroll secret could not be removed from the config file; remove it yourself.")
            }
        }
    }
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
            Err(e) => {
                dir.forget_enroll_secret()?;
                let mut state = dir.load()?;
                state.last_error = Some(format!("enrollment refused: {e}"));
                dir.save(&state)?;
                return Err(Error::Enroll(e));
            }
        }
    }
}

/// The agent's runtime: one thread; the work is waiting.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Ctrl-C, or SIGTERM where there is one (what service managers send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
