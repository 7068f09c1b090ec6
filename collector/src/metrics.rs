//! Prometheus metrics (`GET /metrics`, the OpenMetrics text format), all named
//! `mcpwatch_*`: counters and histograms updated where things happen (a few atomic
//! operations per request), and gauges of the fleet read when scraped.
//!
//! `/metrics` answers a bearer token equal to `--metrics-token`; without that setting
//! it answers loopback clients only, and not a request a proxy forwarded (one with a
//! `Forwarded`, `X-Forwarded-For` or `X-Real-IP` header): behind a reverse proxy on
//! the same machine every client looks like loopback.

use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::ClientAddr;
use crate::api::error::ApiError;
use crate::state::SharedState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Level {
    pub level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabel {
    pub severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentState {
    pub state: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn batch_sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// Every metric of the collector.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: Histograms<RouteLabels>,
    pub heartbeats: Counter,
    pub reports: Counter,
    pub servers_ingested: Counter,
    pub commit_duration: Histogram,
    pub commit_batch: Histogram,
    pub signatures: Family<Outcome, Counter>,
    pub deliveries: Family<Outcome, Counter>,
    agents: Family<AgentState, Gauge>,
    servers: Family<Level, Gauge>,
    open_alerts: Family<SeverityLabel, Gauge>,
    outbox_depth: Gauge,
    database_bytes: Gauge,
    resident_bytes: Gauge,
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    fn new() -> Self {
        Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency as fn() -> Histogram),
            heartbeats: Counter::default(),
            reports: Counter::default(),
            servers_ingested: Counter::default(),
            commit_duration: latency(),
            commit_batch: batch_sizes(),
            signatures: Family::default(),
            deliveries: Family::default(),
            agents: Family::default(),
            servers: Family::default(),
            open_alerts: Family::default(),
            outbox_depth: Gauge::default(),
            database_bytes: Gauge::default(),
            resident_bytes: Gauge::default(),
            cpu_seconds: Gauge::default(),
            registry: Registry::with_prefix("mcpwatch"),
        }
        .registered()
    }

    /// Every metric in the registry, with its help text.
    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            self.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route and method",
            self.http_duration.clone(),
        );
        r.register(
            "heartbeats",
            "Agent heartbeats accepted",
            self.heartbeats.clone(),
        );
        r.register("reports", "Agent reports accepted", self.reports.clone());
        r.register(
            "servers_ingested",
            "Servers received in accepted reports",
            self.servers_ingested.clone(),
        );
        r.register(
            "store_commit_duration_seconds",
            "Time to run and commit one write batch",
            self.commit_duration.clone(),
        );
        r.register(
            "store_commit_batch_size",
            "Writes committed together in one transaction",
            self.commit_batch.clone(),
        );
        r.register(
            "signature_checks",
            "Agent request signatures checked, by outcome (verified, refused)",
            self.signatures.clone(),
        );
        r.register(
            "notification_deliveries",
            "Delivery attempts to notification channels, by outcome (delivered, retry, failed)",
            self.deliveries.clone(),
        );
        r.register(
            "agents",
            "Agents by state (online, offline), when scraped",
            self.agents.clone(),
        );
        r.register(
            "servers",
            "Stored servers by risk level, when scraped",
            self.servers.clone(),
        );
        r.register(
            "open_alerts",
            "Open alerts by severity, when scraped",
            self.open_alerts.clone(),
        );
        r.register(
            "notification_outbox_depth",
            "Deliveries waiting to be sent, when scraped",
            self.outbox_depth.clone(),
        );
        r.register(
            "database_size_bytes",
            "The database's size on disk (the redb file's allocated blocks, or pg_database_size)",
            self.database_bytes.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory of the collector process",
            self.resident_bytes.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "CPU time used by the collector process (user and system)",
            self.cpu_seconds.clone(),
        );
        self
    }

    /// One answered request.
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A signature check's outcome.
    pub fn signature(&self, verified: bool) {
        let outcome = if verified { "verified" } else { "refused" };
        self.signatures.get_or_create(&Outcome { outcome }).inc();
    }

    /// A delivery attempt's outcome: `delivered`, `retry` or `failed`.
    pub fn delivery(&self, outcome: &'static str) {
        self.deliveries.get_or_create(&Outcome { outcome }).inc();
    }
}

