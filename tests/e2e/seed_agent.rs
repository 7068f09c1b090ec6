//! The seed platform's own published agent (`mcpshield-agent` from PyPI), unmodified,
//! against a real collector: it calls `/api/v1/agents/heartbeat` and
//! `/api/v1/mcp/report` with its own body shapes (`source`, `status`, an empty
//! `scope`, `ip_address`), and what it reports is stored and scored sensibly.
//!
//! The agent is installed once into `target/seed-agent/venv` with Python's venv and
//! pip; the test is skipped, saying so, only when PyPI cannot be reached.

use std::path::{Path, PathBuf};
use std::process::Command;

use mcpwatch_tests::TestCollector;
use serde_json::Value;

/// The seed agent's versions this collector is checked against.
const SEED_AGENT: &str = "mcpshield-agent>=0.1,<0.7";

fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The `mcpshield` program, installed on first use; `None` when Python cannot make a
/// virtual environment or PyPI is unreachable.
fn seed_agent() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let venv = target.join("seed-agent/venv");
    let program = venv.join("bin/mcpshield");
    if program.exists() {
        return Some(program);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        let _ = std::fs::remove_dir_all(&venv);
        return None;
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SEED_AGENT,
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let _ = std::fs::remove_dir_all(&venv);
        return None;
    }
    Some(program)
}

fn mcpshield(program: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env_remove("APPDATA")
        .env_remove("LOCALAPPDATA")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mcpshield {args:?}: {text}");
    text
}

#[test]
fn the_seed_platforms_own_agent_reports_through_api_v1() {
    let Some(program) = seed_agent() else {
        eprintln!(
            "skipped: no Python virtual environment, or PyPI could not be reached, to install {SEED_AGENT}"
        );
        return;
    };
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (agent_id, key) = c.create_agent(&admin, "seed-laptop");

    // The same server name in two clients, and a server with no path argument (its
    // scope comes out empty or null).
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    put(
        h,
        ".config/Claude/claude_desktop_config.json",
        r#"{"mcpServers": {"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]},
                           "time": {"command": "uvx", "args": ["mcp-server-time"]}}}"#,
    );
    put(
        h,
        ".cursor/mcp.json",
        r#"{"mcpServers": {"github": {"command": "docker", "args": ["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"]}}}"#,
    );
    let out = mcpshield(
        &program,
        h,
        &["configure", "--api-key", &key, "--api-url", &c.base],
    );
    assert!(out.contains("Connected successfully"), "{out}");
    let out = mcpshield(&program, h, &["scan"]);
    assert!(out.contains("Success!"), "{out}");
    assert!(out.contains("Created: 3"), "{out}");

    let (_, page) = c.get(
        &format!("/mcp/servers?agent_id={agent_id}&page_size=100"),
        &admin,
    );
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{page}");
    let find = |client: &str, name: &str| -> &Value {
        items
            .iter()
            .find(|s| s["client"] == client && s["server_name"] == name)
            .unwrap_or_else(|| panic!("no {client}/{name} in {page}"))
    };
    // `source` keeps the two clients' `github` apart.
    find("Claude Desktop", "github");
    find("Cursor", "github");
    // An empty scope is no filesystem scope: the clock server is not "the whole disk".
    let time = find("Claude Desktop", "time");
    assert_ne!(time["risk_level"], "critical", "{time}");
    let (_, detail) = c.get(
        &format!("/mcp/servers/{}", time["id"].as_str().unwrap()),
        &admin,
    );
    assert!(
        !detail["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule_id"]
                .as_str()
                .unwrap_or_default()
                .starts_with("MCP-FS-")),
        "{detail}"
    );
    // The heartbeat's facts, the address among them.
    let (_, agent) = c.get(&format!("/agents/{agent_id}"), &admin);
    assert_eq!(agent["status"], "online", "{agent}");
    assert!(agent["ip_address"].is_string(), "{agent}");
    assert!(agent["hostname"].is_string(), "{agent}");
}

/// The seed's report shapes sent by hand (other versions of its agent send `""` for
/// no scope): an empty scope is no scope, `source` is the client, extra fields
/// (`status`, `risk`, `tools`) are accepted and ignored, and `/api/v1` serves every
/// route the root does.
#[test]
fn seed_report_shapes_through_api_v1() {
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (agent_id, key) = c.create_agent(&admin, "seed-laptop");
    let report = serde_json::json!({ "servers": [
        { "server_name": "time", "server_type": "unknown", "command": "uvx mcp-server-time",
          "scope": "", "env_vars": [], "status": "dormant", "source": "Claude Desktop",
          "risk": { "score": 10, "level": "low" }, "tools": [] },
        { "server_name": "time", "server_type": "unknown", "command": "uvx mcp-server-time",
          "scope": null, "env_vars": [], "status": "active", "source": "Cursor" }
    ]});
    let (status, ack) = c.agent_call("/api/v1/mcp/report", &key, None, &report);
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["created"], 2, "two clients, two servers: {ack}");
    let (status, _) = c.agent_call(
        "/api/v1/agents/heartbeat",
        &key,
        None,
        &serde_json::json!({ "hostname": "h", "os_type": "linux", "username": "u",
                             "ip_address": "10.1.2.3", "agent_version": "0.6.0" }),
    );
    assert_eq!(status, 200);
    let (_, page) = c.get(&format!("/api/v1/mcp/servers?agent_id={agent_id}"), &admin);
    for server in page["items"].as_array().unwrap() {
        // Unpinned (medium), but no filesystem finding: not "the whole disk".
        assert_eq!(server["risk_level"], "medium", "{server}");
        assert!(
            !server["top_finding"]
                .as_str()
                .unwrap()
                .contains("Filesystem"),
            "{server}"
        );
        assert!(server["scope"].is_null(), "{server}");
    }
    let (_, agent) = c.get(&format!("/api/v1/agents/{agent_id}"), &admin);
    assert_eq!(agent["ip_address"], "10.1.2.3");
    // Every route is served under the prefix: a user route, a public one.
    assert_eq!(c.get("/api/v1/dashboard/stats", &admin).0, 200);
    assert_eq!(c.get("/api/v1/health", &admin).0, 200);
    assert_eq!(c.get("/api/v1/nothing-here", &admin).0, 404);
}
