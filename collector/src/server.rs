//! Serving: the accept loop (hyper HTTP/1 with header-read and keep-alive limits,
//! over TLS when configured), graceful shutdown, and the background tasks that run
//! beside it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::ingest::agent::Resumed;
use crate::jobs;
use crate::router;
use crate::state::SharedState;

/// How long the headers of a request may take to arrive.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serve the API on `listener` until `shutdown` completes, then finish in-flight
/// requests (up to a grace period) and flush agent presence.
pub async fn serve(
    state: SharedState,
    listener: TcpListener,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = router::build(state.clone());
    let resumed = what_was_heard(&state).await;
    let jobs = tokio::spawn(jobs::run(Arc::clone(&state), resumed));
    let deliveries = tokio::spawn(crate::notify::worker::run(
        Arc::clone(&state.store),
        Arc::clone(&state.notifier),
    ));
    let tls_reload = tls.as_ref().map(|t| Arc::clone(t).watch());
    #[cfg(unix)]
    let control = tokio::spawn(crate::upkeep::control(Arc::clone(&state)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return connection(&http, watcher, TokioIo::new(stream), service, peer).await;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    connection(&http, watcher, TokioIo::new(stream), service, peer).await
                }
                Ok(Err(e)) => tracing::debug!(error = %e, client = %peer, "TLS handshake failed."),
                Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out."),
            }
        });
    }
    drop(listener);
    if let Some(task) = tls_reload {
        task.abort();
    }
    tracing::info!("Shutting down: finishing in-flight requests.");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Some connections did not finish within the grace period.");
    }
    jobs.abort();
    deliveries.abort();
    #[cfg(unix)]
    {
        control.abort();
        let _ = std::fs::remove_file(state.settings.data_dir.join(crate::upkeep::CONTROL_SOCKET));
    }
    state.presence.flush(state.store.as_ref()).await;
    state.token_use.flush(state.store.as_ref()).await;
    Ok(())
}

/// What the store knows of agents heard from before this start, read before any
/// request is taken: presence for the dashboard, and how long nothing was heard (which
/// the sweep for silent agents does not count as silence).
async fn what_was_heard(state: &SharedState) -> Option<Resumed> {
    // Agents heard from within the offline window before a restart still count as
    // online on the dashboard, which counts from memory.
    let window =
        chrono::Duration::from_std(state.settings.offline_after).unwrap_or(chrono::Duration::MAX);
    let since = chrono::Utc::now()
        .checked_sub_signed(window)
        .unwrap_or_default();
    match state.store.agents_seen_since(since).await {
        Ok(known) => state.presence.load(known),
        Err(e) => tracing::warn!(error = %e, "Cannot read when agents were last seen."),
    }
    match state.store.newest_silent_since().await {
        Ok(last) => last.map(|last_heard| Resumed {
            started: chrono::Utc::now(),
            last_heard,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read when an agent was last heard from; the time before this start counts as silence.");
            None
        }
    }
}

/// Serve one connection until it ends or shutdown has waited for it.
async fn connection<I, S>(
    http: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    io: TokioIo<I>,
    service: S,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = watcher.watch(http.serve_connection(io, TowerToHyperService::new(service)));
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, client = %peer, "Connection ended with an error.");
    }
}
