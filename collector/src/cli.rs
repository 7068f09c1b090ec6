//! The command line: `serve`, the upkeep commands (`backup`, `restore`, `check`,
//! `compact`) and `version`. Every setting is a flag with an
//! environment variable; the flag wins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Args, Parser, Subcommand};

use crate::auth::tokens::TokenService;
use crate::config::{self, Settings};
use crate::logging::LogFormat;
use crate::state::AppState;
use crate::store::redb::RedbStore;

/// The exit code for a configuration that cannot work (sysexits EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

#[derive(Parser, Debug)]
#[command(
    name = "mcpwatch-collector",
    version,
    about = "Collects MCP server inventories from mcpwatch agents, scores their risk and raises alerts",
    long_about = "Collects MCP server inventories from mcpwatch agents, scores their risk and raises alerts.\n\n\
        One self-hosted binary: a JSON API over HTTP with an embedded database (one redb file in the data dir), \
        or PostgreSQL (--database-url) for several collectors on one database."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log level or filter (e.g. `info`, `mcpwatch_collector=debug`); RUST_LOG wins when set.
    #[arg(long, global = true, env = "MCPWATCH_LOG", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "MCPWATCH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server.
    Serve(Box<ServeArgs>),
    /// Back up the database and the token-signing key into one file, while the
    /// collector serves (it takes the snapshot) or while it is stopped.
    Backup {
        #[command(flatten)]
        dir: DataDirArg,
        /// The backup file to write (a tar; must not exist yet).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Restore a backup into a data dir (the collector stopped). Agents keep their
    /// keys and enrollments; they send their full inventory at their next report.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        #[command(flatten)]
        dir: DataDirArg,
        /// Replace a database and key already in the data dir.
        #[arg(long)]
        force: bool,
    },
    /// Check that the database opens and that its counts and indexes agree with its
    /// records (exit 0: consistent, 1: not, with what is wrong). Prints each table's
    /// entries and bytes, and the file's size, first.
    Check {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Give the database's free space back to the file system (the collector stopped).
    Compact {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Copy a stopped collector's data dir into PostgreSQL (then serve with
    /// --database-url). Resumable: run it again after an interruption; records already
    /// copied are kept. Every table's count is compared at the end.
    MigrateStore {
        /// The data dir to copy from (its collector stopped).
        #[arg(long, value_name = "DIR")]
        from_data_dir: PathBuf,
        /// The database to copy into: postgres://user@host:5432/dbname
        #[arg(
            long,
            value_name = "URL",
            env = "MCPWATCH_DATABASE_URL",
            hide_env_values = true
        )]
        to: String,
        /// A file holding the database password (its first line).
        #[arg(long, env = "MCPWATCH_DATABASE_PASSWORD_FILE")]
        database_password_file: Option<PathBuf>,
        /// PEM certificates to trust for the database's TLS (default: the system's).
        #[arg(long, env = "MCPWATCH_DATABASE_CA_FILE")]
        database_ca_file: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}

