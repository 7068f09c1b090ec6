//! `mcpwatch-agent install` and `uninstall` for real below a scratch root (the Linux
//! layout, no service manager) with a real collector: files, permissions, the unit,
//! enrollment, idempotence, a refused secret, purge; and `run` enrolling itself from
//! its config file once the collector can be reached.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use mcpwatch_tests::{TestAgent, TestCollector, binary, eventually, run_agent};
use serde_json::{Value, json};

/// `mcpwatch-agent ARGS --root ROOT`.
fn agent(args: &[&str], root: &Path) -> (Option<i32>, String) {
    let root = root.to_string_lossy();
    let mut all = args.to_vec();
    all.extend(["--root", &root]);
    run_agent(&all)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn collector_with_secret() -> (TestCollector, String, String) {
    let c = TestCollector::start(&[]);
    c.register("admin@acme.example", "AdminPass123!", "Acme");
    let admin = c.token("admin@acme.example", "AdminPass123!");
    let (status, secret) = c.post("/enroll-secrets", &admin, &json!({ "name": "fleet" }));
    assert_eq!(status, 201, "{secret}");
    let secret = secret["secret"].as_str().unwrap().to_owned();
    (c, admin, secret)
}

fn agents(c: &TestCollector, admin: &str) -> Vec<Value> {
    let (_, list) = c.get("/agents/", admin);
    list.as_array().cloned().unwrap_or_default()
}

#[test]
fn install_enrolls_writes_the_unit_and_owner_only_files_twice_the_same_and_purge_removes_all() {
    let (c, admin, secret) = collector_with_secret();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let install = ["install", "--server", &c.base, "--enroll-secret", &secret];
    let (code, out) = agent(&install, r);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("enrolled as agent"), "{out}");
    assert!(out.contains("not the live system"), "{out}");

    let unit = r.join("etc/systemd/system/mcpwatch-agent.service");
    let config = r.join("etc/mcpwatch/agent.toml");
    let drop_in = r.join("etc/mcpwatch/agent.d/50-install.toml");
    let state = r.join("var/lib/mcpwatch/agent");
    let program = r.join("usr/local/bin/mcpwatch-agent");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        unit_text.contains("ExecStart=/usr/local/bin/mcpwatch-agent run\n"),
        "{unit_text}"
    );
    assert!(unit_text.contains("ProtectSystem=strict\n"), "{unit_text}");
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(mode(&config), 0o600, "the config may hold an enroll secret");
    assert_eq!(mode(&drop_in), 0o600);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&program), 0o755);
    assert_eq!(
        std::fs::read(&program).unwrap(),
        std::fs::read(binary("mcpwatch-agent", "MCPWATCH_AGENT_BIN")).unwrap(),
        "the installed program is this agent"
    );
    // The admin's file is the documented template; what install was given is in its
    // drop-in; the enroll secret, used, is nowhere.
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert!(
        config_text.starts_with("# mcpwatch agent configuration"),
        "{config_text}"
    );
    let parsed: toml::Table = std::fs::read_to_string(&drop_in).unwrap().parse().unwrap();
    assert_eq!(parsed["collector_url"].as_str(), Some(c.base.as_str()));
    assert!(parsed.get("enroll_secret").is_none(), "{parsed:?}");
    assert_no_secret_under(r, &secret);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    let agent_id = saved["agent_id"].as_str().unwrap().to_owned();
    assert_eq!(mode(&state.join("state.json")), 0o600);
    let listed = agents(&c, &admin);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"].as_str(), Some(agent_id.as_str()));

    // Again: nothing new on the collector, one unit, the same identity.
    let (code, out) = agent(&install, r);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("already enrolled as agent {agent_id}")),
        "{out}"
    );
    assert_eq!(agents(&c, &admin).len(), 1, "installing twice enrolls once");
    assert_eq!(
        std::fs::read_dir(unit.parent().unwrap()).unwrap().count(),
        1,
        "one unit"
    );

    // Uninstall keeps the identity; purge removes it and the config.
    let (code, out) = agent(&["uninstall"], r);
    assert_eq!(code, Some(0), "{out}");
    assert!(!unit.exists() && !program.exists(), "{out}");
    assert!(config.exists() && state.join("state.json").exists());
    let (code, out) = agent(&["uninstall", "--purge"], r);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        !config.exists() && !drop_in.exists() && !state.exists(),
        "{out}"
    );
}

