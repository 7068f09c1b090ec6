//! `mcpwatch-footprint`: what the agent costs a laptop. Starts a collector (127.0.0.1,
//! temporary data dir) and the release agent over a scratch machine tree, then
//! measures the agent's stripped binary size, resident memory after start and after
//! an idle phase (timers only: heartbeats every 5 s, full rescans every 10 s), CPU
//! time used while idle, and how long a config edit takes to show on the collector
//! (p50/p99 over N edits). Linux only (reads /proc).

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use mcpwatch_tests::rss_kib;
use mcpwatch_tests::{TestAgent, TestCollector, binary, eventually};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "mcpwatch-footprint",
    about = "Measures the agent: binary size, memory, idle CPU, config edit to collector latency"
)]
struct Args {
    /// Seconds of idle (timers only) between the two memory readings.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Config edits to time from the file write to the server showing on the collector.
    #[arg(long, default_value_t = 100)]
    edits: usize,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// User + system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Clock ticks per second, from `getconf` (no unsafe sysconf call here).
fn ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100)
}

fn cursor_config(name: &str) -> String {
    format!(
        r#"{{"mcpServers": {{"{name}": {{"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/alice/{name}"]}}}}}}"#
    )
}

fn write_atomically(path: &Path, text: &str) {
    // As editors do: write aside, rename over.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let args = Args::parse();
    let agent_bin = binary("mcpwatch-agent", "MCPWATCH_AGENT_BIN");
    let size = std::fs::metadata(&agent_bin).unwrap().len();

    let collector = TestCollector::start(&["--log-level", "warn"]);
    collector.register("fp@example.com", "FootPrint123!", "Footprint");
    let admin = collector.token("fp@example.com", "FootPrint123!");
    let (_, secret) = collector.post("/enroll-secrets", &admin, &json!({ "name": "fp" }));
    let secret = secret["secret"].as_str().unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("machine");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "alice:x:1000:1000::/home/alice:/bin/bash\n",
    )
    .unwrap();
    let cursor = root.join("home/alice/.cursor");
    std::fs::create_dir_all(&cursor).unwrap();
    let config = cursor.join("mcp.json");
    write_atomically(&config, &cursor_config("edit-start"));
    let state = dir.path().join("state");
    let (code, out) = TestAgent::enroll(&collector.base, &secret, &state);
    assert_eq!(code, Some(0), "enroll: {out}");

    eprintln!("Starting the agent...");
    let child = Command::new(&agent_bin)
        .args([
            "run",
            "--os",
            "linux",
            "--heartbeat-interval",
            "5",
            "--rescan-interval",
            "10",
            "--log-level",
            "warn",
        ])
        .arg("--state-dir")
        .arg(&state)
        .arg("--root")
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent(child);
    let pid = agent.0.id();
    let shows = |name: &str| {
        let (_, page) = collector.get(&format!("/mcp/servers?search={name}"), &admin);
        page["items"].as_array().is_some_and(|a| !a.is_empty())
    };
    eventually(Duration::from_secs(30), "the first report", || {
        shows("edit-start").then_some(())
    });
    let rss_start = rss_kib(pid);

    eprintln!("Idle for {} s...", args.idle_secs);
    let cpu_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(args.idle_secs));
    let cpu_idle_ms = (cpu_ticks(pid) - cpu_before) * 1000 / ticks_per_second();
    let rss_idle = rss_kib(pid);

    eprintln!("Timing {} config edits...", args.edits);
    let mut latencies = Vec::with_capacity(args.edits);
    for i in 0..args.edits {
        let name = format!("edit-{i:04}");
        let start = Instant::now();
        write_atomically(&config, &cursor_config(&name));
        eventually(Duration::from_secs(30), "the edit on the collector", || {
            shows(&name).then_some(())
        });
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let rss_end = rss_kib(pid);
    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 0.5);
    let p99 = percentile(&latencies, 0.99);
    let per_minute = cpu_idle_ms as f64 * 60.0 / args.idle_secs as f64;

    if args.json {
        println!(
            "{}",
            json!({
                "binary_bytes": size,
                "rss_after_start_kib": rss_start,
                "rss_after_idle_kib": rss_idle,
                "rss_after_edits_kib": rss_end,
                "idle_secs": args.idle_secs,
                "idle_cpu_ms": cpu_idle_ms,
                "edits": args.edits,
                "edit_to_collector_p50_ms": p50,
                "edit_to_collector_p99_ms": p99,
            })
        );
    } else {
        println!("| measure | value |");
        println!("| --- | --- |");
        println!(
            "| stripped binary | {:.2} MB ({size} bytes) |",
            size as f64 / 1e6
        );
        println!(
            "| resident memory after start | {:.1} MB |",
            rss_start as f64 / 1024.0
        );
        println!(
            "| resident memory after {} s idle | {:.1} MB |",
            args.idle_secs,
            rss_idle as f64 / 1024.0
        );
        println!(
            "| resident memory after {} edits | {:.1} MB |",
            args.edits,
            rss_end as f64 / 1024.0
        );
        println!(
            "| CPU while idle ({} heartbeats, {} full rescans) | {cpu_idle_ms} ms in {} s ({per_minute:.0} ms per minute) |",
            args.idle_secs / 5,
            args.idle_secs / 10,
            args.idle_secs
        );
        println!(
            "| config edit → visible on the collector | p50 {p50:.0} ms, p99 {p99:.0} ms (max {:.0} ms) over {} edits |",
            latencies.last().copied().unwrap_or(0.0),
            args.edits
        );
    }
}
