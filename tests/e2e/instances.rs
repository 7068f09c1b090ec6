//! Several collectors on one PostgreSQL database, as behind a load balancer: an
//! agent enrolls through one and reports through the other, people see the same
//! fleet on both, a signed request accepted by one is refused by the other, a
//! notification goes out once, and when one is SIGKILLed the other serves on and
//! takes over the background jobs. Also: the database's URL and schema version
//! checked at start, and readiness while the database cannot be reached.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpwatch_tests::receiver::Receiver;
use mcpwatch_tests::{Signer, TestCollector, agent_server, binary, eventually, postgres, send};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// Two collectors on one new database.
fn pair() -> Option<(TestCollector, TestCollector, String)> {
    let url = postgres::test_database()?;
    let args = ["--database-url", url.as_str(), "--allow-private-targets"];
    let a = TestCollector::start(&args);
    let b = TestCollector::start(&args);
    Some((a, b, url))
}

/// Report one critical server named `name` through `c`, signed.
fn report_critical(c: &TestCollector, key: &str, signer: &Signer, name: &str) {
    let (status, body) = c.agent_call(
        "/mcp/report",
        key,
        Some(signer),
        &json!({ "hostname": "alice-mbp", "servers": [
            agent_server(name, "npx", &["-y", "@modelcontextprotocol/server-filesystem", "/"])
        ]}),
    );
    assert_eq!(status, 200, "{body}");
}