/// No file below `root` holds `secret`.
fn assert_no_secret_under(root: &Path, secret: &str) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                assert!(
                    !text.contains(secret),
                    "{} holds the enroll secret",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn a_secret_install_could_not_use_yet_waits_in_the_state_dir_and_is_deleted_once_used() {
    let (mut c, admin, secret) = collector_with_secret();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    c.kill_hard();
    let install = [
        "install",
        "--collector-url",
        &c.base,
        "--enroll-secret",
        &secret,
    ];
    let (code, out) = agent(&install, r);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("the enroll secret is kept in"), "{out}");
    assert!(!out.contains(&secret), "{out}");
    let state = r.join("var/lib/mcpwatch/agent");
    let kept = state.join("enroll-secret");
    assert_eq!(mode(&kept), 0o600);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), secret);
    let (_, status) = run_agent(&["status", "--state-dir", state.to_str().unwrap()]);
    assert!(status.contains("enrolled:          not yet"), "{status}");
    assert!(!status.contains(&secret), "{status}");

    // The service (here: `run` with the installed config) enrolls with it, then deletes it.
    c.restart_same_address();
    let machine = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(machine.path().join("etc")).unwrap();
    std::fs::write(machine.path().join("etc/passwd"), "").unwrap();
    let config = r.join("etc/mcpwatch/agent.toml");
    let run = TestAgent::start_with(
        &state,
        machine.path(),
        &["--config", config.to_str().unwrap()],
    );
    let admin = {
        let _ = admin;
        c.token("admin@acme.example", "AdminPass123!")
    };
    eventually(Duration::from_secs(60), "the agent enrolled", || {
        (agents(&c, &admin).len() == 1).then_some(())
    });
    eventually(Duration::from_secs(30), "the kept secret deleted", || {
        (!kept.exists()).then_some(())
    });
    assert_no_secret_under(r, &secret);
    assert!(!run.log().contains(&secret), "the secret is never logged");
}

#[test]
fn a_refused_enroll_secret_fails_install_before_the_service_is_registered() {
    let (c, _admin, _secret) = collector_with_secret();
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("var/lib/mcpwatch/agent");
    let (code, out) = agent(
        &[
            "install",
            "--server",
            &c.base,
            "--enroll-secret",
            "mcp_es_not-a-real-secret",
        ],
        root.path(),
    );
    assert_eq!(code, Some(78), "someone must act: {out}");
    assert!(out.contains("refused the enroll secret"), "{out}");
    assert!(out.contains("the service was not registered"), "{out}");
    assert!(
        !state.join("enroll-secret").exists(),
        "a refused secret is not kept"
    );
    let (_, status) = run_agent(&["status", "--state-dir", state.to_str().unwrap()]);
    assert!(status.contains("enrolled:          no"), "{status}");
    assert!(status.contains("enrollment refused"), "{status}");
    assert!(
        !out.contains("mcp_es_not-a-real-secret"),
        "no secret in output: {out}"
    );
    assert!(
        !root
            .path()
            .join("etc/systemd/system/mcpwatch-agent.service")
            .exists()
    );
}

