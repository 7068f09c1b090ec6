//! The agent daemon against a real collector: enrollment, discovery of a tree with
//! several users, changes reflected within seconds, a collector outage with an agent
//! restart losing nothing, revocation, config errors, and no secret in any request.

use std::path::Path;
use std::time::Duration;

use mcpwatch_tests::{RecordingProxy, TestAgent, TestCollector, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET_TOKEN: &str = "ghp_DaemonPlantedToken0000000000000000001";
const SECRET_ENV: &str = "DaemonPlantedEnvValue0002";

fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn cursor_config(servers: &[(&str, &str)]) -> String {
    let entries: Vec<String> = servers
        .iter()
        .map(|(name, pkg)| {
            format!(
                r#""{name}": {{"command": "npx", "args": ["-y", "{pkg}", "--token", "{SECRET_TOKEN}"], "env": {{"KEY": "{SECRET_ENV}"}}}}"#
            )
        })
        .collect();
    format!("{{\"mcpServers\": {{{}}}}}", entries.join(","))
}

fn tree(root: &Path) {
    put(
        root,
        "etc/passwd",
        "alice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n",
    );
    put(
        root,
        "home/alice/.cursor/mcp.json",
        &cursor_config(&[("docs", "docs-mcp@1.0.0")]),
    );
    put(
        root,
        "home/bob/.codex/config.toml",
        "[mcp_servers.notes]\ncommand = \"uvx\"\nargs = [\"notes-mcp==1.0\"]\n",
    );
    put(
        root,
        "home/bob/.gemini/settings.json",
        "{ \"mcpServers\": { \"broken\" \n",
    );
}

struct Setup {
    collector: TestCollector,
    admin: String,
    proxy: RecordingProxy,
    state: tempfile::TempDir,
    root: tempfile::TempDir,
}

fn setup() -> Setup {
    let collector = TestCollector::start(&["--heartbeat-interval", "5"]);
    collector.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = collector.token("admin@acme.example", "AdminPass123!");
    let proxy = RecordingProxy::start(&collector.base);
    let root = tempfile::tempdir().unwrap();
    tree(root.path());
    Setup {
        collector,
        admin,
        proxy,
        state: tempfile::tempdir().unwrap(),
        root,
    }
}

fn enroll(s: &Setup) {
    let (_, secret) = s
        .collector
        .post("/enroll-secrets", &s.admin, &json!({ "name": "laptops" }));
    let (code, out) = TestAgent::enroll(
        &s.proxy.base,
        secret["secret"].as_str().unwrap(),
        s.state.path(),
    );
    assert_eq!(code, Some(0), "{out}");
}

fn names(c: &TestCollector, admin: &str, status: &str) -> Vec<String> {
    let (_, page) = c.get(
        &format!("/mcp/servers?status={status}&page_size=100"),
        admin,
    );
    let mut v: Vec<String> = page["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["server_name"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn wait_for(c: &TestCollector, admin: &str, status: &str, want: &[&str], what: &str) {
    eventually(Duration::from_secs(30), what, || {
        (names(c, admin, status) == want).then_some(())
    });
}

fn agent(c: &TestCollector, admin: &str) -> Value {
    let (_, agents) = c.get("/agents/", admin);
    agents[0].clone()
}

#[test]
fn the_daemon_reports_changes_and_survives_an_outage_without_leaking_secrets() {
    let mut s = setup();
    enroll(&s);
    let mut run = TestAgent::start(s.state.path(), s.root.path());
    let (c, admin) = (&s.collector, s.admin.clone());

    // Enrolled, online with host facts, servers scored, the broken file shown.
    wait_for(c, &admin, "active", &["docs", "notes"], "the first report");
    eventually(
        Duration::from_secs(30),
        "the agent online with host facts",
        || {
            let a = agent(c, &admin);
            (a["status"] == "online" && a["hostname"].is_string() && a["os_type"] == "linux")
                .then_some(a)
        },
    );
    let a = agent(c, &admin);
    assert_eq!(a["signing_enabled"], true);
    assert_eq!(
        a["config_errors"][0]["path"],
        "/home/bob/.gemini/settings.json"
    );
    let (_, page) = c.get("/mcp/servers?search=docs", &admin);
    assert!(page["items"][0]["risk_level"].is_string());

    let r = s.root.path();
    // A server added to a user's config.
    put(
        r,
        "home/alice/.cursor/mcp.json",
        &cursor_config(&[("docs", "docs-mcp@1.0.0"), ("fetch", "fetch-mcp@2.0.0")]),
    );
    wait_for(
        c,
        &admin,
        "active",
        &["docs", "fetch", "notes"],
        "a server added",
    );
    // A file created where none existed (its directory too).
    put(
        r,
        "home/alice/.codex/config.toml",
        "[mcp_servers.tickets]\ncommand = \"tickets-mcp\"\n",
    );
    wait_for(
        c,
        &admin,
        "active",
        &["docs", "fetch", "notes", "tickets"],
        "a new config file",
    );
    // A file replaced by rename, as editors do.
    put(
        r,
        "home/alice/.cursor/mcp.json.tmp",
        &cursor_config(&[("docs", "docs-mcp@1.0.0"), ("browser", "browser-mcp@1.0.0")]),
    );
    std::fs::rename(
        r.join("home/alice/.cursor/mcp.json.tmp"),
        r.join("home/alice/.cursor/mcp.json"),
    )
    .unwrap();
    wait_for(
        c,
        &admin,
        "active",
        &["browser", "docs", "notes", "tickets"],
        "a file replaced by rename",
    );
    wait_for(
        c,
        &admin,
        "dormant",
        &["fetch"],
        "a server gone from the config",
    );
    // A server removed.
    put(r, "home/bob/.codex/config.toml", "");
    wait_for(
        c,
        &admin,
        "dormant",
        &["fetch", "notes"],
        "a removed server",
    );

    // Collector down; the config changes; the agent restarts; the collector returns.
    s.collector.kill_hard();
    put(
        r,
        "home/alice/.cursor/mcp.json",
        &cursor_config(&[
            ("docs", "docs-mcp@1.0.0"),
            ("browser", "browser-mcp@1.0.0"),
            ("late", "late-mcp@1.0.0"),
        ]),
    );
    run.kill();
    let mut run = TestAgent::start(s.state.path(), s.root.path());
    eventually(
        Duration::from_secs(20),
        "the agent to keep the report it could not send",
        || run.log().contains("Report not delivered").then_some(()),
    );
    s.collector.restart_same_address();
    let (c, admin) = (&s.collector, s.admin.clone());
    wait_for(
        c,
        &admin,
        "active",
        &["browser", "docs", "late", "tickets"],
        "the report kept through the outage",
    );
    assert!(run.exit_code().is_none(), "still running");

    // Nothing the agent sent carried a planted secret.
    let bodies = s.proxy.bodies();
    assert!(
        bodies.iter().any(|b| b.contains("\"servers\"")),
        "reports went through the proxy"
    );
    for body in &bodies {
        assert!(
            !body.contains(SECRET_TOKEN) && !body.contains(SECRET_ENV),
            "a request body carried a planted secret"
        );
    }
    assert!(!run.log().contains(SECRET_TOKEN) && !run.log().contains(SECRET_ENV));
}

#[test]
fn a_deleted_agent_stops_uploading_and_says_to_re_enroll() {
    let s = setup();
    enroll(&s);
    let mut run = TestAgent::start(s.state.path(), s.root.path());
    let (c, admin) = (&s.collector, s.admin.clone());
    wait_for(c, &admin, "active", &["docs", "notes"], "the first report");
    let id = agent(c, &admin)["id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.call(Method::DELETE, &format!("/agents/{id}"), Some(&admin), None)
            .0,
        204
    );
    // A change makes it report at once; heartbeats follow.
    put(
        s.root.path(),
        "home/alice/.cursor/mcp.json",
        &cursor_config(&[("x", "x-mcp@1.0.0")]),
    );
    let code = eventually(Duration::from_secs(40), "the agent to stop", || {
        run.exit_code()
    });
    assert_eq!(code, Some(78));
    assert!(run.log().contains("re-enroll"), "{}", run.log());
    let requests_after = s.proxy.bodies().len();
    // It does not start uploading again.
    let mut again = TestAgent::start(s.state.path(), s.root.path());
    let code = eventually(
        Duration::from_secs(10),
        "a revoked agent to refuse to run",
        || again.exit_code(),
    );
    assert_eq!(code, Some(78));
    assert_eq!(
        s.proxy.bodies().len(),
        requests_after,
        "no request after revocation"
    );
    let status = std::process::Command::new(mcpwatch_tests::binary(
        "mcpwatch-agent",
        "MCPWATCH_AGENT_BIN",
    ))
    .args(["status", "--state-dir"])
    .arg(s.state.path())
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("re-enroll"));
}

#[test]
fn enrollment_errors_are_clear() {
    let s = setup();
    let (code, out) = TestAgent::enroll(&s.collector.base, "mcp_es_wrong", s.state.path());
    assert_eq!(code, Some(1));
    assert!(out.contains("refused the enroll secret"), "{out}");
    let (code, out) = TestAgent::enroll("http://127.0.0.1:9", "mcp_es_x", s.state.path());
    assert_eq!(code, Some(1));
    assert!(out.contains("cannot reach the collector"), "{out}");
    let mut run = TestAgent::start(s.state.path(), s.root.path());
    assert_eq!(
        eventually(
            Duration::from_secs(10),
            "an unenrolled agent to stop",
            || run.exit_code()
        ),
        Some(78)
    );
    assert!(run.log().contains("not enrolled") || run.log().is_empty());
}

/// After a report is accepted and a rescan finds nothing new, the project-level
/// config directories the last scan found are still watched: a change there is
/// reported within seconds, not at the next full rescan (15 minutes away here).
#[test]
fn project_configs_stay_watched_after_an_accepted_report_and_a_quiet_rescan() {
    let s = setup();
    let (c, admin, root) = (&s.collector, s.admin.clone(), s.root.path());
    put(
        root,
        "home/alice/.claude.json",
        r#"{"projects": {"/home/alice/work/app": {}}}"#,
    );
    let project = |servers: &str| {
        put(
            root,
            "home/alice/work/app/.mcp.json",
            &format!(r#"{{"mcpServers": {{{servers}}}}}"#),
        );
    };
    project(r#""p": {"command": "p-server"}"#);
    enroll(&s);
    let run = TestAgent::start(s.state.path(), root);
    // `.mcp.json` is a project file of Claude Code and of VS Code: two servers.
    wait_for(
        c,
        &admin,
        "active",
        &["docs", "notes", "p", "p"],
        "the first report",
    );
    let scans = || run.log().matches("Scan finished.").count();
    let before = scans();
    // A quiet rescan: a watched file rewritten as it was.
    put(
        root,
        "home/alice/.cursor/mcp.json",
        &cursor_config(&[("docs", "docs-mcp@1.0.0")]),
    );
    eventually(
        Duration::from_secs(30),
        "a rescan that finds nothing new",
        || (scans() > before).then_some(()),
    );
    project(r#""p": {"command": "p-server"}, "p2": {"command": "p2-server"}"#);
    wait_for(
        c,
        &admin,
        "active",
        &["docs", "notes", "p", "p", "p2", "p2"],
        "the project's new server, reported from its watched directory",
    );
    // Idle now: the agent's own reads of the files it watches start no scan. Wait for
    // the next heartbeat (5 s) and count.
    let settled = scans();
    let seen = agent(c, &admin)["last_seen_at"].clone();
    eventually(Duration::from_secs(30), "the next heartbeat", || {
        (agent(c, &admin)["last_seen_at"] != seen).then_some(())
    });
    assert_eq!(scans(), settled, "an idle agent scans again: {}", run.log());
}
