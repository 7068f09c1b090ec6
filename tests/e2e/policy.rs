//! Organisation policy: blocked packages make servers critical (stored ones are
//! rescored in the background), approved servers raise no alerts, unknown rule ids are
//! refused, and one organisation's policy never touches another's servers.

use std::time::Duration;

use mcpwatch_tests::{TestCollector, agent_server, eventually};
use reqwest::Method;
use serde_json::json;

#[test]
fn policy_blocks_approves_and_stays_in_its_organisation() {
    let (c, a, b) = TestCollector::with_two_organisations();
    let report = json!({ "servers": [
        agent_server("helper", "npx", &["-y", "helper-mcp@1.0.0"]),
        agent_server("fs", "npx", &["-y", "@modelcontextprotocol/server-filesystem@2026.9.1", "/"]),
    ]});
    let (agent_a, key_a) = c.create_agent(&a, "a-laptop");
    let (agent_b, key_b) = c.create_agent(&b, "b-laptop");
    assert_eq!(c.agent_call("/mcp/report", &key_a, None, &report).0, 200);
    assert_eq!(c.agent_call("/mcp/report", &key_b, None, &report).0, 200);

    let (status, empty) = c.get("/policy", &a);
    assert_eq!(status, 200);
    assert_eq!(
        (empty["version"].clone(), empty["blocked"].clone()),
        (json!(0), json!([]))
    );
    let (status, body) = c.call(
        Method::PUT,
        "/policy",
        Some(&a),
        Some(&json!({ "severity_overrides": { "MCP-NOPE-999": "low" } })),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["field"],
        "severity_overrides.MCP-NOPE-999"
    );
    let (status, saved) = c.call(
        Method::PUT,
        "/policy",
        Some(&a),
        Some(&json!({ "blocked": ["helper-mcp"], "approved": ["fs"] })),
    );
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 1);

    // A's stored helper is rescored to critical in the background; B's is not.
    let helper_level = |token: &str, agent: &str| {
        let (_, page) = c.get(
            &format!("/mcp/servers?agent_id={agent}&search=helper"),
            token,
        );
        page["items"][0]["risk_level"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    eventually(
        Duration::from_secs(20),
        "rescoring under the new policy",
        || (helper_level(&a, &agent_a) == "critical").then_some(()),
    );
    assert_eq!(helper_level(&b, &agent_b), "low");
    let (_, b_policy) = c.get("/policy", &b);
    assert_eq!(b_policy["version"], 0);

    // A new server launching the blocked package raises a blocked-package alert; the
    // approved name stays quiet even when it changes.
    c.post("/alerts/dismiss-all", &a, &json!({}));
    let next = json!({ "servers": [
        agent_server("helper", "npx", &["-y", "helper-mcp@1.0.0"]),
        agent_server("helper-2", "npx", &["-y", "helper-mcp@2.0.0"]),
        agent_server("fs", "npx", &["-y", "@modelcontextprotocol/server-filesystem@2026.9.1", "/etc"]),
    ]});
    assert_eq!(c.agent_call("/mcp/report", &key_a, None, &next).0, 200);
    let (_, alerts) = c.get("/alerts/?dismissed=false", &a);
    let kinds: Vec<&str> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["blocked_package"], "{alerts}");
    // Viewers read the policy but cannot change it.
    let viewer = c.user_with_role(&a, "viewer@a.example", "viewer");
    assert_eq!(c.get("/policy", &viewer).0, 200);
    assert_eq!(
        c.call(Method::PUT, "/policy", Some(&viewer), Some(&json!({})))
            .0,
        403
    );
}
