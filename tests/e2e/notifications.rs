//! Notification channels against real receivers on 127.0.0.1: a webhook receiver that
//! checks every signature and answers 503 twice before 200; a receiver that is down
//! while a critical alert is raised and the collector is SIGKILLed; a real SMTP server
//! (`aiosmtpd` from PyPI) receiving the `alert_email` mail; a real syslog receiver
//! (Debian's `rsyslogd` when installed, else a socket server) over TCP; and the API's
//! refusals: bad input, private targets without the flag, roles and organisations.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use mcpwatch_tests::receiver::{Received, Receiver};
use mcpwatch_tests::{TestCollector, agent_server, eventually, python_with};
use reqwest::Method;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// Check `X-MCPWatch-Signature` as a receiver would: HMAC-SHA256 of "<t>.<body>" with
/// the channel's secret, and `t` within five minutes.
fn verify(request: &Received, secret: &str) {
    let header = request.header("x-mcpwatch-signature").expect("signed");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .expect("t=...,v1=...");
    let t: i64 = t.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - t).abs() < 300, "fresh");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&request.body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature verifies");
}

/// An admin's token and an agent's key in a new organisation.
fn setup(c: &TestCollector) -> (String, String) {
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    let (_, key) = c.create_agent(&admin, "laptop");
    (admin, key)
}

/// Report a server on `/` (critical), `name` making it new each time.
fn raise_critical(c: &TestCollector, key: &str, name: &str) {
    let (status, body) = c.agent_call(
        "/mcp/report",
        key,
        None,
        &json!({ "hostname": "alice-mbp", "servers": [
            agent_server(name, "npx", &["-y", "@modelcontextprotocol/server-filesystem", "/"])
        ]}),
    );
    assert_eq!(status, 200, "{body}");
}

fn create_channel(c: &TestCollector, admin: &str, body: &Value) -> Value {
    let (status, created) = c.post("/notifications/channels", admin, body);
    assert_eq!(status, 201, "{created}");
    created
}

fn deliveries(c: &TestCollector, admin: &str, channel: &str) -> Vec<Value> {
    let (status, page) = c.get(
        &format!("/notifications/deliveries?channel_id={channel}"),
        admin,
    );
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[test]
fn a_webhook_that_fails_twice_gets_one_signed_delivery_in_three_attempts() {
    let c = TestCollector::start(&["--allow-private-targets"]);
    let (admin, key) = setup(&c);
    let receiver = Receiver::start(&[503, 503, 200]);
    let created = create_channel(
        &c,
        &admin,
        &json!({ "name": "SOC webhook", "kind": "webhook", "target": receiver.url(), "min_severity": "high" }),
    );
    let secret = created["secret"].as_str().expect("the secret, shown once");
    assert!(secret.starts_with("whsec_"));
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["events"], json!(["alert.created"]));

    raise_critical(&c, &key, "root-files");
    let got = receiver.wait_for(3);
    assert_eq!(got.len(), 3);
    for request in &got {
        verify(request, secret);
        assert_eq!(request.header("x-mcpwatch-event"), Some("alert.created"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.header("x-mcpwatch-delivery"),
            got[0].header("x-mcpwatch-delivery")
        );
    }
    let event = got[2].json();
    assert_eq!(event["event"], "alert.created");
    assert_eq!(event["data"]["alert"]["severity"], "critical");
    assert_eq!(event["data"]["server"]["server_name"], "root-files");
    assert_eq!(event["data"]["agent"]["hostname"], "alice-mbp");
    assert_eq!(
        got[0].header("x-mcpwatch-delivery"),
        Some(event["id"].to_string().as_str())
    );

    let delivered = eventually(DEADLINE, "the delivery marked delivered", || {
        let list = deliveries(&c, &admin, &id);
        (list.first()?["status"] == "delivered").then(|| list[0].clone())
    });
    assert_eq!(delivered["attempts"], 3);
    assert_eq!(delivered["last_status"], 200);
    assert_eq!(delivered["event"], "alert.created");
    let log = c.log();
    assert_eq!(
        log.matches("Notification not delivered.").count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches("Notification delivered.").count(), 1);
    // No more than the three: delivered once.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.received().len(), 3);

    // The secret and the URL's path are never shown or logged again.
    let (_, listed) = c.get("/notifications/channels", &admin);
    let (_, one) = c.get(&format!("/notifications/channels/{id}"), &admin);
    for text in [listed.to_string(), one.to_string(), c.log()] {
        assert!(!text.contains(secret), "secret leaked: {text}");
        assert!(!text.contains("s3cr3t-path-token"), "target leaked: {text}");
    }
    assert_eq!(one["has_secret"], true);
    assert_eq!(
        one["target"],
        format!("http://127.0.0.1:{}/…", receiver.port)
    );

    // A test send arrives signed, named channel.test, and says what the receiver said.
    let (status, result) = c.post(
        &format!("/notifications/channels/{id}/test"),
        &admin,
        &json!({}),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result,
        json!({ "delivered": true, "status": 200, "error": null })
    );
    let test = receiver.wait_for(4).pop().unwrap();
    verify(&test, secret);
    assert_eq!(test.header("x-mcpwatch-event"), Some("channel.test"));
}

#[test]
fn an_alert_raised_while_the_receiver_is_down_arrives_after_a_sigkill_and_restart() {
    let mut c = TestCollector::start(&["--allow-private-targets"]);
    let (admin, key) = setup(&c);
    // A port with nobody listening: the receiver is down.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let target = format!("http://127.0.0.1:{port}/hook");
    let created = create_channel(
        &c,
        &admin,
        &json!({ "name": "down", "kind": "webhook", "target": target, "secret": "a-shared-secret-of-ours" }),
    );
    assert!(created.get("secret").is_some());
    let id = created["id"].as_str().unwrap().to_owned();
    raise_critical(&c, &key, "root-files");
    // Committed with the alert: the delivery exists before any attempt could succeed.
    let pending = deliveries(&c, &admin, &id);
    assert_eq!(pending.len(), 1);
    assert!(["pending", "retrying"].contains(&pending[0]["status"].as_str().unwrap()));
    c.kill_hard();

    let receiver = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), &[200]);
    c.restart();
    let got = receiver.wait_for(1);
    verify(&got[0], "a-shared-secret-of-ours");
    let event = got[0].json();
    assert_eq!(event["event"], "alert.created");
    assert_eq!(event["data"]["alert"]["severity"], "critical");
    let admin = c.token("admin@a.example", "AdminPass123!");
    eventually(DEADLINE, "the delivery marked delivered", || {
        (deliveries(&c, &admin, &id).first()?["status"] == "delivered").then_some(())
    });
}