#[derive(Args, Debug)]
pub struct DataDirArg {
    /// The collector's data dir [default: the OS data dir + mcpwatch].
    #[arg(long, env = "MCPWATCH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    fn resolve(&self) -> Result<PathBuf, Failure> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => config::default_data_dir().map_err(|e| Failure {
                error: e.into(),
                code: EXIT_CONFIG,
            }),
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port; the address is printed at start.
    #[arg(long, env = "MCPWATCH_LISTEN", default_value = config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Directory for the database and the token-signing key [default: the OS data dir + mcpwatch].
    #[arg(long, env = "MCPWATCH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Let anyone register; each registration creates its own organisation. Without it,
    /// only the first registration is accepted (it creates the organisation and its admin).
    #[arg(long, env = "MCPWATCH_OPEN_REGISTRATION", action = ArgAction::Set, num_args = 0..=1,
        default_value = "false", default_missing_value = "true")]
    pub open_registration: bool,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating reverse
    /// proxy). Not needed with --tls-cert and --tls-key.
    #[arg(long, env = "MCPWATCH_ALLOW_INSECURE_HTTP", action = ArgAction::Set, num_args = 0..=1,
        default_value = "false", default_missing_value = "true")]
    pub allow_insecure_http: bool,
    /// Comma-separated origins allowed by CORS (`*` for any, without credentials).
    #[arg(long, env = "CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Seconds between agent heartbeats, told to each agent (5–86400); an agent is
    /// offline after three missed intervals.
    #[arg(long, env = "MCPWATCH_HEARTBEAT_INTERVAL", default_value_t = config::DEFAULT_HEARTBEAT_SECS)]
    pub heartbeat_interval: u64,
    /// Seconds an agent may be silent before its servers are shown as dormant (they
    /// are active again as soon as it is heard from).
    #[arg(long, env = "MCPWATCH_DORMANT_AFTER", default_value_t = config::DEFAULT_DORMANT_AFTER_SECS)]
    pub dormant_after: u64,
    /// Requests per minute allowed for each agent API key (answered 429 beyond).
    #[arg(long, env = "MCPWATCH_AGENT_RATE_LIMIT", default_value_t = config::DEFAULT_AGENT_REQUESTS_PER_MINUTE)]
    pub agent_rate_limit: u32,
    /// Largest request body accepted, in bytes (answered 413 beyond).
    #[arg(long, env = "MCPWATCH_MAX_BODY_BYTES", default_value_t = config::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// The database's page cache in MiB (4–1048576): pages read are kept in memory up
    /// to this much; most of the collector's memory on a large inventory. Default:
    /// 1/32 of this machine's memory (or container limit), between 32 and 128.
    #[arg(long, env = "MCPWATCH_CACHE_MB", default_value_t = crate::store::redb::default_cache_mb() as u64,
        value_parser = clap::value_parser!(u64).range(4..=1_048_576))]
    pub cache_mb: u64,
    /// Days the audit log keeps an entry (1–36500); older ones are removed hourly.
    #[arg(long, env = "MCPWATCH_RETAIN_AUDIT_DAYS", default_value_t = crate::audit::DEFAULT_RETAIN_DAYS,
        value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retain_audit_days: u32,
    /// Days a dormant server is kept after it was last seen (0–36500); then it is
    /// deleted with its history and alerts (hourly, and at start). 0: at the next pass.
    #[arg(long, env = "MCPWATCH_RETAIN_DORMANT_DAYS", default_value_t = config::DEFAULT_RETAIN_DORMANT_DAYS,
        value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub retain_dormant_days: u32,
    /// Days a dismissed alert is kept after its dismissal (0–36500); then it is
    /// deleted (hourly, and at start). Open alerts are never deleted by age.
    #[arg(long, env = "MCPWATCH_RETAIN_ALERTS_DAYS", default_value_t = config::DEFAULT_RETAIN_ALERTS_DAYS,
        value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub retain_alerts_days: u32,
    /// Let notification channels send to loopback, private (10/8, 172.16/12, 192.168/16,
    /// fc00::/7), link-local and metadata addresses, and over plain http:// to them.
    /// Needed for on-premises receivers; without it such targets are refused when a
    /// channel is saved and again at every send.
    #[arg(long, env = "MCPWATCH_ALLOW_PRIVATE_TARGETS", action = ArgAction::Set, num_args = 0..=1,
        default_value = "false", default_missing_value = "true")]
    pub allow_private_targets: bool,
    /// The SMTP server email channels send through: `smtp://[user[:password]@]host[:port]`
    /// (STARTTLS, required; port 587), `smtps://...` (TLS; port 465), or
    /// `smtp://host:25?tls=none` for a relay without TLS (no password then, unless loopback).
    #[arg(long, env = "MCPWATCH_SMTP_URL", requires = "smtp_from")]
    pub smtp_url: Option<String>,
    /// A file holding the SMTP password (wins over a password in --smtp-url; one line).
    #[arg(long, env = "MCPWATCH_SMTP_PASSWORD_FILE", requires = "smtp_url")]
    pub smtp_password_file: Option<PathBuf>,
    /// The sender address of notification mail.
    #[arg(long, env = "MCPWATCH_SMTP_FROM", requires = "smtp_url")]
    pub smtp_from: Option<String>,
    /// The bearer token Prometheus sends to `GET /metrics`. Without it, `/metrics`
    /// answers loopback clients only.
    #[arg(long, env = "MCPWATCH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first);
    /// reloaded on SIGHUP and when the file changes. Needs --tls-key.
    #[arg(long, env = "MCPWATCH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (RSA, ECDSA or Ed25519) of --tls-cert.
    #[arg(long, env = "MCPWATCH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The address people reach this collector at (e.g. https://mcpwatch.example.com/),
    /// for links in notifications.
    #[arg(long, env = "MCPWATCH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Keep everything in PostgreSQL instead of the data dir's embedded database:
    /// `postgres://user@host:5432/dbname?sslmode=require` (sslmode disable, prefer or
    /// require; TLS certificates are verified). Several collectors can share one
    /// database behind a load balancer. The schema is created or migrated at start.
    #[arg(long, env = "MCPWATCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A file holding the database password (its first line; wins over the URL's).
    #[arg(
        long,
        env = "MCPWATCH_DATABASE_PASSWORD_FILE",
        requires = "database_url"
    )]
    pub database_password_file: Option<PathBuf>,
    /// PEM certificates to trust for the database's TLS (default: the system's).
    #[arg(long, env = "MCPWATCH_DATABASE_CA_FILE", requires = "database_url")]
    pub database_ca_file: Option<PathBuf>,
}

