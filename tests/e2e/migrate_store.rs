//! `migrate-store`: a redb deployment copied into PostgreSQL, interrupted by a
//! SIGKILL and resumed, then served from PostgreSQL with everything people and agents
//! had: logins, tokens, agent keys, servers, alerts, history, census, policy.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mcpwatch_tests::{TestCollector, agent_server, binary, eventually, postgres};
use serde_json::{Value, json};

const AGENTS: usize = 4;
const PER_AGENT: usize = 1500;

fn migrate(from: &std::path::Path, to: &str) -> std::process::Output {
    Command::new(binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN"))
        .args(["migrate-store", "--from-data-dir"])
        .arg(from)
        .args(["--to", to])
        .output()
        .unwrap()
}

/// What people see: each list with the fields that must survive the move.
fn view(c: &TestCollector, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/dashboard/stats",
        "/mcp/servers?page_size=100&sort=server_name:asc",
        "/mcp/servers?risk_level=critical&page=3&page_size=50",
        "/alerts?page_size=100",
        "/agents",
        "/api/v1/policy",
        "/mcp/census?group=package&page_size=20",
    ] {
        let (status, mut body) = c.get(path, token);
        assert_eq!(status, 200, "{path}: {body}");
        // When the dashboard was read, and which agents are online, may differ.
        if let Some(obj) = body.as_object_mut() {
            obj.remove("generated_at");
            obj.remove("online_agents");
            obj.remove("offline_agents");
        }
        out.push(body);
    }
    out
}

#[test]
fn a_redb_deployment_moves_to_postgres_resumably_and_nothing_is_lost() {
    let Some(url) = postgres::test_database() else {
        return;
    };
    let mut source = TestCollector::start_embedded(&[]);
    source.register("admin@a.example", "AdminPass123!", "A");
    let admin = source.token("admin@a.example", "AdminPass123!");
    let (status, policy) = source.call(
        reqwest::Method::PUT,
        "/api/v1/policy",
        Some(&admin),
        Some(&json!({ "blocked": ["mcp-tool-7"] })),
    );
    assert_eq!(status, 200, "{policy}");
    let mut keys = Vec::new();
    for n in 0..AGENTS {
        let (_, key) = source.create_agent(&admin, &format!("host-{n}"));
        let servers: Vec<Value> = (0..PER_AGENT)
            .map(|i| {
                if i % 100 == 0 {
                    agent_server(
                        &format!("fs-{i}"),
                        "npx",
                        &["-y", "@modelcontextprotocol/server-filesystem", "/"],
                    )
                } else {
                    agent_server(
                        &format!("s-{i}"),
                        "uvx",
                        &[&format!("mcp-tool-{}=={n}.0", i % 50)],
                    )
                }
            })
            .collect();
        let (status, body) = source.agent_call(
            "/mcp/report",
            &key,
            None,
            &json!({ "hostname": format!("host-{n}"), "servers": servers }),
        );
        assert_eq!(status, 200, "{body}");
        keys.push(key);
    }
    let before = view(&source, &admin);
    let data_dir = source.data_dir.clone();
    source.kill_hard();

    // A first run killed once it is into the servers.
    let mut first = Command::new(binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN"))
        .args(["migrate-store", "--from-data-dir"])
        .arg(&data_dir)
        .args(["--to", &url])
        .env("MCPWATCH_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = first.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    eventually(Duration::from_secs(60), "the first tables copied", || {
        let line = lines.next()?.ok()?;
        (line.contains("Table copied") && line.contains("api_tokens")).then_some(())
    });
    first.kill().unwrap();
    let _ = first.wait();

    // Run again: it goes on where it stopped, and checks the result.
    let out = migrate(&data_dir, &url);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("servers: {} records", AGENTS * PER_AGENT)),
        "{text}"
    );
    assert!(text.contains("copied and checked"), "{text}");
    // And once more: nothing new to copy.
    let again = migrate(&data_dir, &url);
    let text = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "servers: {} records, 0 copied now",
            AGENTS * PER_AGENT
        )),
        "{text}"
    );

    let target = TestCollector::start(&["--database-url", &url]);
    // The old token still works (the signing key moved), and so does the password.
    assert_eq!(view(&target, &admin), before);
    let fresh = target.token("admin@a.example", "AdminPass123!");
    assert_eq!(view(&target, &fresh), before);
    // Agents report with their keys as before.
    let (status, body) = target.agent_call(
        "/mcp/report",
        &keys[0],
        None,
        &json!({ "hostname": "host-0", "servers": [agent_server("new-one", "npx", &["-y", "new-pkg"])] }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dormant"], PER_AGENT, "{body}");
}

#[test]
fn migrate_store_refuses_a_running_collectors_data_dir_and_a_bad_url() {
    let source = TestCollector::start_embedded(&[]);
    let out = migrate(&source.data_dir, "postgres://mcpwatch@127.0.0.1:1/x");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(text.contains("cannot connect to the database"), "{text}");
    let Some(url) = postgres::test_database() else {
        return;
    };
    let out = migrate(&source.data_dir, &url);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("stop it first") || text.contains("running"),
        "{text}"
    );
}