#[test]
fn slack_format_is_text_with_severity_server_host_and_user_escaped() {
    let c = TestCollector::start(&[
        "--allow-private-targets",
        "--public-url",
        "https://mcpwatch.example.com",
    ]);
    let (admin, key) = setup(&c);
    let receiver = Receiver::start(&[200]);
    let created = create_channel(
        &c,
        &admin,
        &json!({ "name": "slack", "kind": "slack", "target": receiver.url() }),
    );
    assert!(created.get("secret").is_none());
    raise_critical(&c, &key, "<!channel> root-files");
    let got = receiver.wait_for(1);
    assert!(got[0].header("x-mcpwatch-signature").is_none());
    let text = got[0].json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("*[CRITICAL] "), "{text}");
    assert!(
        text.contains("Server: &lt;!channel&gt; root-files"),
        "{text}"
    );
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(text.contains("Host: alice-mbp"), "{text}");
    assert!(text.contains("User: alice"), "{text}");
    assert!(
        text.contains("<https://mcpwatch.example.com/ui/servers/"),
        "{text}"
    );
}

/// A process that is killed when the test ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, what: &str) {
    eventually(DEADLINE, what, || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
    });
}

#[test]
fn the_alert_email_reaches_a_real_smtp_server() {
    let Some(python) = python_with(&["aiosmtpd>=1.4,<2"], "aiosmtpd") else {
        eprintln!("SKIPPED: aiosmtpd could not be installed from PyPI");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let port = free_port();
    let _smtp = Process(
        Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, "the SMTP server");
    let c = TestCollector::start(&[
        "--smtp-url",
        &format!("smtp://127.0.0.1:{port}?tls=none"),
        "--smtp-from",
        "mcpwatch@example.com",
    ]);
    let (admin, key) = setup(&c);
    let (status, org) = c.patch(
        "/auth/organization",
        &admin,
        &json!({ "alert_email": "soc@a.example" }),
    );
    assert_eq!(status, 200, "{org}");
    let (_, channels) = c.get("/notifications/channels", &admin);
    let email = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["source"] == "alert_email")
        .expect("the alert_email channel is listed")
        .clone();
    assert_eq!(
        (email["kind"].as_str(), email["min_severity"].as_str()),
        (Some("email"), Some("high"))
    );
    let id = email["id"].as_str().unwrap();
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/notifications/channels/{id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 409, "changed through the organisation only");

    raise_critical(&c, &key, "root-files");
    let mail = eventually(DEADLINE, "the mail in the mailbox", || {
        let new = std::fs::read_dir(maildir.join("new")).ok()?;
        let files: Vec<_> = new.filter_map(Result::ok).collect();
        let first = files.first()?;
        std::fs::read_to_string(first.path()).ok()
    });
    assert!(mail.contains("soc@a.example"), "{mail}");
    assert!(mail.contains("mcpwatch@example.com"), "{mail}");
    assert!(mail.contains("[mcpwatch] [CRITICAL]"), "{mail}");
    assert!(mail.contains("Server: root-files"), "{mail}");
    assert!(mail.contains("Host: alice-mbp"), "{mail}");
    eventually(DEADLINE, "the delivery marked delivered", || {
        (deliveries(&c, &admin, id).first()?["status"] == "delivered").then_some(())
    });
}

