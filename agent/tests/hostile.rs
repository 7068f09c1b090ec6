//! The agent on hostile ground: files a user of the laptop wrote to hang, crash or
//! blow up the scan, to make it read another user's files, or to make the machine's
//! report unsendable. Each test is one family of such inputs.
//!
//! Tests that need two real uids (chown) run as root, as CI does, and say so when
//! they are skipped.

// Test code throughout: helpers panic on unexpected states.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mcpwatch_agent::discovery::catalog::Os;
use mcpwatch_agent::discovery::paths::join;
use mcpwatch_agent::discovery::{
    Inventory, MAX_SERVERS_PER_FILE, MAX_SERVERS_PER_USER, ScanOptions, Target, scan,
};
use mcpwatch_agent::inventory;
use mcpwatch_protocol::limits;

fn put(root: &Path, rel: &str, text: &str) {
    let path = join(root, rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn passwd(root: &Path, users: &[(&str, u32)]) {
    let mut text = String::from("root:x:0:0:root:/root:/bin/bash\n");
    for (name, uid) in users {
        text.push_str(&format!("{name}:x:{uid}:{uid}::/home/{name}:/bin/bash\n"));
        std::fs::create_dir_all(root.join("home").join(name)).unwrap();
    }
    put(root, "etc/passwd", &text);
}

fn root_scan(root: &Path) -> Inventory {
    scan(&ScanOptions {
        os: Os::Linux,
        target: Target::Root {
            root: root.to_path_buf(),
            user: None,
        },
        project_roots: vec![],
        project_depth: 0,
    })
}

fn servers_json(n: usize, prefix: &str) -> String {
    let body: Vec<String> = (0..n)
        .map(|i| format!(r#""{prefix}{i}": {{"command": "npx", "args": ["-y", "pkg-{i}"]}}"#))
        .collect();
    format!(r#"{{"mcpServers": {{{}}}}}"#, body.join(","))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn deep_nesting_in_every_format_is_a_config_error_answered_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    passwd(r, &[("alice", 1000)]);
    let deep = 100_000;
    put(r, "home/alice/.cursor/mcp.json", &"[".repeat(deep));
    put(
        r,
        "home/alice/.codex/config.toml",
        &format!("a = {}", "[".repeat(deep)),
    );
    put(r, "home/alice/.config/goose/config.yaml", &"[".repeat(deep));
    put(r, "home/alice/.continue/config.yaml", &"- ".repeat(deep));
    put(
        r,
        "home/alice/.gemini/settings.json",
        r#"{"mcpServers": {"still-here": {"command": "uvx", "args": ["mcp-server-time==1.0.0"]}}}"#,
    );
    let started = Instant::now();
    let inv = root_scan(r);
    let took = started.elapsed();
    assert!(took.as_secs() < 2, "scan took {took:?}");
    assert!(inv.servers.iter().any(|s| s.server_name == "still-here"));
    for file in [
        "/home/alice/.cursor/mcp.json",
        "/home/alice/.codex/config.toml",
        "/home/alice/.config/goose/config.yaml",
        "/home/alice/.continue/config.yaml",
    ] {
        let e = inv
            .config_errors
            .iter()
            .find(|e| e.path == file)
            .unwrap_or_else(|| panic!("no config error for {file}: {:?}", inv.config_errors));
        assert!(e.error.contains("nested more than 64 levels"), "{e:?}");
    }
}

#[test]
fn the_table_survives_huge_names_and_escapes_every_control_character() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let huge = "N".repeat(100 * 1024);
    let nasty = [
        "esc\u{1b}[2J\u{1b}[31mred",
        "osc\u{1b}]8;;https://evil.example\u{7}click\u{1b}]8;;\u{7}",
        "cr\rfake row",
        "lf\nalice  cursor  fake  stdio",
        "c1\u{9b}2J",
        "bidi\u{202e}exe.txt",
        "isolate\u{2067}x\u{2069}",
        "del\u{7f}bell\u{7}nul\u{0}",
    ];
    let mut servers = vec![format!(
        r#""{huge}": {{"command": "npx", "args": ["-y", "{huge}"]}}"#
    )];
    for (i, name) in nasty.iter().enumerate() {
        let name = serde_json::to_string(name).unwrap();
        let cmd = serde_json::to_string(&format!("run\u{1b}[8m{i}")).unwrap();
        servers.push(format!(r#"{name}: {{"command": {cmd}}}"#));
    }
    put(
        &home,
        ".cursor/mcp.json",
        &format!(r#"{{"mcpServers": {{{}}}}}"#, servers.join(",")),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mcpwatch-agent"))
        .args(["scan", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    for (i, line) in table.lines().enumerate() {
        assert!(
            line.chars().count() < 600,
            "line {i} is {} chars",
            line.chars().count()
        );
        assert!(
            !line.chars().any(|c| c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
            "raw control or bidi character in line {i}: {line:?}"
        );
    }
    // Every server is a row of its own: the CR/LF names did not fake rows.
    assert_eq!(
        table.lines().filter(|l| l.contains(" cursor ")).count(),
        nasty.len() + 1
    );
    assert!(table.contains("\\u{1b}[2J"), "{table}");
    // JSON keeps the exact values.
    let out = Command::new(env!("CARGO_BIN_EXE_mcpwatch-agent"))
        .args(["scan", "--json", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["server_name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&nasty[0]));
    // The huge name was fitted to the collector's limit, and said so.
    assert!(
        names
            .iter()
            .all(|n| n.chars().count() <= limits::MAX_NAME_CHARS)
    );
    assert!(json["config_errors"].as_array().unwrap().iter().any(|e| {
        e["error"]
            .as_str()
            .unwrap()
            .contains("a server name of 102400 characters shortened")
    }));
}

#[test]
fn one_project_spelled_many_ways_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    passwd(r, &[("alice", 1000)]);
    put(r, "home/alice/p/.mcp.json", &servers_json(50, "proj-"));
    std::fs::create_dir_all(r.join("home/alice/x")).unwrap();
    std::os::unix::fs::symlink(r.join("home/alice/p"), r.join("home/alice/link")).unwrap();
    let spellings = [
        "/home/alice/p",
        "/home/alice/p/",
        "/home/alice/./p",
        "/home/alice//p",
        "/home/alice/x/../p",
        "/home//alice/./x/../p/.",
        "/home/alice/link",
    ];
    let mut projects: Vec<String> = Vec::new();
    for i in 0..100 {
        let s = spellings[i % spellings.len()];
        projects.push(format!(
            r#""{}{}": {{}}"#,
            s,
            "/.".repeat(i / spellings.len())
        ));
    }
    put(
        r,
        "home/alice/.claude.json",
        &format!(r#"{{"projects": {{{}}}}}"#, projects.join(",")),
    );
    let inv = root_scan(r);
    let from_project = inv
        .servers
        .iter()
        .filter(|s| {
            s.server_name.starts_with("proj-") && s.client.as_deref() == Some("claude_code")
        })
        .count();
    assert_eq!(from_project, 50);
}

#[test]
fn caps_per_file_and_per_user_say_what_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    passwd(r, &[("alice", 1000), ("bob", 1001)]);
    put(r, "home/alice/.cursor/mcp.json", &servers_json(12_000, "a"));
    put(
        r,
        "home/alice/.gemini/settings.json",
        &servers_json(1500, "g"),
    );
    put(
        r,
        "home/alice/.kiro/settings/mcp.json",
        &servers_json(900, "k"),
    );
    put(r, "home/bob/.cursor/mcp.json", &servers_json(3, "bob-"));
    let started = Instant::now();
    let inv = root_scan(r);
    assert!(started.elapsed().as_secs() < 10);
    let alice = inv
        .servers
        .iter()
        .filter(|s| s.os_user.as_deref() == Some("alice"))
        .count();
    assert_eq!(alice, MAX_SERVERS_PER_USER);
    assert_eq!(
        inv.servers
            .iter()
            .filter(|s| s.config_path.as_deref() == Some("/home/alice/.cursor/mcp.json"))
            .count(),
        MAX_SERVERS_PER_FILE
    );
    assert_eq!(
        inv.servers
            .iter()
            .filter(|s| s.os_user.as_deref() == Some("bob"))
            .count(),
        3
    );
    let cursor = inv
        .config_errors
        .iter()
        .find(|e| e.path == "/home/alice/.cursor/mcp.json")
        .unwrap();
    assert!(
        cursor
            .error
            .contains("holds 12000 servers; only 1000 reported"),
        "{cursor:?}"
    );
    let error_of = |path: &str| {
        inv.config_errors
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.error.clone())
            .unwrap_or_default()
    };
    assert!(
        error_of("/home/alice/.gemini/settings.json")
            .contains("holds 1500 servers; only 1000 reported")
    );
    assert!(
        error_of("/home/alice/.kiro/settings/mcp.json")
            .contains("holds 900 servers; only 0 reported")
    );
}

#[test]
fn a_fitted_report_always_passes_the_collectors_limits() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    passwd(r, &[("alice", 1000), ("bob", 1001)]);
    let long = "L".repeat(5000);
    let arg = "A".repeat(3000);
    put(
        r,
        "home/alice/.cursor/mcp.json",
        &format!(
            r#"{{"mcpServers": {{"   ": {{"command": "x"}}, "": {{"command": "y"}}, "{long}": {{"command": "z", "args": ["{arg}"]}}, "dup": {{"command": "a"}}, " dup ": {{"command": "b"}}}}}}"#
        ),
    );
    // Many big servers: more bytes than the collector's body limit.
    let big: Vec<String> = (0..1000)
        .map(|i| {
            let args = vec![format!("\"{}\"", "a".repeat(1500)); 2].join(",");
            format!(r#""big-{i}": {{"command": "npx", "args": [{args}]}}"#)
        })
        .collect();
    put(
        r,
        "home/alice/.gemini/settings.json",
        &format!(r#"{{"mcpServers": {{{}}}}}"#, big.join(",")),
    );
    put(r, "home/bob/.cursor/mcp.json", &servers_json(5, "bob-"));
    let fitted = inventory::fit(root_scan(r), None).fitted;
    let report = inventory::report(fitted);
    limits::check_report(&report).unwrap();
    let bytes = serde_json::to_vec(&report).unwrap().len();
    assert!(bytes < limits::DEFAULT_MAX_BODY_BYTES, "{bytes}");
    // Bob is whole: the user with the most was cut, not the others.
    assert_eq!(
        report
            .servers
            .iter()
            .filter(|s| s.os_user.as_deref() == Some("bob"))
            .count(),
        5
    );
    assert!(
        report
            .config_errors
            .iter()
            .any(|e| e.path == "(files of user alice)" && e.error.contains("left out"))
    );
    let names: Vec<&str> = report
        .servers
        .iter()
        .filter(|s| s.config_path.as_deref() == Some("/home/alice/.cursor/mcp.json"))
        .map(|s| s.server_name.as_str())
        .collect();
    assert!(
        names.contains(&"(unnamed)") && names.contains(&"(unnamed) (2)"),
        "{names:?}"
    );
    assert!(
        names.contains(&"dup") && names.contains(&"dup (2)"),
        "{names:?}"
    );
}

#[test]
fn another_users_files_are_never_read_through_links_or_recorded_projects() {
    if !is_root() {
        eprintln!("skipped: needs root to give two users their own files (CI runs it as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    passwd(r, &[("alice", 1000), ("victim", 1001)]);
    put(
        r,
        "home/victim/.cursor/mcp.json",
        &servers_json(2, "victim-cursor-"),
    );
    put(
        r,
        "home/victim/secret-proj/.mcp.json",
        &servers_json(2, "victim-proj-"),
    );
    put(
        r,
        "home/victim/.claude.json",
        r#"{"mcpServers": {"victim-own": {"command": "x"}}}"#,
    );
    put(
        r,
        "home/alice/.gemini/settings.json",
        &servers_json(1, "alice-"),
    );
    put(
        r,
        "home/alice/mine/.mcp.json",
        &servers_json(1, "alice-proj-"),
    );
    let a = r.join("home/alice");
    // A symlinked directory, a symlinked file, a hard link and recorded projects, all
    // into the victim's home.
    std::os::unix::fs::symlink(r.join("home/victim/.cursor"), a.join(".cursor")).unwrap();
    std::fs::create_dir_all(a.join(".codeium/windsurf")).unwrap();
    std::os::unix::fs::symlink(
        r.join("home/victim/.cursor/mcp.json"),
        a.join(".codeium/windsurf/mcp_config.json"),
    )
    .unwrap();
    std::fs::create_dir_all(a.join(".kiro/settings")).unwrap();
    std::fs::hard_link(
        r.join("home/victim/.claude.json"),
        a.join(".kiro/settings/mcp.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(r.join("home/victim"), a.join("victim-home")).unwrap();
    put(
        r,
        "home/alice/.claude.json",
        r#"{"projects": {"/home/victim/secret-proj": {}, "/home/alice/victim-home/secret-proj": {}, "/home/alice/../victim/secret-proj": {}, "/home/alice/mine": {}}}"#,
    );
    chown(&r.join("home/victim"), 1001);
    std::fs::set_permissions(
        r.join("home/victim"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    chown(&a, 1000);
    // Keep the victim's hard link owned by the victim (chown -R of alice followed it).
    chown(&r.join("home/victim/.claude.json"), 1001);

    let inv = scan(&ScanOptions {
        os: Os::Linux,
        target: Target::Root {
            root: r.to_path_buf(),
            user: Some("alice".into()),
        },
        project_roots: vec![],
        project_depth: 0,
    });
    let names: Vec<&str> = inv.servers.iter().map(|s| s.server_name.as_str()).collect();
    assert!(
        names.contains(&"alice-0") && names.contains(&"alice-proj-0"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("victim")), "{names:?}");
    let error_of = |path: &str| {
        inv.config_errors
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.error.clone())
            .unwrap_or_default()
    };
    assert!(error_of("/home/alice/.cursor/mcp.json").contains("another user"));
    assert!(
        error_of("/home/alice/.codeium/windsurf/mcp_config.json").contains("not owned by the user")
    );
    assert!(error_of("/home/alice/.kiro/settings/mcp.json").contains("owned by another user"));
    assert!(error_of("/home/alice").contains("recorded project folder(s) not read"));
}

/// One unique planted secret per shape a real config writes them in.
const SHAPES: &[(&str, &[&str], &str)] = &[
    (
        "npx",
        &[
            "-y",
            "mcp-remote",
            "https://x.example/mcp",
            "--header",
            "Authorization: Bearer PlantA1summer!",
        ],
        "PlantA1summer!",
    ),
    (
        "npx",
        &[
            "mcp-remote",
            "https://x.example/mcp",
            "--header=X-Api-Key:PlantB2winter",
        ],
        "PlantB2winter",
    ),
    (
        "docker",
        &[
            "run",
            "-i",
            "--rm",
            "-e",
            "GITHUB_TOKEN=PlantC3spring",
            "ghcr.io/github/github-mcp-server",
        ],
        "PlantC3spring",
    ),
    (
        "node",
        &["server.js", "API_KEY=PlantD4autumn"],
        "PlantD4autumn",
    ),
    (
        "env",
        &["OPENAI_API_KEY=PlantE5letmein", "npx", "-y", "pkg"],
        "PlantE5letmein",
    ),
    (
        "cmd",
        &["/c", "set API_TOKEN=PlantF6cmd&& npx -y pkg"],
        "PlantF6cmd",
    ),
    (
        "mcp-mysql",
        &["-h", "db", "-u", "root", "-pPlantG7mysql"],
        "PlantG7mysql",
    ),
    ("some-mcp", &["-k", "PlantH8short"], "PlantH8short"),
    ("some-mcp", &["--bearer", "PlantI9bearer"], "PlantI9bearer"),
    (
        "npx",
        &["-y", "pkg", "--config", "{\"apiKey\": \"PlantJ10json\"}"],
        "PlantJ10json",
    ),
    (
        "npx",
        &[
            "mcp-remote",
            "https://mcp.example.com/sse#access_token=PlantK11frag",
        ],
        "PlantK11frag",
    ),
    (
        "npx",
        &[
            "mcp-remote",
            "https://PlantL12userinfoTOKEN@mcp.example.com/sse",
        ],
        "PlantL12userinfoTOKEN",
    ),
    (
        "npx",
        &[
            "mcp-remote",
            "https://mcp.example.com/u/PlantM13PathTokenXyZ9/sse",
        ],
        "PlantM13PathTokenXyZ9",
    ),
    (
        "uvx",
        &[
            "mcp-server-postgres",
            "postgresql://admin:PlantN14db!@db.internal/app",
        ],
        "PlantN14db!",
    ),
    (
        "npx",
        &["pkg", "--password", "summer2024!PlantO15"],
        "summer2024!PlantO15",
    ),
];

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn no_planted_secret_reaches_scan_json_or_the_table_in_any_format() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (mut json, mut jsonc, mut toml, mut yaml, mut goose) = (
        Vec::new(),
        Vec::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    for (i, (program, args, _)) in SHAPES.iter().enumerate() {
        let args_json = serde_json::to_string(args).unwrap();
        json.push(format!(
            r#""s{i}": {{"command": {}, "args": {args_json}}}"#,
            toml_str(program)
        ));
        jsonc.push(format!(
            "    // server {i}\n    \"s{i}\": {{\"command\": {}, \"args\": {args_json},}}",
            toml_str(program)
        ));
        toml.push_str(&format!(
            "[mcp_servers.s{i}]\ncommand = {}\nargs = {args_json}\n\n",
            toml_str(program)
        ));
        yaml.push_str(&format!(
            "  - name: s{i}\n    command: {}\n    args: {args_json}\n",
            toml_str(program)
        ));
        goose.push_str(&format!(
            "  s{i}:\n    type: stdio\n    cmd: {}\n    args: {args_json}\n",
            toml_str(program)
        ));
    }
    put(
        &home,
        ".cursor/mcp.json",
        &format!("{{\"mcpServers\": {{{}}}}}", json.join(",")),
    );
    put(
        &home,
        ".config/Code/User/mcp.json",
        &format!("{{\n  \"servers\": {{\n{}\n  }},\n}}", jsonc.join(",\n")),
    );
    put(&home, ".codex/config.toml", &toml);
    put(
        &home,
        ".continue/config.yaml",
        &format!("mcpServers:\n{yaml}"),
    );
    put(
        &home,
        ".config/goose/config.yaml",
        &format!("extensions:\n{goose}"),
    );
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpwatch-agent"));
        cmd.arg("scan");
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .args(["--os", "linux", "--home"])
            .arg(&home)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap()
    };
    let report = run(true);
    let table = run(false);
    let parsed: serde_json::Value = serde_json::from_str(report.trim_end()).unwrap();
    let servers = parsed["servers"].as_array().unwrap();
    assert_eq!(
        servers.len(),
        SHAPES.len() * 5,
        "{:?}",
        parsed["config_errors"]
    );
    for server in servers {
        assert!(
            !server["secrets_found"].as_array().is_none_or(Vec::is_empty),
            "no finding for {server}"
        );
    }
    for (_, _, secret) in SHAPES {
        assert!(!report.contains(secret), "scan --json leaked {secret}");
        assert!(!table.contains(secret), "the table leaked {secret}");
    }
}

#[test]
fn launch_text_per_user_is_bounded_and_said() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    passwd(r, &[("alice", 1000), ("bob", 1001)]);
    // Three files of about 3 MB of arguments each: more than one user may cost.
    let arg = "x".repeat(3000);
    let servers: Vec<String> = (0..1000)
        .map(|i| format!(r#""s{i}": {{"command": "node", "args": ["{arg}"]}}"#))
        .collect();
    let file = format!(r#"{{"mcpServers": {{{}}}}}"#, servers.join(","));
    for rel in [
        ".cursor/mcp.json",
        ".gemini/settings.json",
        ".kiro/settings/mcp.json",
    ] {
        put(r, &format!("home/alice/{rel}"), &file);
    }
    put(r, "home/bob/.cursor/mcp.json", &servers_json(2, "bob-"));
    let inv = root_scan(r);
    assert_eq!(
        inv.servers
            .iter()
            .filter(|s| s.os_user.as_deref() == Some("bob"))
            .count(),
        2
    );
    let alice_bytes: usize = inv
        .servers
        .iter()
        .filter(|s| s.os_user.as_deref() == Some("alice"))
        .map(|s| s.args.iter().map(String::len).sum::<usize>())
        .sum();
    assert!(
        alice_bytes <= mcpwatch_agent::discovery::MAX_LAUNCH_BYTES_PER_USER,
        "{alice_bytes}"
    );
    assert!(
        inv.config_errors
            .iter()
            .any(|e| e.error.contains("launch lines exceed")),
        "{:?}",
        inv.config_errors
    );
}
