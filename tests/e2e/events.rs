//! The live event stream, `GET /events`: an alert raised while a user is connected
//! arrives at once; events missed while disconnected arrive on reconnecting with
//! `Last-Event-ID`; another organisation's events never do.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use mcpwatch_tests::{TestCollector, agent_server};
use reqwest::Method;
use serde_json::{Value, json};

/// An SSE connection, read on its own thread: each event as (id, name, data).
struct Events {
    rx: mpsc::Receiver<(u64, String, Value)>,
}

impl Events {
    fn connect(c: &TestCollector, token: &str, last_event_id: Option<u64>) -> Self {
        // No timeout: the stream stays open.
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let mut req = client.get(c.url("/events")).bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut id, mut name, mut data) = (None, None, String::new());
            for line in BufReader::new(resp).lines() {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    if let (Some(i), Some(n)) = (id.take(), name.take()) {
                        let event = serde_json::from_str(&data).unwrap();
                        if tx.send((i, n, event)).is_err() {
                            return;
                        }
                    }
                    data.clear();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
        });
        Self { rx }
    }

    fn next(&self) -> (u64, String, Value) {
        self.rx
            .recv_timeout(Duration::from_secs(30))
            .expect("an event within 30 s")
    }
}

#[test]
fn events_arrive_live_resume_after_the_last_one_seen_and_stay_in_their_organisation() {
    let (c, a, b) = TestCollector::with_two_organisations();
    let viewer = c.user_with_role(&a, "viewer@a.example", "viewer");
    let b_stream = Events::connect(&c, &b, None);
    let live = Events::connect(&c, &viewer, None);

    // Made while connected: the agent's enrollment, then a risky server's alert.
    let (agent_id, key) = c.create_agent(&a, "laptop");
    let (id, name, event) = live.next();
    assert_eq!(name, "agent.enrolled");
    assert_eq!(event["event"], "agent.enrolled");
    assert_eq!(event["data"]["agent"]["id"], agent_id.as_str());
    assert!(
        event["data"]["agent"].get("key_hash").is_none(),
        "no key in an event: {event}"
    );
    let (status, _) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "servers": [agent_server("fs", "npx", &["-y", "@modelcontextprotocol/server-filesystem", "/"])] }),
    );
    assert_eq!(status, 200);
    let (raised, name, event) = live.next();
    assert!(raised > id);
    assert_eq!(name, "alert.created");
    assert_eq!(event["id"], raised);
    assert_eq!(event["data"]["alert"]["kind"], "new_risky_server");
    let alert_id = event["data"]["alert"]["id"].as_str().unwrap().to_owned();
    drop(live);

    // Missed while disconnected, replayed in order after the last id seen.
    let (status, _) = c.post(&format!("/alerts/{alert_id}/dismiss"), &a, &json!({}));
    assert_eq!(status, 200);
    let (status, _) = c.call(
        Method::DELETE,
        &format!("/agents/{agent_id}"),
        Some(&a),
        None,
    );
    assert_eq!(status, 204);
    let resumed = Events::connect(&c, &a, Some(raised));
    let (dismissed, name, event) = resumed.next();
    assert!(dismissed > raised);
    assert_eq!(name, "alert.dismissed");
    assert_eq!(event["data"]["alert"]["id"], alert_id.as_str());
    // An admin's stream also has the audit log's entries; a viewer's never does.
    let (audited, name, event) = resumed.next();
    assert!(audited > dismissed);
    assert_eq!(name, "audit.alert.dismissed");
    assert_eq!(event["data"]["audit"]["target"]["id"], alert_id.as_str());
    let (deleted, name, _) = resumed.next();
    assert!(deleted > audited);
    assert_eq!(name, "agent.deleted");
    let (_, name, _) = resumed.next();
    assert_eq!(name, "audit.agent.deleted");
    let viewer_resumed = Events::connect(&c, &viewer, Some(raised));
    let seen: Vec<String> = (0..2).map(|_| viewer_resumed.next().1).collect();
    assert_eq!(seen, ["alert.dismissed", "agent.deleted"]);

    // The other organisation saw none of it: its first event is its own.
    let (b_agent, _) = c.create_agent(&b, "b-laptop");
    let (_, name, event) = b_stream.next();
    assert_eq!(name, "agent.enrolled");
    assert_eq!(event["data"]["agent"]["id"], b_agent.as_str());

    // A Last-Event-ID that is not an event id is a clear 400.
    let req = c
        .request(Method::GET, "/events", Some(&a))
        .header("last-event-id", "yesterday");
    let (status, body) = mcpwatch_tests::send(req);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "Last-Event-ID");
}
