//! Every protected route refuses callers without credentials; a viewer is refused
//! every write; an analyst only what analysts may do.

use mcpwatch_collector::model::Role;
use mcpwatch_collector::router::{Access, routes};
use mcpwatch_tests::TestCollector;
use reqwest::Method;
use serde_json::json;

fn concrete(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::now_v7().to_string())
}

#[test]
fn every_protected_route_answers_401_without_credentials() {
    let c = TestCollector::start(&[]);
    let table = routes();
    assert!(table.len() > 30, "route table is complete");
    for route in table.iter().filter(|r| r.access != Access::Public) {
        for path in [concrete(route.path), format!("{}/", concrete(route.path))] {
            let (status, body) = c.call(route.method.clone(), &path, None, Some(&json!({})));
            assert_eq!(
                status, 401,
                "{} {path} without credentials: {body}",
                route.method
            );
            assert!(
                body["error"]["code"].is_string(),
                "{} {path}: error envelope: {body}",
                route.method
            );
            let (status, _) = c.call(
                route.method.clone(),
                &path,
                Some("not-a-token"),
                Some(&json!({})),
            );
            assert_eq!(status, 401, "{} {path} with a garbage token", route.method);
            let req = c
                .request(route.method.clone(), &path, None)
                .header("x-api-key", "mcp_sk_forged")
                .json(&json!({}));
            let (status, _) = mcpwatch_tests::send(req);
            assert_eq!(status, 401, "{} {path} with a forged API key", route.method);
        }
    }
}

#[test]
fn an_agent_key_is_not_a_user_credential_and_a_token_is_not_an_agent_key() {
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (_, key) = c.create_agent(&admin, "laptop");
    let req = c
        .request(Method::GET, "/mcp/servers", None)
        .header("x-api-key", &key);
    assert_eq!(mcpwatch_tests::send(req).0, 401);
    let (status, _) = c.call(Method::GET, "/mcp/servers", Some(&key), None);
    assert_eq!(status, 401);
    let (status, _) = c.call(
        Method::POST,
        "/agents/heartbeat",
        Some(&admin),
        Some(&json!({})),
    );
    assert_eq!(status, 401);
}

/// Writes that a person's role governs. Self-service ones are excluded: every role may
/// change its own profile and password, log out, and make and revoke its own API
/// tokens; they are exactly the writes open to viewers, and are named here so that a
/// new write open to viewers fails this test until it is added.
fn role_writes() -> Vec<(Method, &'static str)> {
    const SELF_SERVICE: [&str; 5] = [
        "/auth/logout",
        "/auth/me",
        "/auth/me/password",
        "/api-tokens",
        "/api-tokens/{id}",
    ];
    let writes: Vec<_> = routes()
        .into_iter()
        .filter(|r| matches!(r.access, Access::Person(_)) && r.method != Method::GET)
        .collect();
    for r in &writes {
        assert_eq!(
            r.access == Access::Person(Role::Viewer),
            SELF_SERVICE.contains(&r.path),
            "{} {}: open to viewers exactly when self-service",
            r.method,
            r.path
        );
    }
    writes
        .into_iter()
        .filter(|r| !SELF_SERVICE.contains(&r.path))
        .map(|r| (r.method, r.path))
        .collect()
}

