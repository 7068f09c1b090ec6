//! One user's hostile files never stop the machine's report: the daemon on a machine
//! where mallory's configs hold blank and overlong names, deep nesting and more
//! servers than the collector takes, against a collector whose body limit is small.
//! Carol's new server still reaches the collector in seconds, heartbeats go on, and
//! what was cut is said in config errors.

use std::path::Path;
use std::time::{Duration, Instant};

use mcpwatch_tests::{TestAgent, TestCollector, eventually};
use serde_json::{Value, json};

fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn many(n: usize, prefix: &str) -> String {
    let body: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#""{prefix}{i}": {{"command": "npx", "args": ["-y", "{prefix}-pkg-{i}@1.0.0"]}}"#
            )
        })
        .collect();
    body.join(",")
}

fn servers_of(c: &TestCollector, admin: &str, user: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1..=30 {
        let (_, body) = c.get(
            &format!("/mcp/servers?status=active&page_size=100&page={page}"),
            admin,
        );
        let items = body["items"].as_array().cloned().unwrap_or_default();
        out.extend(items.into_iter().filter(|s| s["os_user"] == user));
        if body["has_more"] != true {
            break;
        }
    }
    out
}

#[test]
fn one_users_hostile_files_never_stop_the_machines_report() {
    // A collector that takes 256 KiB bodies: the agent must fit what it sends.
    let c = TestCollector::start(&["--heartbeat-interval", "5", "--max-body-bytes", "262144"]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    put(
        r,
        "etc/passwd",
        "carol:x:1000:1000::/home/carol:/bin/bash\nmallory:x:1001:1001::/home/mallory:/bin/bash\n",
    );
    put(
        r,
        "home/carol/.cursor/mcp.json",
        r#"{"mcpServers": {"carol-docs": {"command": "npx", "args": ["-y", "docs-mcp@1.0.0"]}}}"#,
    );
    let long = "M".repeat(100_000);
    put(
        r,
        "home/mallory/.cursor/mcp.json",
        &format!(
            r#"{{"mcpServers": {{"   ": {{"command": "a"}}, "": {{"command": "b"}}, "{long}": {{"command": "c"}}, {}}}}}"#,
            many(12_000, "m")
        ),
    );
    put(
        r,
        "home/mallory/.config/goose/config.yaml",
        &"[".repeat(200_000),
    );
    put(
        r,
        "home/mallory/.gemini/settings.json",
        &format!(r#"{{"mcpServers": {{{}}}}}"#, many(1500, "g")),
    );

    let state = tempfile::tempdir().unwrap();
    let (_, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "laptops" }));
    let (code, out) = TestAgent::enroll(&c.base, secret["secret"].as_str().unwrap(), state.path());
    assert_eq!(code, Some(0), "{out}");
    let mut run = TestAgent::start(state.path(), r);

    // The machine is reported: carol whole, mallory cut to what fits, and said so.
    eventually(Duration::from_secs(60), "carol's server reported", || {
        (!servers_of(&c, &admin, "carol").is_empty()).then_some(())
    });
    let (_, agents) = c.get("/agents/", &admin);
    let agent = agents[0].clone();
    let id = agent["id"].as_str().unwrap().to_owned();
    let errors = agent["config_errors"].to_string();
    assert!(
        errors.contains("holds 12003 servers; only 1000 reported"),
        "{errors}"
    );
    assert!(errors.contains("nested more than 64 levels"), "{errors}");
    assert!(errors.contains("left out"), "{errors}");
    assert!(errors.contains("blank name"), "{errors}");
    let mallory = servers_of(&c, &admin, "mallory");
    assert!(!mallory.is_empty());
    assert!(
        mallory
            .iter()
            .all(|s| s["server_name"].as_str().unwrap().chars().count() <= 512)
    );
    assert!(
        run.log().contains("refused the report as too large"),
        "the 413 was met and handled"
    );

    // Carol adds a server: it reaches the collector in seconds.
    let started = Instant::now();
    put(
        r,
        "home/carol/.cursor/mcp.json",
        r#"{"mcpServers": {"carol-docs": {"command": "npx", "args": ["-y", "docs-mcp@1.0.0"]}, "carol-new": {"command": "uvx", "args": ["mcp-server-time==1.0.0"]}}}"#,
    );
    eventually(
        Duration::from_secs(20),
        "carol's new server reported",
        || {
            servers_of(&c, &admin, "carol")
                .iter()
                .any(|s| s["server_name"] == "carol-new")
                .then_some(())
        },
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");

    // Heartbeats go on, and the host facts came with them.
    let seen = |c: &TestCollector| {
        let (_, a) = c.get(&format!("/agents/{id}"), &admin);
        a["last_seen_at"].as_str().unwrap_or_default().to_owned()
    };
    let first = seen(&c);
    eventually(Duration::from_secs(20), "another heartbeat", || {
        (seen(&c) != first).then_some(())
    });
    let (_, a) = c.get(&format!("/agents/{id}"), &admin);
    assert_eq!(a["status"], "online");
    assert!(
        a["kernel_version"].is_string() && a["arch"].is_string(),
        "{a}"
    );
    assert_eq!(a["users"], json!(["carol", "mallory"]));
    assert!(run.exit_code().is_none(), "still running");
    // Its log (not a terminal) holds no escape sequence, its own or a user's.
    assert!(!run.log().contains('\u{1b}'), "{}", run.log());
}

/// A collector that refuses every report for good (here: a body limit no report
/// fits): the agent shrinks its report to its floor, then stops resending the same
/// body, says why in `status` and in its heartbeats, and keeps heartbeating.
#[test]
fn a_report_refused_for_good_is_not_resent_and_is_said() {
    let c = TestCollector::start(&["--heartbeat-interval", "5", "--max-body-bytes", "1024"]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let proxy = mcpwatch_tests::RecordingProxy::start(&c.base);
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    put(
        r,
        "etc/passwd",
        "carol:x:1000:1000::/home/carol:/bin/bash\n",
    );
    // Secrets in the shapes configs really hold them: none may reach a request body,
    // `status` or the log.
    let planted = [
        "PlantedBearer1summer!",
        "PlantedEnv2value",
        "PlantedDsn3pass",
        "PlantedUser4TOKEN9x",
        "PlantedJson5key",
        "PlantedFlag6pw!",
    ];
    let secrets = format!(
        r#""hdr": {{"command": "npx", "args": ["mcp-remote", "https://x.example/mcp", "--header", "Authorization: Bearer {}"]}},
           "env": {{"command": "docker", "args": ["run", "-e", "API_TOKEN={}", "mcp/x:1.0"]}},
           "dsn": {{"command": "mysql-mcp", "args": ["root:{}@tcp(db:3306)/app"]}},
           "usr": {{"url": "https://{}@mcp.example.com/sse"}},
           "jsn": {{"command": "npx", "args": ["-y", "x@1.0.0", "{{\"apiKey\": \"{}\"}}"]}},
           "flg": {{"command": "npx", "args": ["-y", "y@1.0.0", "--password", "{}"]}}"#,
        planted[0], planted[1], planted[2], planted[3], planted[4], planted[5]
    );
    put(
        r,
        "home/carol/.cursor/mcp.json",
        &format!(r#"{{"mcpServers": {{{}, {secrets}}}}}"#, many(20, "c")),
    );
    let state = tempfile::tempdir().unwrap();
    let (_, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "laptops" }));
    let (code, out) = TestAgent::enroll(
        &proxy.base,
        secret["secret"].as_str().unwrap(),
        state.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    let mut run = TestAgent::start(state.path(), r);
    let (_, agents) = c.get("/agents/", &admin);
    let id = agents[0]["id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(60),
        "the refusal in a heartbeat",
        || {
            let (_, a) = c.get(&format!("/agents/{id}"), &admin);
            a["report_error"]
                .as_str()
                .is_some_and(|e| e.contains("HTTP 413"))
                .then_some(())
        },
    );
    let reports = || {
        proxy
            .bodies()
            .iter()
            .filter(|b| b.contains("\"servers\""))
            .count()
    };
    let sent = reports();
    // Heartbeats go on (5 s); the refused report is not sent again.
    let (_, before) = c.get(&format!("/agents/{id}"), &admin);
    eventually(Duration::from_secs(20), "another heartbeat", || {
        let (_, now) = c.get(&format!("/agents/{id}"), &admin);
        (now["last_seen_at"] != before["last_seen_at"]).then_some(())
    });
    assert_eq!(reports(), sent, "the same refused body was sent again");
    let status = std::process::Command::new(mcpwatch_tests::binary(
        "mcpwatch-agent",
        "MCPWATCH_AGENT_BIN",
    ))
    .args(["status", "--state-dir"])
    .arg(state.path())
    .output()
    .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("refused the report for good (HTTP 413)"),
        "{status}"
    );
    assert!(run.exit_code().is_none(), "still running");
}
