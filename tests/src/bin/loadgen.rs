//! `mcpwatch-loadgen`: simulates many agents against a collector it starts itself (on
//! 127.0.0.1 with a temporary data dir) and prints throughput, errors and latency
//! percentiles per request kind; with `--baseline`, runs the same requests against a
//! bare hyper server that answers 200 without storage and prints the ratio, the figure
//! that holds on a noisy shared machine. Against the collector, one agent request in
//! [`TAMPER_EVERY`] is sent with a body other than the one it signed: it must be
//! refused (401) and must leave nothing behind. After the phases it checks that every
//! acknowledged report is stored and no tampered one is; it exits 1 when a request
//! failed that should not have, or the check finds a difference. On Linux each phase
//! also says where the CPU went: the server's CPU time per request, the cores the load
//! generator used, and the cores left idle (a serial stage, a hand-off or the disk
//! held the requests back).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::too_many_arguments
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ed25519_dalek::SigningKey;
use mcpwatch_protocol::signing;
use mcpwatch_tests::{TestCollector, rss_kib};
use serde_json::{Value, json};

/// The load generator shares the two cores with what it measures: the allocator the
/// collector uses keeps its own share smaller (glibc malloc was a seventh of its CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "mcpwatch-loadgen",
    about = "Load generator for mcpwatch-collector: throughput and latency per request kind",
    long_about = "Load generator for mcpwatch-collector: starts a collector on 127.0.0.1 with a \
temporary data dir, enrolls signing agents, runs one phase per request kind and prints \
throughput, errors and latency percentiles. One agent request in 1000 is tampered with and \
must be refused; afterwards the stored inventory is checked against what was acknowledged. \
Exits 1 when that reliability check fails. Results and commands: docs/performance.md."
)]
struct Args {
    /// Simulated agents (each enrolls with its own signing key).
    #[arg(long, default_value_t = 200, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    agents: usize,
    /// Seconds each phase (heartbeats, reports, queries) runs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// Requests in flight at once (agent requests: at most one per agent, as real agents).
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    concurrency: usize,
    /// Servers in each report.
    #[arg(long, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    servers: usize,
    /// Share of a report's servers that change from one report to the next (0–1).
    #[arg(long, default_value_t = 0.2, value_parser = parse_share)]
    changed_share: f64,
    /// Also run the same requests against a bare hyper server (its own process,
    /// answering 200 without storage) and print the collector/bare ratios.
    #[arg(long)]
    baseline: bool,
    /// Before the phases, enroll this many more agents and store one report of
    /// --servers servers from each, so the queries run over a large inventory
    /// (100000 with --servers 10: the 1,000,000-server query benchmark).
    #[arg(long, default_value_t = 0)]
    inventory_agents: usize,
    /// Run only these request kinds (comma-separated: heartbeat, report, query,
    /// query-p200, stats, top-risks, census); all of them when not given.
    #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
    kinds: Vec<Kind>,
    /// Run the collector on PostgreSQL: a server and a user who may create databases
    /// (a new database is made for the run), e.g. postgres://mcpwatch@127.0.0.1:5432/postgres.
    #[arg(long)]
    database_url: Option<String>,
    /// Collectors sharing the one database (needs --database-url): each simulated
    /// agent and analyst worker talks to one of them, as behind a load balancer.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=8))]
    instances: usize,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: be the bare server (print its address, serve until stdin closes).
    /// `--baseline` runs it as its own process, as the collector is.
    #[arg(long, hide = true)]
    serve_bare: bool,
}

fn parse_share(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{value:?} is not a share between 0 and 1")),
    }
}

fn parse_kind(name: &str) -> Result<Kind, String> {
    KINDS.into_iter().find(|k| k.name() == name).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        format!("unknown kind \"{name}\"; one of {}", names.join(", "))
    })
}

