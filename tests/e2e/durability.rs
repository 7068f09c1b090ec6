//! A report acknowledged before a SIGKILL is there after the restart, and so are the
//! accounts and the token-signing key.

use mcpwatch_tests::{TestCollector, agent_server};
use serde_json::json;

#[test]
fn report_survives_sigkill_after_ack() {
    let mut c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (agent_id, key) = c.create_agent(&admin, "laptop");
    let servers: Vec<_> = (0..20)
        .map(|i| {
            agent_server(
                &format!("server-{i}"),
                "npx",
                &["-y", &format!("pkg-{i}@1.0.0")],
            )
        })
        .collect();
    let (status, ack) = c.agent_call("/mcp/report", &key, None, &json!({ "servers": servers }));
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["created"], 20);
    c.kill_hard();
    c.restart();
    // The old access token still verifies: the signing key persisted.
    let (status, page) = c.get(
        &format!("/mcp/servers?agent_id={agent_id}&page_size=100"),
        &admin,
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 20);
    let (_, agent) = c.get(&format!("/agents/{agent_id}"), &admin);
    assert_eq!(agent["server_count"], 20);
    assert!(agent["last_report_at"].is_string());
    // The agent's key still works.
    assert_eq!(
        c.agent_call("/agents/heartbeat", &key, None, &json!({})).0,
        200
    );
}

/// `serve` on `data_dir` must stop with the configuration exit code (78); answers what
/// it said.
fn refused_to_start(data_dir: &std::path::Path) -> String {
    let bin = mcpwatch_tests::binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN");
    let out = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_damaged_database_file_stops_the_collector_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mcpwatch.redb"),
        b"definitely not a database",
    )
    .unwrap();
    let stderr = refused_to_start(dir.path());
    assert!(stderr.contains("mcpwatch.redb"), "{stderr}");
    // The file is left as it was, for the operator to inspect or restore.
    assert_eq!(
        std::fs::read(dir.path().join("mcpwatch.redb")).unwrap(),
        b"definitely not a database"
    );
}

/// A zero-byte database file (truncated by a bad restore, a full disk, an operator)
/// is never taken as a new database: that would silently drop every organisation and
/// let the next `POST /auth/register` become admin.
#[test]
fn a_zero_byte_database_file_is_refused_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mcpwatch.redb");
    std::fs::write(&db, b"").unwrap();
    let stderr = refused_to_start(dir.path());
    assert!(stderr.contains("is empty (0 bytes)"), "{stderr}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "left as it was");
}

/// The data dir holds password, key and secret hashes and sessions: owner-only.
#[cfg(unix)]
#[test]
fn the_data_dir_and_database_are_owner_only() {
    mcpwatch_tests::redb_only!();
    use std::os::unix::fs::PermissionsExt as _;
    let mut c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let data = c.data_dir.clone();
    let db = data.join("mcpwatch.redb");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600, "created owner-only");
    // Opened up behind its back: restricted again at the next start, and said so.
    c.kill_hard();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    c.restart();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert!(c.log().contains("restricted to its owner"), "{}", c.log());
    assert_eq!(
        c.login("admin@acme.example", "AdminPass123!").0,
        200,
        "nothing lost"
    );
}

#[test]
fn plain_http_on_a_public_address_is_refused_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let bin = mcpwatch_tests::binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN");
    let out = std::process::Command::new(bin)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-insecure-http"));
}

/// Logs that go to a journal or a file carry no terminal escapes.
#[test]
fn logs_off_a_terminal_have_no_ansi_escapes() {
    let mut c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    assert!(c.login("admin@acme.example", "wrong-password").0 == 401);
    c.kill_hard();
    let log = c.log();
    assert!(!log.is_empty());
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

#[test]
fn every_log_line_of_a_request_carries_its_request_id() {
    let mut c = TestCollector::start(&["--log-level", "debug", "--log-format", "json"]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let (status, _) = c.login("admin@acme.example", "wrong-password");
    assert_eq!(status, 401);
    c.kill_hard();
    let log = c.log();
    let failed: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "Login failed.")
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    let id = failed[0]["span"]["request_id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 36, "a request id on the line: {}", failed[0]);
    assert!(!log.contains('\u{1b}'));
}

#[test]
fn the_agents_log_off_a_terminal_has_no_escapes_and_json_lines_when_asked() {
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (_, secret) = c.post(
        "/enroll-secrets",
        &admin,
        &serde_json::json!({ "name": "laptops" }),
    );
    let state = tempfile::tempdir().unwrap();
    let root = mcpwatch_tests::linux_root(&[]);
    let (code, out) = mcpwatch_tests::TestAgent::enroll(
        &c.base,
        secret["secret"].as_str().unwrap(),
        state.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    let mut agent =
        mcpwatch_tests::TestAgent::start_with(state.path(), root.path(), &["--log-format", "json"]);
    mcpwatch_tests::eventually(
        std::time::Duration::from_secs(30),
        "the agent's first report",
        || (c.get("/agents", &admin).1[0]["last_report_at"].is_string()).then_some(()),
    );
    agent.kill();
    let log = agent.log();
    assert!(!log.contains('\u{1b}'), "{log:?}");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