/// The delivery states of a channel's deliveries, as `c` sees them.
fn delivered(c: &TestCollector, admin: &str, channel: &str) -> Vec<String> {
    let (status, page) = c.get(
        &format!("/notifications/deliveries?channel_id={channel}"),
        admin,
    );
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn stats(c: &TestCollector, token: &str) -> Value {
    let (status, body) = c.get("/dashboard/stats", token);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn two_collectors_on_one_database_serve_one_fleet() {
    let Some((mut a, b, _)) = pair() else { return };
    a.register("admin@a.example", "AdminPass123!", "A");
    let admin = a.token("admin@a.example", "AdminPass123!");
    // The signing key is shared: a token from A works at B.
    let (status, _) = b.get("/auth/me", &admin);
    assert_eq!(status, 200);
    let analyst = a.user_with_role(&admin, "analyst@a.example", "analyst");

    let receiver = Receiver::start(&[200]);
    let (status, channel) = b.post(
        "/notifications/channels",
        &admin,
        &json!({ "name": "SOC", "kind": "webhook", "target": receiver.url(), "min_severity": "high" }),
    );
    assert_eq!(status, 201, "{channel}");
    let channel = channel["id"].as_str().unwrap().to_owned();

    // Enrolled through A, reporting through B.
    let (status, secret) = a.post(
        "/enroll-secrets",
        &admin,
        &json!({ "name": "laptops", "expires_in_days": 1 }),
    );
    assert_eq!(status, 201, "{secret}");
    let signer = Signer::new();
    let (status, enrolled) = a.call(
        Method::POST,
        "/agents/enroll",
        None,
        Some(&json!({
            "enroll_secret": secret["secret"], "public_key": signer.public_key(), "hostname": "alice-mbp"
        })),
    );
    assert_eq!(status, 201, "{enrolled}");
    let key = enrolled["api_key"].as_str().unwrap().to_owned();
    let agent_id = enrolled["agent_id"].as_str().unwrap().to_owned();
    report_critical(&b, &key, &signer, "files-1");

    // The analyst on A sees the report, and the agent online (its presence was
    // recorded by B).
    let (status, servers) = a.get("/mcp/servers", &analyst);
    assert_eq!(status, 200);
    assert_eq!(servers["total"], 1, "{servers}");
    assert_eq!(servers["items"][0]["risk_level"], "critical");
    eventually(DEADLINE, "the agent online at A", || {
        let (_, agent) = a.get(&format!("/agents/{agent_id}"), &analyst);
        (agent["is_online"] == true).then_some(())
    });

    // A signed request accepted by A is refused by B.
    let body = serde_json::to_vec(&json!({ "hostname": "alice-mbp" })).unwrap();
    let header = signer.sign("POST", "/agents/heartbeat", &body);
    let heartbeat = |c: &TestCollector| {
        c.http
            .post(c.url("/agents/heartbeat"))
            .header("x-api-key", &key)
            .header(mcpwatch_protocol::signing::SIGNATURE_HEADER, header.clone())
            .header("content-type", "application/json")
            .body(body.clone())
    };
    assert_eq!(send(heartbeat(&a)).0, 200);
    let (status, refused) = send(heartbeat(&b));
    assert_eq!(status, 401, "{refused}");
    assert!(refused.to_string().contains("replay"), "{refused}");

    // One delivery of the alert, whichever instance runs the deliveries.
    receiver.wait_for(1);
    eventually(DEADLINE, "the delivery recorded", || {
        (delivered(&b, &admin, &channel) == ["delivered"]).then_some(())
    });
    assert_eq!(delivered(&a, &admin, &channel), ["delivered"]);
    assert_eq!(receiver.received().len(), 1, "delivered once");

    // The dashboard counts agree.
    eventually(DEADLINE, "the same dashboard on both", || {
        (stats(&a, &analyst) == stats(&b, &analyst)).then_some(())
    });
    let counted = stats(&b, &analyst);
    assert_eq!(counted["critical_count"], 1, "{counted}");

    // A dies without a word; B serves on and takes over the jobs.
    a.kill_hard();
    report_critical(&b, &key, &signer, "files-2");
    let (status, servers) = b.get("/mcp/servers", &analyst);
    assert_eq!(status, 200);
    assert_eq!(servers["total"], 2, "{servers}");
    receiver.wait_for(2);
    eventually(DEADLINE, "both deliveries recorded", || {
        (delivered(&b, &admin, &channel) == ["delivered", "delivered"]).then_some(())
    });
    assert_eq!(receiver.received().len(), 2, "each alert delivered once");
}

/// Run `mcpwatch-collector serve` expecting it to stop; answers its exit code and
/// what it printed.
fn serve_fails(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn a_bad_database_url_or_a_newer_schema_stops_the_collector_with_the_reason() {
    let (code, text) = serve_fails(&["--database-url", "not a url"]);
    assert_eq!(code, Some(78), "{text}");
    assert!(text.contains("database URL is not valid"), "{text}");

    // Nothing listens on port 1.
    let (code, text) = serve_fails(&["--database-url", "postgres://mcpwatch@127.0.0.1:1/x"]);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("cannot connect to the database at 127.0.0.1:1"),
        "{text}"
    );

    let Some(url) = postgres::test_database() else {
        return;
    };
    let mut missing = reqwest::Url::parse(&url).unwrap();
    missing.set_path("no_such_database");
    let (code, text) = serve_fails(&["--database-url", missing.as_str()]);
    assert_eq!(code, Some(78), "{text}");
    assert!(text.contains("no_such_database"), "{text}");

    // Made by a newer collector: refused, not touched.
    drop(TestCollector::start(&["--database-url", &url]));
    postgres::execute(&url, "INSERT INTO mcpwatch_schema (version) VALUES (999)");
    let (code, text) = serve_fails(&["--database-url", &url]);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("schema is version 999, newer than this mcpwatch-collector reads"),
        "{text}"
    );
    assert!(
        !text.contains(url.as_str()),
        "the URL is not printed: {text}"
    );
}

/// A TCP relay to the database that can be cut (every connection closed, new ones
/// refused) and mended.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn to(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, open) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let (is_up, streams, target) = (Arc::clone(&up), Arc::clone(&open), target.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let upstream = match TcpStream::connect(&target) {
                    Ok(s) if is_up.load(Ordering::SeqCst) => s,
                    _ => {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                };
                let mut kept = streams.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(upstream.try_clone().unwrap());
                pump(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                pump(upstream, client);
            }
        });
        Self { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn without_its_database_a_collector_is_not_ready_and_recovers_by_itself() {
    let Some(url) = postgres::test_database() else {
        return;
    };
    let parsed = reqwest::Url::parse(&url).unwrap();
    let relay = Relay::to(&format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    ));
    let mut through = parsed.clone();
    through.set_port(Some(relay.port)).unwrap();
    let c = TestCollector::start(&["--database-url", through.as_str()]);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    let ready = || {
        c.http
            .get(c.url("/health/ready"))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(ready(), 200);

    relay.cut();
    eventually(DEADLINE, "readiness 503 without the database", || {
        (ready() == 503).then_some(())
    });
    // Alive all the same: a restart would not bring the database back.
    let (status, _) = send(c.http.get(c.url("/health/live")));
    assert_eq!(status, 200);
    let (status, body) = c.get("/mcp/servers", &admin);
    assert_eq!(status, 503, "{body}");

    relay.mend();
    eventually(DEADLINE, "ready again", || (ready() == 200).then_some(()));
    let (_, key) = c.create_agent(&admin, "after");
    let (status, body) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "servers": [mcpwatch_tests::seed_server()] }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.get("/mcp/servers", &admin).1["total"], 1);
}

/// Login lockouts and agent rate limits are counted by each instance on its own
/// (docs/deployment.md says so): an account locked at one instance still gets its
/// own budget of tries at another, and neither instance forgets its own count.
#[test]
fn login_lockouts_are_counted_per_instance() {
    let Some((a, b, _)) = pair() else { return };
    a.register("jane@example.com", "SecurePass123!", "Acme");
    for _ in 0..10 {
        assert_eq!(a.login("jane@example.com", "guess-guess").0, 401);
    }
    assert_eq!(a.login("jane@example.com", "SecurePass123!").0, 429);
    // B has seen no failure of this account.
    assert_eq!(b.login("jane@example.com", "guess-guess").0, 401);
    assert_eq!(b.login("jane@example.com", "SecurePass123!").0, 200);
    assert_eq!(a.login("jane@example.com", "SecurePass123!").0, 429);
}
