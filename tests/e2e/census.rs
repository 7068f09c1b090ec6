//! `GET /mcp/census`: what runs where, per package, URL and server name, with versions,
//! hosts, users, clients, launches and policy flags; outliers (one name launching
//! different things) show; another organisation's servers never count.

use mcpwatch_tests::{TestCollector, agent_server};
use serde_json::{Value, json};

fn rows(c: &TestCollector, token: &str, query: &str) -> Vec<Value> {
    let (status, page) = c.get(&format!("/mcp/census?{query}"), token);
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["total"].as_u64().unwrap() as usize,
        page["items"].as_array().unwrap().len()
    );
    page["items"].as_array().unwrap().clone()
}

fn with_package(mut server: Value, ecosystem: &str, name: &str, version: Option<&str>) -> Value {
    server["package"] = json!({ "ecosystem": ecosystem, "name": name, "version": version });
    server
}

#[test]
fn the_census_says_what_runs_where() {
    let (c, a, b) = TestCollector::with_two_organisations();
    let fs = |v: &str| {
        with_package(
            agent_server(
                "files",
                "npx",
                &[
                    "-y",
                    &format!("@modelcontextprotocol/server-filesystem@{v}"),
                    "/tmp",
                ],
            ),
            "npm",
            "@modelcontextprotocol/server-filesystem",
            Some(v),
        )
    };
    let mut remote = agent_server("docs", "", &[]);
    remote["url"] = json!("https://mcp.example.com/sse?token=[REDACTED]");
    remote["transport"] = json!("sse");
    let hosts = [
        ("alice-mbp", vec![fs("1.0.0"), remote.clone()]),
        ("bob-mbp", vec![fs("1.0.0")]),
        (
            "carol-mbp",
            vec![
                fs("2.0.0"),
                agent_server("files-evil", "npx", &["-y", "evil-files"]),
            ],
        ),
    ];
    for (host, servers) in &hosts {
        let (_, key) = c.create_agent(&a, host);
        let (status, body) = c.agent_call(
            "/mcp/report",
            &key,
            None,
            &json!({ "hostname": host, "servers": servers }),
        );
        assert_eq!(status, 200, "{body}");
    }
    // The same name launching something else on one host: an outlier.
    let (_, key) = c.create_agent(&a, "dave-mbp");
    let (status, _) = c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "hostname": "dave-mbp", "servers": [agent_server("files", "uvx", &["some-other-files"])] }),
    );
    assert_eq!(status, 200);
    // Organisation B has the same package: it never counts in A's census.
    let (_, key) = c.create_agent(&b, "b-host");
    c.agent_call(
        "/mcp/report",
        &key,
        None,
        &json!({ "servers": [fs("3.0.0")] }),
    );
    let (status, _) = c.call(
        reqwest::Method::PUT,
        "/policy",
        Some(&a),
        Some(&json!({ "approved": ["@modelcontextprotocol/server-filesystem"] })),
    );
    assert_eq!(status, 200);

    let packages = rows(&c, &a, "group_by=package");
    let fs_row = packages
        .iter()
        .find(|r| r["key"] == "@modelcontextprotocol/server-filesystem")
        .unwrap();
    assert_eq!(fs_row["ecosystem"], "npm");
    assert_eq!(
        (fs_row["hosts"].as_u64(), fs_row["servers"].as_u64()),
        (Some(3), Some(3))
    );
    // A user is a user on a host: "alice" on three laptops is three people.
    assert_eq!(fs_row["users"], 3);
    assert_eq!(
        fs_row["versions"],
        json!([{ "version": "1.0.0", "hosts": 2 }, { "version": "2.0.0", "hosts": 1 }])
    );
    assert_eq!(
        (fs_row["approved"].as_bool(), fs_row["blocked"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(fs_row["max_risk_level"].is_string() && fs_row["first_seen_at"].is_string());

    let names = rows(&c, &a, "group_by=server_name");
    let files = names.iter().find(|r| r["key"] == "files").unwrap();
    assert_eq!(
        (files["hosts"].as_u64(), files["launches"].as_u64()),
        (Some(4), Some(3)),
        "{files}"
    );
    // Most hosts first by default; the rarest first when asked.
    assert_eq!(names[0]["key"], "files");
    let rare = rows(&c, &a, "group_by=server_name&sort=hosts:asc");
    assert_eq!(rare.last().unwrap()["key"], "files");
    let by_key = rows(&c, &a, "group_by=server_name&sort=key:asc");
    let keys: Vec<&str> = by_key.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["docs", "files", "files-evil"]);

    let urls = rows(&c, &a, "group_by=url");
    assert_eq!(urls.len(), 1);
    assert_eq!(
        urls[0]["key"], "https://mcp.example.com/sse",
        "no query in the key"
    );

    let theirs = rows(&c, &b, "group_by=package");
    assert_eq!(theirs.len(), 1);
    assert_eq!(
        theirs[0]["versions"],
        json!([{ "version": "3.0.0", "hosts": 1 }])
    );

    for bad in ["group_by=host", "sort=servers", "page=0"] {
        let (status, _) = c.get(&format!("/mcp/census?{bad}"), &a);
        assert_eq!(status, 400, "{bad}");
    }
}