/// A syslog receiver over TCP: Debian's rsyslogd when installed (it parses the RFC 5424
/// header itself), else a socket server that reads octet-counted frames.
/// What a syslog receiver has got so far, one `pri|app-name|msgid|msg` line each.
type Lines = Box<dyn Fn() -> Vec<String>>;

fn syslog_receiver(dir: &Path) -> (u16, Lines, Option<Process>) {
    let port = free_port();
    let out = dir.join("syslog.out");
    let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if let Some(rsyslogd) = rsyslogd {
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{dir}\")\n\
                 module(load=\"imtcp\")\n\
                 input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
                 template(name=\"fields\" type=\"string\" string=\"%pri%|%app-name%|%msgid%|%msg%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{out}\" template=\"fields\")\n",
                dir = dir.display(),
                out = out.display()
            ),
        )
        .unwrap();
        let child = Command::new(rsyslogd)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(port, "rsyslogd");
        let read = move || {
            std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect()
        };
        return (port, Box::new(read), Some(Process(child)));
    }
    eprintln!("rsyslogd is not installed: a socket server receives syslog instead");
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&lines);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut all = String::new();
            let _ = stream.read_to_string(&mut all);
            let mut rest = all.as_str();
            while let Some((len, tail)) = rest.split_once(' ') {
                let Ok(len) = len.parse::<usize>() else { break };
                let (message, after) = tail.split_at(len.min(tail.len()));
                // <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG
                let parts: Vec<&str> = message.splitn(8, ' ').collect();
                if parts.len() == 8 {
                    let pri = parts[0]
                        .trim_start_matches('<')
                        .split('>')
                        .next()
                        .unwrap_or("");
                    seen.lock()
                        .unwrap()
                        .push(format!("{pri}|{}|{}|{}", parts[3], parts[5], parts[7]));
                }
                rest = after;
            }
        }
    });
    let read = move || lines.lock().unwrap().clone();
    (port, Box::new(read), None)
}

#[test]
fn syslog_over_tcp_reaches_a_real_receiver_as_rfc5424() {
    let dir = tempfile::tempdir().unwrap();
    let (port, lines, _rsyslog) = syslog_receiver(dir.path());
    let c = TestCollector::start(&["--allow-private-targets"]);
    let (admin, key) = setup(&c);
    create_channel(
        &c,
        &admin,
        &json!({ "name": "SIEM", "kind": "syslog", "target": format!("tcp://127.0.0.1:{port}"),
                 "min_severity": "low", "events": ["alert.created", "agent.enrolled"] }),
    );
    c.create_agent(&admin, "second-laptop");
    raise_critical(&c, &key, "root-files");
    let got = eventually(DEADLINE, "two syslog messages", || {
        let got = lines();
        (got.len() >= 2).then_some(got)
    });
    let parsed: Vec<(String, String, String, Value)> = got
        .iter()
        .map(|line| {
            let mut parts = line.splitn(4, '|');
            let pri = parts.next().unwrap().to_owned();
            let app = parts.next().unwrap().to_owned();
            let msgid = parts.next().unwrap().to_owned();
            let json = serde_json::from_str(parts.next().unwrap().trim())
                .unwrap_or_else(|e| panic!("{e}: {line}"));
            (pri, app, msgid, json)
        })
        .collect();
    let enrolled = parsed
        .iter()
        .find(|p| p.2 == "agent.enrolled")
        .expect("agent.enrolled");
    assert_eq!(
        (enrolled.0.as_str(), enrolled.1.as_str()),
        ("86", "mcpwatch")
    );
    assert_eq!(enrolled.3["data"]["agent"]["name"], "second-laptop");
    let alert = parsed
        .iter()
        .find(|p| p.2 == "alert.created")
        .expect("alert.created");
    // authpriv (10) · crit (2)
    assert_eq!(alert.0, "82");
    assert_eq!(alert.3["data"]["alert"]["severity"], "critical");
}

