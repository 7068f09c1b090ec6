//! API tokens (`mcp_pat_...`): each role's token may do what the role allows and no
//! more; nobody mints a token above their role; revoked tokens and tokens of disabled
//! or removed people are refused; lists show people their own (admins everyone's in
//! their organisation), never the token; last use is recorded.

use mcpwatch_tests::{TestCollector, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

fn mint(c: &TestCollector, bearer: &str, body: &Value) -> (u16, Value) {
    c.post("/api-tokens", bearer, body)
}

fn token_of(c: &TestCollector, bearer: &str, role: Option<&str>) -> (String, String) {
    let mut body = json!({ "name": format!("{role:?} script") });
    if let Some(role) = role {
        body["role"] = json!(role);
    }
    let (status, created) = mint(c, bearer, &body);
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mcp_pat_"));
    assert!(token.starts_with(created["token_prefix"].as_str().unwrap()));
    (created["id"].as_str().unwrap().to_owned(), token)
}

#[test]
fn each_tokens_role_allows_exactly_what_the_role_does() {
    let c = TestCollector::start(&[]);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    let (_, viewer) = token_of(&c, &admin, Some("viewer"));
    let (_, analyst) = token_of(&c, &admin, Some("analyst"));
    let (_, full) = token_of(&c, &admin, None);

    // (method, path, body, the lowest role allowed)
    let calls = [
        (Method::GET, "/mcp/servers", json!(null), 0),
        (Method::GET, "/dashboard/stats", json!(null), 0),
        (Method::POST, "/alerts/dismiss-all", json!({}), 1),
        (Method::GET, "/users", json!(null), 2),
        (Method::GET, "/notifications/channels", json!(null), 2),
        (Method::PUT, "/policy", json!({ "blocked": [] }), 2),
    ];
    for (rank, token) in [viewer.as_str(), analyst.as_str(), full.as_str()]
        .into_iter()
        .enumerate()
    {
        for (method, path, body, lowest) in &calls {
            let body = (!body.is_null()).then_some(body);
            let (status, answer) = c.call(method.clone(), path, Some(token), body);
            if rank >= *lowest {
                assert!(
                    (200..300).contains(&status),
                    "role {rank} {method} {path}: {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "role {rank} {method} {path}: {answer}");
            }
        }
    }
    // Also under the seed's prefix.
    let (status, _) = c.get("/api/v1/mcp/servers", &viewer);
    assert_eq!(status, 200);
    // A token has no session to log out of.
    let (status, _) = c.post("/auth/logout", &full, &json!({}));
    assert_eq!(status, 400);
}

#[test]
fn nobody_mints_above_their_role_and_bad_input_names_the_field() {
    let c = TestCollector::start(&[]);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    let viewer = c.user_with_role(&admin, "viewer@a.example", "viewer");
    let analyst = c.user_with_role(&admin, "analyst@a.example", "analyst");
    let (status, err) = mint(&c, &viewer, &json!({ "name": "x", "role": "admin" }));
    assert_eq!(
        (status, err["error"]["details"]["field"].as_str()),
        (403, Some("role"))
    );
    let (status, _) = mint(&c, &analyst, &json!({ "name": "x", "role": "admin" }));
    assert_eq!(status, 403);
    // A viewer's token cannot mint an analyst token either, even for an admin.
    let (_, admins_viewer_token) = token_of(&c, &admin, Some("viewer"));
    let (status, _) = mint(
        &c,
        &admins_viewer_token,
        &json!({ "name": "x", "role": "analyst" }),
    );
    assert_eq!(status, 403);
    let (status, created) = mint(&c, &analyst, &json!({ "name": "x" }));
    assert_eq!((status, created["role"].as_str()), (201, Some("analyst")));
    let expires =
        chrono::DateTime::parse_from_rfc3339(created["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((89 * 24..=90 * 24).contains(&days), "{days} hours");
    for (body, field) in [
        (
            json!({ "name": "x", "expires_in_days": 0 }),
            "expires_in_days",
        ),
        (
            json!({ "name": "x", "expires_in_days": 366 }),
            "expires_in_days",
        ),
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x", "role": "root" }), "role"),
    ] {
        let (status, err) = mint(&c, &admin, &body);
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["details"]["field"], field, "{body}: {err}");
    }
}

#[test]
fn revoked_tokens_and_tokens_of_disabled_or_removed_people_are_refused() {
    let (c, admin, other_admin) = TestCollector::with_two_organisations();
    let analyst = c.user_with_role(&admin, "analyst@a.example", "analyst");
    let (_, me) = c.get("/auth/me", &analyst);
    let analyst_id = me["id"].as_str().unwrap().to_owned();
    let (id, token) = token_of(&c, &analyst, None);
    let (_, second) = token_of(&c, &analyst, None);
    let (admin_token_id, _) = token_of(&c, &admin, None);

    // Lists: the analyst sees their own two; the admin all three; B none, and the token
    // itself never.
    let (_, mine) = c.get("/api-tokens", &analyst);
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let (_, all) = c.get("/api-tokens", &admin);
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert!(!all.to_string().contains(&token));
    let (_, theirs) = c.get("/api-tokens", &other_admin);
    assert_eq!(theirs, json!([]));
    // Neither another organisation nor a non-admin revokes someone else's token.
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/api-tokens/{id}"),
        Some(&other_admin),
        None,
    );
    assert_eq!(status, 404);
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/api-tokens/{admin_token_id}"),
        Some(&analyst),
        None,
    );
    assert_eq!(status, 404);

    // Use is recorded (saved in batches).
    let (status, _) = c.get("/mcp/servers", &token);
    assert_eq!(status, 200);
    eventually(Duration::from_secs(30), "last_used_at", || {
        let (_, mine) = c.get("/api-tokens", &analyst);
        mine.as_array()?
            .iter()
            .find(|t| t["id"] == id.as_str())
            .filter(|t| t["last_used_at"].is_string())
            .map(drop)
    });

    // Revoked: 401.
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/api-tokens/{id}"),
        Some(&analyst),
        None,
    );
    assert_eq!(status, 204);
    let (status, err) = c.get("/mcp/servers", &token);
    assert_eq!(status, 401, "{err}");
    // The owner disabled: 401; enabled again: works.
    let (status, _) = c.patch(
        &format!("/users/{analyst_id}"),
        &admin,
        &json!({ "is_active": false }),
    );
    assert_eq!(status, 200);
    let (status, _) = c.get("/mcp/servers", &second);
    assert_eq!(status, 401);
    let (status, _) = c.patch(
        &format!("/users/{analyst_id}"),
        &admin,
        &json!({ "is_active": true }),
    );
    assert_eq!(status, 200);
    let (status, _) = c.get("/mcp/servers", &second);
    assert_eq!(status, 200);
    // A role lowered below the token's: the token has the lower one.
    let (status, _) = c.patch(
        &format!("/users/{analyst_id}"),
        &admin,
        &json!({ "role": "viewer" }),
    );
    assert_eq!(status, 200);
    let (status, _) = c.post("/alerts/dismiss-all", &second, &json!({}));
    assert_eq!(status, 403);
    // Removed: 401.
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/users/{analyst_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = c.get("/mcp/servers", &second);
    assert_eq!(status, 401);
    // A made-up token: 401.
    let (status, _) = c.get(
        "/mcp/servers",
        "mcp_pat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    assert_eq!(status, 401);
}
