//! Registration, login (form and JSON), tokens, profile, password and organisation.

use mcpwatch_tests::{TestCollector, send};
use reqwest::Method;
use serde_json::json;

#[test]
fn first_registration_creates_the_org_and_later_ones_are_refused() {
    let c = TestCollector::start(&[]);
    let body = c.register("Jane@Example.com", "SecurePass123!", "Acme Corp");
    assert_eq!(body["email"], "jane@example.com");
    assert_eq!(body["role"], "admin");
    assert_eq!(body["organization"]["name"], "Acme Corp");
    assert!(body.get("password_hash").is_none() && !body.to_string().contains("argon2"));
    let (status, body) = c.call(
        Method::POST,
        "/auth/register",
        None,
        Some(&json!({ "email": "mallory@evil.example", "password": "SecurePass123!", "full_name": "M", "organization_name": "Evil" })),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "registration_closed");
}

#[test]
fn registration_input_is_checked() {
    let c = TestCollector::start(&[]);
    for (body, status) in [
        (
            json!({ "email": "not-an-email", "password": "SecurePass123!" }),
            422,
        ),
        (json!({ "email": "a@b.example", "password": "short" }), 422),
        (json!({ "email": "a@b.example" }), 422),
        (json!({ "email": 5, "password": "SecurePass123!" }), 422),
    ] {
        let (got, resp) = c.call(Method::POST, "/auth/register", None, Some(&body));
        assert_eq!(got, status, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], "validation_failed");
        assert!(resp["error"]["details"]["field"].is_string(), "{resp}");
    }
    let raw = c
        .request(Method::POST, "/auth/register", None)
        .header("content-type", "application/json")
        .body("{not json");
    let (status, resp) = send(raw);
    assert_eq!(status, 400);
    assert_eq!(resp["error"]["code"], "malformed_json");
}

#[test]
fn login_accepts_form_and_json_and_refuses_wrong_passwords() {
    let c = TestCollector::start(&[]);
    c.register("jane@example.com", "SecurePass123!", "Acme");
    let (status, form) = c.login("jane@example.com", "SecurePass123!");
    assert_eq!(status, 200, "{form}");
    assert_eq!(form["token_type"], "bearer");
    assert!(form["access_token"].as_str().unwrap().starts_with("eyJ"));
    assert!(form["refresh_token"].as_str().unwrap().starts_with("eyJ"));
    assert_eq!(form["expires_in"], 1800);
    let (status, _) = c.call(
        Method::POST,
        "/auth/login",
        None,
        Some(&json!({ "email": "JANE@example.com", "password": "SecurePass123!" })),
    );
    assert_eq!(status, 200);
    let (status, body) = c.login("jane@example.com", "wrong-password");
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let (status, unknown) = c.login("nobody@example.com", "wrong-password");
    assert_eq!(status, 401);
    assert_eq!(
        unknown["error"]["message"], body["error"]["message"],
        "no hint which emails exist"
    );
    let (status, _) = c.login("jane@example.com", "");
    assert_eq!(status, 401);
}