/// Why the command failed, with the exit code to use.
pub struct Failure {
    pub error: anyhow::Error,
    pub code: u8,
}

impl Cli {
    pub fn run(self) -> Result<(), Failure> {
        match self.command {
            Command::Version => {
                #[allow(clippy::print_stdout)]
                {
                    println!("mcpwatch-collector {}", env!("CARGO_PKG_VERSION"));
                }
                Ok(())
            }
            Command::Backup { dir, output } => {
                let rows = crate::upkeep::backup(&dir.resolve()?, &output).map_err(failed)?;
                say(&format!("backed up {rows} rows to {}", output.display()));
                Ok(())
            }
            Command::Restore { input, dir, force } => {
                let dir = dir.resolve()?;
                let rows = crate::upkeep::restore(&input, &dir, force).map_err(failed)?;
                say(&format!(
                    "restored {rows} rows into {}; start the collector, and agents will send their inventories at their next report",
                    dir.display()
                ));
                Ok(())
            }
            Command::Check { dir } => {
                let dir = dir.resolve()?;
                let checked = crate::upkeep::check(&dir).map_err(failed)?;
                say(&space_table(&checked.space, &dir));
                let problems = checked.problems;
                if problems.is_empty() {
                    say("consistent: the counts and indexes agree with the records");
                    return Ok(());
                }
                Err(Failure {
                    error: anyhow::anyhow!("not consistent:\n  {}", problems.join("\n  ")),
                    code: 1,
                })
            }
            Command::MigrateStore {
                from_data_dir,
                to,
                database_password_file,
                database_ca_file,
            } => {
                let options = crate::store::postgres::PgOptions {
                    url: to,
                    password_file: database_password_file,
                    ca_file: database_ca_file,
                };
                migrate_store(&from_data_dir, &options)
            }
            Command::Compact { dir } => {
                let (before, after) = crate::upkeep::compact(&dir.resolve()?).map_err(failed)?;
                say(&format!("compacted: {before} bytes before, {after} after"));
                Ok(())
            }
            Command::Serve(args) => {
                let settings = args.settings().map_err(|e| Failure {
                    error: e,
                    code: EXIT_CONFIG,
                })?;
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .max_blocking_threads(BLOCKING_THREADS)
                    .build()
                    .context("starting the async runtime")
                    .map_err(|error| Failure { error, code: 1 })?;
                runtime.block_on(serve(settings))
            }
        }
    }
}

/// Threads for the store's reads (page and scan queries, exports) and other blocking
/// work. Beyond a few per core they add no throughput, and each one keeps its own
/// allocator pages: tokio's default of 512 let 64 concurrent queries grow the
/// collector by some 100 MB (measured with the load generator at 1,000,000 servers).
const BLOCKING_THREADS: usize = 32;

impl ServeArgs {
    fn settings(self) -> Result<Settings, anyhow::Error> {
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => config::default_data_dir()?,
        };
        let mut settings = Settings::new(self.listen, data_dir);
        settings.open_registration = self.open_registration;
        settings.allow_insecure_http = self.allow_insecure_http;
        settings.cors_origins = config::parse_origins(&self.cors_origins);
        settings.heartbeat_interval = Duration::from_secs(self.heartbeat_interval);
        settings.offline_after = settings.heartbeat_interval * 3;
        settings.dormant_after = Duration::from_secs(self.dormant_after.max(1));
        settings.agent_requests_per_minute = self.agent_rate_limit.max(1);
        settings.max_body_bytes = self.max_body_bytes.max(1024);
        settings.notify.allow_private_targets = self.allow_private_targets;
        settings.retain_audit_days = self.retain_audit_days;
        settings.retain_dormant_days = self.retain_dormant_days;
        settings.retain_alerts_days = self.retain_alerts_days;
        settings.cache_mb = usize::try_from(self.cache_mb).unwrap_or(usize::MAX);
        settings.metrics_token = self
            .metrics_token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            settings.tls = Some(crate::tls::TlsFiles { cert, key });
        }
        if let Some(url) = self
            .public_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            let mut parsed = reqwest::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .with_context(|| format!("--public-url: {url:?} is not an http(s) URL"))?;
            if !parsed.path().ends_with('/') {
                let path = format!("{}/", parsed.path());
                parsed.set_path(&path);
            }
            settings.notify.public_url = Some(parsed);
        }
        if let (Some(url), Some(from)) = (self.smtp_url, self.smtp_from) {
            let password = match &self.smtp_password_file {
                None => None,
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| {
                            format!("reading --smtp-password-file {}", path.display())
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                ),
            };
            settings.notify.smtp = Some(crate::notify::email::SmtpSettings {
                url,
                password,
                from,
            });
        }
        settings.database = self
            .database_url
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty())
            .map(|url| crate::store::postgres::PgOptions {
                url,
                password_file: self.database_password_file,
                ca_file: self.database_ca_file,
            });
        settings.validate()?;
        Ok(settings)
    }
}

