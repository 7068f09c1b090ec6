//! From a parsed config file to protocol server records: find the server entries the
//! file's shape says it holds, then describe each one — transport, launch, package and
//! pinned version, filesystem scope, env var and header *names*, disabled flag,
//! auto-approved tools — with every secret redacted.

use mcpwatch_protocol::launch::{package, quote, unwrap};
use mcpwatch_protocol::server::{ConfigScope, LaunchInfo, Package, ServerRecord, Transport};
use serde_json::{Map, Value};

use super::catalog::Shape;
use super::redact::Redactor;

/// Keys that make an object a server entry (others, like `_comment`, are not).
const DISCRIMINATORS: &[&str] = &["command", "cmd", "url", "serverUrl", "httpUrl", "uri"];

/// Goose extension types that are MCP servers bundled with goose itself (no command
/// of their own in the config).
const GOOSE_BUNDLED: &[&str] = &["builtin", "platform", "frontend", "inline_python"];

/// A server entry found in a file.
#[derive(Debug)]
pub struct Entry<'a> {
    pub name: String,
    pub body: &'a Map<String, Value>,
    /// For Claude Code's per-project entries: the project they belong to.
    pub project: Option<String>,
}

fn is_server(v: &Value) -> Option<&Map<String, Value>> {
    let obj = v.as_object()?;
    DISCRIMINATORS
        .iter()
        .any(|k| obj.contains_key(*k))
        .then_some(obj)
}

fn at<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, key| v.get(*key))
}

fn map_entries<'a>(map: &'a Map<String, Value>, project: Option<&str>, out: &mut Vec<Entry<'a>>) {
    for (name, value) in map {
        if let Some(body) = is_server(value) {
            out.push(Entry {
                name: name.clone(),
                body,
                project: project.map(str::to_owned),
            });
        }
    }
}

/// The server entries of a parsed file.
pub fn entries<'a>(root: &'a Value, shape: Shape) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    match shape {
        Shape::Map(path) => {
            if let Some(map) = at(root, path).and_then(Value::as_object) {
                map_entries(map, None, &mut out);
            }
        }
        Shape::List(path, name_key) => list_entries(at(root, path), name_key, &mut out),
        Shape::ClaudeCode => {
            if let Some(map) = root.get("mcpServers").and_then(Value::as_object) {
                map_entries(map, None, &mut out);
            }
            if let Some(projects) = root.get("projects").and_then(Value::as_object) {
                for (path, project) in projects {
                    if let Some(map) = project.get("mcpServers").and_then(Value::as_object) {
                        map_entries(map, Some(path), &mut out);
                    }
                }
            }
        }
        Shape::Maps(paths) => {
            for path in paths {
                if let Some(map) = at(root, path).and_then(Value::as_object) {
                    map_entries(map, None, &mut out);
                }
            }
        }
        Shape::Goose => goose_entries(root, &mut out),
        Shape::Any => any_entries(root, &mut out),
    }
    out
}

/// A list of servers, each naming itself under `name_key` (or `name`); some files keep
/// the map form under a list client's key.
fn list_entries<'a>(list: Option<&'a Value>, name_key: &str, out: &mut Vec<Entry<'a>>) {
    if let Some(list) = list.and_then(Value::as_array) {
        for (i, item) in list.iter().enumerate() {
            if let Some(body) = is_server(item) {
                let name = body
                    .get(name_key)
                    .or_else(|| body.get("name"))
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("server-{i}"), str::to_owned);
                out.push(Entry {
                    name,
                    body,
                    project: None,
                });
            }
        }
    } else if let Some(map) = list.and_then(Value::as_object) {
        map_entries(map, None, out);
    }
}

/// Goose's extensions: its bundled ones are servers too, without a command.
fn goose_entries<'a>(root: &'a Value, out: &mut Vec<Entry<'a>>) {
    let Some(map) = root.get("extensions").and_then(Value::as_object) else {
        return;
    };
    for (name, value) in map {
        let bundled = value
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| GOOSE_BUNDLED.contains(&t));
        let body = if bundled {
            value.as_object()
        } else {
            is_server(value)
        };
        if let Some(body) = body {
            out.push(Entry {
                name: name.clone(),
                body,
                project: None,
            });
        }
    }
}

