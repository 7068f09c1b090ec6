//! Enrollment with an enroll secret and the agent request signature: a signed agent's
//! unsigned, badly signed, stale and replayed requests are refused.

use mcpwatch_tests::{Signer, TestCollector, send};
use serde_json::json;

fn setup() -> (TestCollector, String) {
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    (c, admin)
}

#[test]
fn enrolled_agents_must_sign_and_replays_are_refused() {
    let (c, admin) = setup();
    let (status, secret) = c.post(
        "/enroll-secrets",
        &admin,
        &json!({ "name": "laptops", "expires_in_days": 30 }),
    );
    assert_eq!(status, 201, "{secret}");
    let enroll_secret = secret["secret"].as_str().unwrap().to_owned();
    assert!(enroll_secret.starts_with("mcp_es_"));
    let (_, list) = c.get("/enroll-secrets", &admin);
    assert!(
        !list.to_string().contains(&enroll_secret),
        "the secret is shown once"
    );

    let signer = Signer::new();
    let (status, body) = c.call(
        reqwest::Method::POST,
        "/agents/enroll",
        None,
        Some(&json!({ "enroll_secret": "mcp_es_wrong", "public_key": signer.public_key(), "hostname": "h" })),
    );
    assert_eq!(status, 401, "{body}");
    let (status, body) = c.call(
        reqwest::Method::POST,
        "/agents/enroll",
        None,
        Some(&json!({ "enroll_secret": enroll_secret, "public_key": "AAAA", "hostname": "h" })),
    );
    assert_eq!(status, 422, "{body}");
    let (status, enrolled) = c.call(
        reqwest::Method::POST,
        "/agents/enroll",
        None,
        Some(&json!({
            "enroll_secret": enroll_secret, "public_key": signer.public_key(),
            "hostname": "alice-mbp", "os_type": "macos", "username": "alice", "agent_version": "0.1.0"
        })),
    );
    assert_eq!(status, 201, "{enrolled}");
    let key = enrolled["api_key"].as_str().unwrap().to_owned();
    let agent_id = enrolled["agent_id"].as_str().unwrap().to_owned();
    let (_, agent) = c.get(&format!("/agents/{agent_id}"), &admin);
    assert_eq!(agent["hostname"], "alice-mbp");
    assert_eq!(agent["signing_enabled"], true);
    assert_eq!(agent["enrollment"], "enroll_secret");

    let hb = json!({ "hostname": "alice-mbp" });
    let (status, body) = c.agent_call("/agents/heartbeat", &key, Some(&signer), &hb);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signing_required"], true);
    // Unsigned.
    assert_eq!(c.agent_call("/agents/heartbeat", &key, None, &hb).0, 401);
    assert_eq!(
        c.agent_call("/mcp/report", &key, None, &json!({ "servers": [] }))
            .0,
        401
    );
    // Signed by another key.
    assert_eq!(
        c.agent_call("/agents/heartbeat", &key, Some(&Signer::new()), &hb)
            .0,
        401
    );
    // Stale.
    let stale = Signer {
        key: signer.key.clone(),
        skew_secs: -600,
    };
    assert_eq!(
        c.agent_call("/agents/heartbeat", &key, Some(&stale), &hb).0,
        401
    );
    // Signed for another body.
    let bytes = serde_json::to_vec(&hb).unwrap();
    let header = signer.sign("POST", "/agents/heartbeat", b"{}");
    let req = c
        .http
        .post(c.url("/agents/heartbeat"))
        .header("x-api-key", &key)
        .header("x-mcpwatch-signature", header)
        .header("content-type", "application/json")
        .body(bytes.clone());
    assert_eq!(send(req).0, 401);
    // Replayed: the same signed request twice.
    let header = signer.sign("POST", "/agents/heartbeat", &bytes);
    let replay = || {
        c.http
            .post(c.url("/agents/heartbeat"))
            .header("x-api-key", &key)
            .header("x-mcpwatch-signature", header.clone())
            .header("content-type", "application/json")
            .body(bytes.clone())
    };
    assert_eq!(send(replay()).0, 200);
    let (status, body) = send(replay());
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("replay"),
        "{body}"
    );
    // A signed report works.
    let report = json!({ "servers": [mcpwatch_tests::seed_server()] });
    assert_eq!(
        c.agent_call("/mcp/report", &key, Some(&signer), &report).0,
        200
    );

    // A deleted secret enrolls no more agents; enrolled ones keep working.
    let secret_id = secret["id"].as_str().unwrap();
    assert_eq!(
        c.call(
            reqwest::Method::DELETE,
            &format!("/enroll-secrets/{secret_id}"),
            Some(&admin),
            None
        )
        .0,
        204
    );
    let (status, _) = c.call(
        reqwest::Method::POST,
        "/agents/enroll",
        None,
        Some(&json!({ "enroll_secret": enroll_secret, "public_key": Signer::new().public_key() })),
    );
    assert_eq!(status, 401);
    assert_eq!(
        c.agent_call("/agents/heartbeat", &key, Some(&signer), &hb)
            .0,
        200
    );
}