/// The collector's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The layer that counts and times every request by its route (the matched path,
/// never the raw one, which holds ids).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str)
        .to_owned();
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    METRICS.request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Refresh the gauges read at scrape time.
async fn refresh(state: &SharedState) -> Result<(), ApiError> {
    let m = &*METRICS;
    let fleet = state.store.fleet_gauges().await?;
    for (level, n) in [
        ("critical", fleet.servers.critical),
        ("high", fleet.servers.high),
        ("medium", fleet.servers.medium),
        ("low", fleet.servers.low),
    ] {
        m.servers.get_or_create(&Level { level }).set(gauge(n));
    }
    for (severity, n) in ["critical", "high", "medium", "low"]
        .into_iter()
        .zip(fleet.open_alerts)
    {
        m.open_alerts
            .get_or_create(&SeverityLabel { severity })
            .set(gauge(n));
    }
    m.outbox_depth.set(gauge(fleet.pending_deliveries));
    let window =
        chrono::Duration::from_std(state.settings.offline_after).unwrap_or(chrono::Duration::MAX);
    let since = chrono::Utc::now()
        .checked_sub_signed(window)
        .unwrap_or_default();
    let online = state.presence.count_all_since(since);
    m.agents
        .get_or_create(&AgentState { state: "online" })
        .set(gauge(online));
    m.agents
        .get_or_create(&AgentState { state: "offline" })
        .set(gauge(fleet.agents.saturating_sub(online)));
    m.database_bytes.set(gauge(fleet.database_bytes));
    let (resident, cpu) = process_usage();
    m.resident_bytes.set(gauge(resident));
    m.cpu_seconds.set(cpu);
    Ok(())
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// This process's resident memory (bytes) and CPU time (seconds).
fn process_usage() -> (u64, f64) {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let pid = Pid::from_u32(std::process::id());
    let Ok(mut system) = System::new() else {
        return (0, 0.0);
    };
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory().with_cpu(),
    );
    system.process(pid).map_or((0, 0.0), |p| {
        (p.memory(), p.accumulated_cpu_time() as f64 / 1000.0)
    })
}

/// Whether the request may read the metrics: the configured token, or (without one)
/// a loopback client that no proxy forwarded.
fn allowed(token: Option<&str>, client: std::net::IpAddr, headers: &axum::http::HeaderMap) -> bool {
    match token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                crate::auth::keys::hash(given.trim()) == crate::auth::keys::hash(token)
            }),
        None => {
            let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
                .iter()
                .any(|h| headers.contains_key(*h));
            client.is_loopback() && !forwarded
        }
    }
}

/// `GET /metrics`.
pub async fn scrape(
    State(state): State<SharedState>,
    ClientAddr(client): ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if !allowed(state.settings.metrics_token.as_deref(), client, &headers) {
        return Err(match state.settings.metrics_token {
            Some(_) => {
                ApiError::unauthorized("metrics need Authorization: Bearer <the --metrics-token>")
            }
            None => ApiError::forbidden(
                "metrics answer loopback clients only (not requests a proxy forwarded); set --metrics-token to scrape from elsewhere",
            ),
        });
    }
    refresh(&state).await?;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &METRICS.registry).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the metrics could not be written",
        )
    })?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn without_a_token_only_loopback_reads_and_with_one_only_its_bearer() {
        let (lo, lan) = ("127.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap());
        assert!(allowed(None, lo, &headers(None)));
        assert!(allowed(None, "::1".parse().unwrap(), &headers(None)));
        assert!(!allowed(None, lan, &headers(Some("Bearer anything"))));
        let mut proxied = headers(None);
        proxied.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert!(
            !allowed(None, lo, &proxied),
            "a request a local proxy forwarded"
        );
        let mut proxied = headers(None);
        proxied.insert("forwarded", "for=203.0.113.9".parse().unwrap());
        assert!(!allowed(None, lo, &proxied));
        assert!(allowed(
            Some("s3cret"),
            lan,
            &headers(Some("Bearer s3cret"))
        ));
        assert!(
            !allowed(Some("s3cret"), lo, &headers(None)),
            "a token is asked of loopback too"
        );
        assert!(!allowed(
            Some("s3cret"),
            lan,
            &headers(Some("Bearer s3cre"))
        ));
        assert!(!allowed(
            Some("s3cret"),
            lan,
            &headers(Some("Basic s3cret"))
        ));
    }

    #[test]
    fn every_metric_is_named_mcpwatch() {
        METRICS.request("/health", "GET", 200, Duration::from_millis(3));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &METRICS.registry).unwrap();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("mcpwatch_"), "{line}");
        }
        assert!(
            text.contains(
                r#"mcpwatch_http_requests_total{route="/health",method="GET",status="200"}"#
            ),
            "{text}"
        );
    }
}