/// An attacker burning wrong passwords for an account from another address locks only
/// themselves out: the owner's right password from their own address still logs in
/// (slowed down a little, never refused).
#[test]
fn an_attackers_failures_never_lock_the_owner_out() {
    let c = TestCollector::start(&[]);
    c.register("jane@example.com", "SecurePass123!", "Acme");
    let attacker = reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let attempt = |client: &reqwest::blocking::Client, password: &str| {
        client
            .post(c.url("/auth/login"))
            .form(&[("username", "jane@example.com"), ("password", password)])
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let statuses: Vec<u16> = (0..30).map(|_| attempt(&attacker, "guess-guess")).collect();
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even the right password is refused to the attacker's address now.
    assert_eq!(attempt(&attacker, "SecurePass123!"), 429);
    // The owner, from their own address, logs in.
    let started = std::time::Instant::now();
    assert_eq!(c.login("jane@example.com", "SecurePass123!").0, 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // A few wrong passwords of the owner's own do not lock them out either.
    for _ in 0..3 {
        assert_eq!(c.login("jane@example.com", "typo-typo").0, 401);
    }
    assert_eq!(c.login("jane@example.com", "SecurePass123!").0, 200);
}

#[test]
fn repeated_failed_logins_are_locked_out_with_retry_after() {
    let c = TestCollector::start(&[]);
    c.register("jane@example.com", "SecurePass123!", "Acme");
    for _ in 0..10 {
        assert_eq!(c.login("jane@example.com", "guess-guess").0, 401);
    }
    let response = c
        .http
        .post(c.url("/auth/login"))
        .form(&[
            ("username", "jane@example.com"),
            ("password", "SecurePass123!"),
        ])
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
}

#[test]
fn tokens_refresh_once_and_logout_ends_the_session() {
    let c = TestCollector::start(&[]);
    c.register("jane@example.com", "SecurePass123!", "Acme");
    let (_, tokens) = c.login("jane@example.com", "SecurePass123!");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // A refresh token is not an access token.
    assert_eq!(c.get("/auth/me", refresh).0, 401);
    let (status, next) = c.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(&json!({ "refresh_token": refresh })),
    );
    assert_eq!(status, 200, "{next}");
    let next_access = next["access_token"].as_str().unwrap();
    assert_eq!(c.get("/auth/me", next_access).0, 200);
    // Reusing the old refresh token is refused and ends the session.
    let (status, _) = c.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(&json!({ "refresh_token": refresh })),
    );
    assert_eq!(status, 401);
    assert_eq!(
        c.get("/auth/me", next_access).0,
        401,
        "reuse ended the session"
    );
    assert_eq!(c.get("/auth/me", access).0, 401);

    let token = c.token("jane@example.com", "SecurePass123!");
    assert_eq!(
        c.call(Method::POST, "/auth/logout", Some(&token), None).0,
        204
    );
    assert_eq!(c.get("/auth/me", &token).0, 401);
}

#[test]
fn profile_and_password_changes() {
    let c = TestCollector::start(&[]);
    c.register("jane@example.com", "SecurePass123!", "Acme");
    let token = c.token("jane@example.com", "SecurePass123!");
    let other_session = c.token("jane@example.com", "SecurePass123!");
    let (status, me) = c.get("/auth/me", &token);
    assert_eq!(status, 200);
    assert_eq!(me["email"], "jane@example.com");
    let (status, me) = c.patch(
        "/auth/me",
        &token,
        &json!({ "full_name": "Jane Smith", "email": "jane.smith@example.com" }),
    );
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["full_name"], "Jane Smith");
    assert_eq!(me["email"], "jane.smith@example.com");

    let wrong = json!({ "current_password": "not-it-at-all", "new_password": "NewPass456!" });
    let (status, body) = c.call(Method::PUT, "/auth/me/password", Some(&token), Some(&wrong));
    assert_eq!(status, 400, "{body}");
    let change = json!({ "current_password": "SecurePass123!", "new_password": "NewPass456!" });
    let (status, body) = c.call(
        Method::PUT,
        "/auth/me/password",
        Some(&token),
        Some(&change),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        c.login("jane.smith@example.com", "SecurePass123!").0,
        401,
        "old password no longer works"
    );
    assert_eq!(c.login("jane.smith@example.com", "NewPass456!").0, 200);
    assert_eq!(
        c.get("/auth/me", &token).0,
        200,
        "the session that changed it continues"
    );
    assert_eq!(
        c.get("/auth/me", &other_session).0,
        401,
        "other sessions ended"
    );
}

