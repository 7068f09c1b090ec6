//! Serving: the accept loop (hyper HTTP/1 with header-read and keep-alive limits),
//! graceful shutdown, and the background tasks that run beside it.

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

use crate::jobs;
use crate::router;
use crate::state::SharedState;

/// How long the headers of a request may take to arrive.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serve the API on `listener` until `shutdown` completes, then finish in-flight
/// requests (up to a grace period) and flush agent presence.
pub async fn serve(
    state: SharedState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = router::build(state.clone());
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
    let jobs = tokio::spawn(jobs::run(Arc::clone(&state)));
    let deliveries = tokio::spawn(crate::notify::worker::run(
        Arc::clone(&state.store),
        Arc::clone(&state.notifier),
    ));
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
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %peer, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    tracing::info!("Shutting down: finishing in-flight requests.");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Some connections did not finish within the grace period.");
    }
    jobs.abort();
    deliveries.abort();
    state.presence.flush(state.store.as_ref()).await;
    state.token_use.flush(state.store.as_ref()).await;
    Ok(())
}