#[test]
fn channels_refuse_bad_input_private_targets_other_roles_and_other_organisations() {
    let (c, a, b) = TestCollector::with_two_organisations();
    let analyst = c.user_with_role(&a, "analyst@a.example", "analyst");
    let viewer = c.user_with_role(&a, "viewer@a.example", "viewer");
    let good = json!({ "name": "hook", "kind": "webhook", "target": "https://1.1.1.1/hook" });

    // (kind, target, more fields, the field the refusal names)
    let cases = [
        ("pager", "https://1.1.1.1/", json!({}), "kind"),
        ("webhook", "not a url", json!({}), "target"),
        ("webhook", "ftp://1.1.1.1/", json!({}), "target"),
        ("webhook", "http://1.1.1.1/", json!({}), "target"),
        ("webhook", "https://127.0.0.1:9/", json!({}), "target"),
        (
            "webhook",
            "https://169.254.169.254/latest/",
            json!({}),
            "target",
        ),
        ("webhook", "https://[::1]/", json!({}), "target"),
        ("slack", "http://localhost:9/", json!({}), "target"),
        ("syslog", "tcp://10.0.0.1:514", json!({}), "target"),
        ("syslog", "syslog://1.1.1.1:514", json!({}), "target"),
        ("email", "soc@a.example", json!({}), "kind"),
        (
            "webhook",
            "https://1.1.1.1/",
            json!({ "events": ["alert.exploded"] }),
            "events",
        ),
        (
            "webhook",
            "https://1.1.1.1/",
            json!({ "min_severity": "urgent" }),
            "min_severity",
        ),
        (
            "webhook",
            "https://1.1.1.1/",
            json!({ "name": "x".repeat(201) }),
            "name",
        ),
        (
            "slack",
            "https://1.1.1.1/",
            json!({ "secret": "0123456789abcdef" }),
            "secret",
        ),
        (
            "webhook",
            "https://1.1.1.1/",
            json!({ "secret": "short" }),
            "secret",
        ),
    ];
    for (kind, target, more, field) in cases {
        let mut body = json!({ "name": "x", "kind": kind, "target": target });
        for (k, v) in more.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, err) = c.post("/notifications/channels", &a, &body);
        assert!((400..500).contains(&status), "{body}: {status} {err}");
        assert_eq!(err["error"]["details"]["field"], field, "{body}: {err}");
    }
    let (status, err) = c.post(
        "/notifications/channels",
        &a,
        &json!({ "name": "x", "kind": "webhook", "target": "https://127.0.0.1/" }),
    );
    assert_eq!(status, 422);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-private-targets"),
        "{err}"
    );

    let created = create_channel(&c, &a, &good);
    let id = created["id"].as_str().unwrap().to_owned();
    let one = format!("/notifications/channels/{id}");
    let of_one = [
        (Method::GET, one.clone()),
        (Method::PATCH, one.clone()),
        (Method::DELETE, one.clone()),
        (Method::POST, format!("{one}/test")),
    ];
    let lists = [
        (Method::GET, "/notifications/channels".to_owned()),
        (Method::POST, "/notifications/channels".to_owned()),
        (Method::GET, "/notifications/deliveries".to_owned()),
    ];
    for token in [&analyst, &viewer] {
        for (method, path) in lists.iter().chain(&of_one) {
            let (status, _) = c.call(method.clone(), path, Some(token), Some(&good));
            assert_eq!(status, 403, "{method} {path}");
        }
    }
    // Organisation B neither sees nor triggers nor changes A's channel.
    let (_, listed) = c.get("/notifications/channels", &b);
    assert_eq!(listed, json!([]));
    for (method, path) in of_one {
        let (status, _) = c.call(
            method.clone(),
            &path,
            Some(&b),
            Some(&json!({ "enabled": false })),
        );
        assert_eq!(status, 404, "{method} {path}");
    }
    let (_, still) = c.get(&format!("/notifications/channels/{id}"), &a);
    assert_eq!(still["enabled"], true);

    // PATCH checks like POST; the kind does not change; DELETE removes.
    let (status, err) = c.patch(
        &format!("/notifications/channels/{id}"),
        &a,
        &json!({ "target": "https://10.0.0.1/" }),
    );
    assert_eq!(
        (status, err["error"]["details"]["field"].as_str()),
        (422, Some("target"))
    );
    let (status, err) = c.patch(
        &format!("/notifications/channels/{id}"),
        &a,
        &json!({ "kind": "slack" }),
    );
    assert_eq!(status, 422, "{err}");
    let (status, patched) = c.patch(&format!("/notifications/channels/{id}"), &a, &json!({ "enabled": false, "events": ["alert.created", "agent.silent"], "min_severity": "critical" }));
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (
            patched["enabled"].clone(),
            patched["events"].clone(),
            patched["min_severity"].clone()
        ),
        (
            json!(false),
            json!(["alert.created", "agent.silent"]),
            json!("critical")
        )
    );
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/notifications/channels/{id}"),
        Some(&a),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = c.get(&format!("/notifications/channels/{id}"), &a);
    assert_eq!(status, 404);
    let (status, err) = c.get("/notifications/deliveries?status=lost", &a);
    assert_eq!(
        (status, err["error"]["details"]["field"].as_str()),
        (400, Some("status"))
    );
}