#[test]
fn a_viewer_is_refused_every_write_and_an_analyst_all_but_verify_and_dismiss() {
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let viewer = c.user_with_role(&admin, "viewer@acme.example", "viewer");
    let analyst = c.user_with_role(&admin, "analyst@acme.example", "analyst");

    // Real targets, so that a missing role check could not hide behind a 404.
    let (agent_id, key) = c.create_agent(&admin, "laptop");
    let (status, _) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "servers": [mcpwatch_tests::agent_server("fs", "npx", &["-y", "@modelcontextprotocol/server-filesystem", "/"])] }),
    );
    assert_eq!(status, 200);
    let (_, servers) = c.get("/mcp/servers", &admin);
    let server_id = servers["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, alerts) = c.get("/alerts/", &admin);
    let alert_id = alerts["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, users) = c.get("/users", &admin);
    let user_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["role"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "fleet" }));
    let secret_id = secret["id"].as_str().unwrap().to_owned();
    let channel_body =
        json!({ "name": "hook", "kind": "webhook", "target": "https://1.1.1.1/hook" });
    let (_, channel) = c.post("/notifications/channels", &admin, &channel_body);
    let channel_id = channel["id"].as_str().unwrap().to_owned();

    let fill = |path: &str| {
        let id = match path {
            p if p.starts_with("/users/") => &user_id,
            p if p.starts_with("/agents/") => &agent_id,
            p if p.starts_with("/mcp/servers/") => &server_id,
            p if p.starts_with("/alerts/") => &alert_id,
            p if p.starts_with("/enroll-secrets/") => &secret_id,
            p if p.starts_with("/notifications/channels/") => &channel_id,
            _ => "",
        };
        path.replace("{id}", id)
    };
    let body = |path: &str| match path {
        "/mcp/servers/{id}" => json!({ "is_verified": true }),
        "/users" => {
            json!({ "email": "new@acme.example", "password": "NewPass123!", "role": "admin" })
        }
        "/users/{id}" => json!({ "role": "admin" }),
        "/agents" => json!({ "name": "x" }),
        "/enroll-secrets" => json!({ "name": "x" }),
        "/auth/organization" => json!({ "name": "Pwned" }),
        "/notifications/channels" => channel_body.clone(),
        "/notifications/channels/{id}" => json!({ "enabled": false }),
        _ => json!({}),
    };

    for (method, path) in role_writes() {
        let (status, resp) = c.call(
            method.clone(),
            &fill(path),
            Some(&viewer),
            Some(&body(path)),
        );
        assert_eq!(status, 403, "viewer {method} {path}: {resp}");
        assert_eq!(resp["error"]["code"], "forbidden");
        let analyst_may = matches!(
            path,
            "/mcp/servers/{id}" | "/alerts/{id}/dismiss" | "/alerts/dismiss-all"
        );
        if !analyst_may {
            let (status, resp) = c.call(
                method.clone(),
                &fill(path),
                Some(&analyst),
                Some(&body(path)),
            );
            assert_eq!(status, 403, "analyst {method} {path}: {resp}");
        }
    }
    // Nothing changed.
    let (_, org) = c.get("/auth/organization", &admin);
    assert_eq!(org["name"], "Acme");
    let (_, server) = c.get(&format!("/mcp/servers/{server_id}"), &admin);
    assert_eq!(server["is_verified"], false);
    // The analyst may verify and dismiss.
    let (status, body) = c.patch(
        &format!("/mcp/servers/{server_id}"),
        &analyst,
        &json!({ "is_verified": true }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_verified"], true);
    let (status, _) = c.post(&format!("/alerts/{alert_id}/dismiss"), &analyst, &json!({}));
    assert_eq!(status, 200);
    // A viewer cannot grant itself a role through its own profile.
    let (status, _) = c.patch("/auth/me", &viewer, &json!({ "role": "admin" }));
    assert_eq!(status, 422);
    let (_, me) = c.get("/auth/me", &viewer);
    assert_eq!(me["role"], "viewer");
}

/// The role each route states in the route table is what the collector enforces,
/// reads included: a caller below it is refused before the handler runs.
#[test]
fn every_route_refuses_a_person_below_the_role_the_route_table_states() {
    use mcpwatch_collector::model::Role;
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let viewer = c.user_with_role(&admin, "viewer@acme.example", "viewer");
    let analyst = c.user_with_role(&admin, "analyst@acme.example", "analyst");
    let table = routes();
    let admin_only: Vec<_> = table
        .iter()
        .filter(|r| r.access == Access::Person(Role::Admin))
        .collect();
    assert!(
        admin_only.iter().any(|r| r.method == Method::GET),
        "some reads are admin-only (users, enroll secrets)"
    );
    for route in &table {
        let Access::Person(needed) = route.access else {
            continue;
        };
        for (token, role) in [(&viewer, Role::Viewer), (&analyst, Role::Analyst)] {
            if role >= needed {
                continue;
            }
            let (status, body) = c.call(
                route.method.clone(),
                &concrete(route.path),
                Some(token),
                Some(&json!({})),
            );
            assert_eq!(
                status, 403,
                "{role:?} {} {}: {body}",
                route.method, route.path
            );
            assert_eq!(body["error"]["details"]["required_role"], needed.as_str());
        }
    }
}

/// Every answer carries an `X-Request-Id`: the caller's own when it is a plain
/// token, a new one otherwise.
#[test]
fn every_answer_carries_a_request_id() {
    let c = TestCollector::start(&[]);
    let id_of = |req: reqwest::blocking::RequestBuilder| {
        let resp = req.send().expect("request");
        resp.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let fresh = id_of(c.request(Method::GET, "/health", None)).expect("a request id");
    assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
    let other = id_of(c.request(Method::GET, "/no/such/route", None)).expect("unmatched too");
    assert_ne!(fresh, other);
    let kept = id_of(
        c.request(Method::GET, "/health", None)
            .header("x-request-id", "trace-42.a_b"),
    );
    assert_eq!(kept.as_deref(), Some("trace-42.a_b"));
    for unusable in ["has space", "<script>", "tab\there", &"x".repeat(65)] {
        let replaced = id_of(
            c.request(Method::GET, "/health", None)
                .header("x-request-id", unusable),
        )
        .expect("a request id");
        assert_ne!(replaced, unusable);
        assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
    }
}