#[test]
fn run_enrolls_itself_from_its_config_file_once_the_collector_is_reachable() {
    let (mut c, admin, secret) = collector_with_secret();
    let dir = tempfile::tempdir().unwrap();
    let scan_root = dir.path().join("machine");
    std::fs::create_dir_all(scan_root.join("etc")).unwrap();
    std::fs::write(
        scan_root.join("etc/passwd"),
        "alice:x:1000:1000::/home/alice:/bin/bash\n",
    )
    .unwrap();
    let cursor = scan_root.join("home/alice/.cursor");
    std::fs::create_dir_all(&cursor).unwrap();
    std::fs::write(
        cursor.join("mcp.json"),
        r#"{"mcpServers": {"files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/"]}}}"#,
    )
    .unwrap();
    let config = dir.path().join("agent.toml");
    let fleet_config = format!(
        "collector_url = \"{}\"\nenroll_secret = \"{secret}\"\n",
        c.base
    );
    std::fs::write(&config, &fleet_config).unwrap();
    let state = dir.path().join("state");

    // The collector is down when the agent starts: it waits and says why.
    c.kill_hard();
    let run = TestAgent::start_with(&state, &scan_root, &["--config", config.to_str().unwrap()]);
    eventually(
        Duration::from_secs(30),
        "the enroll error in the state",
        || {
            std::fs::read_to_string(state.join("state.json"))
                .ok()
                .filter(|s| s.contains("enrolling"))
        },
    );
    c.restart_same_address();
    let admin = {
        let _ = admin;
        c.token("admin@acme.example", "AdminPass123!")
    };
    eventually(
        Duration::from_secs(60),
        "the self-enrolled agent's report",
        || {
            let (_, page) = c.get("/mcp/servers?page_size=10", &admin);
            (page["items"].as_array().map_or(0, Vec::len) == 1).then_some(())
        },
    );
    assert_eq!(agents(&c, &admin).len(), 1);
    assert!(!run.log().contains(&secret), "the secret is never logged");
    // Used: taken out of the config file, the rest of the file kept.
    eventually(
        Duration::from_secs(30),
        "the secret out of the config file",
        || {
            let text = std::fs::read_to_string(&config).unwrap();
            (!text.contains(&secret)).then_some(text)
        },
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(text, format!("collector_url = \"{}\"\n", c.base));
    assert!(
        run.log()
            .contains("the enroll secret was removed from the config file")
    );

    // Dropped again on the enrolled machine (a fleet tool re-applying its config): the
    // agent, enrolled already, removes it at its next start and enrolls nothing new.
    drop(run);
    std::fs::write(&config, &fleet_config).unwrap();
    let again = TestAgent::start_with(&state, &scan_root, &["--config", config.to_str().unwrap()]);
    eventually(
        Duration::from_secs(30),
        "the secret out of the config file again",
        || {
            let text = std::fs::read_to_string(&config).unwrap();
            (!text.contains(&secret)).then_some(())
        },
    );
    assert_eq!(agents(&c, &admin).len(), 1, "no second enrollment");
    assert!(!again.log().contains(&secret));
}

#[test]
fn empty_msi_properties_count_as_not_given_and_a_broken_config_file_is_named() {
    let root = tempfile::tempdir().unwrap();
    // What the MSI passes when SERVER_URL, ENROLL_SECRET and CA_FILE are not set.
    let (code, out) = agent(
        &["install", "--server=", "--enroll-secret=", "--ca-file="],
        root.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("not enrolled"), "{out}");
    let config = root.path().join("etc/mcpwatch/agent.toml");
    let parsed: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    assert!(parsed.is_empty(), "no empty keys written: {parsed:?}");
    assert!(
        !root
            .path()
            .join("etc/mcpwatch/agent.d/50-install.toml")
            .exists(),
        "nothing given, no drop-in"
    );

    // A config file the admin broke is named, left as it was, and nothing is registered.
    std::fs::remove_file(
        root.path()
            .join("etc/systemd/system/mcpwatch-agent.service"),
    )
    .unwrap();
    std::fs::write(&config, "collector_url = \"https://unterminated\n").unwrap();
    let (code, out) = agent(&["install", "--server", "https://c.example"], root.path());
    assert_eq!(code, Some(78), "{out}");
    assert!(out.contains("agent.toml"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "collector_url = \"https://unterminated\n"
    );
    assert!(
        !root
            .path()
            .join("etc/systemd/system/mcpwatch-agent.service")
            .exists()
    );
}

#[test]
fn check_config_shows_the_settings_and_their_files_and_refuses_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "collector_url = \"https://c.example\"\nenroll_secret = \"mcp_es_shown_never\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("agent.d")).unwrap();
    std::fs::write(
        dir.path().join("agent.d/90-fleet.toml"),
        "project_depth = 5\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let (code, out) = run_agent(&["check-config", "--config", c]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("90-fleet.toml"), "{out}");
    assert!(out.contains("project_depth            5"), "{out}");
    assert!(out.contains("enroll_secret            (set)"), "{out}");
    assert!(!out.contains("mcp_es_shown_never"), "{out}");
    assert!(out.contains("The settings are valid."), "{out}");

    let (code, out) = run_agent(&["check-config", "--config", c, "--heartbeat-interval", "1"]);
    assert_eq!(code, Some(78), "{out}");
    assert!(
        out.contains("heartbeat_interval_secs must be 5 to 86400 (got 1, from the command line or environment)"),
        "{out}"
    );
}
