//! The agent's `scan --json` is a valid report: posted to a real collector it is
//! stored whole, scored exactly as the agent scores it, and carries no planted secret.

use std::collections::BTreeMap;
use std::path::Path;

use mcpwatch_protocol::risk;
use mcpwatch_protocol::wire::ReportRequest;
use mcpwatch_tests::TestCollector;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures")
}

fn put_fixture(root: &Path, rel: &str, fixture: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(fixtures().join(fixture), path).unwrap();
}

#[test]
fn scan_output_reported_to_the_collector_scores_the_same_and_leaks_nothing() {
    let tree = tempfile::tempdir().unwrap();
    let r = tree.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(
        r.join("etc/passwd"),
        "alice:x:1000:1000::/home/alice:/bin/bash\n",
    )
    .unwrap();
    put_fixture(
        r,
        "home/alice/.config/Claude/claude_desktop_config.json",
        "claude_desktop_config.json",
    );
    put_fixture(r, "home/alice/.claude.json", "claude.json");
    put_fixture(r, "home/alice/work/api/.mcp.json", "project.mcp.json");
    put_fixture(r, "home/alice/.cursor/mcp.json", "cursor_mcp.json");
    put_fixture(r, "home/alice/.codex/config.toml", "codex_config.toml");
    put_fixture(
        r,
        "home/alice/.config/goose/config.yaml",
        "goose_config.yaml",
    );
    put_fixture(
        r,
        "home/alice/.gemini/settings.json",
        "gemini_settings.json",
    );
    put_fixture(
        r,
        "home/alice/.config/zed/settings.json",
        "zed_settings.json",
    );

    let agent = mcpwatch_tests::binary("mcpwatch-agent", "MCPWATCH_AGENT_BIN");
    let out = std::process::Command::new(agent)
        .args(["scan", "--json", "--os", "linux", "--root"])
        .arg(r)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: ReportRequest = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.servers.len() >= 20, "{}", report.servers.len());
    let (assessments, combinations) =
        risk::assess_inventory(&report.servers, &risk::Policy::default());
    assert!(
        !combinations.is_empty(),
        "the fixtures hold a dangerous combination"
    );
    let expected: BTreeMap<(String, String), u8> = report
        .servers
        .iter()
        .zip(&assessments)
        .map(|(s, a)| ((s.client.clone().unwrap(), s.server_name.clone()), a.score))
        .collect();

    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (agent_id, key) = c.create_agent(&admin, "alice-laptop");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (status, ack) = c.agent_call("/mcp/report", &key, None, &body);
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["created"], expected.len());

    let (_, page) = c.get(
        &format!("/mcp/servers?agent_id={agent_id}&page_size=100"),
        &admin,
    );
    assert_eq!(page["total"], expected.len());
    let stored: BTreeMap<(String, String), u8> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                (
                    s["client"].as_str().unwrap().to_owned(),
                    s["server_name"].as_str().unwrap().to_owned(),
                ),
                s["risk_score"].as_u64().unwrap() as u8,
            )
        })
        .collect();
    assert_eq!(
        stored, expected,
        "the collector scores each server as the agent does"
    );
    let (_, agent_view) = c.get(&format!("/agents/{agent_id}"), &admin);
    assert_eq!(
        agent_view["combinations"].as_array().unwrap().len(),
        combinations.len()
    );
    let (_, alerts) = c.get("/alerts/?dismissed=false&page_size=100", &admin);
    assert!(
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "dangerous_combination")
    );

    // Nothing planted in the fixtures reached the collector, in any answer.
    let mut everything = page.to_string();
    for item in page["items"].as_array().unwrap() {
        everything.push_str(
            &c.get(
                &format!("/mcp/servers/{}", item["id"].as_str().unwrap()),
                &admin,
            )
            .1
            .to_string(),
        );
    }
    everything.push_str(&c.get(&format!("/agents/{agent_id}"), &admin).1.to_string());
    everything.push_str(&c.get("/alerts/?page_size=100", &admin).1.to_string());
    let secrets = std::fs::read_to_string(fixtures().join("secrets.txt")).unwrap();
    for secret in secrets.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            !everything.contains(secret),
            "a planted secret reached the collector"
        );
        assert!(!c.log().contains(secret));
    }
}
