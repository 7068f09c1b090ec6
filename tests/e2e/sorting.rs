//! Sorting `GET /mcp/servers` and `GET /alerts/` on every field, both ways: every page
//! in order, ties broken by id in both directions, pages that add up to the whole
//! list; unknown fields and directions refused.

use mcpwatch_tests::{TestCollector, agent_server};
use serde_json::{Value, json};

/// Every item of a list, read `size` at a time.
fn all_pages(c: &TestCollector, token: &str, path: &str, size: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, body) = c.get(&format!("{path}{sep}page={page}&page_size={size}"), token);
        assert_eq!(status, 200, "{path}: {body}");
        out.extend(body["items"].as_array().unwrap().iter().cloned());
        if !body["has_more"].as_bool().unwrap() {
            assert_eq!(out.len() as u64, body["total"].as_u64().unwrap(), "{path}");
            return out;
        }
    }
    unreachable!()
}

/// What a list is sorted by, read off an item.
type Key = Box<dyn Fn(&Value) -> Value>;

/// Check that `items` are in `field` order (`key` of each), ties by id ascending.
fn check_order(items: &[Value], what: &str, descending: bool, key: impl Fn(&Value) -> Value) {
    for pair in items.windows(2) {
        let (a, b) = (key(&pair[0]), key(&pair[1]));
        let order = compare(&a, &b);
        let order = if descending { order.reverse() } else { order };
        let order = order.then_with(|| pair[0]["id"].as_str().cmp(&pair[1]["id"].as_str()));
        assert_eq!(
            order,
            std::cmp::Ordering::Less,
            "{what}: {a} then {b}\n{pair:#?}"
        );
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap().total_cmp(&y.as_f64().unwrap()),
        _ => a.as_str().unwrap_or("").cmp(b.as_str().unwrap_or("")),
    }
}

#[test]
fn servers_and_alerts_sort_on_every_field_both_ways_with_stable_ties() {
    let c = TestCollector::start(&[]);
    c.register("admin@a.example", "AdminPass123!", "A");
    let admin = c.token("admin@a.example", "AdminPass123!");
    // Two hosts; names that tie (the same name on both), scores that tie.
    for (agent, host) in [("one", "zeta-host"), ("two", "alpha-host")] {
        let (_, key) = c.create_agent(&admin, agent);
        let servers = json!([
            agent_server(
                "Files",
                "npx",
                &["-y", "@modelcontextprotocol/server-filesystem", "/"]
            ),
            agent_server("clock", "uvx", &["mcp-server-time==0.6.2"]),
            agent_server("notes", "uvx", &["mcp-notes==1.0.0"]),
            agent_server("browser", "npx", &["-y", "@playwright/mcp"]),
            agent_server(&format!("only-on-{agent}"), "uvx", &["mcp-server-fetch"]),
        ]);
        let (status, body) = c.agent_call(
            "/mcp/report",
            &key,
            None,
            &json!({ "hostname": host, "servers": servers }),
        );
        assert_eq!(status, 200, "{body}");
    }

    let default = all_pages(&c, &admin, "/mcp/servers", 100);
    assert_eq!(default.len(), 10);
    let (_, explicit) = c.get("/mcp/servers?sort=risk_score:desc&page_size=100", &admin);
    assert_eq!(
        explicit["items"].as_array().unwrap(),
        &default,
        "the default order is risk_score:desc"
    );

    let lower =
        |f: &'static str| move |v: &Value| json!(v[f].as_str().unwrap_or("").to_lowercase());
    let fields: [(&str, Key); 5] = [
        ("risk_score", Box::new(|v: &Value| v["risk_score"].clone())),
        ("server_name", Box::new(lower("server_name"))),
        ("hostname", Box::new(lower("hostname"))),
        ("first_seen_at", Box::new(|v: &Value| v["id"].clone())),
        (
            "last_seen_at",
            Box::new(|v: &Value| v["last_seen_at"].clone()),
        ),
    ];
    for (field, key) in &fields {
        for direction in ["asc", "desc"] {
            let path = format!("/mcp/servers?sort={field}:{direction}");
            let paged = all_pages(&c, &admin, &path, 3);
            let whole = all_pages(&c, &admin, &path, 100);
            assert_eq!(paged, whole, "{path}: pages add up to the list");
            assert_eq!(whole.len(), 10);
            if *field == "risk_score" {
                // Ordered by level then score (the level comes from the score).
                let scores: Vec<u64> = whole
                    .iter()
                    .map(|v| v["risk_score"].as_u64().unwrap())
                    .collect();
                let mut expected = scores.clone();
                expected.sort_unstable();
                if direction == "desc" {
                    expected.reverse();
                }
                assert_eq!(scores, expected, "{path}");
            } else {
                check_order(&whole, &path, direction == "desc", key);
            }
        }
    }
    // Filters still apply.
    let filtered = all_pages(&c, &admin, "/mcp/servers?sort=server_name:asc&search=o", 2);
    assert!(filtered.iter().all(|v| {
        v["server_name"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains('o')
    }));
    check_order(&filtered, "filtered", false, lower("server_name"));

    let alerts = all_pages(&c, &admin, "/alerts/", 100);
    assert!(alerts.len() >= 2, "{alerts:#?}");
    let severity_rank = |v: &Value| {
        json!(
            ["low", "medium", "high", "critical"]
                .iter()
                .position(|s| v["severity"] == *s)
                .unwrap()
        )
    };
    for direction in ["asc", "desc"] {
        let by_created = all_pages(
            &c,
            &admin,
            &format!("/alerts/?sort=created_at:{direction}"),
            1,
        );
        check_order(&by_created, "created_at", direction == "desc", |v| {
            v["created_at"].clone()
        });
        let by_updated = all_pages(
            &c,
            &admin,
            &format!("/alerts/?sort=updated_at:{direction}"),
            1,
        );
        check_order(&by_updated, "updated_at", direction == "desc", |v| {
            if v["updated_at"].is_null() {
                v["created_at"].clone()
            } else {
                v["updated_at"].clone()
            }
        });
        let by_severity = all_pages(
            &c,
            &admin,
            &format!("/alerts/?sort=severity:{direction}"),
            1,
        );
        check_order(&by_severity, "severity", direction == "desc", severity_rank);
    }

    for bad in [
        "/mcp/servers?sort=password",
        "/mcp/servers?sort=risk_score:sideways",
        "/mcp/servers?sort=created_at",
        "/alerts/?sort=risk_score",
    ] {
        let (status, err) = c.get(bad, &admin);
        assert_eq!(status, 400, "{bad}: {err}");
        assert_eq!(err["error"]["details"]["field"], "sort", "{bad}");
    }
}