#[test]
fn a_manual_key_works_alone_until_it_binds_a_public_key() {
    let (c, admin) = setup();
    let (_, key) = c.create_agent(&admin, "laptop");
    let hb = json!({ "hostname": "laptop.local", "os_type": "windows", "username": "jane", "agent_version": "0.1.2" });
    let (status, body) = c.agent_call("/agents/heartbeat", &key, None, &hb);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signing_required"], false);
    let signer = Signer::new();
    let bind = json!({ "hostname": "laptop.local", "public_key": signer.public_key() });
    let (status, body) = c.agent_call("/agents/heartbeat", &key, None, &bind);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signing_required"], true);
    assert_eq!(
        c.agent_call("/agents/heartbeat", &key, None, &hb).0,
        401,
        "unsigned after binding"
    );
    assert_eq!(
        c.agent_call("/agents/heartbeat", &key, Some(&signer), &hb)
            .0,
        200
    );
    // Another key cannot be bound over it.
    let other = Signer::new();
    let rebind = json!({ "public_key": other.public_key() });
    assert_eq!(
        c.agent_call("/agents/heartbeat", &key, Some(&signer), &rebind)
            .0,
        409
    );
}

#[test]
fn failed_enrollments_are_rate_limited_per_address() {
    let (c, _) = setup();
    let body = json!({ "enroll_secret": "mcp_es_guess", "public_key": Signer::new().public_key() });
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(
            c.call(reqwest::Method::POST, "/agents/enroll", None, Some(&body))
                .0,
        );
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
}

/// Small-order Ed25519 points (the identity among them) let one fixed signature
/// verify for every message: they never become an agent's key, by enrollment or by
/// binding, and a forged request under one is refused.
#[test]
fn small_order_public_keys_are_refused_everywhere() {
    use base64::Engine as _;
    let (c, admin) = setup();
    let (_, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "fleet" }));
    let enroll_secret = secret["secret"].as_str().unwrap().to_owned();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut order_four = [0u8; 32];
    order_four[31] = 0x80; // (0, -1) encodes as y = 0 with the sign bit
    let weak_keys: Vec<String> = [identity, [0u8; 32], order_four]
        .iter()
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k))
        .collect();
    for weak in &weak_keys {
        let (status, body) = c.call(
            reqwest::Method::POST,
            "/agents/enroll",
            None,
            Some(&json!({ "enroll_secret": enroll_secret, "public_key": weak, "hostname": "h" })),
        );
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"]["field"], "public_key", "{body}");
        let (_, key) = c.create_agent(&admin, "laptop");
        let (status, body) = c.agent_call(
            "/agents/heartbeat",
            &key,
            None,
            &json!({ "public_key": weak }),
        );
        assert_eq!(status, 422, "{body}");
        // Still unbound: a forged "signed" request cannot ride on it.
        let (status, answer) = c.agent_call("/agents/heartbeat", &key, None, &json!({}));
        assert_eq!(
            (status, answer["signing_required"].clone()),
            (200, json!(false))
        );
    }
    let (_, agents) = c.get("/agents/", &admin);
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["signing_enabled"] == false),
        "no weak key was bound"
    );
}
