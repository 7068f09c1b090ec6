//! No password, token, API key or enroll secret reaches the collector's log, even at
//! debug level, and none is echoed back by a read endpoint.

use mcpwatch_tests::{Signer, TestCollector, seed_server};
use reqwest::Method;
use serde_json::json;

#[test]
fn credentials_never_reach_the_log_or_read_endpoints() {
    let c = TestCollector::start(&["--log-level", "debug"]);
    let password = "Pl4nted-Password-0001";
    c.register("jane@example.com", password, "Acme");
    let (_, tokens) = c.login("jane@example.com", password);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(c.login("jane@example.com", "Wr0ng-Planted-Password").0, 401);
    let (_, key) = c.create_agent(&access, "laptop");
    let (_, secret) = c.post("/enroll-secrets", &access, &json!({ "name": "fleet" }));
    let enroll_secret = secret["secret"].as_str().unwrap().to_owned();
    let signer = Signer::new();
    let (status, enrolled) = c.call(
        Method::POST,
        "/agents/enroll",
        None,
        Some(&json!({ "enroll_secret": enroll_secret, "public_key": signer.public_key(), "hostname": "h" })),
    );
    assert_eq!(status, 201);
    let enrolled_key = enrolled["api_key"].as_str().unwrap().to_owned();
    assert_eq!(
        c.agent_call("/agents/heartbeat", &key, None, &json!({ "hostname": "h" }))
            .0,
        200
    );
    assert_eq!(
        c.agent_call(
            "/mcp/report",
            &key,
            None,
            &json!({ "servers": [seed_server()] })
        )
        .0,
        200
    );
    assert_eq!(
        c.agent_call(
            "/agents/heartbeat",
            &enrolled_key,
            Some(&signer),
            &json!({})
        )
        .0,
        200
    );
    let (status, next) = c.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(&json!({ "refresh_token": refresh })),
    );
    assert_eq!(status, 200);
    let new_password = "Pl4nted-Password-0002";
    let change = json!({ "current_password": password, "new_password": new_password });
    let next_access = next["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        c.call(
            Method::PUT,
            "/auth/me/password",
            Some(&next_access),
            Some(&change)
        )
        .0,
        200
    );

    let mut reads = String::new();
    for path in [
        "/agents/",
        "/enroll-secrets",
        "/users",
        "/auth/me",
        "/mcp/servers",
        "/alerts/",
    ] {
        reads.push_str(&c.get(path, &next_access).1.to_string());
    }
    let log = c.log();
    assert!(log.contains("Agent enrolled."), "the log was captured");
    for planted in [
        password,
        new_password,
        "Wr0ng-Planted-Password",
        &access,
        &refresh,
        &next_access,
        &key,
        &enrolled_key,
        &enroll_secret,
    ] {
        assert!(!log.contains(planted), "the log contains a credential");
        assert!(
            !reads.contains(planted),
            "a read endpoint returns a credential"
        );
    }
}
