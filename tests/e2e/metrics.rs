//! `GET /metrics`: refused without the configured token, and its counters move with
//! what the collector does.

use mcpwatch_tests::{TestCollector, agent_server};
use reqwest::Method;
use serde_json::json;

/// The value of the sample line starting with `name` (labels included).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn scrape(c: &TestCollector, token: Option<&str>) -> (u16, String) {
    let r = c.request(Method::GET, "/metrics", token).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn metrics_need_the_token_and_move_with_reports() {
    let c = TestCollector::start(&["--metrics-token", "scrape-me-7f3a"]);
    assert_eq!(scrape(&c, None).0, 401);
    assert_eq!(scrape(&c, Some("wrong")).0, 401);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    assert_eq!(
        scrape(&c, Some(&admin)).0,
        401,
        "a person's token is not the metrics token"
    );
    let (status, before) = scrape(&c, Some("scrape-me-7f3a"));
    assert_eq!(status, 200);
    let (_, key) = c.create_agent(&admin, "laptop");
    let servers = vec![
        agent_server(
            "root-files",
            "npx",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@2026.9.1",
                "/",
            ],
        ),
        agent_server("clock", "uvx", &["mcp-server-time==0.6.2"]),
    ];
    let (status, body) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "hostname": "h", "servers": servers }),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = c.agent_call("/agents/heartbeat", &key, None, &json!({ "hostname": "h" }));
    assert_eq!(status, 200);
    let (_, after) = scrape(&c, Some("scrape-me-7f3a"));
    let moved = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(moved("mcpwatch_reports_total"), 1.0, "{after}");
    assert_eq!(moved("mcpwatch_servers_ingested_total"), 2.0);
    assert_eq!(moved("mcpwatch_heartbeats_total"), 1.0);
    assert_eq!(
        moved(r#"mcpwatch_http_requests_total{route="/mcp/report",method="POST",status="200"}"#),
        1.0
    );
    assert!(moved("mcpwatch_store_commit_duration_seconds_count") >= 1.0);
    assert_eq!(sample(&after, r#"mcpwatch_servers{level="critical"}"#), 1.0);
    assert_eq!(sample(&after, r#"mcpwatch_servers{level="low"}"#), 1.0);
    assert_eq!(
        sample(&after, r#"mcpwatch_open_alerts{severity="critical"}"#),
        1.0
    );
    assert_eq!(sample(&after, r#"mcpwatch_agents{state="online"}"#), 1.0);
    assert!(sample(&after, "mcpwatch_database_size_bytes") > 0.0);
    assert!(sample(&after, "mcpwatch_process_resident_memory_bytes") > 1e6);
    // Routes are their patterns, never the raw paths with ids in them.
    let id = c.get("/mcp/servers", &admin).1["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.get(&format!("/mcp/servers/{id}"), &admin);
    let (_, last) = scrape(&c, Some("scrape-me-7f3a"));
    assert!(!last.contains(&id), "a server id in the metrics");
    assert!(last.contains(r#"route="/mcp/servers/{id}""#));
    // The token never appears in the log.
    assert!(!c.log().contains("scrape-me-7f3a"));
}

#[test]
fn without_a_token_metrics_answer_loopback() {
    let c = TestCollector::start(&[]);
    let (status, text) = scrape(&c, None);
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text");
}