/// A file of no known client: the first of the usual keys that holds a map, else
/// the top level.
fn any_entries<'a>(root: &'a Value, out: &mut Vec<Entry<'a>>) {
    for path in [
        &["mcpServers"][..],
        &["servers"],
        &["mcp", "servers"],
        &["mcp_servers"],
        &["context_servers"],
    ] {
        if let Some(map) = at(root, path).and_then(Value::as_object) {
            map_entries(map, None, out);
            return;
        }
    }
    if let Some(map) = root.as_object() {
        map_entries(map, None, out);
    }
}

/// Where an entry was found.
#[derive(Clone, Debug)]
pub struct Origin {
    pub client: &'static str,
    pub config_path: String,
    pub scope: ConfigScope,
    pub project_path: Option<String>,
    pub os_user: Option<String>,
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn keys(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The launch of a stdio server: the program and its arguments, from whichever shape
/// the client uses (`command` + `args`, `cmd`, an array `command`, Zed's
/// `{path, args}`, or a whole command line in one string).
fn launch(body: &Map<String, Value>) -> Option<(String, Vec<String>)> {
    let mut args = string_list(body.get("args"));
    let command = match body.get("command").or_else(|| body.get("cmd")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut parts = string_list(Some(&Value::Array(parts.clone())));
            if parts.is_empty() {
                return None;
            }
            let first = parts.remove(0);
            parts.extend(args);
            args = parts;
            first
        }
        Some(Value::Object(zed)) => {
            args = string_list(zed.get("args"));
            zed.get("path").and_then(Value::as_str)?.to_owned()
        }
        _ => return None,
    };
    let command = command.trim().to_owned();
    if command.is_empty() {
        return None;
    }
    // A whole command line in `command` (and no args): split it, unless it is a path
    // with spaces.
    if args.is_empty()
        && command.contains(' ')
        && !looks_like_path(&command)
        && let Ok(mut words) = shell_words::split(&command)
        && !words.is_empty()
    {
        let first = words.remove(0);
        return Some((first, words));
    }
    Some((command, args))
}

fn looks_like_path(s: &str) -> bool {
    s.starts_with('/')
        || s.starts_with("./")
        || s.starts_with("~/")
        || s.starts_with("..")
        || (s.len() > 2 && s.as_bytes()[1] == b':' && s.as_bytes()[0].is_ascii_alphabetic())
        || s.starts_with("\\\\")
}

/// How the client talks to the server: its `type` when given, else what the URL
/// and the key it was given under say. Gemini CLI and its derivatives take `url` as
/// SSE and `httpUrl` as streamable HTTP.
fn transport_of(body: &Map<String, Value>, url: Option<(&str, &str)>, client: &str) -> Transport {
    let kind = body
        .get("type")
        .or_else(|| body.get("transport"))
        .or_else(|| body.get("transportType"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    let scheme_ws = url.is_some_and(|(_, u)| {
        let u = u.trim_start().to_ascii_lowercase();
        u.starts_with("ws://") || u.starts_with("wss://")
    });
    match kind.as_str() {
        "stdio" | "local" => Transport::Stdio,
        "sse" => Transport::Sse,
        "ws" | "websocket" => Transport::Ws,
        "http" | "streamable-http" | "streamablehttp" | "streamable_http" | "remote"
            if !scheme_ws =>
        {
            Transport::Http
        }
        _ => match url {
            None => Transport::Stdio,
            Some(_) if scheme_ws => Transport::Ws,
            Some(("httpUrl", _)) => Transport::Http,
            Some(("url", _)) if GEMINI_FAMILY.contains(&client) => Transport::Sse,
            Some((_, u)) if u.trim_end_matches('/').ends_with("/sse") => Transport::Sse,
            Some(_) => Transport::Http,
        },
    }
}

/// Clients that read `url` as SSE and `httpUrl` as streamable HTTP.
const GEMINI_FAMILY: &[&str] = &["gemini_cli", "qwen_code", "tabnine"];

fn host_of(url: &str) -> Option<String> {
    let after = url.split_once("://")?.1;
    let authority = after.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    Some(host.to_owned())
}

/// Describe one entry as a server record, with secrets redacted.
pub fn record(entry: &Entry<'_>, origin: &Origin) -> ServerRecord {
    let body = entry.body;
    let mut redactor = Redactor::default();

    let url_key = ["httpUrl", "url", "serverUrl", "uri"]
        .into_iter()
        .find(|k| body.get(*k).and_then(Value::as_str).is_some());
    let raw_url = url_key
        .and_then(|k| body.get(k))
        .and_then(Value::as_str)
        .map(str::to_owned);
    // Witsy keeps a stdio server's arguments in `url`.
    let witsy_stdio =
        body.get("type").and_then(Value::as_str) == Some("stdio") && body.contains_key("command");
    let url = if witsy_stdio { None } else { raw_url.clone() };

    let mut record = ServerRecord {
        server_name: entry.name.clone(),
        client: Some(origin.client.to_owned()),
        config_path: Some(origin.config_path.clone()),
        config_scope: Some(if entry.project.is_some() {
            ConfigScope::Project
        } else {
            origin.scope
        }),
        project_path: entry
            .project
            .clone()
            .or_else(|| origin.project_path.clone()),
        os_user: origin.os_user.clone(),
        ..ServerRecord::default()
    };

    let goose_type = body
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| GOOSE_BUNDLED.contains(t));
    match (&url, launch(body)) {
        (None, None) if goose_type.is_some() => {
            // Goose runs its bundled servers itself (`goose mcp <name>`): report the
            // bundled server by name so it scores like the real thing.
            let bundled = body
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&entry.name);
            goose_bundled(&mut record, bundled);
        }
        (Some(url), _) => {
            record.transport = Some(transport_of(
                body,
                Some((url_key.unwrap_or("url"), url)),
                origin.client,
            ));
            let clean = redactor.text("url", url);
            record.server_type = host_of(&clean);
            record.command = Some(clean.clone());
            record.url = Some(clean);
        }
        (None, Some((command, mut args))) => {
            if witsy_stdio
                && let Some(line) = raw_url.as_deref().and_then(|l| shell_words::split(l).ok())
            {
                args.extend(line);
            }
            record.transport = Some(transport_of(body, None, origin.client));
            let command = redactor.text("command", &command);
            let args = redactor.args("args", &command, &args);
            describe_launch(&mut record, command, args);
        }
        (None, None) => {}
    }
    names_and_flags(&mut record, body);
    record.secrets_found = redactor.findings;
    record.fingerprint = Some(record.compute_fingerprint());
    record
}

/// A server Goose runs itself: `goose mcp <name>`.
fn goose_bundled(record: &mut ServerRecord, bundled: &str) {
    record.transport = Some(Transport::Stdio);
    record.server_type = Some(format!("goose {bundled}"));
    record.command = Some(format!("goose mcp {}", quote(bundled)));
    record.package = Some(Package {
        ecosystem: "goose".to_owned(),
        name: bundled.to_owned(),
        version: None,
    });
}

/// A local server's launch (already redacted): what it runs through which wrappers,
/// its package, the paths it is given, and the command line.
fn describe_launch(record: &mut ServerRecord, command: String, args: Vec<String>) {
    let (words, wrappers) = unwrap(&command, &args);
    record.launch = Some(LaunchInfo {
        program: command.clone(),
        wrappers,
        runs: words.first().cloned().unwrap_or_default(),
    });
    let (package, server_args_at) = package(&words);
    let mut paths: Vec<String> = words
        .get(server_args_at..)
        .unwrap_or_default()
        .iter()
        .filter(|w| looks_like_path(w) || w.starts_with('~') || *w == ".")
        .cloned()
        .collect();
    paths.dedup();
    record.server_type = package.as_ref().map(|p| p.name.clone());
    record.package = package;
    record.command = Some(
        std::iter::once(command.as_str())
            .chain(args.iter().map(String::as_str))
            .map(quote)
            .collect::<Vec<_>>()
            .join(" "),
    );
    record.args = args;
    record.scope = paths.first().cloned();
    record.scope_paths = paths;
}

/// The names (never the values) of the environment variables and headers an entry
/// sets, whether it is disabled, and what it lets run without asking.
fn names_and_flags(record: &mut ServerRecord, body: &serde_json::Map<String, Value>) {
    let mut env: Vec<String> = keys(body.get("env"));
    env.extend(keys(body.get("environment")));
    env.extend(keys(body.get("envs")));
    env.extend(keys(body.get("command").and_then(|c| c.get("env"))));
    env.extend(string_list(body.get("env_keys")));
    env.extend(string_list(body.get("env_vars")));
    if let Some(name) = body.get("bearer_token_env_var").and_then(Value::as_str) {
        env.push(name.to_owned());
    }
    env.sort();
    env.dedup();
    record.env_vars = env;

    let mut headers: Vec<String> = keys(body.get("headers"));
    headers.extend(keys(body.get("http_headers")));
    headers.extend(keys(body.get("env_http_headers")));
    headers.extend(keys(
        body.get("requestOptions").and_then(|r| r.get("headers")),
    ));
    if body.contains_key("bearer_token_env_var") || body.contains_key("bearer_token") {
        headers.push("Authorization".to_owned());
    }
    headers.sort();
    headers.dedup();
    record.header_names = headers;

    record.disabled = body.get("disabled").and_then(Value::as_bool) == Some(true)
        || body.get("enabled").and_then(Value::as_bool) == Some(false)
        || body.get("isActive").and_then(Value::as_bool) == Some(false)
        || body.get("state").and_then(Value::as_str) == Some("disabled");

    let mut approve = string_list(body.get("autoApprove"));
    approve.extend(string_list(body.get("alwaysAllow")));
    if body.get("trust").and_then(Value::as_bool) == Some(true) {
        approve.push("*".to_owned());
    }
    approve.dedup();
    record.auto_approve = approve;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin() -> Origin {
        Origin {
            client: "cursor",
            config_path: "/home/a/.cursor/mcp.json".into(),
            scope: ConfigScope::User,
            project_path: None,
            os_user: Some("a".into()),
        }
    }

    fn one(body: Value) -> ServerRecord {
        let root = json!({ "mcpServers": { "s": body } });
        let found = entries(&root, Shape::Map(&["mcpServers"]));
        assert_eq!(found.len(), 1);
        record(&found[0], &origin())
    }

    #[test]
    fn launchers_are_recognised_with_their_versions() {
        let cases: &[(Value, &str, &str, Option<&str>)] = &[
            (
                json!({"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem@2025.8.21", "/tmp"]}),
                "npm",
                "@modelcontextprotocol/server-filesystem",
                Some("2025.8.21"),
            ),
            (
                json!({"command": "npx", "args": ["-y", "@upstash/context7-mcp"]}),
                "npm",
                "@upstash/context7-mcp",
                None,
            ),
            (
                json!({"command": "npx", "args": ["-y", "tavily-mcp@latest"]}),
                "npm",
                "tavily-mcp",
                None,
            ),
            (
                json!({"command": "uvx", "args": ["mcp-server-fetch==2025.4.7"]}),
                "pypi",
                "mcp-server-fetch",
                Some("2025.4.7"),
            ),
            (
                json!({"command": "uvx", "args": ["--from", "awslabs.aws-api-mcp-server@1.0.2", "awslabs.aws-api-mcp-server"]}),
                "pypi",
                "awslabs.aws-api-mcp-server",
                Some("1.0.2"),
            ),
            (
                json!({"command": "pipx", "args": ["run", "mcp-server-git"]}),
                "pypi",
                "mcp-server-git",
                None,
            ),
            (
                json!({"command": "docker", "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server:v0.9.0"]}),
                "docker",
                "ghcr.io/github/github-mcp-server",
                Some("v0.9.0"),
            ),
            (
                json!({"command": "docker", "args": ["run", "-i", "--rm", "mcp/fetch"]}),
                "docker",
                "mcp/fetch",
                None,
            ),
            (
                json!({"command": "cmd", "args": ["/c", "npx", "-y", "@playwright/mcp@0.0.30"]}),
                "npm",
                "@playwright/mcp",
                Some("0.0.30"),
            ),
            (
                json!({"command": "npx -y firecrawl-mcp@1.2.3"}),
                "npm",
                "firecrawl-mcp",
                Some("1.2.3"),
            ),
            (
                json!({"command": "pnpm", "args": ["dlx", "figma-developer-mcp", "--stdio"]}),
                "npm",
                "figma-developer-mcp",
                None,
            ),
            (
                json!({"command": "python", "args": ["-m", "mcp_server_time"]}),
                "python_module",
                "mcp_server_time",
                None,
            ),
            (
                json!({"command": "node", "args": ["/opt/servers/weather/build/index.js"]}),
                "local",
                "/opt/servers/weather/build/index.js",
                None,
            ),
            (
                json!({"command": "/usr/local/bin/github-mcp-server", "args": ["stdio"]}),
                "binary",
                "/usr/local/bin/github-mcp-server",
                None,
            ),
            (
                json!({"command": ["npx", "-y", "@modelcontextprotocol/server-everything@1.0.0"]}),
                "npm",
                "@modelcontextprotocol/server-everything",
                Some("1.0.0"),
            ),
            (
                json!({"command": {"path": "uvx", "args": ["mcp-server-sqlite==0.6.2"]}}),
                "pypi",
                "mcp-server-sqlite",
                Some("0.6.2"),
            ),
        ];
        for (body, eco, name, version) in cases {
            let r = one(body.clone());
            let p = r
                .package
                .clone()
                .unwrap_or_else(|| panic!("no package for {body}"));
            assert_eq!(
                (p.ecosystem.as_str(), p.name.as_str(), p.version.as_deref()),
                (*eco, *name, *version),
                "{body}"
            );
            assert_eq!(r.transport, Some(Transport::Stdio));
        }
    }

    #[test]
    fn remote_servers_keep_header_names_only() {
        let r = one(
            json!({"url": "https://api.githubcopilot.com/mcp/", "headers": {"Authorization": "Bearer ghp_SecretSecretSecretSecret123456"}}),
        );
        assert_eq!(r.transport, Some(Transport::Http));
        assert_eq!(r.header_names, ["Authorization"]);
        assert_eq!(r.server_type.as_deref(), Some("api.githubcopilot.com"));
        assert!(!serde_json::to_string(&r).unwrap().contains("ghp_"));
        let sse = one(json!({"serverUrl": "https://mcp.example.com/sse"}));
        assert_eq!(sse.transport, Some(Transport::Sse));
    }

    #[test]
    fn scope_env_names_flags_and_secrets() {
        let r = one(json!({
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem@1.0.0", "/home/a/projects", "~/notes", "--api-key", "plaintextvalue"],
            "env": {"GITHUB_TOKEN": "ghp_SecretSecretSecretSecret123456", "DEBUG": "1"},
            "disabled": true,
            "autoApprove": ["read_file"]
        }));
        assert_eq!(r.scope.as_deref(), Some("/home/a/projects"));
        assert_eq!(r.scope_paths, ["/home/a/projects", "~/notes"]);
        assert_eq!(r.env_vars, ["DEBUG", "GITHUB_TOKEN"]);
        assert!(r.disabled);
        assert_eq!(r.auto_approve, ["read_file"]);
        assert_eq!(r.secrets_found.len(), 1);
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            !json.contains("plaintextvalue") && !json.contains("ghp_"),
            "{json}"
        );
    }

    #[test]
    fn non_server_keys_are_not_servers() {
        let root = json!({"mcpServers": {"_comment": "x", "$schema": "y", "ok": {"command": "x"}, "broken": {"args": []}}});
        let names: Vec<String> = entries(&root, Shape::Map(&["mcpServers"]))
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["ok"]);
    }

    #[test]
    fn shapes_find_their_entries() {
        let claude = json!({"mcpServers": {"a": {"command": "x"}}, "projects": {"/p": {"mcpServers": {"b": {"command": "y"}}}, "/q": {}}});
        let found = entries(&claude, Shape::ClaudeCode);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].project.as_deref(), Some("/p"));
        let list = json!({"mcpServers": [{"name": "n1", "command": "x"}, {"command": "y"}]});
        let names: Vec<String> = entries(&list, Shape::List(&["mcpServers"], "name"))
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["n1", "server-1"]);
        let flat = json!({"one": {"command": "x"}, "two": {"url": "https://x"}});
        assert_eq!(entries(&flat, Shape::Any).len(), 2);
        let dotted = json!({"amp.mcpServers": {"a": {"command": "x"}}});
        assert_eq!(entries(&dotted, Shape::Map(&["amp.mcpServers"])).len(), 1);
    }

    fn with_client(client: &'static str, body: Value) -> ServerRecord {
        let root = json!({ "mcpServers": { "s": body } });
        let found = entries(&root, Shape::Map(&["mcpServers"]));
        record(&found[0], &Origin { client, ..origin() })
    }

    #[test]
    fn transports_follow_what_the_client_reads() {
        let gemini_sse = with_client("gemini_cli", json!({"url": "https://x.example/mcp"}));
        assert_eq!(gemini_sse.transport, Some(Transport::Sse));
        let gemini_http = with_client("gemini_cli", json!({"httpUrl": "https://x.example/mcp"}));
        assert_eq!(gemini_http.transport, Some(Transport::Http));
        let qwen = with_client("qwen_code", json!({"url": "https://x.example/mcp"}));
        assert_eq!(qwen.transport, Some(Transport::Sse));
        let cursor = with_client("cursor", json!({"url": "https://x.example/mcp"}));
        assert_eq!(cursor.transport, Some(Transport::Http));
        let ws = with_client(
            "claude_code",
            json!({"type": "ws", "url": "wss://x.example/ws"}),
        );
        assert_eq!(ws.transport, Some(Transport::Ws));
        let ws_untyped = with_client("cursor", json!({"url": "ws://x.example/ws"}));
        assert_eq!(ws_untyped.transport, Some(Transport::Ws));
        let typed_http_ws = with_client("cursor", json!({"type": "http", "url": "ws://x/"}));
        assert_eq!(typed_http_ws.transport, Some(Transport::Ws));
    }

    #[test]
    fn every_goose_extension_is_a_server_bundled_ones_named_for_what_they_are() {
        let root = json!({"extensions": {
            "developer": {"type": "builtin", "name": "developer", "enabled": true, "bundled": true},
            "todo": {"type": "platform", "name": "todo", "enabled": false},
            "github": {"type": "stdio", "cmd": "npx", "args": ["-y", "gh@1.0.0"], "enabled": true},
            "not-a-server": {"description": "x"}
        }});
        let found = entries(&root, Shape::Goose);
        let records: Vec<ServerRecord> = found
            .iter()
            .map(|e| {
                record(
                    e,
                    &Origin {
                        client: "goose",
                        ..origin()
                    },
                )
            })
            .collect();
        let names: Vec<&str> = records.iter().map(|r| r.server_name.as_str()).collect();
        assert_eq!(names, ["developer", "github", "todo"]);
        let dev = &records[0];
        assert_eq!(
            dev.package
                .as_ref()
                .map(|p| (p.ecosystem.as_str(), p.name.as_str())),
            Some(("goose", "developer"))
        );
        assert_eq!(dev.command.as_deref(), Some("goose mcp developer"));
        assert!(records[2].disabled);
        // It scores like the shell it is.
        let assessment = mcpwatch_protocol::risk::assess(dev);
        assert!(
            assessment
                .findings
                .iter()
                .any(|f| f.rule_id == "MCP-CAP-001"),
            "{:?}",
            assessment.findings
        );
    }

    #[test]
    fn vscode_reads_servers_and_mcp_servers() {
        let root =
            json!({"servers": {"a": {"command": "x"}}, "mcpServers": {"b": {"command": "y"}}});
        let names: Vec<String> = entries(&root, Shape::Maps(&[&["servers"], &["mcpServers"]]))
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}