/// One agent request in this many is tampered with (against the collector). Each one
/// costs the collector its signature batch's saving, so it is kept rare, as it is on a
/// real fleet.
const TAMPER_EVERY: u64 = 1000;
/// How many agents share a package name (the census's fan-in).
const PACKAGE_SPREAD: usize = 500;
/// The server name a tampered report adds; it must never be stored.
const TAMPERED_NAME: &str = "tampered-by-loadgen";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Heartbeat,
    Report,
    /// `GET /mcp/servers` filtered by level and status, first page.
    Query,
    /// The same filters, a page far down the list.
    QueryDeep,
    /// `GET /dashboard/stats`.
    Stats,
    /// `GET /dashboard/top-risks`.
    TopRisks,
    /// `GET /mcp/census` by package, most hosts first.
    Census,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Heartbeat => "heartbeat",
            Self::Report => "report",
            Self::Query => "query",
            Self::QueryDeep => "query-p200",
            Self::Stats => "stats",
            Self::TopRisks => "top-risks",
            Self::Census => "census",
        }
    }

    /// The analyst's request of a query kind.
    fn query_path(self) -> Option<&'static str> {
        match self {
            Self::Query => Some("/mcp/servers?risk_level=medium&status=active&page=1&page_size=25"),
            Self::QueryDeep => {
                Some("/mcp/servers?risk_level=medium&status=active&page=200&page_size=25")
            }
            Self::Stats => Some("/dashboard/stats"),
            Self::TopRisks => Some("/dashboard/top-risks?limit=10"),
            Self::Census => Some("/mcp/census?group_by=package&page=1&page_size=25"),
            Self::Heartbeat | Self::Report => None,
        }
    }
}

const KINDS: [Kind; 7] = [
    Kind::Heartbeat,
    Kind::Report,
    Kind::Query,
    Kind::QueryDeep,
    Kind::Stats,
    Kind::TopRisks,
    Kind::Census,
];

