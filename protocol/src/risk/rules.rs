//! The rule table and the checks behind it. Each rule has a stable id; a check reads
//! only the server record (no I/O) and returns the evidence that triggered it.

use super::data;
use super::version::Version;
use super::{Finding, Severity};
use crate::launch;
use crate::server::Package;
use crate::server::ServerRecord;

/// Whether a rule describes what a server can do (only the strongest counts) or adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// A capability class; the strongest one is the score's base.
    Capability,
    /// Adds its weight to the base.
    Modifier,
    /// Context only; adds nothing.
    Context,
}

/// One rule of the table.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Stable id, never reused for another meaning.
    pub id: &'static str,
    /// How the rule contributes to the score.
    pub kind: RuleKind,
    /// How serious a finding of this rule is on its own.
    pub severity: Severity,
    /// The points it contributes.
    pub weight: u8,
    /// One line saying what is wrong.
    pub message: &'static str,
    /// What to do about it.
    pub remediation: &'static str,
}

macro_rules! rule {
    ($id:literal, $kind:ident, $sev:ident, $weight:literal, $msg:literal, $fix:literal) => {
        Rule {
            id: $id,
            kind: RuleKind::$kind,
            severity: Severity::$sev,
            weight: $weight,
            message: $msg,
            remediation: $fix,
        }
    };
}