fn failed(e: crate::upkeep::UpkeepError) -> Failure {
    Failure {
        error: e.into(),
        code: 1,
    }
}

/// `check`'s table of the tables, largest first, and the file's size.
fn space_table(space: &[crate::store::TableSpace], dir: &std::path::Path) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<22} {:>12} {:>16} {:>16}\n",
        "table", "entries", "stored bytes", "B-tree overhead"
    );
    for t in space {
        let _ = writeln!(
            out,
            "{:<22} {:>12} {:>16} {:>16}",
            t.table, t.entries, t.stored_bytes, t.overhead_bytes
        );
    }
    let file = dir.join(crate::store::redb::DB_FILE);
    let length = std::fs::metadata(&file).map_or(0, |m| m.len());
    let _ = write!(
        out,
        "{}: {length} bytes, {} on disk",
        file.display(),
        crate::store::redb::maintenance::disk_bytes(&file)
    );
    out
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// Make the data dir (and its parents), owner-only.
pub(crate) fn create_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

async fn serve(settings: Settings) -> Result<(), Failure> {
    let config_failure = |error: anyhow::Error| Failure {
        error,
        code: EXIT_CONFIG,
    };
    create_data_dir(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))
        .map_err(config_failure)?;
    let (store, tokens) = open_store(&settings).await.map_err(config_failure)?;
    let tls = match &settings.tls {
        None => None,
        Some(files) => Some(Arc::new(
            crate::tls::Tls::new(files.clone()).map_err(|e| config_failure(e.into()))?,
        )),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))
        .map_err(|error| Failure { error, code: 1 })?;
    let addr = listener.local_addr().map_err(|e| Failure {
        error: e.into(),
        code: 1,
    })?;
    let notifier = crate::notify::send::Notifier::new(&settings.notify)
        .map_err(|e| config_failure(e.into()))?;
    let data_dir = settings.data_dir.clone();
    let state = Arc::new(AppState::new(store, tokens, settings, Arc::new(notifier)));
    #[allow(clippy::print_stdout)]
    {
        // Tests and scripts read this line to learn the port.
        println!("mcpwatch-collector listening on {scheme}://{addr}");
        println!("data dir: {}", data_dir.display());
    }
    tracing::info!(address = %addr, data_dir = %data_dir.display(), "Collector started.");
    crate::server::serve(state, listener, tls, shutdown_signal())
        .await
        .context("serving")
        .map_err(|error| Failure { error, code: 1 })?;
    tracing::info!("Collector stopped.");
    Ok(())
}

/// Run `migrate-store` and say what it copied.
fn migrate_store(
    from: &std::path::Path,
    options: &crate::store::postgres::PgOptions,
) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(|error| Failure { error, code: 1 })?;
    let summary = runtime
        .block_on(crate::move_store::run(from, options))
        .map_err(|e| Failure {
            code: match e {
                crate::move_store::MoveError::Open(_) => EXIT_CONFIG,
                _ => 1,
            },
            error: e.into(),
        })?;
    for (table, held, copied) in &summary.tables {
        say(&format!("{table}: {held} records, {copied} copied now"));
    }
    if summary.key_differs {
        say(
            "note: the database already had another token-signing key, which stays: people sign in again; agents keep working",
        );
    }
    say("copied and checked: serve with --database-url to use it");
    Ok(())
}

/// The store the settings choose (PostgreSQL, else redb in the data dir) and the
/// token service with its signing key (shared through PostgreSQL by every instance,
/// else the data dir's key file).
async fn open_store(
    settings: &Settings,
) -> Result<(Arc<dyn crate::store::Store>, TokenService), anyhow::Error> {
    let Some(options) = &settings.database else {
        let store = RedbStore::open_with_cache(&settings.data_dir, settings.cache_mb)?;
        let tokens = TokenService::load_or_create(&settings.data_dir)?;
        return Ok((Arc::new(store), tokens));
    };
    let store = crate::store::postgres::PgStore::connect(options).await?;
    let tokens = TokenService::shared(&store).await?;
    Ok((Arc::new(store), tokens))
}

async fn shutdown_signal() {
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