struct Agent {
    key: String,
    signer: SigningKey,
    id: String,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Stats {
    kind: &'static str,
    target: &'static str,
    requests: usize,
    /// Tampered requests refused, as they must be.
    refused: usize,
    /// Requests that failed and should not have (or tampered ones accepted).
    errors: usize,
    per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Where the machine's CPU went while the phase ran (Linux; `None` elsewhere).
    cpu: Option<CpuShare>,
}

/// CPU use over a phase, in cores (1.0: one core busy the whole phase).
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct CpuShare {
    /// The server processes measured (the collectors, or the bare server).
    server_cores: f64,
    /// The server's CPU time per request, in microseconds.
    server_us_per_request: f64,
    /// This load generator.
    loadgen_cores: f64,
    /// No process at all: the machine waited (on a lock, a hand-off, the disk).
    idle_cores: f64,
}

/// CPU counters read from `/proc`, in clock ticks.
struct CpuClock {
    server: u64,
    loadgen: u64,
    idle: u64,
    at: Instant,
}

/// The kernel reports CPU times in USER_HZ ticks, 100 per second on every Linux
/// architecture (it is part of the kernel's ABI, whatever the scheduler's HZ).
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuClock {
    /// The counters now, for `server` processes; `None` without `/proc`.
    fn read(server: &[u32]) -> Option<Self> {
        let process = |path: String| -> Option<u64> {
            let stat = std::fs::read_to_string(path).ok()?;
            // The fields after the command (which may hold spaces) in parentheses;
            // utime and stime are the 14th and 15th of the whole line.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        };
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = machine
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        Some(Self {
            server: server
                .iter()
                .map(|pid| process(format!("/proc/{pid}/stat")))
                .sum::<Option<u64>>()?,
            loadgen: process("/proc/self/stat".to_owned())?,
            // idle and iowait
            idle: cpu.get(3)? + cpu.get(4)?,
            at: Instant::now(),
        })
    }

    /// The share of CPU each took since `start`, over `requests` requests.
    fn since(&self, start: &Self, requests: usize) -> CpuShare {
        let seconds = self.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let cores =
            |to: u64, from: u64| to.saturating_sub(from) as f64 / TICKS_PER_SECOND / seconds;
        let server_cores = cores(self.server, start.server);
        CpuShare {
            server_cores,
            server_us_per_request: server_cores * seconds * 1e6 / requests.max(1) as f64,
            loadgen_cores: cores(self.loadgen, start.loadgen),
            idle_cores: cores(self.idle, start.idle),
        }
    }
}

/// What a phase runs against: its name in the results and its processes.
struct Target<'a> {
    name: &'static str,
    bases: &'a [String],
    pids: Vec<u32>,
}

fn report_body(agent: usize, round: u64, servers: usize, changed_share: f64) -> Value {
    let changed = ((servers as f64) * changed_share).round() as usize;
    let list: Vec<Value> = (0..servers)
        .map(|i| {
            let version = if i < changed {
                format!("1.{round}.0")
            } else {
                "1.0.0".to_owned()
            };
            // Packages shared the way a fleet shares them: agents PACKAGE_SPREAD apart run
            // the same one, so census rows have many hosts and versions.
            let package = format!("load-pkg-{}-{i}", agent % PACKAGE_SPREAD);
            json!({
                "server_name": format!("server-{i}"),
                "command": "npx",
                "args": ["-y", format!("{package}@{version}"), "/home/user/project"],
                "package": { "ecosystem": "npm", "name": package, "version": version },
                "client": "cursor",
                "config_path": "/home/user/.cursor/mcp.json",
                "transport": "stdio",
                "env_vars": ["TOKEN"],
            })
        })
        .collect();
    json!({ "servers": list, "hostname": format!("host-{agent}"), "sequence": round })
}

async fn phase(
    http: &reqwest::Client,
    target: &Target<'_>,
    agents: &Arc<Vec<Agent>>,
    admin: &str,
    kind: Kind,
    args: &Args,
    acked: &Arc<std::sync::Mutex<Vec<Option<u64>>>>,
) -> Stats {
    let bases = target.bases;
    let cpu_before = CpuClock::read(&target.pids);
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Like real agents, each simulated agent has one request in flight at most: task t
    // speaks for agents t, t + tasks, t + 2 tasks, ... in turn.
    let workers = if kind.query_path().is_some() {
        args.concurrency
    } else {
        args.concurrency.min(agents.len())
    };
    for worker in 0..workers {
        // Each worker keeps to one instance, as a load balancer spreads connections.
        let (http, base, agents, admin, counter, acked) = (
            http.clone(),
            bases[worker % bases.len()].clone(),
            Arc::clone(agents),
            admin.to_owned(),
            Arc::clone(&counter),
            Arc::clone(acked),
        );
        let (servers, share) = (args.servers, args.changed_share);
        let tamper = target.name == "collector";
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut refused) = (0usize, 0usize);
            let mine: Vec<usize> = (worker..agents.len()).step_by(workers).collect();
            let mut turn = 0usize;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let i = mine[turn % mine.len()];
                let agent = &agents[i];
                let round = (turn / mine.len()) as u64 + 1;
                turn += 1;
                let t = Instant::now();
                let ok = match kind.query_path() {
                    Some(path) => {
                        http.get(format!("{base}{path}")).bearer_auth(&admin).send().await.map(|r| r.status().is_success()).unwrap_or(false)
                    }
                    None => {
                        let (path, body) = if kind == Kind::Heartbeat {
                            ("/agents/heartbeat", json!({ "hostname": format!("host-{i}"), "os_type": "linux", "agent_version": "load" }))
                        } else {
                            ("/mcp/report", report_body(i, round, servers, share))
                        };
                        if tamper && n % TAMPER_EVERY == TAMPER_EVERY - 1 {
                            let status = tampered_post(&http, &base, agent, path, &body).await;
                            if status == Some(reqwest::StatusCode::UNAUTHORIZED) {
                                refused += 1;
                                true
                            } else {
                                false
                            }
                        } else {
                            let ok = signed_post(&http, &base, agent, path, &body).await;
                            if ok
                                && kind == Kind::Report
                                && let Ok(mut a) = acked.lock()
                            {
                                a[i] = Some(a[i].map_or(round, |r| r.max(round)));
                            }
                            ok
                        }
                    }
                };
                latencies.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors, refused)
        }));
    }
    let mut all = Vec::new();
    let (mut errors, mut refused) = (0, 0);
    for t in tasks {
        let (l, e, r) = t.await.unwrap();
        all.extend(l);
        errors += e;
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_before
        .zip(CpuClock::read(&target.pids))
        .map(|(before, after)| after.since(&before, all.len()));
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Stats {
        kind: kind.name(),
        target: target.name,
        requests: all.len(),
        refused,
        errors,
        per_second: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: all.last().copied().unwrap_or(0) as f64 / 1000.0,
        cpu,
    }
}