/// Every rule, in document order.
pub static RULES: &[Rule] = &[
    rule!(
        "MCP-CAP-001",
        Capability,
        High,
        45,
        "Server can execute shell commands or arbitrary programs",
        "Allow only if the user needs it; prefer a server limited to specific commands."
    ),
    rule!(
        "MCP-CAP-002",
        Capability,
        Medium,
        30,
        "Server can read and write files",
        "Point it at the project directories it needs, never at a home or root directory."
    ),
    rule!(
        "MCP-CAP-003",
        Capability,
        Medium,
        35,
        "Server automates a web browser",
        "Use a separate browser profile without the user's sessions and cookies."
    ),
    rule!(
        "MCP-CAP-004",
        Capability,
        Medium,
        30,
        "Server connects to a database",
        "Give it a read-only database user scoped to the data it needs."
    ),
    rule!(
        "MCP-CAP-005",
        Capability,
        Medium,
        40,
        "Server manages cloud or container infrastructure",
        "Use credentials with the least privilege, never an administrator role."
    ),
    rule!(
        "MCP-CAP-006",
        Capability,
        Medium,
        25,
        "Server acts on code hosting (repositories, issues, pull requests)",
        "Use a fine-grained token limited to the repositories it needs."
    ),
    rule!(
        "MCP-CAP-007",
        Capability,
        Medium,
        25,
        "Server reads or sends email or chat messages",
        "Limit it to the channels or mailboxes it needs; watch for data leaving through it."
    ),
    rule!(
        "MCP-CAP-008",
        Capability,
        Medium,
        35,
        "Server can move money or manage payments",
        "Use restricted, test-mode or read-only keys."
    ),
    rule!(
        "MCP-CAP-009",
        Capability,
        Low,
        15,
        "Server fetches content from the web",
        "Treat what it returns as untrusted input (prompt injection)."
    ),
    rule!(
        "MCP-FS-001",
        Modifier,
        Critical,
        40,
        "Filesystem access covers the whole disk",
        "Restrict the server to the project directories it needs."
    ),
    rule!(
        "MCP-FS-002",
        Modifier,
        High,
        20,
        "Filesystem access covers a whole home directory",
        "Restrict the server to the project directories it needs."
    ),
    rule!(
        "MCP-FS-003",
        Modifier,
        High,
        30,
        "Filesystem access covers system or credential directories",
        "Remove system directories and credential stores (~/.ssh, ~/.aws, ...) from its paths."
    ),
    rule!(
        "MCP-NET-001",
        Modifier,
        High,
        25,
        "Remote server is reached over plain HTTP (or plain WebSocket, `ws://`)",
        "Use https:// (wss://) so that traffic and credentials cannot be read or changed in transit."
    ),
    rule!(
        "MCP-SUPPLY-001",
        Modifier,
        Medium,
        10,
        "Package is fetched at launch without a pinned version",
        "Pin an exact version (pkg@1.2.3, pkg==1.2.3, image:tag or digest)."
    ),
    rule!(
        "MCP-SECRET-001",
        Modifier,
        High,
        25,
        "A secret is written in the server's arguments or URL",
        "Rotate the secret and pass it through an environment variable or the OS keychain."
    ),
    rule!(
        "MCP-APPROVE-001",
        Modifier,
        Medium,
        10,
        "Tools are auto-approved: the client runs them without asking",
        "Require confirmation, at least for tools that write, execute or send."
    ),
    rule!(
        "MCP-APPROVE-002",
        Modifier,
        High,
        20,
        "Every tool of a powerful server is auto-approved",
        "Remove the wildcard; approve only read-only tools."
    ),
    rule!(
        "MCP-EXEC-001",
        Modifier,
        Medium,
        10,
        "Server is launched through a shell command string",
        "Launch the server binary directly with explicit arguments."
    ),
    rule!(
        "MCP-EXEC-002",
        Modifier,
        Critical,
        40,
        "Launch downloads a script and runs it (curl | sh)",
        "Install a reviewed, pinned package instead of running a downloaded script."
    ),
    rule!(
        "MCP-EXEC-003",
        Modifier,
        High,
        30,
        "Server is launched with sudo",
        "Run the server as the user, without elevated privileges."
    ),
    rule!(
        "MCP-EXEC-004",
        Modifier,
        High,
        15,
        "Server runs from a temporary or downloads folder",
        "Install the server to a managed location."
    ),
    rule!(
        "MCP-DOCKER-001",
        Modifier,
        Critical,
        40,
        "Container runs privileged, mounts the host root or the Docker socket",
        "Drop --privileged and mount only the directories the server needs."
    ),
    rule!(
        "MCP-DOCKER-002",
        Modifier,
        High,
        20,
        "Container mounts a home directory, shares the host network or process space, or adds capabilities",
        "Mount only the project directories it needs; remove --network host, --pid host and --cap-add."
    ),
    rule!(
        "MCP-CAP-010",
        Capability,
        Low,
        20,
        "Server reads and writes business SaaS data (documents, tickets, CRM)",
        "Scope its token to the workspaces and projects it needs."
    ),
    rule!(
        "MCP-CAP-011",
        Capability,
        Medium,
        25,
        "Server is a proxy or gateway to other MCP servers",
        "Review what it connects to; each server behind it carries its own risk."
    ),
    rule!(
        "MCP-CAP-012",
        Capability,
        Low,
        10,
        "Server searches the web",
        "Treat what it returns as untrusted input (prompt injection)."
    ),
    rule!(
        "MCP-NET-002",
        Modifier,
        Medium,
        15,
        "Remote server is addressed by a raw IP address",
        "Use a DNS name with a valid TLS certificate, so the server's identity can be checked."
    ),
    rule!(
        "MCP-NET-003",
        Modifier,
        High,
        25,
        "Remote server is behind a tunnel or paste service",
        "Do not connect assistants to ad-hoc tunnels; host the server where it can be vetted."
    ),
    rule!(
        "MCP-NET-004",
        Modifier,
        Low,
        5,
        "Credentials are sent to the remote server in headers",
        "Prefer OAuth; if a static token is needed, keep it in an environment variable and scope it."
    ),
    rule!(
        "MCP-NET-005",
        Modifier,
        High,
        30,
        "TLS certificate checks are turned off",
        "Remove NODE_TLS_REJECT_UNAUTHORIZED and --insecure style flags; trust a private CA instead."
    ),
    rule!(
        "MCP-SUPPLY-002",
        Modifier,
        High,
        35,
        "Package name is one edit away from a popular MCP package (possible typosquat)",
        "Check the package name and publisher; use the official package."
    ),
    rule!(
        "MCP-SUPPLY-003",
        Modifier,
        Medium,
        20,
        "Package name is two edits away from a popular MCP package (possible typosquat)",
        "Check the package name and publisher; use the official package."
    ),
    rule!(
        "MCP-VULN-001",
        Modifier,
        Critical,
        40,
        "Configured version has a known critical vulnerability",
        "Upgrade to the fixed version named in the advisory."
    ),
    rule!(
        "MCP-VULN-002",
        Modifier,
        High,
        30,
        "Configured version has a known high-severity vulnerability",
        "Upgrade to the fixed version named in the advisory."
    ),
    rule!(
        "MCP-VULN-003",
        Modifier,
        Medium,
        15,
        "Configured version has a known vulnerability",
        "Upgrade to the fixed version named in the advisory."
    ),
    rule!(
        "MCP-VULN-004",
        Modifier,
        Medium,
        10,
        "Package has known vulnerabilities and the configured version may be affected",
        "Pin a version at or above the fixed version named in the advisories."
    ),
    rule!(
        "MCP-VULN-005",
        Modifier,
        Critical,
        60,
        "Configured version is a known malicious release",
        "Remove the server, rotate every credential it could reach, and investigate the machine."
    ),
    rule!(
        "MCP-COMBO-001",
        Modifier,
        High,
        10,
        "Server is part of a private-data + outbound combination in its client",
        "Split data-reading and web-facing servers across clients, or require confirmation for their tools."
    ),
    rule!(
        "MCP-COMBO-002",
        Modifier,
        High,
        10,
        "Server is part of a shell + untrusted-input combination in its client",
        "Do not give one client both shell execution and web or remote input."
    ),
    rule!(
        "MCP-POLICY-001",
        Modifier,
        Critical,
        60,
        "Package is blocked by the organisation's policy",
        "Remove the server; the security team has ruled this package out."
    ),
    rule!(
        "MCP-STATE-001",
        Context,
        Info,
        0,
        "Server is disabled in the client's config: score halved",
        "Remove it from the config if it is no longer needed."
    ),
];

fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

pub(super) fn finding(id: &str, evidence: impl Into<String>) -> Option<Finding> {
    rule(id).map(|r| Finding {
        rule_id: r.id.to_owned(),
        severity: r.severity,
        weight: r.weight,
        message: r.message.to_owned(),
        evidence: evidence.into(),
    })
}

/// Run every check against a server.
pub(super) fn evaluate(server: &ServerRecord) -> Vec<Finding> {
    let launch = Launch::of(server);
    let mut out = Vec::new();
    capabilities(server, &launch, &mut out);
    filesystem_scope(server, &launch, &mut out);
    network(server, &launch, &mut out);
    unpinned(server, &launch, &mut out);
    vulnerabilities(server, &launch, &mut out);
    lookalikes(server, &launch, &mut out);
    secrets(server, &mut out);
    auto_approve(server, &out.clone(), &mut out);
    execution(&launch, &mut out);
    docker(&launch, &mut out);
    if server.disabled {
        out.extend(finding("MCP-STATE-001", "disabled: true"));
    }
    // One weakness, one finding: "unpinned, and an advisory may apply" already says
    // unpinned.
    if out.iter().any(|f| f.rule_id == "MCP-VULN-004") {
        out.retain(|f| f.rule_id != "MCP-SUPPLY-001");
    }
    out
}

/// The package a record's launch runs (`npx -y pkg@1` runs npm's `pkg`), as the rules
/// read it when the record names none; whatever package the record names.
pub fn launched_package(server: &ServerRecord) -> Option<Package> {
    Launch::of(server).package()
}

/// One launch, parsed once, for every rule: the words as configured, and the words
/// that really run once the wrappers (`cmd /c`, `sudo`, `env K=V`, `sh -c "..."`) are
/// off. The agent's `command` holds the whole line and `args` repeats the arguments;
/// the seed's `command` holds the whole line alone; both are read here.
struct Launch {
    /// Program first, as configured.
    words: Vec<String>,
    /// What really runs: program first.
    inner: Vec<String>,
    /// The wrappers taken off, outermost first.
    wrappers: Vec<String>,
}

impl Launch {
    fn of(server: &ServerRecord) -> Self {
        let mut words: Vec<String> = Vec::new();
        if let Some(command) = server
            .command
            .as_deref()
            .filter(|c| server.url.as_deref() != Some(*c))
        {
            if let Some(launch) = &server.launch {
                // The agent's own parse of the launch.
                words.push(launch.program.clone());
                words.extend(server.args.iter().cloned());
            } else if server.args.is_empty() {
                words.extend(command.split_whitespace().map(str::to_owned));
            } else {
                // The agent's line is the quoted program and arguments: take the
                // program from it; anything else in `command` is the program itself.
                let program = launch::program_of_line(command, &server.args)
                    .unwrap_or_else(|| command.to_owned());
                words.push(program);
                words.extend(server.args.iter().cloned());
            }
        }
        let (inner, wrappers) = match words.split_first() {
            Some((program, args)) => launch::unwrap(program, args),
            None => (Vec::new(), Vec::new()),
        };
        Self {
            words,
            inner,
            wrappers,
        }
    }

    fn line(&self) -> String {
        self.words.join(" ")
    }

    /// The program that really runs, without its directory and `.exe`/`.cmd`,
    /// lowercased.
    fn program(&self) -> Option<String> {
        self.inner.first().map(|w| launch::basename(w))
    }

    /// The words after the program that really runs.
    fn rest(&self) -> &[String] {
        self.inner.get(1..).unwrap_or_default()
    }

    /// Whether a wrapper of this name was taken off (`"sudo"`, `"bash -c"`).
    fn wrapped_by(&self, names: &[&str]) -> bool {
        self.wrappers.iter().any(|w| {
            names
                .iter()
                .any(|n| w == n || w.starts_with(&format!("{n} ")))
        })
    }

