//! Organisation A cannot see or change anything of organisation B, through any endpoint.

use mcpwatch_tests::{TestCollector, agent_server};
use reqwest::Method;
use serde_json::{Value, json};

struct Tenant {
    admin: String,
    agent_id: String,
    key: String,
    server_id: String,
    alert_id: String,
    user_id: String,
    secret_id: String,
}

fn tenant(c: &TestCollector, name: &str) -> Tenant {
    let email = format!("admin@{name}.example");
    c.register(&email, "AdminPass123!", name);
    let admin = c.token(&email, "AdminPass123!");
    let (agent_id, key) = c.create_agent(&admin, &format!("{name}-laptop"));
    let report = json!({ "servers": [
        agent_server(&format!("{name}-fs"), "npx", &["-y", "@modelcontextprotocol/server-filesystem", "/"]),
        agent_server(&format!("{name}-time"), "uvx", &["mcp-server-time==1.0.0"]),
    ]});
    assert_eq!(c.agent_call("/mcp/report", &key, None, &report).0, 200);
    let (_, servers) = c.get("/mcp/servers?risk_level=critical", &admin);
    let server_id = servers["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, alerts) = c.get("/alerts/", &admin);
    let alert_id = alerts["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, user) = c.post(
        "/users",
        &admin,
        &json!({ "email": format!("viewer@{name}.example"), "password": "ViewerPass1!", "role": "viewer" }),
    );
    assert_eq!(status, 201);
    let (_, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "fleet" }));
    Tenant {
        admin,
        agent_id,
        key,
        server_id,
        alert_id,
        user_id: user["id"].as_str().unwrap().to_owned(),
        secret_id: secret["id"].as_str().unwrap().to_owned(),
    }
}

fn ids_in(v: &Value) -> Vec<String> {
    let list = v.get("items").unwrap_or(v);
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn one_organisation_cannot_see_or_change_another() {
    let c = TestCollector::start(&["--open-registration"]);
    let a = tenant(&c, "alpha");
    let b = tenant(&c, "beta");

    // Reads of A's rows by B's admin: 404, never the row.
    for path in [
        format!("/mcp/servers/{}", a.server_id),
        format!("/agents/{}", a.agent_id),
        format!("/users/{}", a.user_id),
    ] {
        let (status, body) = c.get(&path, &b.admin);
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    // Writes to A's rows by B's admin: 404, and A's rows unchanged.
    let writes: Vec<(Method, String, Value)> = vec![
        (
            Method::PATCH,
            format!("/mcp/servers/{}", a.server_id),
            json!({ "is_verified": true }),
        ),
        (
            Method::POST,
            format!("/alerts/{}/dismiss", a.alert_id),
            json!({}),
        ),
        (
            Method::PATCH,
            format!("/users/{}", a.user_id),
            json!({ "role": "admin" }),
        ),
        (Method::DELETE, format!("/users/{}", a.user_id), json!({})),
        (Method::DELETE, format!("/agents/{}", a.agent_id), json!({})),
        (
            Method::DELETE,
            format!("/enroll-secrets/{}", a.secret_id),
            json!({}),
        ),
    ];
    for (method, path, body) in writes {
        let (status, resp) = c.call(method.clone(), &path, Some(&b.admin), Some(&body));
        assert_eq!(status, 404, "{method} {path}: {resp}");
    }
    let (status, _) = c.post("/alerts/dismiss-all", &b.admin, &json!({}));
    assert_eq!(status, 200);

    let (_, server) = c.get(&format!("/mcp/servers/{}", a.server_id), &a.admin);
    assert_eq!(server["is_verified"], false);
    let (_, alerts) = c.get("/alerts/?dismissed=false", &a.admin);
    assert!(
        ids_in(&alerts).contains(&a.alert_id),
        "A's alert is still open"
    );
    let (_, user) = c.get(&format!("/users/{}", a.user_id), &a.admin);
    assert_eq!(user["role"], "viewer");
    let (status, _) = c.get(&format!("/agents/{}", a.agent_id), &a.admin);
    assert_eq!(status, 200);
    let (_, secrets) = c.get("/enroll-secrets", &a.admin);
    assert!(ids_in(&secrets).contains(&a.secret_id));
    // A's agent key still works.
    assert_eq!(
        c.agent_call("/agents/heartbeat", &a.key, None, &json!({}))
            .0,
        200
    );

    // Lists and counts show only one's own rows.
    for (path, a_ids) in [
        ("/mcp/servers?page_size=100", vec![a.server_id.clone()]),
        ("/agents/", vec![a.agent_id.clone()]),
        ("/alerts/?page_size=100", vec![a.alert_id.clone()]),
        ("/users", vec![a.user_id.clone()]),
        ("/enroll-secrets", vec![a.secret_id.clone()]),
        ("/dashboard/top-risks?limit=100", vec![a.server_id.clone()]),
    ] {
        let (status, body) = c.get(path, &b.admin);
        assert_eq!(status, 200, "{path}");
        let seen = ids_in(&body);
        assert!(!seen.is_empty(), "{path}: B sees its own rows");
        for id in a_ids {
            assert!(!seen.contains(&id), "{path}: B sees A's {id}");
        }
    }
    let (_, filtered) = c.get(&format!("/mcp/servers?agent_id={}", a.agent_id), &b.admin);
    assert_eq!(
        filtered["total"], 0,
        "filtering by A's agent id shows B nothing"
    );
    let (_, stats) = c.get("/dashboard/stats", &b.admin);
    assert_eq!(stats["total_servers"], 2);
    assert_eq!(stats["active_agents"], 1);
    let (_, dist) = c.get("/dashboard/risk-distribution", &b.admin);
    assert_eq!(dist["total"], 2);
    let (_, org) = c.get("/auth/organization", &b.admin);
    assert_eq!(org["name"], "beta");

    // B's agent cannot report into A: its servers land in B only.
    let report = json!({ "servers": [agent_server("beta-extra", "npx", &["x@1.0.0"])] });
    assert_eq!(c.agent_call("/mcp/report", &b.key, None, &report).0, 200);
    let (_, a_stats) = c.get("/dashboard/stats", &a.admin);
    assert_eq!(a_stats["total_servers"], 2);
    let _ = b.agent_id;
}