/// POST `body` to `path` as `agent`, signed like the real agent; whether it was accepted.
async fn signed_post(
    http: &reqwest::Client,
    base: &str,
    agent: &Agent,
    path: &str,
    body: &Value,
) -> bool {
    post_signing(http, base, agent, path, body, None)
        .await
        .is_some_and(|status| status.is_success())
}

/// POST a body other than the one signed (a server added to it, or a field changed):
/// the collector must refuse it. Answers the status.
async fn tampered_post(
    http: &reqwest::Client,
    base: &str,
    agent: &Agent,
    path: &str,
    body: &Value,
) -> Option<reqwest::StatusCode> {
    let mut altered = body.clone();
    match altered.get_mut("servers").and_then(Value::as_array_mut) {
        Some(servers) => servers.push(json!({ "server_name": TAMPERED_NAME, "command": "sh" })),
        None => altered["hostname"] = json!(TAMPERED_NAME),
    }
    post_signing(http, base, agent, path, body, Some(&altered)).await
}

/// POST to `path` as `agent` with a signature of `signed`; the body sent is `sent` when
/// given (a tampered request), else `signed`. Answers the status, if any came back.
async fn post_signing(
    http: &reqwest::Client,
    base: &str,
    agent: &Agent,
    path: &str,
    signed: &Value,
    sent: Option<&Value>,
) -> Option<reqwest::StatusCode> {
    let bytes = serde_json::to_vec(signed).unwrap();
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).unwrap();
    let now = chrono::Utc::now().timestamp();
    let sig = signing::sign(&agent.signer, "POST", path, &bytes, now, nonce);
    let body = sent.map_or(bytes, |sent| serde_json::to_vec(sent).unwrap());
    http.post(format!("{base}{path}"))
        .header("x-api-key", &agent.key)
        .header(signing::SIGNATURE_HEADER, sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

/// Enroll agents `first..first + count` with `concurrency` requests in flight.
async fn enroll(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    first: usize,
    count: usize,
    concurrency: usize,
) -> Vec<Agent> {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(first..first + count)
        .map(|i| async move {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).unwrap();
            let signer = SigningKey::from_bytes(&seed);
            let body = json!({ "enroll_secret": secret, "public_key": signing::encode_public_key(&signer.verifying_key()), "hostname": format!("host-{i}") });
            let answer: Value = http
                .post(format!("{base}/agents/enroll"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            Agent {
                key: answer["api_key"].as_str().unwrap().to_owned(),
                signer,
                id: answer["agent_id"].as_str().unwrap().to_owned(),
            }
        })
        .buffered(concurrency)
        .collect()
        .await
}

/// Store one report from each of `--inventory-agents` more agents, in chunks.
async fn seed_inventory(http: &reqwest::Client, base: &str, secret: &str, args: &Args) {
    use futures_util::StreamExt as _;
    let started = Instant::now();
    let chunk = 10_000;
    let mut done = 0;
    while done < args.inventory_agents {
        let count = chunk.min(args.inventory_agents - done);
        let first = args.agents + done;
        let agents = enroll(http, base, secret, first, count, args.concurrency).await;
        let failures: usize = futures_util::stream::iter(agents.iter().enumerate())
            .map(|(k, agent)| async move {
                let body = report_body(first + k, 1, args.servers, args.changed_share);
                let ok = signed_post(http, base, agent, "/mcp/report", &body).await;
                usize::from(!ok)
            })
            .buffer_unordered(args.concurrency)
            .fold(0, |a, b| async move { a + b })
            .await;
        assert_eq!(failures, 0, "seeding reports failed");
        done += count;
        eprintln!(
            "  {} servers stored ({:.0} s)",
            done * args.servers,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Agents whose acknowledged report is not what the collector has: a server missing,
/// or the changed servers older than the newest acknowledged round.
async fn check_acknowledged(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    agents: &[Agent],
    acked: &std::sync::Mutex<Vec<Option<u64>>>,
    args: &Args,
) -> usize {
    let acknowledged: Vec<Option<u64>> = acked.lock().unwrap().clone();
    let changed = ((args.servers as f64) * args.changed_share).round() as usize;
    let mut missing = 0usize;
    for (agent, round) in agents.iter().zip(acknowledged.iter()) {
        let Some(round) = round else { continue };
        let page = get_json(
            http,
            &format!(
                "{base}/mcp/servers?agent_id={}&status=active&page_size=100",
                agent.id
            ),
            admin,
        )
        .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        // A report can be stored and its answer lost (a timeout): newer than acknowledged
        // is fine, older is not.
        let stored_round = items
            .iter()
            .find(|s| s["server_name"] == "server-0")
            .and_then(|s| s["args"][1].as_str())
            .and_then(|a| a.rsplit_once("@1."))
            .and_then(|(_, v)| v.trim_end_matches(".0").parse::<u64>().ok());
        let complete = page["total"].as_u64() == Some(args.servers as u64);
        let current = changed == 0 || stored_round.is_some_and(|r| r >= *round);
        if !complete || !current {
            missing += 1;
        }
    }
    missing
}

/// The database's size as the collector's metrics tell it (the redb file, or the
/// PostgreSQL database).
async fn database_size(http: &reqwest::Client, base: &str) -> u64 {
    let Ok(response) = http.get(format!("{base}/metrics")).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("mcpwatch_database_size_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// GET `url` as the analyst; the JSON answer.
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What tampered requests left behind: servers or hostnames they named.
async fn check_tampered(http: &reqwest::Client, base: &str, admin: &str) -> u64 {
    let servers = get_json(
        http,
        &format!("{base}/mcp/servers?search={TAMPERED_NAME}"),
        admin,
    )
    .await;
    let agents = get_json(http, &format!("{base}/agents/"), admin).await;
    let hosts = agents.as_array().map_or(0, |a| {
        a.iter().filter(|a| a["hostname"] == TAMPERED_NAME).count()
    });
    servers["total"].as_u64().unwrap_or(u64::MAX) + hosts as u64
}

/// A bare hyper server: 200 and `{}` for every request, no storage.
async fn bare_server() -> SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    use http_body_util::BodyExt as _;
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(hyper::body::Bytes::from_static(b"{}")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// `--serve-bare`: print the bare server's address, serve until stdin closes (the
/// load generator that started this process has gone).
async fn serve_bare() {
    let addr = bare_server().await;
    println!("{addr}");
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await;
}

/// The bare server as its own process (this program with `--serve-bare`), like the
/// collector: the client and the server do not share a runtime.
fn spawn_bare() -> (std::process::Child, SocketAddr) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--serve-bare")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().parse().unwrap();
    (child, addr)
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if args.serve_bare {
        runtime.block_on(serve_bare());
    } else {
        runtime.block_on(run(args));
    }
}

async fn run(args: Args) {
    // TestCollector talks with a blocking HTTP client: keep it off the async workers.
    assert!(
        args.instances == 1 || args.database_url.is_some(),
        "--instances needs --database-url"
    );
    let database = args.database_url.clone();
    let instances = args.instances;
    let (collectors, admin, secret) = tokio::task::spawn_blocking(move || {
        let database = database.map(|url| mcpwatch_tests::postgres::create_database(&url));
        let mut flags = vec!["--agent-rate-limit", "100000000", "--log-level", "warn"];
        if let Some(url) = &database {
            flags.extend(["--database-url", url.as_str()]);
        }
        let collectors: Vec<TestCollector> = (0..instances)
            .map(|_| TestCollector::start_embedded(&flags))
            .collect();
        let c = &collectors[0];
        c.register("load@example.com", "LoadPass123!", "Load");
        let admin = c.token("load@example.com", "LoadPass123!");
        let (_, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "load" }));
        let secret = secret["secret"].as_str().unwrap().to_owned();
        (collectors, admin, secret)
    })
    .await
    .unwrap();
    let bases: Vec<String> = collectors.iter().map(|c| c.base.clone()).collect();
    let base = bases[0].clone();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    eprintln!("Enrolling {} agents...", args.agents);
    let agents = enroll(&http, &base, &secret, 0, args.agents, args.concurrency).await;
    if args.inventory_agents > 0 {
        seed_inventory(&http, &base, &secret, &args).await;
        // The census counts new servers in behind the reports; a census read waits until
        // it has caught up, so that the phases run in a steady state.
        let started = Instant::now();
        for _ in 0..40 {
            let answered = http
                .get(format!("{base}/mcp/census?page_size=1"))
                .bearer_auth(&admin)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered {
                break;
            }
        }
        eprintln!(
            "  census caught up ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    let agents = Arc::new(agents);
    let acked = Arc::new(std::sync::Mutex::new(vec![None; args.agents]));
    let kinds: Vec<Kind> = if args.kinds.is_empty() {
        KINDS.to_vec()
    } else {
        args.kinds.clone()
    };
    let resident_mb = || -> f64 {
        collectors
            .iter()
            .filter_map(TestCollector::pid)
            .map(|pid| rss_kib(pid) as f64 / 1024.0)
            .sum()
    };
    // The collector's memory under load: its largest at the end of a phase.
    let mut under_load_mb = resident_mb();
    let mut results = Vec::new();
    let collector_target = Target {
        name: "collector",
        bases: &bases,
        pids: collectors.iter().filter_map(TestCollector::pid).collect(),
    };
    for &kind in &kinds {
        eprintln!(
            "Running {} against the collector for {} s...",
            kind.name(),
            args.duration
        );
        results.push(
            phase(
                &http,
                &collector_target,
                &agents,
                &admin,
                kind,
                &args,
                &acked,
            )
            .await,
        );
        under_load_mb = under_load_mb.max(resident_mb());
    }

    // Reliability: every agent with an acknowledged report has all its servers stored.
    let missing = check_acknowledged(&http, &base, &admin, &agents, &acked, &args).await;
    let tampered = check_tampered(&http, &base, &admin).await;

    if args.baseline {
        let (mut bare_process, addr) = spawn_bare();
        let bare = [format!("http://{addr}")];
        let bare_target = Target {
            name: "bare",
            bases: &bare,
            pids: vec![bare_process.id()],
        };
        let none = Arc::new(std::sync::Mutex::new(vec![None; args.agents]));
        for &kind in &kinds {
            eprintln!(
                "Running {} against the bare server for {} s...",
                kind.name(),
                args.duration
            );
            results.push(phase(&http, &bare_target, &agents, &admin, kind, &args, &none).await);
        }
        // Closing its stdin ends it.
        drop(bare_process.stdin.take());
        let _ = tokio::task::spawn_blocking(move || bare_process.wait()).await;
    }
    let collector_rss_mb = resident_mb();
    let database_mb = database_size(&http, &base).await as f64 / 1e6;
    // The embedded store's file is longer than what it takes on disk: redb sets its
    // length ahead of the pages it writes.
    let file_mb = std::fs::metadata(
        collectors[0]
            .data_dir
            .join(mcpwatch_collector::store::redb::DB_FILE),
    )
    .map_or(0.0, |m| m.len() as f64 / 1e6);
    tokio::task::spawn_blocking(move || drop(collectors))
        .await
        .unwrap();

    let ratio = |kind: &str| {
        let c = results
            .iter()
            .find(|r| r.kind == kind && r.target == "collector")?;
        let b = results
            .iter()
            .find(|r| r.kind == kind && r.target == "bare")?;
        Some(c.per_second / b.per_second)
    };
    let unexpected: usize = results
        .iter()
        .filter(|r| r.target == "collector")
        .map(|r| r.errors)
        .sum();
    if args.json {
        let out = json!({
            "results": results,
            "ratios": kinds.iter().map(|k| (k.name(), ratio(k.name()))).collect::<std::collections::BTreeMap<_, _>>(),
            "inventory_servers": args.inventory_agents * args.servers,
            "reliability": {
                "agents_with_missing_servers": missing,
                "tampered_requests_refused": results.iter().map(|r| r.refused).sum::<usize>(),
                "tampered_data_stored": tampered,
                "unexpected_errors": unexpected,
            },
            "agents": args.agents, "concurrency": args.concurrency, "servers_per_report": args.servers,
            "collector_resident_mb": collector_rss_mb, "collector_resident_under_load_mb": under_load_mb,
            "database_mb": database_mb,
            "database_file_mb": file_mb,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else {
        println!(
            "{:<10} {:<10} {:>9} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>10} {:>8} {:>6}",
            "kind",
            "target",
            "requests",
            "refused",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "ratio",
            "cpu us/req",
            "loadgen",
            "idle"
        );
        for r in &results {
            let ratio = if r.target == "collector" {
                ratio(r.kind).map_or(String::from("-"), |x| format!("{:.0}%", x * 100.0))
            } else {
                String::new()
            };
            let (per_request, loadgen, idle) = r.cpu.map_or_else(
                || ("-".to_owned(), "-".to_owned(), "-".to_owned()),
                |c| {
                    (
                        format!("{:.0}", c.server_us_per_request),
                        format!("{:.2}", c.loadgen_cores),
                        format!("{:.2}", c.idle_cores),
                    )
                },
            );
            println!(
                "{:<10} {:<10} {:>9} {:>7} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>10} {:>8} {:>6}",
                r.kind,
                r.target,
                r.requests,
                r.refused,
                r.errors,
                r.per_second,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms,
                ratio,
                per_request,
                loadgen,
                idle
            );
        }
        println!(
            "reliability: {missing} agent(s) with an acknowledged report missing or older; \
             {} tampered request(s) refused, {tampered} trace(s) of them stored; \
             {unexpected} unexpected error(s)",
            results.iter().map(|r| r.refused).sum::<usize>()
        );
        println!(
            "cpu: \"cpu us/req\" is the CPU time the collector (or the bare server) spent per \
             request; \"loadgen\" and \"idle\" are the cores this load generator used and \
             the cores no process used while the phase ran"
        );
        if args.inventory_agents > 0 {
            let servers = args.inventory_agents * args.servers;
            println!(
                "inventory: {servers} servers from {} agents stored before the phases; \
                 database {:.0} bytes per server on disk",
                args.inventory_agents,
                database_mb * 1e6 / servers as f64
            );
        }
        println!(
            "collector: {under_load_mb:.0} MB resident at most under load, {collector_rss_mb:.0} MB \
             at the end (after the checks, which list every agent) ({} instance(s)); \
             database {database_mb:.0} MB on disk{}",
            args.instances,
            if file_mb > 0.0 {
                format!(" (the file's length: {file_mb:.0} MB)")
            } else {
                String::new()
            }
        );
    }
    if missing > 0 || tampered > 0 || unexpected > 0 {
        eprintln!("reliability check failed");
        std::process::exit(1);
    }
}
