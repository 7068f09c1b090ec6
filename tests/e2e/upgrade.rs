//! A database made by the previous release is upgraded at start. The fixture
//! (`tests/fixtures/layout3.tar.gz`) is a data dir written by the collector of commit
//! 58f927d (layout 3: JSON records and the server identity table) under the load
//! generator: 105 agents, 1,050 servers, change histories, alerts, the census; and
//! `views.json`, what that collector answered then. The collector of this tree must
//! answer the same after its upgrade, and an upgrade killed part-way must go on at
//! the next start.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mcpwatch_tests::{TestCollector, binary};
use serde_json::{Value, json};

/// So that servers the fixture's agents last reported days ago stay active, and none
/// is deleted as long dormant.
const QUIET: [&str; 4] = [
    "--dormant-after",
    "315360000",
    "--retain-dormant-days",
    "36500",
];

/// The fixture unpacked into a temporary dir: (the dir, the data dir inside it).
fn unpack() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/layout3.tar.gz");
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {}", fixture.display());
    let data = dir.path().join("layout3");
    (dir, data)
}

/// What the previous collector answered, with what depends on the clock left out.
fn expected(data: &Path) -> Value {
    let views: Value =
        serde_json::from_slice(&std::fs::read(data.join("views.json")).unwrap()).unwrap();
    timeless(views)
}

/// Agents' online state and the count of agents online change as time passes since
/// the fixture was made; everything else must not.
fn timeless(mut views: Value) -> Value {
    for agent in views["agents"].as_array_mut().unwrap() {
        let agent = agent.as_object_mut().unwrap();
        agent.remove("status");
        agent.remove("is_online");
    }
    views["stats"]
        .as_object_mut()
        .unwrap()
        .remove("active_agents");
    let mut servers = views["servers"].as_array().unwrap().clone();
    servers.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    views["servers"] = Value::Array(servers);
    views
}

/// The same views as `views.json`, from `c`.
fn views(c: &TestCollector, expected: &Value) -> Value {
    let token = c.token("load@example.com", "LoadPass123!");
    let get = |path: &str| {
        let (status, body) = c.get(path, &token);
        assert_eq!(status, 200, "{path}: {body}");
        body
    };
    let mut servers = Vec::new();
    for page in 1.. {
        let body = get(&format!("/mcp/servers?page_size=100&page={page}"));
        servers.extend(body["items"].as_array().unwrap().iter().cloned());
        if body["has_more"] != json!(true) {
            break;
        }
    }
    let census = |group: &str| {
        get(&format!(
            "/mcp/census?group_by={group}&sort=hosts:desc&page_size=100"
        ))["items"]
            .clone()
    };
    let mut details = serde_json::Map::new();
    for id in expected["details"].as_object().unwrap().keys() {
        details.insert(id.clone(), get(&format!("/mcp/servers/{id}")));
    }
    timeless(json!({
        "servers": servers,
        "census": { "package": census("package"), "server_name": census("server_name") },
        "alerts": get("/alerts/?page_size=100")["items"],
        "agents": get("/agents/"),
        "details": details,
        "stats": get("/dashboard/stats"),
    }))
}

/// Compare view by view, so that a failure names the one that differs.
fn assert_same(found: &Value, expected: &Value) {
    for (view, want) in expected.as_object().unwrap() {
        assert!(found[view] == *want, "{view} differs after the upgrade");
    }
}

fn offline_check(data: &Path) -> (bool, String) {
    let out = Command::new(binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN"))
        .arg("check")
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_database_of_the_previous_layout_answers_as_it_did() {
    mcpwatch_tests::redb_only!();
    let (_dir, data) = unpack();
    let expected = expected(&data);
    let data_arg = data.to_str().unwrap();
    let mut args = vec!["--data-dir", data_arg];
    args.extend(QUIET);
    let mut c = TestCollector::start(&args);
    let log = c.log();
    assert!(
        log.contains("Database upgraded") && log.contains("compact encoding (layout 4)"),
        "{log}"
    );
    assert_same(&views(&c, &expected), &expected);

    // Started again: nothing left to upgrade, the same answers.
    c.restart();
    assert!(!c.log().contains("Database upgraded"), "{}", c.log());
    assert_same(&views(&c, &expected), &expected);
    c.kill_hard();
    let (consistent, report) = offline_check(&data);
    assert!(consistent, "{report}");
}

#[test]
fn an_upgrade_killed_part_way_goes_on_at_the_next_start() {
    mcpwatch_tests::redb_only!();
    let (_dir, data) = unpack();
    let expected = expected(&data);
    // Start, and kill it as soon as it says it is converting records.
    let mut child = Command::new(binary("mcpwatch-collector", "MCPWATCH_COLLECTOR_BIN"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(QUIET)
        .env_remove("RUST_LOG")
        .env("MCPWATCH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("Upgrading the database to layout 4"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started, "the collector never said it was upgrading");

    let data_arg = data.to_str().unwrap();
    let mut args = vec!["--data-dir", data_arg];
    args.extend(QUIET);
    let c = TestCollector::start(&args);
    assert!(
        c.log().contains("compact encoding (layout 4)"),
        "{}",
        c.log()
    );
    assert_same(&views(&c, &expected), &expected);
}