    /// The package the launch runs (see [`crate::launch`]).
    fn package(&self) -> Option<Package> {
        launch::package(&self.inner).0
    }
}

/// Words that name what a server is: its name and its package or image name (the
/// record's, else the one its launcher runs), and for a plain program or script the
/// file's own name — never directories, user or host names, URL hosts, or the
/// launchers around it. Split into lowercase tokens.
fn name_tokens(server: &ServerRecord, launch: &Launch) -> Vec<String> {
    let mut sources: Vec<String> = vec![server.server_name.clone()];
    let package = server.package.clone().or_else(|| launch.package());
    match &package {
        Some(p) if matches!(p.ecosystem.as_str(), "binary" | "local") => {
            // A path: its file name only.
            let file = p.name.rsplit(['/', '\\']).next().unwrap_or(&p.name);
            let stem = file.split('.').next().unwrap_or(file);
            if !matches!(stem, "index" | "main" | "server" | "app" | "dist" | "build") {
                sources.push(stem.to_owned());
            }
        }
        Some(p) if matches!(p.ecosystem.as_str(), "git" | "url") => {
            // A repository or download: its last path segment.
            let last = p
                .name
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .rsplit('/')
                .next()
                .unwrap_or_default();
            sources.push(last.to_owned());
        }
        Some(p) => sources.push(p.name.clone()),
        None => {}
    }
    if package.is_none()
        && let Some(kind) = server.server_type.as_deref()
        && !kind.contains(['/', '\\', ':', '.'])
        && kind.contains('-')
    {
        // The seed's `server_type` when nothing better is known (not a host or path).
        sources.push(kind.to_owned());
    }
    sources
        .iter()
        .flat_map(|s| {
            s.to_lowercase()
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

const CAPABILITY_WORDS: &[(&str, &[&str])] = &[
    (
        "MCP-CAP-001",
        &[
            "shell",
            "terminal",
            "bash",
            "zsh",
            "powershell",
            "pwsh",
            "exec",
            "command",
            "commands",
            "commander",
            "ssh",
            "sandbox",
            "process",
            "runner",
        ],
    ),
    ("MCP-CAP-002", &["filesystem", "fs", "files", "file"]),
    (
        "MCP-CAP-003",
        &[
            "puppeteer",
            "playwright",
            "browser",
            "chrome",
            "chromium",
            "selenium",
            "browserbase",
            "browserbasehq",
        ],
    ),
    (
        "MCP-CAP-004",
        &[
            "postgres",
            "postgresql",
            "mysql",
            "sqlite",
            "mongo",
            "mongodb",
            "redis",
            "database",
            "db",
            "sql",
            "supabase",
            "neon",
            "snowflake",
            "bigquery",
            "clickhouse",
            "dynamodb",
            "qdrant",
            "pinecone",
            "neo4j",
            "elasticsearch",
            "duckdb",
            "motherduck",
            "prisma",
        ],
    ),
    (
        "MCP-CAP-005",
        &[
            "aws",
            "azure",
            "gcp",
            "gcloud",
            "cloudflare",
            "kubernetes",
            "k8s",
            "kubectl",
            "terraform",
            "heroku",
            "netlify",
            "pulumi",
            "eks",
            "aks",
            "iam",
            "firebase",
        ],
    ),
    (
        "MCP-CAP-006",
        &["github", "gitlab", "bitbucket", "githubcopilot"],
    ),
    (
        "MCP-CAP-007",
        &[
            "slack", "gmail", "email", "mail", "discord", "telegram", "teams", "whatsapp",
            "twilio", "sms", "outlook", "telnyx",
        ],
    ),
    (
        "MCP-CAP-008",
        &[
            "stripe",
            "paypal",
            "payment",
            "payments",
            "mercadopago",
            "dodopayments",
            "billing",
        ],
    ),
    (
        "MCP-CAP-009",
        &[
            "fetch",
            "scrape",
            "scraper",
            "crawl",
            "crawler",
            "firecrawl",
            "apify",
            "brightdata",
        ],
    ),
];

/// The capability rule for a category of `mcp-popular-servers.tsv`.
fn category_rule(category: &str) -> Option<&'static str> {
    let c = category.to_lowercase();
    Some(match c.as_str() {
        "shell-exec" => "MCP-CAP-001",
        "filesystem" => "MCP-CAP-002",
        "browser" => "MCP-CAP-003",
        c if c.starts_with("database") => "MCP-CAP-004",
        "cloud-infra" | "cloud" | "container-k8s" | "container" | "ci-cd"
        | "cloud-storage/docs" => "MCP-CAP-005",
        "code-hosting" | "vcs-local" | "code" => "MCP-CAP-006",
        "messaging" | "email" => "MCP-CAP-007",
        "payments-finance" => "MCP-CAP-008",
        "web-fetch" => "MCP-CAP-009",
        "productivity-saas" | "crm" => "MCP-CAP-010",
        "proxy-gateway" | "gateway" => "MCP-CAP-011",
        "web-search" => "MCP-CAP-012",
        _ => return None,
    })
}

/// The package a server runs: the agent's record, else parsed from the launch line.
fn package_of(server: &ServerRecord, launch: &Launch) -> Option<(String, String, Option<String>)> {
    let package = server.package.clone().or_else(|| launch.package())?;
    let version = package.version.filter(|v| !launch::is_floating(v));
    Some((package.ecosystem, package.name, version))
}

fn capabilities(server: &ServerRecord, launch: &Launch, out: &mut Vec<Finding>) {
    let known = package_of(server, launch)
        .and_then(|(eco, name, _)| data::popular_package(&eco, &name))
        .or_else(|| server.url.as_deref().and_then(data::popular_remote));
    if let Some(popular) = known {
        if let Some(id) = category_rule(popular.category) {
            out.extend(finding(
                id,
                format!("known server {} ({})", popular.name, popular.category),
            ));
        }
        return;
    }
    let tokens = name_tokens(server, launch);
    for (id, words) in CAPABILITY_WORDS {
        if let Some(token) = tokens.iter().find(|t| words.contains(&t.as_str())) {
            // A guess from a name is weaker evidence than a known server: a severity
            // lower and two thirds of the weight.
            out.extend(
                finding(id, format!("name mentions \"{token}\" (inferred)")).map(|mut f| {
                    f.severity = f.severity.lower();
                    f.weight = f.weight * 2 / 3;
                    f
                }),
            );
        }
    }
}

/// The paths a server is pointed at: its scope, and for a filesystem server the
/// path-like arguments.
fn scope_paths(server: &ServerRecord, launch: &Launch, is_filesystem: bool) -> Vec<String> {
    let mut paths: Vec<String> = server.scope.iter().cloned().collect();
    paths.extend(server.scope_paths.iter().cloned());
    if is_filesystem {
        paths.extend(launch.rest().iter().filter(|w| looks_like_path(w)).cloned());
    }
    // An empty scope is no scope (the seed agent sends `""`), not the whole disk.
    paths.retain(|p| !p.trim().is_empty());
    paths.sort();
    paths.dedup();
    paths
}

fn looks_like_path(word: &str) -> bool {
    word.starts_with('/')
        || word.starts_with('~')
        || word.starts_with("$HOME")
        || word.starts_with("%USERPROFILE%")
        || (word.len() >= 2
            && word.as_bytes()[1] == b':'
            && word.as_bytes()[0].is_ascii_alphabetic())
}

/// `C:\Users\x\` → `c:/users/x`; `/home/x/` → `/home/x`.
fn normalise_path(path: &str) -> String {
    let lowered = path.trim().replace('\\', "/").to_lowercase();
    let trimmed = lowered.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn is_root(path: &str) -> bool {
    matches!(path, "/" | "/*")
        || (path.len() <= 3 && path.ends_with(':') || path.ends_with(":/") && path.len() == 3)
}

fn is_home(path: &str) -> bool {
    if matches!(
        path,
        "~" | "$home" | "%userprofile%" | "/root" | "/home" | "/users"
    ) {
        return true;
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["home", _] | ["users", _] => true,
        [drive, "users", _] | [drive, "users"] => drive.ends_with(':'),
        _ => false,
    }
}

fn is_sensitive(path: &str) -> bool {
    const CREDENTIAL_DIRS: &[&str] = &[
        "/.ssh",
        "/.aws",
        "/.gnupg",
        "/.kube",
        "/.config/gcloud",
        "/.docker",
        "/.azure",
        "/.password-store",
        "/library/keychains",
    ];
    const SYSTEM_PREFIXES: &[&str] = &[
        "/etc",
        "/var",
        "/usr",
        "/bin",
        "/sbin",
        "/boot",
        "/system",
        "/library",
        "/private",
        "c:/windows",
        "c:/program files",
    ];
    let with_slash = format!("/{}", path.trim_start_matches('~').trim_start_matches('/'));
    CREDENTIAL_DIRS
        .iter()
        .any(|d| with_slash.contains(d) || path.starts_with(&d[1..]))
        || SYSTEM_PREFIXES
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

fn filesystem_scope(server: &ServerRecord, launch: &Launch, out: &mut Vec<Finding>) {
    let is_filesystem = out.iter().any(|f| f.rule_id == "MCP-CAP-002");
    let paths = scope_paths(server, launch, is_filesystem);
    let normalised: Vec<(String, String)> = paths
        .iter()
        .map(|p| (p.clone(), normalise_path(p)))
        .collect();
    if let Some((raw, _)) = normalised.iter().find(|(_, n)| is_root(n)) {
        out.extend(finding("MCP-FS-001", format!("path {raw}")));
    }
    if let Some((raw, _)) = normalised.iter().find(|(_, n)| is_home(n)) {
        out.extend(finding("MCP-FS-002", format!("path {raw}")));
    }
    if let Some((raw, _)) = normalised.iter().find(|(_, n)| is_sensitive(n)) {
        out.extend(finding("MCP-FS-003", format!("path {raw}")));
    }
}

fn url_host(url: &str) -> Option<&str> {
    let after_scheme = url.split_once("://")?.1;
    let authority = after_scheme.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next();
    }
    host_port.split(':').next()
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host == "::1" || host.starts_with("127.") || host.ends_with(".localhost")
}

/// Hosts of tunnel and paste services: whoever runs the other end can change it at will.
const TUNNEL_HOSTS: &[&str] = &[
    "ngrok.io",
    "ngrok-free.app",
    "ngrok.app",
    "ngrok.dev",
    "trycloudflare.com",
    "loca.lt",
    "localtunnel.me",
    "serveo.net",
    "localhost.run",
    "pinggy.io",
    "tunnelmole.net",
    "bore.pub",
    "pastebin.com",
    "transfer.sh",
    "webhook.site",
    "requestbin.com",
    "pipedream.net",
    "playit.gg",
];

fn network(server: &ServerRecord, launch: &Launch, out: &mut Vec<Finding>) {
    let url = server
        .url
        .as_deref()
        .or(server.command.as_deref().filter(|c| c.starts_with("http")));
    if let Some(url) = url {
        let host = url_host(url).unwrap_or("").to_lowercase();
        let lower = url.to_ascii_lowercase();
        let plain = ["http://", "ws://"]
            .into_iter()
            .find(|s| lower.starts_with(s));
        if let Some(scheme) = plain
            && !is_loopback_host(&host)
        {
            out.extend(finding("MCP-NET-001", format!("{scheme} to {host}")));
        }
        if host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| !ip.is_loopback())
        {
            out.extend(finding("MCP-NET-002", format!("host {host}")));
        }
        if let Some(t) = TUNNEL_HOSTS
            .iter()
            .find(|t| host == **t || host.ends_with(&format!(".{t}")))
        {
            out.extend(finding("MCP-NET-003", format!("host {host} ({t})")));
        }
    }
    let credential_headers: Vec<&str> = server
        .header_names
        .iter()
        .map(String::as_str)
        .filter(|h| {
            let h = h.to_lowercase();
            ["auth", "key", "token", "cookie", "secret"]
                .iter()
                .any(|w| h.contains(w))
        })
        .collect();
    if !credential_headers.is_empty() {
        out.extend(finding(
            "MCP-NET-004",
            format!("headers {}", credential_headers.join(", ")),
        ));
    }
    let tls_env = server.env_vars.iter().find(|e| {
        matches!(
            e.as_str(),
            "NODE_TLS_REJECT_UNAUTHORIZED" | "PYTHONHTTPSVERIFY" | "CURL_INSECURE"
        )
    });
    let tls_flag = launch.words.iter().find(|w| {
        matches!(
            w.to_lowercase().as_str(),
            "--insecure"
                | "--no-verify-ssl"
                | "--ignore-certificate-errors"
                | "--allow-insecure"
                | "--tls-skip-verify"
                | "--skip-tls-verify"
        )
    });
    if let Some(what) = tls_env.or(tls_flag) {
        out.extend(finding("MCP-NET-005", what.clone()));
    }
}

fn vulnerabilities(server: &ServerRecord, launch: &Launch, out: &mut Vec<Finding>) {
    let Some((eco, name, version)) = package_of(server, launch) else {
        return;
    };
    let advisories = data::advisories_for(&eco, &name);
    if advisories.is_empty() {
        return;
    }
    let parsed = version.as_deref().and_then(Version::parse);
    let mut hits: Vec<(&str, String)> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    for a in &advisories {
        match (&parsed, &a.affected) {
            (Some(v), Some(ranges)) => {
                if ranges.contains(v) {
                    let id = if a.malicious {
                        "MCP-VULN-005"
                    } else {
                        match a.severity {
                            Severity::Critical => "MCP-VULN-001",
                            Severity::High => "MCP-VULN-002",
                            _ => "MCP-VULN-003",
                        }
                    };
                    hits.push((
                        id,
                        format!(
                            "{} affects {name}@{} (fixed: {})",
                            a.ids,
                            version.as_deref().unwrap_or("?"),
                            a.fixed
                        ),
                    ));
                }
            }
            // The range is unreadable, but a version at or above the fix is safe.
            (Some(v), None)
                if Version::parse(a.fixed.split_whitespace().next().unwrap_or(""))
                    .is_some_and(|fixed| *v >= fixed) => {}
            _ => unknown.push(a.ids),
        }
    }
    // The worst advisory sets the finding; the evidence names every matching one.
    if let Some(worst) = [
        "MCP-VULN-005",
        "MCP-VULN-001",
        "MCP-VULN-002",
        "MCP-VULN-003",
    ]
    .into_iter()
    .find(|id| hits.iter().any(|(h, _)| h == id))
    {
        let evidence: Vec<&str> = hits.iter().map(|(_, e)| e.as_str()).collect();
        out.extend(finding(worst, evidence.join("; ")));
    }
    if !unknown.is_empty() && hits.is_empty() {
        let why = if version.is_none() {
            "no pinned version"
        } else {
            "version not comparable with the advisory's range"
        };
        out.extend(finding(
            "MCP-VULN-004",
            format!("{name}: {why}; advisories {}", unknown.join(", ")),
        ));
    }
}

fn lookalikes(server: &ServerRecord, launch: &Launch, out: &mut Vec<Finding>) {
    let Some((eco, name, _)) = package_of(server, launch) else {
        return;
    };
    if let Some((popular, distance)) = data::lookalike(&eco, &name) {
        let id = if distance == 1 {
            "MCP-SUPPLY-002"
        } else {
            "MCP-SUPPLY-003"
        };
        out.extend(finding(id, format!("{name} vs popular {}", popular.name)));
    }
}

fn unpinned(server: &ServerRecord, launch: &Launch, out: &mut Vec<Finding>) {
    let Some((ecosystem, name, version)) = package_of(server, launch) else {
        return;
    };
    if matches!(
        ecosystem.as_str(),
        "npm" | "pypi" | "docker" | "git" | "go" | "nuget" | "maven"
    ) && version.is_none()
    {
        out.extend(finding(
            "MCP-SUPPLY-001",
            format!("{ecosystem} package {name} without a pinned version"),
        ));
    }
}

fn secrets(server: &ServerRecord, out: &mut Vec<Finding>) {
    if server.secrets_found.is_empty() {
        return;
    }
    let list: Vec<String> = server
        .secrets_found
        .iter()
        .map(|s| format!("{} in {}", s.kind, s.location))
        .collect();
    out.extend(finding("MCP-SECRET-001", list.join(", ")));
}

fn auto_approve(server: &ServerRecord, so_far: &[Finding], out: &mut Vec<Finding>) {
    if server.auto_approve.is_empty() {
        return;
    }
    let wildcard = server
        .auto_approve
        .iter()
        .any(|t| matches!(t.as_str(), "*" | "all" | "ALL"));
    let powerful = so_far
        .iter()
        .any(|f| f.rule_id.starts_with("MCP-CAP-") && f.weight >= 30);
    if wildcard && powerful {
        out.extend(finding("MCP-APPROVE-002", "all tools auto-approved"));
    } else {
        let shown: Vec<&str> = server
            .auto_approve
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        out.extend(finding(
            "MCP-APPROVE-001",
            format!(
                "{} auto-approved: {}",
                server.auto_approve.len(),
                shown.join(", ")
            ),
        ));
    }
}

fn execution(launch: &Launch, out: &mut Vec<Finding>) {
    let line = launch.line().to_lowercase();
    // A POSIX shell or PowerShell running a command string (not `cmd /c`, the usual
    // way Windows runs `npx`).
    if launch.wrapped_by(&["sh", "bash", "zsh", "dash", "ksh"]) {
        out.extend(finding("MCP-EXEC-001", "sh -c \"...\""));
    } else {
        let program = launch.program().unwrap_or_default();
        if matches!(program.as_str(), "powershell" | "pwsh")
            && launch.rest().iter().any(|w| {
                matches!(
                    w.to_lowercase().as_str(),
                    "-c" | "-command" | "-encodedcommand" | "-e"
                )
            })
        {
            out.extend(finding("MCP-EXEC-001", format!("{program} -Command ...")));
        }
    }
    let fetches = [
        "curl",
        "wget",
        "iwr",
        "invoke-webrequest",
        "irm",
        "invoke-restmethod",
    ];
    let runs = [
        "| sh", "|sh", "| bash", "|bash", "| zsh", "|zsh", "| iex", "|iex", "| python", "|python",
    ];
    if fetches.iter().any(|f| line.contains(f)) && runs.iter().any(|r| line.contains(r)) {
        out.extend(finding(
            "MCP-EXEC-002",
            "download piped into an interpreter",
        ));
    }
    if launch.wrapped_by(&["sudo", "doas"]) {
        out.extend(finding("MCP-EXEC-003", "launched with sudo"));
    }
    for program in launch.inner.first().into_iter().chain(launch.words.first()) {
        let path = program.replace('\\', "/").to_lowercase();
        if [
            "/tmp/",
            "/var/tmp/",
            "/downloads/",
            "/temp/",
            "/appdata/local/temp/",
        ]
        .iter()
        .any(|d| path.contains(d))
        {
            out.extend(finding("MCP-EXEC-004", format!("program {program}")));
            break;
        }
    }
}

fn docker(launch: &Launch, out: &mut Vec<Finding>) {
    let program = launch.program().unwrap_or_default();
    if program != "docker" && program != "podman" {
        return;
    }
    let rest = launch.rest();
    let mut critical = Vec::new();
    let mut high = Vec::new();
    for (i, word) in rest.iter().enumerate() {
        let next = rest.get(i + 1).map(String::as_str).unwrap_or("");
        let w = word.as_str();
        if w == "--privileged" {
            critical.push("--privileged".to_owned());
        }
        let mount = match w {
            "-v" | "--volume" | "--mount" => Some(next),
            _ => w
                .strip_prefix("--volume=")
                .or_else(|| w.strip_prefix("--mount="))
                .or_else(|| w.strip_prefix("-v=")),
        };
        if let Some(spec) = mount {
            let source = spec
                .split(',')
                .find_map(|kv| {
                    kv.strip_prefix("source=")
                        .or_else(|| kv.strip_prefix("src="))
                })
                .unwrap_or_else(|| spec.split(':').next().unwrap_or(spec));
            if source == "/" || source.contains("docker.sock") {
                critical.push(format!("mount {source}"));
            } else if is_home(&normalise_path(source))
                || source.starts_with("$HOME")
                || source.starts_with("${HOME}")
            {
                high.push(format!("mount of a home directory {source}"));
            }
        }
        let value = |flag: &str| -> Option<String> {
            if w == flag {
                Some(next.to_owned())
            } else {
                w.strip_prefix(&format!("{flag}=")).map(str::to_owned)
            }
        };
        for flag in ["--network", "--net", "--pid", "--ipc"] {
            if value(flag).as_deref() == Some("host") {
                high.push(format!("{flag} host"));
            }
        }
        if let Some(cap) = value("--cap-add") {
            high.push(format!("--cap-add {cap}"));
        }
    }
    if !critical.is_empty() {
        out.extend(finding("MCP-DOCKER-001", critical.join(", ")));
    }
    if !high.is_empty() {
        out.extend(finding("MCP-DOCKER-002", high.join(", ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified() {
        for (path, root, home, sensitive) in [
            ("/", true, false, false),
            ("C:\\", true, false, false),
            ("c:", true, false, false),
            ("~", false, true, false),
            ("/home/alice", false, true, false),
            ("/home/alice/", false, true, false),
            ("/Users/bob", false, true, false),
            ("C:\\Users\\carol", false, true, false),
            ("/home/alice/projects/app", false, false, false),
            ("~/.ssh", false, false, true),
            ("/home/alice/.aws/credentials", false, false, true),
            ("/etc", false, false, true),
            ("/etcetera", false, false, false),
            ("C:\\Windows\\System32", false, false, true),
        ] {
            let n = normalise_path(path);
            assert_eq!(
                (is_root(&n), is_home(&n), is_sensitive(&n)),
                (root, home, sensitive),
                "{path} -> {n}"
            );
        }
    }

    #[test]
    fn url_hosts_are_extracted() {
        for (url, host) in [
            ("http://example.com/x", Some("example.com")),
            ("https://user:pw@example.com:8443/x", Some("example.com")),
            ("http://[::1]:80/", Some("::1")),
            ("no scheme", None),
        ] {
            assert_eq!(url_host(url), host, "{url}");
        }
    }
}