#[test]
fn organisation_is_read_by_all_and_changed_by_admins() {
    let c = TestCollector::start(&[]);
    c.register("jane@example.com", "SecurePass123!", "Acme");
    let admin = c.token("jane@example.com", "SecurePass123!");
    let (status, org) = c.get("/auth/organization", &admin);
    assert_eq!(status, 200);
    assert_eq!(org["name"], "Acme");
    let (status, org) = c.patch(
        "/auth/organization",
        &admin,
        &json!({ "name": "Acme Corp", "alert_email": "security@acme.example" }),
    );
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["alert_email"], "security@acme.example");
    let (status, _) = c.patch(
        "/auth/organization",
        &admin,
        &json!({ "alert_email": "nope" }),
    );
    assert_eq!(status, 422);
    let (status, _) = c.patch("/auth/organization", &admin, &json!({ "colour": "red" }));
    assert_eq!(status, 422, "unknown fields are refused");
    let viewer = c.user_with_role(&admin, "viewer@acme.example", "viewer");
    assert_eq!(c.get("/auth/organization", &viewer).0, 200);
    assert_eq!(
        c.patch("/auth/organization", &viewer, &json!({ "name": "x" }))
            .0,
        403
    );
}

#[test]
fn users_are_managed_by_admins_and_the_last_admin_stays() {
    let c = TestCollector::start(&[]);
    let me = c.register("jane@example.com", "SecurePass123!", "Acme");
    let admin = c.token("jane@example.com", "SecurePass123!");
    let admin_id = me["id"].as_str().unwrap();
    let (status, _) = c.post(
        "/users",
        &admin,
        &json!({ "email": "JANE@example.com", "password": "Whatever123!", "role": "viewer" }),
    );
    assert_eq!(status, 409, "email taken");
    let (status, body) = c.post(
        "/users",
        &admin,
        &json!({ "email": "x@example.com", "password": "Whatever123!", "role": "root" }),
    );
    assert_eq!(status, 422, "{body}");
    let analyst = c.user_with_role(&admin, "ann@example.com", "analyst");
    let (_, users) = c.get("/users", &admin);
    assert_eq!(users.as_array().unwrap().len(), 2);
    assert!(!users.to_string().contains("argon2"));
    let ann_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ann@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, _) = c.patch(
        &format!("/users/{admin_id}"),
        &admin,
        &json!({ "role": "viewer" }),
    );
    assert_eq!(status, 409, "the last admin cannot be demoted");
    assert_eq!(
        c.call(
            Method::DELETE,
            &format!("/users/{admin_id}"),
            Some(&admin),
            None
        )
        .0,
        409
    );

    let (status, _) = c.patch(
        &format!("/users/{ann_id}"),
        &admin,
        &json!({ "is_active": false }),
    );
    assert_eq!(status, 200);
    assert_eq!(
        c.get("/auth/me", &analyst).0,
        401,
        "a deactivated user's session ends"
    );
    assert_eq!(c.login("ann@example.com", "UserPass123!").0, 403);
    assert_eq!(
        c.call(
            Method::DELETE,
            &format!("/users/{ann_id}"),
            Some(&admin),
            None
        )
        .0,
        204
    );
    assert_eq!(c.get(&format!("/users/{ann_id}"), &admin).0, 404);
    assert_eq!(c.login("ann@example.com", "UserPass123!").0, 401);
}

/// Many clients refreshing one token at once: one may win; every loser is told its
/// token is refused (401), never that something is missing (404) or broken (500).
#[test]
fn concurrent_refreshes_of_one_token_lose_with_401() {
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    for _round in 0..5 {
        let (_, tokens) = c.login("admin@acme.example", "AdminPass123!");
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..12)
                .map(|_| {
                    let c = &c;
                    let refresh = refresh.clone();
                    scope.spawn(move || {
                        c.call(
                            Method::POST,
                            "/auth/refresh",
                            None,
                            Some(&json!({ "refresh_token": refresh })),
                        )
                        .0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 401),
            "{statuses:?}"
        );
        assert!(
            statuses.iter().filter(|s| **s == 200).count() <= 1,
            "{statuses:?}"
        );
    }
}
