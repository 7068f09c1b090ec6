//! Reaching the database: the URL (and a password from a file), TLS with rustls as
//! `sslmode` asks, the connection pool, and the first connection that migrates the
//! schema, with errors that say which of these failed.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Mutex, watch};

use super::migrate::{self, MigrateError};
use super::{PgStore, events, writer};

/// How long reaching the database may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for a pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Connections per instance.
const POOL_SIZE: usize = 16;

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// `postgres://user[:password]@host[:port]/dbname[?sslmode=disable|prefer|require]`
    /// (or the key=value form).
    pub url: String,
    /// A file holding the password (its first line), instead of the URL's.
    pub password_file: Option<PathBuf>,
    /// PEM certificates to trust for the database's TLS (else the system's roots).
    pub ca_file: Option<PathBuf>,
}

/// Why the PostgreSQL store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the database URL is not valid: {0} (expected postgres://user@host:port/dbname)")]
    Url(String),
    #[error("cannot read the database password file {path}: {message}")]
    PasswordFile { path: PathBuf, message: String },
    #[error("cannot use the database CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("cannot connect to the database at {target}: {message}")]
    Connect { target: String, message: String },
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Where `config` points, without its password.
fn target(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("(default)");
    let user = config.get_user().unwrap_or("(default)");
    format!("{host}:{port}, database {db} as {user}")
}

fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, OpenError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| OpenError::Url(format!("TLS setup: {e}")))?;
    let Some(path) = ca_file else {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        return builder
            .with_platform_verifier()
            .map(|b| b.with_no_client_auth())
            .map_err(|e| OpenError::Url(format!("TLS setup: {e}")));
    };
    let failed = |message: String| OpenError::CaFile {
        path: path.clone(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| failed(e.to_string()))?;
        roots.add(cert).map_err(|e| failed(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failed("it holds no PEM certificate".into()));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn password(path: &PathBuf) -> Result<String, OpenError> {
    let text = std::fs::read_to_string(path).map_err(|e| OpenError::PasswordFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

impl PgStore {
    /// Connect, migrate the schema, and start the writer and the event watcher.
    pub async fn connect(options: &PgOptions) -> Result<Self, OpenError> {
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| OpenError::Url(e.to_string()))?;
        if let Some(path) = &options.password_file {
            config.password(password(path)?);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("mcpwatch-collector");
        // Short queries only: JIT compiling one (tens of ms when an estimate runs
        // high) costs more than running it.
        let session = match config.get_options() {
            Some(given) => format!("{given} -c jit=off"),
            None => "-c jit=off".to_owned(),
        };
        config.options(&session);
        let where_to = target(&config);
        let tls =
            tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(options.ca_file.as_ref())?);
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| OpenError::Url(e.to_string()))?;
        let first = pool.get().await.map_err(|e| OpenError::Connect {
            target: where_to.clone(),
            message: connect_reason(&e),
        })?;
        let found = migrate::migrate(&first).await?;
        if found == 0 {
            tracing::info!(target = %where_to, "Created the mcpwatch schema in an empty database.");
        }
        drop(first);
        let (signal, _) = watch::channel(0);
        if let Ok(db) = pool.get().await {
            events::publish(&db, &signal).await;
        }
        tokio::spawn(events::watch_others(pool.clone(), signal.clone()));
        let writer = writer::Writer::start(pool.clone(), signal.clone());
        let nonces = super::nonces::Nonces::start(pool.clone());
        Ok(Self {
            pool,
            writer,
            events: signal,
            leader: Mutex::new(None),
            nonces,
        })
    }
}

/// The reason a first connection failed, in words (the driver's error chain).
fn connect_reason(e: &deadpool_postgres::PoolError) -> String {
    use std::error::Error as _;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
