//! Backup while serving under load, restore, check and compact: a backup taken while
//! agents report restores into a collector that has every report acknowledged before
//! the backup began, and the sessions and agent keys it knew.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpwatch_tests::{TestCollector, agent_server, binary, eventually};
use serde_json::{Value, json};

fn collector(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN"))
        .args(args)
        .env_remove("MCPWATCH_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn report(n: usize) -> Value {
    let servers: Vec<Value> = (0..=n)
        .map(|i| agent_server(&format!("s-{i}"), "uvx", &[&format!("mcp-tool-{i}==1.0")]))
        .collect();
    json!({ "hostname": "h", "servers": servers })
}

#[test]
fn a_backup_under_load_restores_every_acknowledged_report() {
    mcpwatch_tests::redb_only!();
    const AGENTS: usize = 6;
    let c = TestCollector::start(&[]);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    let keys: Vec<(String, String)> = (0..AGENTS)
        .map(|i| c.create_agent(&admin, &format!("laptop-{i}")))
        .collect();
    let c = Arc::new(c);
    let started = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // Per agent: the largest report acknowledged before the backup began.
    let before: Arc<Mutex<Vec<Option<usize>>>> = Arc::new(Mutex::new(vec![None; AGENTS]));
    let load: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(a, (_, key))| {
            let (c, started, stop, before, key) = (
                c.clone(),
                started.clone(),
                stop.clone(),
                before.clone(),
                key.clone(),
            );
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let (status, body) = c.agent_call("/mcp/report", &key, None, &report(n));
                    assert_eq!(status, 200, "{body}");
                    if !started.load(Ordering::SeqCst) {
                        before.lock().unwrap()[a] = Some(n);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    eventually(Duration::from_secs(30), "reports under way", || {
        before
            .lock()
            .unwrap()
            .iter()
            .all(|n| n.is_some_and(|n| n >= 10))
            .then_some(())
    });
    let data = c.data_dir.to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.tar");
    started.store(true, Ordering::SeqCst);
    let (code, out) = collector(&[
        "backup",
        "--data-dir",
        &data,
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let sent: usize = load.into_iter().map(|t| t.join().unwrap()).sum();
    let acked_before = before.lock().unwrap().clone();
    eprintln!("{sent} reports sent; acknowledged before the backup: {acked_before:?}");
    // The same file again is refused; so is checking, restoring into, a running one.
    let (code, out) = collector(&[
        "backup",
        "--data-dir",
        &data,
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("already exists"), "{out}");
    let (code, out) = collector(&["check", "--data-dir", &data]);
    assert_eq!(code, Some(0), "the live database is consistent: {out}");
    // It lists the tables with their sizes (asked of the running collector).
    assert!(table_entries(&out, "servers") > 0, "{out}");
    assert!(out.contains(" on disk"), "{out}");
    let (code, out) = collector(&[
        "restore",
        "--input",
        file.to_str().unwrap(),
        "--data-dir",
        &data,
        "--force",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("stop it first"), "{out}");

    // Restore into a new data dir; a non-empty one needs --force.
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let target_s = target.to_string_lossy().into_owned();
    let (code, out) = collector(&[
        "restore",
        "--input",
        file.to_str().unwrap(),
        "--data-dir",
        &target_s,
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = collector(&[
        "restore",
        "--input",
        file.to_str().unwrap(),
        "--data-dir",
        &target_s,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--force"), "{out}");
    let (code, out) = collector(&["check", "--data-dir", &target_s]);
    assert_eq!(code, Some(0), "{out}");
    assert!(table_entries(&out, "servers") > 0, "{out}");

    let r = TestCollector::start(&["--data-dir", &target_s]);
    // The admin's session and the agents' keys were in the backup.
    assert_eq!(
        r.get("/auth/me", &admin).0,
        200,
        "a session from before the backup"
    );
    for (a, (agent, key)) in keys.iter().enumerate() {
        let (_, servers) = r.get(
            &format!("/mcp/servers?agent_id={agent}&page_size=100"),
            &admin,
        );
        let have: Vec<&str> = servers["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["server_name"].as_str().unwrap())
            .collect();
        let n = acked_before[a].unwrap();
        for i in 0..=n {
            assert!(
                have.contains(&format!("s-{i}").as_str()),
                "agent {a}: s-{i} acknowledged before the backup is missing: {have:?}"
            );
        }
        let (status, body) =
            r.agent_call("/agents/heartbeat", key, None, &json!({ "hostname": "h" }));
        assert_eq!(status, 200, "an agent key from before the backup: {body}");
    }
    // The dashboard's counts are the records'.
    let (_, stats) = r.get("/dashboard/stats", &admin);
    let (_, all) = r.get("/mcp/servers?page_size=1", &admin);
    assert_eq!(stats["total_servers"], all["total"]);
}

#[test]
fn a_damaged_or_foreign_backup_is_refused_and_compaction_needs_the_collector_stopped() {
    mcpwatch_tests::redb_only!();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar file at all").unwrap();
    let target = dir.path().join("data");
    let (code, out) = collector(&[
        "restore",
        "--input",
        junk.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(!target.join("mcpwatch.redb").exists());
    let (code, out) = collector(&["check", "--data-dir", target.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no database"), "{out}");

    let c = TestCollector::start(&[]);
    let data = c.data_dir.to_string_lossy().into_owned();
    let (code, out) = collector(&["compact", "--data-dir", &data]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("stop it first"), "{out}");
}

#[test]
fn retention_deletes_dormant_servers_and_dismissed_alerts_and_counts_stay_right() {
    mcpwatch_tests::redb_only!();
    let mut c = TestCollector::start(&["--retain-dormant-days", "0", "--retain-alerts-days", "0"]);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    let (_, key) = c.create_agent(&admin, "laptop");
    let critical = agent_server(
        "root-files",
        "npx",
        &[
            "-y",
            "@modelcontextprotocol/server-filesystem@2026.9.1",
            "/",
        ],
    );
    let kept = agent_server("clock", "uvx", &["mcp-server-time==0.6.2"]);
    let (status, _) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "hostname": "h", "servers": [critical, kept.clone()] }),
    );
    assert_eq!(status, 200);
    let (status, _) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "hostname": "h", "servers": [kept] }),
    );
    assert_eq!(status, 200);
    let (_, dormant) = c.get("/mcp/servers?status=dormant", &admin);
    assert_eq!(dormant["total"], 1);
    assert_eq!(c.get("/alerts?dismissed=false", &admin).1["total"], 1);
    // The pass at start deletes the dormant server and its alert; the active one stays.
    c.restart();
    let admin = c.token("admin@a.example", "AdminPass123!");
    eventually(Duration::from_secs(20), "the retention pass", || {
        (c.get("/mcp/servers", &admin).1["total"] == 1).then_some(())
    });
    let (_, left) = c.get("/mcp/servers", &admin);
    assert_eq!(left["items"][0]["server_name"], "clock");
    assert_eq!(
        c.get("/alerts", &admin).1["total"],
        0,
        "the deleted server's alert went with it"
    );
    let (_, stats) = c.get("/dashboard/stats", &admin);
    assert_eq!(stats["total_servers"], 1);
    assert_eq!(stats["critical_count"], 0);
    assert_eq!(stats["unresolved_alerts"], 0);
    assert!(
        c.log().contains("Deleted what is past its retention."),
        "{}",
        c.log()
    );
    // The agent stays listed.
    assert_eq!(c.get("/agents", &admin).1.as_array().unwrap().len(), 1);
}

#[test]
fn a_stopped_collector_is_backed_up_offline_and_restored_files_get_the_data_dirs_owner() {
    mcpwatch_tests::redb_only!();
    use std::os::unix::fs::MetadataExt as _;
    let mut c = TestCollector::start(&[]);
    c.register("admin@a.example", "AdminPass123!", "A");
    c.kill_hard();
    let data = c.data_dir.to_string_lossy().into_owned();
    assert!(
        !c.data_dir.join("control.sock").exists()
            || std::os::unix::net::UnixStream::connect(c.data_dir.join("control.sock")).is_err()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("offline.tar");
    let (code, out) = collector(&[
        "backup",
        "--data-dir",
        &data,
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    let mode = std::fs::metadata(&file).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup holds the signing key: owner-only");
    let target = dir.path().join("data");
    std::fs::create_dir(&target).unwrap();
    // As root, a data dir owned by another user (the service's) gets files it can open.
    let service_owned = std::os::unix::fs::chown(&target, Some(65534), Some(65534)).is_ok();
    let (code, out) = collector(&[
        "restore",
        "--input",
        file.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    for name in ["mcpwatch.redb", "token-signing.key"] {
        let m = std::fs::metadata(target.join(name)).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600, "{name}");
        if service_owned {
            assert_eq!(
                (m.uid(), m.gid()),
                (65534, 65534),
                "{name} belongs to the data dir's owner"
            );
        }
    }
    if !service_owned {
        eprintln!("SKIPPED the ownership check: changing a file's owner needs root");
    }
    let (code, out) = collector(&["check", "--data-dir", target.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn the_control_socket_answers_unknown_and_oversized_commands_with_an_error() {
    mcpwatch_tests::redb_only!();
    use std::io::{BufRead as _, Write as _};
    let c = TestCollector::start(&[]);
    let socket = c.data_dir.join("control.sock");
    eventually(Duration::from_secs(10), "the control socket", || {
        socket.exists().then_some(())
    });
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    for command in [
        "rm -rf /\n".to_owned(),
        format!("{}\n", "x".repeat(100_000)),
        "\u{1b}[31mbackup\n".to_owned(),
    ] {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        // The collector may stop reading a long line early; the answer still comes.
        let _ = stream.write_all(command.as_bytes());
        let mut answer = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut answer)
            .unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["ok"], false, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("unknown command"),
            "{answer}"
        );
    }
    // Still serving, and still answering a real command.
    assert_eq!(
        collector(&["check", "--data-dir", c.data_dir.to_str().unwrap()]).0,
        Some(0)
    );
}

/// The entries `check` lists for `table` (0 when it does not list it).
fn table_entries(out: &str, table: &str) -> u64 {
    out.lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(table)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or(0)
}
