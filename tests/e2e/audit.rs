//! The audit log: every audited action writes its entry with who, what, on what and
//! from where (failed logins too, never the password); filters; admins only; one
//! organisation never sees another's entries; entries are events for channels.

use mcpwatch_tests::{Signer, TestCollector, agent_server, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

fn entries(c: &TestCollector, token: &str, query: &str) -> Vec<Value> {
    let (status, page) = c.get(&format!("/audit?page_size=100{query}"), token);
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn find<'a>(all: &'a [Value], action: &str) -> &'a Value {
    all.iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} entry in {all:#?}"))
}

#[test]
fn each_audited_action_writes_its_entry() {
    let (c, admin, other) = TestCollector::with_two_organisations();
    let (_, me) = c.get("/auth/me", &admin);
    let admin_id = me["id"].as_str().unwrap().to_owned();

    // A channel that wants audit events (its target is never reached here).
    let (status, channel) = c.post(
        "/notifications/channels",
        &admin,
        &json!({ "name": "audit feed", "kind": "webhook", "target": "https://1.1.1.1/audit",
                 "events": ["audit.user.created", "audit.auth.login_failed"] }),
    );
    assert_eq!(status, 201, "{channel}");
    let channel_id = channel["id"].as_str().unwrap().to_owned();

    // Logins: one failed with a known email, one with an unknown email, one good.
    let (status, _) = c.login("admin@a.example", "Wrong-Password-42!");
    assert_eq!(status, 401);
    let (status, _) = c.login("nobody@a.example", "Wrong-Password-42!");
    assert_eq!(status, 401);
    let session = c.token("admin@a.example", "AdminPass123!");

    // People.
    let (status, user) = c.post(
        "/users",
        &admin,
        &json!({ "email": "ann@a.example", "password": "UserPass123!", "role": "viewer" }),
    );
    assert_eq!(status, 201);
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (status, _) = c.patch(
        &format!("/users/{user_id}"),
        &admin,
        &json!({ "role": "analyst" }),
    );
    assert_eq!(status, 200);
    let (status, _) = c.patch(
        &format!("/users/{user_id}"),
        &admin,
        &json!({ "is_active": false }),
    );
    assert_eq!(status, 200);
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/users/{user_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 204);

    // Agents and enrollment.
    let (agent_id, key) = c.create_agent(&admin, "laptop");
    let (status, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "fleet" }));
    assert_eq!(status, 201);
    let secret_id = secret["id"].as_str().unwrap().to_owned();
    let (status, enrolled) = c.call(
        Method::POST,
        "/agents/enroll",
        None,
        Some(&json!({ "enroll_secret": secret["secret"], "public_key": Signer::new().public_key(), "hostname": "bob-mbp" })),
    );
    assert_eq!(status, 201, "{enrolled}");
    let enrolled_id = enrolled["agent_id"].as_str().unwrap().to_owned();
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/enroll-secrets/{secret_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 204);

    // Inventory, policy, alerts.
    let (status, _) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "servers": [agent_server("fs", "npx", &["-y", "@modelcontextprotocol/server-filesystem", "/"])] }),
    );
    assert_eq!(status, 200);
    let (_, servers) = c.get("/mcp/servers", &admin);
    let server_id = servers["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = c.patch(
        &format!("/mcp/servers/{server_id}"),
        &admin,
        &json!({ "is_verified": true }),
    );
    assert_eq!(status, 200);
    let (status, _) = c.call(
        Method::PUT,
        "/policy",
        Some(&admin),
        Some(&json!({ "blocked": ["evil-mcp"] })),
    );
    assert_eq!(status, 200);
    let (_, alerts) = c.get("/alerts/", &admin);
    let alert_id = alerts["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = c.post(&format!("/alerts/{alert_id}/dismiss"), &admin, &json!({}));
    assert_eq!(status, 200);
    let (status, _) = c.post("/alerts/dismiss-all", &admin, &json!({}));
    assert_eq!(status, 200);

    // Tokens: made with a session, then acting itself.
    let (status, token) = c.post("/api-tokens", &admin, &json!({ "name": "siem" }));
    assert_eq!(status, 201);
    let token_id = token["id"].as_str().unwrap().to_owned();
    let api_token = token["token"].as_str().unwrap().to_owned();
    let (status, _) = c.patch(
        &format!("/notifications/channels/{channel_id}"),
        &api_token,
        &json!({ "enabled": true }),
    );
    assert_eq!(status, 200);
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/agents/{agent_id}"),
        Some(&api_token),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/api-tokens/{token_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = c.patch("/auth/organization", &admin, &json!({ "name": "A Corp" }));
    assert_eq!(status, 200);
    // Ends the other sessions (the admin's first one too), so it comes last.
    let (status, _) = c.call(
        Method::PUT,
        "/auth/me/password",
        Some(&session),
        Some(&json!({ "current_password": "AdminPass123!", "new_password": "AdminPass456!" })),
    );
    assert_eq!(status, 200);
    let (status, _) = c.post("/auth/logout", &session, &json!({}));
    assert_eq!(status, 204);

    let admin = c.token("admin@a.example", "AdminPass456!");
    let all = entries(&c, &admin, "");
    let text = serde_json::to_string(&all).unwrap();
    assert!(
        !text.contains("Wrong-Password-42!") && !text.contains("AdminPass"),
        "no password in the log"
    );
    assert!(!text.contains(&api_token) && !text.contains(secret["secret"].as_str().unwrap()));
    assert!(
        !text.contains("nobody@a.example"),
        "an unknown email has no organisation"
    );
    for e in &all {
        assert_eq!(e["source_ip"], "127.0.0.1", "{e}");
    }

    let failed = find(&all, "auth.login_failed");
    assert_eq!(failed["actor"]["email"], "admin@a.example");
    assert_eq!(failed["details"]["reason"], "wrong password");
    assert_eq!(find(&all, "auth.login")["actor"]["id"], admin_id.as_str());
    assert_eq!(
        find(&all, "auth.registered")["target"]["kind"],
        "organization"
    );
    let created = find(&all, "user.created");
    assert_eq!(
        (
            created["target"]["kind"].as_str(),
            created["target"]["id"].as_str()
        ),
        (Some("user"), Some(user_id.as_str()))
    );
    assert_eq!(
        created["actor"],
        json!({ "kind": "user", "id": admin_id, "email": "admin@a.example" })
    );
    assert_eq!(
        find(&all, "user.role_changed")["details"]["role"],
        "analyst"
    );
    assert_eq!(
        find(&all, "user.deactivated")["target"]["id"],
        user_id.as_str()
    );
    assert_eq!(find(&all, "user.deleted")["target"]["id"], user_id.as_str());
    find(&all, "auth.password_changed");
    assert_eq!(
        find(&all, "agent.created")["target"]["id"],
        agent_id.as_str()
    );
    assert_eq!(
        find(&all, "enroll_secret.created")["target"]["id"],
        secret_id.as_str()
    );
    assert_eq!(
        find(&all, "enroll_secret.deleted")["target"]["id"],
        secret_id.as_str()
    );
    let enroll = find(&all, "agent.enrolled");
    assert_eq!(enroll["actor"]["kind"], "agent");
    assert_eq!(enroll["target"]["id"], enrolled_id.as_str());
    assert_eq!(
        find(&all, "server.verified")["target"]["id"],
        server_id.as_str()
    );
    assert_eq!(
        find(&all, "policy.updated")["details"]["blocked"],
        json!(["evil-mcp"])
    );
    assert_eq!(
        find(&all, "alert.dismissed")["target"]["id"],
        alert_id.as_str()
    );
    find(&all, "alert.dismissed_all");
    assert_eq!(
        find(&all, "api_token.created")["target"]["id"],
        token_id.as_str()
    );
    assert_eq!(
        find(&all, "api_token.revoked")["target"]["id"],
        token_id.as_str()
    );
    let by_token = find(&all, "agent.deleted");
    assert_eq!(by_token["actor"]["kind"], "api_token");
    assert_eq!(by_token["actor"]["id"], token_id.as_str());
    assert_eq!(by_token["actor"]["user_id"], admin_id.as_str());
    assert_eq!(
        find(&all, "channel.created")["target"]["id"],
        channel_id.as_str()
    );
    assert_eq!(
        find(&all, "channel.updated")["details"]["changed"],
        json!(["enabled"])
    );
    assert_eq!(
        find(&all, "organization.updated")["details"]["changed"],
        json!(["name"])
    );
    find(&all, "auth.logout");
    assert!(!text.contains("1.1.1.1"), "no channel target in the log");

    // Filters.
    let only = entries(&c, &admin, "&action=user.created");
    assert!(only.len() == 1 && only[0]["action"] == "user.created");
    let on_user = entries(&c, &admin, &format!("&target_id={user_id}"));
    assert_eq!(on_user.len(), 4, "{on_user:#?}");
    let by_agent = entries(&c, &admin, &format!("&actor_id={enrolled_id}"));
    assert_eq!(by_agent.len(), 1);
    let by_admin_any_way = entries(&c, &admin, &format!("&actor_id={admin_id}"));
    assert!(
        by_admin_any_way
            .iter()
            .any(|e| e["actor"]["kind"] == "api_token")
    );
    let future = entries(&c, &admin, "&since=2999-01-01T00:00:00Z");
    assert!(future.is_empty());
    let past = entries(&c, &admin, "&until=2000-01-01T00:00:00Z");
    assert!(past.is_empty());
    let newest_first: Vec<&str> = all.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(newest_first.windows(2).all(|w| w[0] >= w[1]));
    for bad in ["&action=user.exploded", "&since=yesterday", "&page=0"] {
        let (status, err) = c.get(&format!("/audit?{bad}"), &admin);
        assert_eq!(status, 400, "{bad}: {err}");
    }

    // Admins only; another organisation sees only its own.
    let viewer = c.user_with_role(&admin, "viewer@a.example", "viewer");
    let analyst = c.user_with_role(&admin, "analyst@a.example", "analyst");
    for token in [&viewer, &analyst] {
        let (status, _) = c.get("/audit", token);
        assert_eq!(status, 403);
    }
    let theirs = entries(&c, &other, "");
    assert!(
        theirs
            .iter()
            .all(|e| e["actor"]["email"] != "admin@a.example")
    );
    assert!(theirs.iter().any(|e| e["action"] == "auth.login"));

    // Entries are events: the channel got deliveries of audit.user.created (twice:
    // ann and the two users made for the role checks) and audit.auth.login_failed.
    eventually(Duration::from_secs(20), "audit deliveries", || {
        let (_, page) = c.get(
            &format!("/notifications/deliveries?channel_id={channel_id}"),
            &admin,
        );
        let names: Vec<String> = page["items"]
            .as_array()?
            .iter()
            .map(|d| d["event"].as_str().unwrap_or("").to_owned())
            .collect();
        (names.iter().filter(|n| *n == "audit.user.created").count() == 3
            && names.iter().any(|n| n == "audit.auth.login_failed"))
        .then_some(())
    });
}
