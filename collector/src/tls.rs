//! HTTPS: the certificate chain and private key from PEM files (RSA, ECDSA or Ed25519
//! keys), served with rustls, and reloaded on SIGHUP and when either file changes. A
//! new pair that cannot be used is logged and the old one kept; connections already
//! open are never dropped (a new pair serves new handshakes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// The certificate and key files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("{0} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoKey(String),
    #[error("the key in {key} cannot be used with the certificate in {cert}: {message}")]
    Unusable {
        cert: String,
        key: String,
        message: String,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Read and check a certificate chain and its key.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let show = |p: &Path| p.display().to_string();
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| TlsError::Read {
            path: show(p),
            message: e.to_string(),
        })
    };
    let cert_pem = read(&files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read {
            path: show(&files.cert),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(show(&files.cert)));
    }
    let key_pem = read(&files.key)?;
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey(show(&files.key)))?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Unusable {
            cert: show(&files.cert),
            key: show(&files.key),
            message: e.to_string(),
        })?;
    Ok(Arc::new(certified))
}

/// The pair being served, swapped by a reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.0.read() {
            Ok(key) => Arc::clone(&key),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        })
    }
}

/// What the server accepts TLS connections with.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    current: Arc<Current>,
    files: TlsFiles,
}

impl Tls {
    /// Load the pair; ALPN offers HTTP/1.1.
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let current = Arc::new(Current(RwLock::new(load(&files)?)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Unusable {
                cert: files.cert.display().to_string(),
                key: files.key.display().to_string(),
                message: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            files,
        })
    }

    /// Load the files again; on success new handshakes get the new pair, else the old
    /// one stays and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let next = load(&self.files)?;
        match self.current.0.write() {
            Ok(mut key) => *key = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    /// Reload on SIGHUP and when the files (or the links to them) change, until the
    /// process ends.
    pub fn watch(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(8);
        let watcher = file_watcher(&self.files, tx.clone());
        #[cfg(unix)]
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while hup.recv().await.is_some() {
                    if tx.send("SIGHUP").await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        tokio::spawn(async move {
            let _watcher = watcher;
            while let Some(why) = rx.recv().await {
                // A certificate and its key are often written one after the other:
                // wait for the writes to settle, then read both once.
                tokio::time::sleep(Duration::from_millis(300)).await;
                while rx.try_recv().is_ok() {}
                match self.reload() {
                    Ok(()) => {
                        tracing::info!(trigger = why, cert = %self.files.cert.display(), "TLS certificate reloaded.")
                    }
                    Err(e) => {
                        tracing::error!(trigger = why, error = %e, "The new TLS certificate cannot be used; still serving the previous one.")
                    }
                }
            }
        })
    }
}

/// Watch the directories of the files (editors and certbot replace files rather than
/// write them); `None` where the platform cannot watch (SIGHUP still works).
fn file_watcher(
    files: &TlsFiles,
    tx: tokio::sync::mpsc::Sender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let names = [files.cert.clone(), files.key.clone()];
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|p| {
            names
                .iter()
                .any(|n| p == n || p.file_name() == n.file_name())
        }) {
            let _ = tx.try_send("file change");
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "Cannot watch the TLS files; reload them with SIGHUP."))
    .ok()?;
    let mut dirs: Vec<PathBuf> = [&files.cert, &files.key]
        .iter()
        .map(|p| {
            p.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        })
        .collect();
    dirs.dedup();
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "Cannot watch the TLS files; reload them with SIGHUP.");
        }
    }
    Some(watcher)
}
