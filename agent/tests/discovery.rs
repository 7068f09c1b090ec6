//! Discovery over trees that stand for whole machines: several users per OS layout,
//! real-looking config files of every format and servers-key shape, planted secrets
//! and malformed files.

// Test code throughout: helpers panic on unexpected states.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use mcpwatch_agent::discovery::catalog::{CLIENTS, Format, Os, Shape};
use mcpwatch_agent::discovery::paths::{join, user_candidates};
use mcpwatch_agent::discovery::{Inventory, ScanOptions, Target, scan};
use mcpwatch_protocol::server::{ConfigScope, ServerRecord, Transport};

fn put(root: &Path, rel: &str, text: &str) {
    let path = join(root, rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn planted() -> Vec<String> {
    fixture("secrets.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A Linux machine: alice with a file for most clients, bob with a broken file.
fn linux_tree(root: &Path) {
    put(
        root,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\nsvc:x:998:998::/var/lib/svc:/usr/sbin/nologin\n",
    );
    std::fs::create_dir_all(root.join("root")).unwrap();
    let a = "home/alice";
    put(
        root,
        &format!("{a}/.config/Claude/claude_desktop_config.json"),
        &fixture("claude_desktop_config.json"),
    );
    put(root, &format!("{a}/.claude.json"), &fixture("claude.json"));
    put(
        root,
        &format!("{a}/work/api/.mcp.json"),
        &fixture("project.mcp.json"),
    );
    put(
        root,
        &format!("{a}/.cursor/mcp.json"),
        &fixture("cursor_mcp.json"),
    );
    put(
        root,
        &format!("{a}/.config/Code/User/mcp.json"),
        &fixture("vscode_mcp.json"),
    );
    put(
        root,
        &format!("{a}/.config/Code/User/settings.json"),
        &fixture("vscode_settings.json"),
    );
    put(
        root,
        &format!("{a}/.config/Code/User/workspaceStorage/f00d/workspace.json"),
        r#"{"folder": "file:///home/alice/My%20App"}"#,
    );
    put(
        root,
        &format!("{a}/My App/.vscode/mcp.json"),
        r#"{"servers": {"app-db": {"command": "uvx", "args": ["mcp-server-sqlite==0.6.2", "--db-path", "/home/alice/My App/app.db"]}}}"#,
    );
    put(
        root,
        &format!("{a}/.config/zed/settings.json"),
        &fixture("zed_settings.json"),
    );
    put(
        root,
        &format!("{a}/.codex/config.toml"),
        &fixture("codex_config.toml"),
    );
    put(
        root,
        &format!("{a}/work/tool/.codex/config.toml"),
        "[mcp_servers.api-tools]\ncommand = \"api-mcp\"\n",
    );
    put(
        root,
        &format!("{a}/.config/goose/config.yaml"),
        &fixture("goose_config.yaml"),
    );
    put(
        root,
        &format!("{a}/.continue/config.yaml"),
        &fixture("continue_config.yaml"),
    );
    put(
        root,
        &format!("{a}/.gemini/settings.json"),
        &fixture("gemini_settings.json"),
    );
    put(
        root,
        &format!("{a}/.config/opencode/opencode.json"),
        &fixture("opencode.json"),
    );
    put(
        root,
        &format!("{a}/.cline/data/settings/cline_mcp_settings.json"),
        &fixture("cline_mcp_settings.json"),
    );
    put(
        root,
        &format!("{a}/.vibe/config.toml"),
        &fixture("vibe_config.toml"),
    );
    put(
        root,
        &format!("{a}/.config/Witsy/settings.json"),
        &fixture("witsy_settings.json"),
    );
    put(
        root,
        "home/bob/.cursor/mcp.json",
        &fixture("malformed.json"),
    );
    put(
        root,
        "home/bob/.codeium/windsurf/mcp_config.json",
        r#"{"mcpServers": {"w": {"serverUrl": "https://w.example.com/sse"}}}"#,
    );
    put(
        root,
        "etc/claude-code/managed-mcp.json",
        r#"{"mcpServers": {"corp-search": {"type": "http", "url": "https://search.corp.example/mcp"}}}"#,
    );
}

fn root_scan(root: &Path, os: Os) -> Inventory {
    scan(&ScanOptions {
        os,
        target: Target::Root {
            root: root.to_path_buf(),
            user: None,
        },
        project_roots: vec![],
        project_depth: 3,
    })
}

fn key(s: &ServerRecord) -> (String, String, String, ConfigScope) {
    (
        s.os_user.clone().unwrap_or_else(|| "-".into()),
        s.client.clone().unwrap_or_default(),
        s.server_name.clone(),
        s.config_scope.unwrap_or(ConfigScope::User),
    )
}

fn find<'a>(inv: &'a Inventory, client: &str, name: &str) -> &'a ServerRecord {
    inv.servers
        .iter()
        .find(|s| s.client.as_deref() == Some(client) && s.server_name == name)
        .unwrap_or_else(|| panic!("{client}/{name} not found"))
}

#[test]
fn a_linux_machine_is_discovered_exactly() {
    let dir = tempfile::tempdir().unwrap();
    linux_tree(dir.path());
    let inv = root_scan(dir.path(), Os::Linux);
    let got: BTreeSet<_> = inv.servers.iter().map(key).collect();
    let u = ConfigScope::User;
    let p = ConfigScope::Project;
    let expected: BTreeSet<(String, String, String, ConfigScope)> = [
        ("-", "claude_code", "corp-search", u),
        ("alice", "claude_desktop", "filesystem", u),
        ("alice", "claude_desktop", "github", u),
        ("alice", "claude_desktop", "postgres", u),
        ("alice", "claude_desktop", "brave", u),
        ("alice", "claude_code", "linear", u),
        ("alice", "claude_code", "sequential-thinking", u),
        ("alice", "claude_code", "sentry", p),
        ("alice", "claude_code", "context7", p),
        ("alice", "claude_code", "shell", p),
        // VS Code also loads a workspace-root `.mcp.json`.
        ("alice", "vscode", "context7", p),
        ("alice", "vscode", "shell", p),
        ("alice", "cursor", "playwright", u),
        ("alice", "cursor", "supabase", u),
        ("alice", "cursor", "notion", u),
        ("alice", "vscode", "github", u),
        ("alice", "vscode", "fetch", u),
        ("alice", "vscode", "time", u),
        ("alice", "vscode", "app-db", p),
        ("alice", "zed", "postgres-context-server", u),
        ("alice", "zed", "legacy", u),
        ("alice", "zed", "remote-docs", u),
        ("alice", "codex", "docs", u),
        ("alice", "codex", "figma desktop", u),
        ("alice", "codex", "old", u),
        ("alice", "codex", "api-tools", p),
        ("alice", "goose", "developer", u),
        ("alice", "goose", "github", u),
        ("alice", "goose", "remote_kb", u),
        ("alice", "continue", "SQLite", u),
        ("alice", "continue", "Remote search", u),
        ("alice", "gemini_cli", "cloud", u),
        ("alice", "gemini_cli", "local", u),
        ("alice", "opencode", "everything", u),
        ("alice", "opencode", "jira", u),
        ("alice", "cline", "desktop-commander", u),
        ("alice", "mistral_vibe", "fetch", u),
        ("alice", "mistral_vibe", "remote", u),
        ("alice", "witsy", "memory", u),
        ("alice", "witsy", "remote", u),
        ("bob", "windsurf", "w", u),
    ]
    .iter()
    .map(|(a, b, c, d)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned(), *d))
    .collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    assert_eq!(inv.servers.len(), expected.len(), "no server counted twice");

    // The broken file is one config error with its position; bob's other file still counts.
    assert_eq!(inv.config_errors.len(), 1, "{:?}", inv.config_errors);
    let err = &inv.config_errors[0];
    assert_eq!(err.path, "/home/bob/.cursor/mcp.json");
    assert_eq!(err.client.as_deref(), Some("cursor"));
    assert!(
        err.error.starts_with("invalid JSON at line 4"),
        "{}",
        err.error
    );

    // Normalisation details.
    let github = find(&inv, "claude_desktop", "github");
    let pkg = github.package.as_ref().unwrap();
    assert_eq!(
        (
            pkg.ecosystem.as_str(),
            pkg.name.as_str(),
            pkg.version.as_deref()
        ),
        ("docker", "ghcr.io/github/github-mcp-server", Some("v0.9.0"))
    );
    assert_eq!(github.env_vars, ["GITHUB_PERSONAL_ACCESS_TOKEN"]);
    let fs = find(&inv, "claude_desktop", "filesystem");
    assert_eq!(
        fs.scope_paths,
        ["/Users/alice/Desktop", "/Users/alice/Downloads"]
    );
    assert_eq!(
        fs.package.as_ref().unwrap().version,
        None,
        "npx without a version is unpinned"
    );
    assert_eq!(
        fs.config_path.as_deref(),
        Some("/home/alice/.config/Claude/claude_desktop_config.json")
    );
    assert!(
        find(&inv, "claude_desktop", "postgres")
            .secrets_found
            .iter()
            .any(|f| f.kind == "url_password")
    );
    assert!(
        find(&inv, "claude_desktop", "brave")
            .secrets_found
            .iter()
            .any(|f| f.kind == "flag_value" && f.location == "args[3]")
    );
    assert!(find(&inv, "cursor", "supabase").disabled);
    assert_eq!(
        find(&inv, "cursor", "notion").header_names,
        ["Authorization"]
    );
    let sentry = find(&inv, "claude_code", "sentry");
    assert_eq!(sentry.project_path.as_deref(), Some("/home/alice/work/api"));
    assert_eq!(sentry.env_vars, ["SENTRY_ACCESS_TOKEN"]);
    let context7 = find(&inv, "claude_code", "context7");
    assert_eq!(
        context7.project_path.as_deref(),
        Some("/home/alice/work/api")
    );
    assert!(
        context7
            .url
            .as_deref()
            .unwrap()
            .contains("api_key=[REDACTED]")
    );
    let figma = find(&inv, "codex", "figma desktop");
    assert_eq!(
        (
            figma.transport,
            figma.header_names.clone(),
            figma.env_vars.clone()
        ),
        (
            Some(Transport::Http),
            vec!["Authorization".to_owned()],
            vec!["FIGMA_TOKEN".to_owned()]
        )
    );
    assert_eq!(
        find(&inv, "codex", "docs").env_vars,
        ["DOCS_API_TOKEN", "DOCS_HOME"]
    );
    assert!(find(&inv, "codex", "old").disabled);
    let kb = find(&inv, "goose", "remote_kb");
    assert_eq!(
        (kb.transport, kb.disabled, kb.header_names.clone()),
        (Some(Transport::Sse), true, vec!["X-Api-Key".to_owned()])
    );
    assert!(find(&inv, "zed", "remote-docs").disabled);
    assert_eq!(find(&inv, "zed", "legacy").env_vars, ["LEGACY_KEY"]);
    assert_eq!(find(&inv, "gemini_cli", "cloud").auto_approve, ["*"]);
    assert_eq!(
        find(&inv, "gemini_cli", "local")
            .package
            .as_ref()
            .unwrap()
            .ecosystem,
        "python_module"
    );
    assert_eq!(
        find(&inv, "opencode", "everything")
            .package
            .as_ref()
            .unwrap()
            .name,
        "@modelcontextprotocol/server-everything"
    );
    assert_eq!(
        find(&inv, "cline", "desktop-commander").auto_approve,
        ["execute_command", "read_file"]
    );
    let memory = find(&inv, "witsy", "memory");
    assert_eq!(
        memory.package.as_ref().unwrap().version.as_deref(),
        Some("2025.4.25")
    );
    assert!(find(&inv, "witsy", "remote").disabled);
    assert_eq!(
        find(&inv, "continue", "SQLite").scope.as_deref(),
        Some("/home/alice/data/app.db")
    );
    assert_eq!(
        find(&inv, "vscode", "app-db").project_path.as_deref(),
        Some("/home/alice/My App")
    );
    assert_eq!(
        find(&inv, "vscode", "time").package.as_ref().unwrap().name,
        "mcp-server-time"
    );
    for s in &inv.servers {
        assert_eq!(
            s.fingerprint.as_deref(),
            Some(s.compute_fingerprint().as_str())
        );
    }

    // One user only.
    let bob = scan(&ScanOptions {
        os: Os::Linux,
        target: Target::Root {
            root: dir.path().to_path_buf(),
            user: Some("bob".into()),
        },
        project_roots: vec![],
        project_depth: 3,
    });
    assert!(
        bob.servers
            .iter()
            .all(|s| s.os_user.as_deref() != Some("alice"))
    );
}

#[test]
fn scan_json_never_contains_a_planted_secret() {
    let dir = tempfile::tempdir().unwrap();
    linux_tree(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_mcpwatch-agent"))
        .args(["scan", "--json", "--os", "linux", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(report["servers"].as_array().unwrap().len() > 30);
    assert!(report["inventory_hash"].is_string());
    for secret in planted() {
        assert!(
            !json.contains(&secret),
            "scan --json leaked a planted secret ({} chars)",
            secret.len()
        );
    }
    // The table too.
    let table = Command::new(env!("CARGO_BIN_EXE_mcpwatch-agent"))
        .args(["scan", "--os", "linux", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("USER")
            && text.contains("desktop-commander")
            && text.contains("config file(s) with errors")
    );
    for secret in planted() {
        assert!(!text.contains(&secret));
    }
}

#[test]
fn bad_arguments_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcpwatch-agent"))
        .args(["scan", "--os", "beos"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_mcpwatch-agent"))
        .args(["scan", "--home", "/x", "--root", "/y"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn windows_and_macos_layouts_with_several_users() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let desktop = r#"{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "C:\\Users\\ann"]}}}"#;
    put(
        r,
        "Users/ann/AppData/Roaming/Claude/claude_desktop_config.json",
        desktop,
    );
    put(
        r,
        "Users/ann/AppData/Local/Packages/Claude_pzs8sxrjxfjjc/LocalCache/Roaming/Claude/claude_desktop_config.json",
        r#"{"mcpServers": {"msix": {"command": "uvx", "args": ["mcp-server-time==1.0"]}}}"#,
    );
    put(
        r,
        "Users/ann/.mcp.json",
        r#"{"servers": {"vs": {"type": "stdio", "command": "dnx", "args": ["Some.Mcp.Server", "--yes"]}}}"#,
    );
    put(
        r,
        "Users/ann/AppData/Roaming/Zed/settings.json",
        r#"{"context_servers": {"z": {"command": "z-server"}}}"#,
    );
    put(
        r,
        "Users/ann/AppData/Roaming/Block/goose/config/config.yaml",
        "extensions:\n  g:\n    cmd: uvx\n    args: [g-mcp]\n    type: stdio\n",
    );
    put(
        r,
        "Users/ann/.claude.json",
        r#"{"projects": {"C:\\git\\site": {"mcpServers": {"p": {"command": "npx", "args": ["p@1.0.0"]}}}, "C:/git/site": {}}}"#,
    );
    put(
        r,
        "git/site/.mcp.json",
        r#"{"mcpServers": {"site": {"url": "https://site.example.com/mcp"}}}"#,
    );
    put(
        r,
        "Users/ben/.cursor/mcp.json",
        r#"{"mcpServers": {"c": {"command": "cmd", "args": ["/c", "npx", "-y", "@playwright/mcp@0.0.30"]}}}"#,
    );
    std::fs::create_dir_all(r.join("Users/Public")).unwrap();
    put(
        r,
        "Users/Public/.cursor/mcp.json",
        r#"{"mcpServers": {"nobody": {"command": "x"}}}"#,
    );
    put(
        r,
        "ProgramData/OpenAI/Codex/config.toml",
        "[mcp_servers.corp]\ncommand = \"corp-mcp\"\n",
    );

    let win = root_scan(r, Os::Windows);
    let got: BTreeSet<(String, String, String)> = win
        .servers
        .iter()
        .map(|s| {
            let k = key(s);
            (k.0, k.1, k.2)
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("-", "codex", "corp"),
        ("ann", "claude_desktop", "fs"),
        ("ann", "claude_desktop", "msix"),
        ("ann", "visual_studio", "vs"),
        ("ann", "zed", "z"),
        ("ann", "goose", "g"),
        ("ann", "claude_code", "p"),
        ("ann", "claude_code", "site"),
        ("ann", "vscode", "site"),
        ("ben", "cursor", "c"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(got, expected);
    assert_eq!(
        find(&win, "claude_desktop", "fs").config_path.as_deref(),
        Some("C:\\Users\\ann\\AppData\\Roaming\\Claude\\claude_desktop_config.json")
    );
    assert_eq!(
        find(&win, "claude_code", "site").project_path.as_deref(),
        Some("C:\\git\\site")
    );
    assert_eq!(
        find(&win, "cursor", "c").package.as_ref().unwrap().name,
        "@playwright/mcp"
    );

    let mac_dir = tempfile::tempdir().unwrap();
    let m = mac_dir.path();
    put(
        m,
        "Users/cat/Library/Application Support/Claude/claude_desktop_config.json",
        r#"{"mcpServers": {"a": {"command": "npx", "args": ["a@1.0.0"]}}}"#,
    );
    put(
        m,
        "Users/cat/Library/Application Support/Code/User/mcp.json",
        r#"{"servers": {"b": {"url": "https://b.example.com/mcp"}}}"#,
    );
    put(
        m,
        "Users/cat/.boltai/mcp.json",
        r#"{"mcpServers": {"c": {"command": "c"}}}"#,
    );
    put(
        m,
        "Users/dan/.config/zed/settings.json",
        r#"{"context_servers": {"d": {"command": "d"}}}"#,
    );
    put(
        m,
        "Users/Shared/.cursor/mcp.json",
        r#"{"mcpServers": {"nobody": {"command": "x"}}}"#,
    );
    put(
        m,
        "Library/Application Support/ClaudeCode/managed-mcp.json",
        r#"{"mcpServers": {"managed": {"command": "m"}}}"#,
    );
    let mac = root_scan(m, Os::Macos);
    let names: BTreeSet<String> = mac
        .servers
        .iter()
        .map(|s| format!("{}:{}", s.os_user.as_deref().unwrap_or("-"), s.server_name))
        .collect();
    assert_eq!(
        names,
        ["-:managed", "cat:a", "cat:b", "cat:c", "dan:d"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    );
}

/// Write a file of `format` whose `shape` holds one stdio server named `name`.
fn generated(format: Format, shape: Shape, name: &str) -> String {
    let server =
        serde_json::json!({ "command": "npx", "args": ["-y", format!("{name}-pkg@1.0.0")] });
    let mut root = serde_json::json!({});
    match shape {
        Shape::Map(path) => {
            let mut v = serde_json::json!({ name: server });
            for key in path.iter().rev() {
                v = serde_json::json!({ *key: v });
            }
            root = v;
        }
        Shape::List(path, name_key) => {
            let mut item = server;
            item[name_key] = serde_json::json!(name);
            let mut v = serde_json::json!([item]);
            for key in path.iter().rev() {
                v = serde_json::json!({ *key: v });
            }
            root = v;
        }
        Shape::Maps(paths) => {
            let mut v = serde_json::json!({ name: server });
            for key in paths[0].iter().rev() {
                v = serde_json::json!({ *key: v });
            }
            root = v;
        }
        Shape::Goose => {
            root["extensions"] = serde_json::json!({ name: {"type": "stdio", "cmd": "npx", "args": ["-y", format!("{name}-pkg@1.0.0")]} });
        }
        Shape::ClaudeCode | Shape::Any => root["mcpServers"] = serde_json::json!({ name: server }),
    }
    match format {
        Format::Json => serde_json::to_string_pretty(&root).unwrap(),
        Format::Toml => toml::to_string(&root).unwrap(),
        Format::Yaml => serde_yaml_ng::to_string(&root).unwrap(),
    }
}

#[test]
fn every_user_file_of_every_client_is_found_on_every_os() {
    for os in [Os::Linux, Os::Macos, Os::Windows] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home-of-eve");
        let mut expected = BTreeSet::new();
        for (i, candidate) in user_candidates(os, &home, None).iter().enumerate() {
            let name = format!("s{i}");
            let path = candidate.path.to_string_lossy().replace('*', "x");
            std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
            // Several clients share a file (VS Code settings: vscode and augment): merge.
            let text = generated(candidate.format, candidate.shape, &name);
            if Path::new(&path).exists() {
                continue;
            }
            std::fs::write(&path, text).unwrap();
            expected.insert((candidate.client.id.to_owned(), name));
        }
        let inv = scan(&ScanOptions {
            os,
            target: Target::Home {
                home: home.clone(),
                user: "eve".into(),
                env: None,
            },
            project_roots: vec![],
            project_depth: 1,
        });
        let got: BTreeSet<(String, String)> = inv
            .servers
            .iter()
            .map(|s| (s.client.clone().unwrap(), s.server_name.clone()))
            .collect();
        let missing: Vec<_> = expected.difference(&got).collect();
        assert!(missing.is_empty(), "{os:?}: not found {missing:?}");
        assert!(
            inv.config_errors.is_empty(),
            "{os:?}: {:?}",
            inv.config_errors
        );
    }
    // Every client has at least one file on some OS, or project files.
    for client in CLIENTS {
        assert!(!client.user.is_empty() || !client.project.is_empty());
    }
}

#[test]
fn every_project_file_is_found_under_a_project_root() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let project = dir.path().join("src/deep/app");
    let mut expected = BTreeSet::new();
    let mut written = std::collections::HashMap::new();
    for (i, candidate) in mcpwatch_agent::discovery::paths::project_candidates(&project)
        .iter()
        .enumerate()
    {
        let path = candidate.path.to_string_lossy().replace('*', "x");
        // Clients that share a file (`.mcp.json`: Claude Code and VS Code) both load it.
        if let Some(name) = written.get(&path) {
            expected.insert((candidate.client.id.to_owned(), String::clone(name)));
            continue;
        }
        std::fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
        let name = format!("p{i}");
        std::fs::write(&path, generated(candidate.format, candidate.shape, &name)).unwrap();
        expected.insert((candidate.client.id.to_owned(), name.clone()));
        written.insert(path, name);
    }
    let scan_at = |depth| {
        scan(&ScanOptions {
            os: Os::Linux,
            target: Target::Home {
                home: home.clone(),
                user: "eve".into(),
                env: None,
            },
            project_roots: vec![dir.path().join("src")],
            project_depth: depth,
        })
    };
    let inv = scan_at(2);
    let got: BTreeSet<(String, String)> = inv
        .servers
        .iter()
        .map(|s| (s.client.clone().unwrap(), s.server_name.clone()))
        .collect();
    assert_eq!(got, expected);
    assert!(
        inv.servers
            .iter()
            .all(|s| s.config_scope == Some(ConfigScope::Project))
    );
    assert!(scan_at(1).servers.is_empty(), "the depth limit holds");
}

#[cfg(unix)]
#[test]
fn hostile_files_in_a_home_do_not_stop_or_leak_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("mallory");
    put(
        &home,
        ".codex/config.toml",
        "[mcp_servers.ok]\ncommand = \"ok\"\n",
    );
    let secret_target = dir.path().join("not-mallorys-file.json");
    std::fs::write(
        &secret_target,
        r#"{"mcpServers": {"stolen": {"command": "PlantedOutsideHome"}}}"#,
    )
    .unwrap();
    std::fs::create_dir_all(home.join(".cursor")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", home.join(".cursor/mcp.json")).unwrap();
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    let fifo =
        std::ffi::CString::new(home.join(".gemini/settings.json").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path; test-only.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) };
    assert_eq!(rc, 0);
    std::fs::create_dir_all(home.join(".kiro/settings/mcp.json")).unwrap();
    let inv = scan(&ScanOptions {
        os: Os::Linux,
        target: Target::Home {
            home: home.clone(),
            user: "mallory".into(),
            env: None,
        },
        project_roots: vec![],
        project_depth: 0,
    });
    assert_eq!(inv.servers.len(), 1);
    let errors: Vec<String> = inv
        .config_errors
        .iter()
        .map(|e| format!("{}: {}", e.client.as_deref().unwrap_or(""), e.error))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("gemini_cli: not a regular file")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("kiro: not a regular file")),
        "{errors:?}"
    );
    // /etc/shadow is root's (or missing, or unreadable): never read as mallory's config.
    assert!(
        !inv.servers
            .iter()
            .any(|s| s.client.as_deref() == Some("cursor"))
    );
}

#[test]
fn plugins_are_found_at_their_real_depth() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    put(
        &home,
        ".claude/plugins/cache/official/github/1.2.0/.mcp.json",
        r#"{"gh": {"command": "npx", "args": ["-y", "@x/gh@1.0.0"]}}"#,
    );
    put(
        &home,
        ".claude/plugins/cache/acme/db/2.0.0/.claude-plugin/plugin.json",
        r#"{"name": "db", "mcpServers": {"db": {"command": "uvx", "args": ["db-mcp==1.0"]}}}"#,
    );
    put(
        &home,
        ".claude/plugins/cache/acme/db/2.0.0/node_modules/dep/.mcp.json",
        r#"{"hidden": {"command": "x"}}"#,
    );
    // The marketplace catalogue is not what runs.
    put(
        &home,
        ".claude/plugins/marketplaces/acme/.mcp.json",
        r#"{"catalogue": {"command": "x"}}"#,
    );
    put(
        &home,
        ".cursor/plugins/acme/tool/mcp.json",
        r#"{"mcpServers": {"cursor-plugin": {"command": "x"}}}"#,
    );
    put(
        &home,
        ".codex/plugins/cache/m/p/1.0.0/.mcp.json",
        r#"{"mcp_servers": {"codex-plugin": {"command": "x"}}}"#,
    );
    put(
        &home,
        ".codex/work.config.toml",
        "[mcp_servers.profiled]\ncommand = \"x\"\n",
    );
    let inv = scan(&ScanOptions {
        os: Os::Linux,
        target: Target::Home {
            home: home.clone(),
            user: "eve".into(),
            env: None,
        },
        project_roots: vec![],
        project_depth: 0,
    });
    let got: BTreeSet<(String, String)> = inv
        .servers
        .iter()
        .map(|s| (s.client.clone().unwrap(), s.server_name.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("claude_code", "gh"),
        ("claude_code", "db"),
        ("cursor", "cursor-plugin"),
        ("codex", "codex-plugin"),
        ("codex", "profiled"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(got, expected);
}
