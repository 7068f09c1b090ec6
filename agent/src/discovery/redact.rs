//! Secrets never leave the machine. Arguments, URLs and command lines are scanned for
//! secrets; each one found is replaced by `[REDACTED]` and recorded as a finding
//! `{location, kind}` without its value. (Env var values and header values given as
//! maps are never read into a record at all: only their names are.)
//!
//! Secrets are found by *position and name* first, because real passwords look like
//! `summer2024!`, not like random strings:
//! - the value after a secret-named flag (`--token X`, `--api-key=X`, `-k X`), after a
//!   header flag (`--header "Authorization: Bearer X"`: every header value), after an
//!   env flag (`-e NAME=X`, `--env NAME=X`: every env value), the `NAME=X` words after
//!   `env` and after `set`/`export` in a shell line, `-pX` for database clients;
//! - the value side of any `NAME=X`, `"name": "X"` or `Name: X` whose name says
//!   secret (`API_KEY`, `clientSecret`, `X-Auth-Token`), in any argument or line;
//! - the password slot of a connection string (`scheme://user:X@host`, `Password=X;`),
//!   a token standing as a URL's user (`https://X@host`), secret-named query and
//!   fragment parameters (`?api_key=X`, `#access_token=X`), token-like URL path
//!   segments, and the credentials of `Bearer X` / `Basic X`;
//!
//! and then by shape: tokens of known services (GitHub, GitLab, Slack, OpenAI,
//! Anthropic, Google, Stripe, AWS, npm, Hugging Face, and more), JWTs, private keys,
//! and long high-entropy words. Paths, package names and image names stay readable;
//! references (`${VAR}`, `$VAR`, `%VAR%`, `{env:VAR}`) and placeholders
//! (`<your-key>`, `YOUR_API_KEY`) are not secrets.

use std::sync::LazyLock;

use mcpwatch_protocol::launch::basename;
use mcpwatch_protocol::server::{REDACTED, SecretFinding};
use regex_lite::{Captures, Regex};

/// Token shapes of known services.
struct Shapes {
    list: Vec<(&'static str, &'static [&'static str], Regex)>,
}

/// The patterns run on short texts (one argument, one URL): `regex-lite`, whose
/// compiled patterns take a fraction of the memory of `regex`'s, is fast enough and
/// keeps the idle agent small. Its classes (`\\b`, `\\s`, `\\w`) are ASCII.
fn re(pattern: &str) -> Regex {
    // The patterns are constants checked by the tests below.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("secret pattern compiles")
}

/// A token shape: its kind, literals one of which its matches contain (the regex runs
/// only on texts that hold one), and the pattern.
fn shape(
    kind: &'static str,
    hints: &'static [&'static str],
    pattern: &'static str,
) -> (&'static str, &'static [&'static str], &'static str) {
    (kind, hints, pattern)
}

static SHAPES: LazyLock<Shapes> = LazyLock::new(|| {
    let list = [
        shape(
            "private_key",
            &["-----BEGIN"],
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
        ),
        shape(
            "github_token",
            &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})",
        ),
        shape(
            "gitlab_token",
            &["glpat-", "gldt-", "glptt-", "glrt-", "glsoat-"],
            r"\bgl(?:pat|dt|ptt|rt|soat)-[A-Za-z0-9_\-]{20,}",
        ),
        shape(
            "slack_token",
            &["xox", "xapp-"],
            r"\bxox[abposre]-[A-Za-z0-9\-]{10,}|\bxapp-[A-Za-z0-9\-]{10,}",
        ),
        shape(
            "anthropic_key",
            &["sk-ant-"],
            r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
        ),
        shape(
            "openai_key",
            &["sk-"],
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        ),
        shape(
            "stripe_key",
            &["_live_", "_test_"],
            r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
        ),
        shape("google_api_key", &["AIza"], r"\bAIza[0-9A-Za-z_\-]{30,}"),
        shape(
            "google_oauth_token",
            &["ya29."],
            r"\bya29\.[0-9A-Za-z_\-]{20,}",
        ),
        shape(
            "aws_access_key",
            &["AKIA", "ASIA", "ABIA", "ACCA"],
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
        ),
        shape("npm_token", &["npm_"], r"\bnpm_[A-Za-z0-9]{36}"),
        shape(
            "pypi_token",
            &["pypi-AgE"],
            r"\bpypi-AgE[A-Za-z0-9_\-]{50,}",
        ),
        shape("huggingface_token", &["hf_"], r"\bhf_[A-Za-z0-9]{30,}"),
        shape(
            "docker_token",
            &["dckr_pat_"],
            r"\bdckr_pat_[A-Za-z0-9_\-]{20,}",
        ),
        shape(
            "shopify_token",
            &["shpat_", "shpss_", "shpca_", "shppa_"],
            r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}",
        ),
        shape(
            "sendgrid_key",
            &["SG."],
            r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",
        ),
        shape(
            "digitalocean_token",
            &["_v1_"],
            r"\bdo[opr]_v1_[a-f0-9]{64}",
        ),
        shape(
            "linear_key",
            &["lin_"],
            r"\blin_(?:api|oauth)_[A-Za-z0-9]{20,}",
        ),
        shape(
            "notion_token",
            &["ntn_", "secret_"],
            r"\b(?:ntn_|secret_)[A-Za-z0-9]{30,}",
        ),
        shape(
            "airtable_token",
            &["pat"],
            r"\bpat[A-Za-z0-9]{14}\.[a-f0-9]{64}",
        ),
        shape(
            "figma_token",
            &["figd_", "figh_", "figu_"],
            r"\bfig[dhu]_[A-Za-z0-9_\-]{30,}",
        ),
        shape(
            "sentry_token",
            &["sntr"],
            r"\bsntr[ysu]_[A-Za-z0-9_=+/\-]{20,}",
        ),
        shape(
            "grafana_token",
            &["glsa_", "glc_"],
            r"\bgl(?:sa|c)_[A-Za-z0-9_=+/\-]{20,}",
        ),
        shape("supabase_token", &["sbp_"], r"\bsbp_[A-Za-z0-9]{20,}"),
        shape(
            "atlassian_token",
            &["ATATT"],
            r"\bATATT[A-Za-z0-9_=\-]{20,}",
        ),
        shape("databricks_token", &["dapi"], r"\bdapi[a-f0-9]{32}"),
        shape(
            "postman_key",
            &["PMAK-"],
            r"\bPMAK-[A-Za-z0-9]{20,}-[A-Za-z0-9]{20,}",
        ),
        shape(
            "ai_service_key",
            &[
                "gsk_",
                "xai-",
                "pplx-",
                "r8_",
                "tvly-",
                "fc-",
                "ctx7sk-",
                "BSA",
                "sk-or-v1-",
                "csk-",
                "nvapi-",
            ],
            r"\b(?:gsk_|xai-|pplx-|r8_|tvly-|fc-|ctx7sk-|BSA|sk-or-v1-|csk-|nvapi-)[A-Za-z0-9_\-]{16,}",
        ),
        shape(
            "telegram_bot_token",
            &[":AA"],
            r"\b[0-9]{8,10}:AA[A-Za-z0-9_\-]{30,}",
        ),
        shape("twilio_api_key", &["SK"], r"\bSK[0-9a-f]{32}\b"),
        shape("mailgun_key", &["key-"], r"\bkey-[0-9a-z]{32}\b"),
        shape(
            "discord_bot_token",
            &["."],
            r"\b[MN][A-Za-z0-9]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,}",
        ),
        shape(
            "jwt",
            &["eyJ"],
            r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        ),
        shape(
            "webhook_url_token",
            &[
                "hooks.slack",
                "HOOKS.SLACK",
                "discord",
                "Discord",
                "DISCORD",
            ],
            r"(?i:hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+|discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_\-]+)",
        ),
    ];
    Shapes {
        list: list.iter().map(|(k, h, p)| (*k, *h, re(p))).collect(),
    }
});

/// `scheme://userinfo@`: the userinfo runs to the last `@` before the first `/`.
static URL_AUTHORITY: LazyLock<Regex> =
    LazyLock::new(|| re(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/\s?#]*)@"));

/// `?name=value`, `&name=value`, `#name=value`, `;name=value` in a URL.
static URL_PARAM: LazyLock<Regex> =
    LazyLock::new(|| re(r"([?&#;])([A-Za-z0-9_.\-\[\]]+)=([^&#;\s]*)"));

/// An http(s)/ws(s) URL's path.
static URL_PATH: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(?:https?|wss?)://[^/\s?#]+(/[^\s?#]*)"));

/// `Bearer X`, `Basic X`, `Token X`, `Bot X`.
static AUTH_SCHEME: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\b((?i:bearer|basic)|Token|Bot)(\s+)([^\s"',;]{6,})"#));

/// `Name: value` (a header written in a line).
static COLON_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(^|[\s"'{,;(])([A-Za-z][A-Za-z0-9_\-]*)(\s*:\s*)("[^"]*"|'[^']*'|[^\s,;"'}]+)"#)
});

/// `NAME=value`, optionally after `set`, `export` or `env` (shell lines); the value
/// may be quoted and ends at a shell separator.
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(\b(?:set|export|env|setx)\s+"?)?\b([A-Za-z_][A-Za-z0-9_.\-]*)(=)("[^"]*"|'[^']*'|[^\s&;,|"'<>]*)"#,
    )
});

/// A flag and its value in one line: `--token X`, `--token=X`, `-H "Name: X"`.
static LINE_FLAG: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(^|\s)(--?[A-Za-z][A-Za-z0-9_.\-]*)(=|\s+)("[^"]*"|'[^']*'|[^\s"']+)"#));

/// `"name": "value"` (a JSON or JSON-like document in an argument).
static JSON_PAIR: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(["'])([^"'\\]+)(["']\s*:\s*)(["'])((?:[^"'\\]|\\.)*)(["'])"#));

/// `Password=X;` in a semicolon-separated connection string.
/// `user:password@tcp(host)/db`: a Go / MySQL driver DSN, which has no scheme.
static DSN_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| re(r"(^|[\s=\x22'])([A-Za-z0-9_.\-]*:)([^@\s/:]+)(@(?:tcp|unix|udp)\()"));

static CONN_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)((?:^|;)\s*(?:password|pwd|passwd|user\s+password|account\s*key|shared\s*access\s*key|accesskey|sharedaccesskey)\s*=\s*)([^;]*)",
    )
});

/// Words of a name that make its value a secret.
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "apikey",
    "key",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "cookie",
    "session",
    "bearer",
    "jwt",
    "pat",
    "sig",
    "signature",
    "dsn",
    "private",
    "otp",
    "pin",
    "sas",
];

/// Names joined into one word that say secret (`apikey`, `accesstoken`).
const SECRET_COMPOUNDS: &[&str] = &[
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "authtoken",
    "accesstoken",
    "refreshtoken",
    "clientsecret",
    "password",
    "passwd",
    "bearertoken",
    "connectionstring",
    "connstr",
];

/// Words of a name that say its value is something else: a path, a name, a switch.
const NOT_SECRET_WORDS: &[&str] = &[
    "file",
    "path",
    "dir",
    "directory",
    "name",
    "type",
    "mode",
    "url",
    "uri",
    "endpoint",
    "host",
    "id",
    "header",
    "env",
    "var",
    "length",
    "size",
    "count",
    "limit",
    "timeout",
    "expiry",
    "expires",
    "method",
    "format",
    "scope",
    "scopes",
    "provider",
    "region",
    "no",
    "disable",
    "disabled",
    "enable",
    "enabled",
    "skip",
    "use",
    "require",
    "required",
    "allow",
    "insecure",
    "ignore",
    "helper",
    "command",
    "cmd",
    "store",
    "storage",
    "ttl",
    "len",
    "max",
    "min",
    "version",
    "location",
    "server",
    "port",
    "prefix",
    "field",
    "algorithm",
    "alg",
    "kind",
    "strategy",
    "source",
    "keyboard",
];

/// Flags whose next argument is a header `Name: value`.
const HEADER_FLAGS: &[&str] = &["-h", "--header", "--headers", "--http-header", "-header"];
/// Flags whose next argument is an env assignment `NAME=value`.
const ENV_FLAGS: &[&str] = &[
    "-e",
    "--env",
    "--env-var",
    "--set-env",
    "--environment",
    "-env",
];
/// Short flags whose value is a secret.
const SHORT_SECRET_FLAGS: &[&str] = &["-k", "-a"];
/// Database clients whose `-pX` is the password.
const DB_CLIENTS: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mariadb",
    "mariadb-dump",
    "mysqlsh",
    "mycli",
];

/// The words of a name: split at separators and at lower→upper case changes.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_lowercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whether a flag, variable, key or header name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let words = words(name);
    if words.is_empty() || words.iter().any(|w| NOT_SECRET_WORDS.contains(&w.as_str())) {
        return false;
    }
    let joined: String = words.concat();
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        || SECRET_COMPOUNDS.iter().any(|c| joined.contains(c))
}

/// `${VAR}`, `${input:x}`, `$VAR`, `{env:X}`, `%VAR%`, `<placeholder>`, `YOUR_KEY`:
/// a reference or a placeholder, not a secret.
fn is_reference(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
    if v.is_empty() || v == REDACTED || v.contains(REDACTED) {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    (v.starts_with("${") && v.ends_with('}'))
        || (v.starts_with('$')
            && v.len() > 1
            && v[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'))
        || v.starts_with("{env:")
        || v.starts_with("{file:")
        || (v.starts_with("{{") && v.ends_with("}}"))
        || (v.starts_with('%') && v.ends_with('%') && v.len() > 2)
        || (v.starts_with('<') && v.ends_with('>'))
        || lower.starts_with("your")
        || lower.starts_with("insert")
        || lower.starts_with("replace")
        || lower.starts_with("changeme")
        || lower.starts_with("placeholder")
        || lower.ends_with("_here")
        || lower.ends_with("-here")
        || v.chars()
            .all(|c| c == '*' || c == 'x' || c == 'X' || c == '.')
        || matches!(lower.as_str(), "true" | "false" | "null" | "none")
}

/// Whether a flag's value is a path (kept readable: `--key-file`, `--cert ./x.pem`).
fn looks_like_path(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("../")
        || v.starts_with("~/")
        || (v.len() > 2 && v.as_bytes()[1] == b':' && matches!(v.as_bytes()[2], b'\\' | b'/'))
        || [
            ".pem", ".key", ".crt", ".json", ".txt", ".p12", ".pfx", ".env",
        ]
        .iter()
        .any(|ext| v.to_ascii_lowercase().ends_with(ext) && !v.contains(char::is_whitespace))
}

/// Collects findings while redacting one server's strings.
#[derive(Default)]
pub struct Redactor {
    pub findings: Vec<SecretFinding>,
}

impl Redactor {
    fn found(&mut self, location: &str, kind: &str) {
        let finding = SecretFinding {
            location: location.to_owned(),
            kind: kind.to_owned(),
        };
        if !self.findings.contains(&finding) {
            self.findings.push(finding);
        }
    }

    /// Keep quotes around a redacted quoted value.
    fn quoted_redaction(value: &str) -> String {
        match value.chars().next() {
            Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => {
                format!("{q}{REDACTED}{q}")
            }
            _ => REDACTED.to_owned(),
        }
    }

    /// Replace the `value` group of every match of `pattern` for which `secret` holds.
    fn replace(
        &mut self,
        location: &str,
        text: &str,
        pattern: &Regex,
        value: usize,
        kind: &str,
        secret: impl Fn(&Captures<'_>) -> bool,
    ) -> String {
        let mut hit = false;
        let out = pattern.replace_all(text, |c: &Captures<'_>| {
            let whole = c.get(0).map_or("", |m| m.as_str());
            let Some(v) = c.get(value) else {
                return whole.to_owned();
            };
            if is_reference(v.as_str()) || !secret(c) {
                return whole.to_owned();
            }
            hit = true;
            let start = v.start() - c.get(0).map_or(0, |m| m.start());
            format!(
                "{}{}{}",
                &whole[..start],
                Self::quoted_redaction(v.as_str()),
                &whole[start + v.as_str().len()..]
            )
        });
        if hit {
            self.found(location, kind);
        }
        out.into_owned()
    }

    /// Redact every secret in free text: a URL, a command line, one argument.
    pub fn text(&mut self, location: &str, text: &str) -> String {
        let text = self.bounded(location, text);
        // Each pattern runs only on texts holding the characters its matches must
        // contain: most arguments hold none, and the cost stays linear and small.
        let has = |t: &str, any: &[&str]| any.iter().any(|n| t.contains(n));
        let mut out = self.urls(location, &text);
        if has(&out, &["earer", "EARER", "asic", "ASIC", "Token", "Bot"]) {
            out = self.replace(
                location,
                &out,
                &AUTH_SCHEME,
                3,
                "authorization_value",
                |_| true,
            );
        }
        if out.contains('-') {
            out = self.replace(location, &out, &LINE_FLAG, 4, "flag_value", |c| {
                let flag = &c[2];
                let value = &c[4];
                if HEADER_FLAGS.contains(&flag.to_ascii_lowercase().as_str()) {
                    // The header's value, not its name: handled by the pair rule
                    // below when the value is `Name: X`; a bare value is all secret.
                    return !value.contains(':');
                }
                is_secret_name(flag) && !looks_like_path(value) && !value.starts_with('-')
            });
            if has(&out, &["-H", "-h"]) {
                out = self.header_values_in_line(location, &out);
            }
        }
        if out.contains(':') {
            out = self.replace(location, &out, &COLON_PAIR, 4, "header_value", |c| {
                is_secret_name(&c[2])
                    && !c[4].starts_with("//")
                    && !matches!(
                        c[4].to_ascii_lowercase().as_str(),
                        "bearer" | "basic" | "token"
                    )
            });
            if has(&out, &["\"", "'"]) {
                out = self.replace(location, &out, &JSON_PAIR, 5, "json_value", |c| {
                    is_secret_name(&c[2])
                });
            }
        }
        if out.contains("@tcp(") || out.contains("@unix(") || out.contains("@udp(") {
            out = self.replace(
                location,
                &out,
                &DSN_PASSWORD,
                3,
                "connection_string_password",
                |_| true,
            );
        }
        if out.contains('=') {
            out = self.replace(location, &out, &ASSIGNMENT, 4, "assignment_value", |c| {
                c.get(1).is_some() || is_secret_name(&c[2])
            });
            out = self.replace(
                location,
                &out,
                &CONN_PASSWORD,
                2,
                "connection_string_password",
                |_| true,
            );
        }
        for (kind, hints, shape) in &SHAPES.list {
            if hints.iter().any(|h| out.contains(h)) && shape.is_match(&out) {
                out = shape.replace_all(&out, REDACTED).into_owned();
                self.found(location, kind);
            }
        }
        self.high_entropy(location, &out)
    }

    /// `text` cut to whole words within what the collector takes (with a little
    /// room, so that the report still says it was shortened): no secret is ever cut
    /// in two and left half visible, and no pattern runs on megabytes. One word longer
    /// than that is an opaque value: it goes.
    fn bounded<'t>(&mut self, location: &str, text: &'t str) -> std::borrow::Cow<'t, str> {
        const MAX: usize = mcpwatch_protocol::limits::MAX_LINE_CHARS + 64;
        let Some((cut, _)) = text.char_indices().nth(MAX) else {
            return std::borrow::Cow::Borrowed(text);
        };
        let head = &text[..cut];
        let boundary = head.rfind(|c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    ',' | ';' | '&' | '|' | '/' | '?' | '#' | '=' | ':' | '"' | '\''
                )
        });
        match boundary {
            Some(at) if at > 0 => std::borrow::Cow::Owned(format!("{} {REDACTED}", &head[..at])),
            _ => {
                self.found(location, "opaque_value");
                std::borrow::Cow::Borrowed(REDACTED)
            }
        }
    }

    /// `-H "Name: X"` / `--header=Name:X` inside a line: every header value goes.
    fn header_values_in_line(&mut self, location: &str, text: &str) -> String {
        static HEADER_IN_LINE: LazyLock<Regex> = LazyLock::new(|| {
            re(
                r#"(?i)((?:^|\s)(?:-H|--header|--headers|--http-header)(?:=|\s+)["']?[A-Za-z0-9_\-]+\s*:\s*)([^"'\s][^"']*?)(["']|\s--?[A-Za-z]|$)"#,
            )
        });
        self.replace(location, text, &HEADER_IN_LINE, 2, "header_value", |_| true)
    }

    /// Credentials in URLs: the userinfo, secret-named parameters, token-like path
    /// segments.
    fn urls(&mut self, location: &str, text: &str) -> String {
        if !text.contains("://") && !text.contains('?') && !text.contains('#') {
            return text.to_owned();
        }
        let mut kind = None;
        let out = URL_AUTHORITY.replace_all(text, |c: &Captures<'_>| {
            let userinfo = &c[2];
            let redacted = match userinfo.split_once(':') {
                Some((user, password)) if !is_reference(password) => {
                    kind = Some("url_password");
                    format!("{user}:{REDACTED}")
                }
                Some(_) => userinfo.to_owned(),
                None if !is_reference(userinfo) && !plain_username(userinfo) => {
                    kind = kind.or(Some("url_userinfo"));
                    REDACTED.to_owned()
                }
                None => userinfo.to_owned(),
            };
            format!("{}{redacted}@", &c[1])
        });
        let mut out = out.into_owned();
        if let Some(k) = kind {
            self.found(location, k);
        }
        if out.contains("://") || out.contains('?') || out.contains('#') {
            out = self.replace(location, &out, &URL_PARAM, 3, "url_query_secret", |c| {
                is_secret_name(&c[2]) || looks_random(&c[3], 20)
            });
        }
        let mut path_hit = false;
        out = URL_PATH
            .replace_all(&out, |c: &Captures<'_>| {
                let whole = &c[0];
                let path = &c[1];
                let cleaned: Vec<String> = path
                    .split('/')
                    .map(|seg| {
                        if seg != REDACTED && token_segment(seg) {
                            path_hit = true;
                            REDACTED.to_owned()
                        } else {
                            seg.to_owned()
                        }
                    })
                    .collect();
                format!(
                    "{}{}",
                    &whole[..whole.len() - path.len()],
                    cleaned.join("/")
                )
            })
            .into_owned();
        if path_hit {
            self.found(location, "url_path_token");
        }
        out
    }

    /// Redact a list of arguments of `program`: by position (the value after a secret,
    /// header or env flag, `env`'s assignments, a database client's `-pX`), then each
    /// by [`Self::text`].
    pub fn args(&mut self, prefix: &str, program: &str, args: &[String]) -> Vec<String> {
        #[derive(Clone, Copy, PartialEq)]
        enum Next {
            Plain,
            Secret,
            Header,
            Env,
        }
        let program = basename(program);
        let db_client = DB_CLIENTS.contains(&program.as_str())
            || args.iter().any(|a| a == "-u" || a == "--user" || a == "-U");
        let mut env_words = program == "env";
        let mut out = Vec::with_capacity(args.len());
        let mut next = Next::Plain;
        for (i, arg) in args.iter().enumerate() {
            let location = format!("{prefix}[{i}]");
            let expected = std::mem::replace(&mut next, Next::Plain);
            if env_words {
                match arg.split_once('=') {
                    Some((name, value)) if !arg.starts_with('-') => {
                        out.push(self.env_value(&location, name, value));
                        continue;
                    }
                    _ if arg.starts_with('-') => {}
                    _ => env_words = false,
                }
            }
            match expected {
                Next::Secret
                    if !arg.starts_with('-') && !is_reference(arg) && !looks_like_path(arg) =>
                {
                    out.push(REDACTED.to_owned());
                    self.found(&location, "flag_value");
                    continue;
                }
                Next::Header if !arg.starts_with('-') => {
                    if arg.contains([':', '=']) {
                        out.push(self.header_arg(&location, arg));
                    } else {
                        // `--header NAME VALUE` (Crush, some proxies): the name stays,
                        // the next word is the value.
                        out.push(arg.clone());
                        next = Next::Secret;
                    }
                    continue;
                }
                Next::Env if !arg.starts_with('-') => {
                    if let Some((name, value)) = arg.split_once('=') {
                        out.push(self.env_value(&location, name, value));
                        continue;
                    }
                }
                _ => {}
            }
            let lower = arg.to_ascii_lowercase();
            if let Some((flag, value)) = arg.split_once('=')
                && flag.starts_with('-')
            {
                let flag_lower = flag.to_ascii_lowercase();
                if HEADER_FLAGS.contains(&flag_lower.as_str()) {
                    out.push(format!("{flag}={}", self.header_arg(&location, value)));
                    continue;
                }
                if ENV_FLAGS.contains(&flag_lower.as_str())
                    && let Some((name, v)) = value.split_once('=')
                {
                    out.push(format!("{flag}={}", self.env_value(&location, name, v)));
                    continue;
                }
                if is_secret_name(flag) && !is_reference(value) && !looks_like_path(value) {
                    out.push(format!("{flag}={REDACTED}"));
                    self.found(&location, "flag_value");
                    continue;
                }
            } else if HEADER_FLAGS.contains(&lower.as_str()) {
                next = Next::Header;
            } else if ENV_FLAGS.contains(&lower.as_str()) {
                next = Next::Env;
            } else if arg.starts_with('-')
                && (is_secret_name(arg) || SHORT_SECRET_FLAGS.contains(&arg.as_str()))
            {
                next = Next::Secret;
            } else if db_client
                && let Some(password) = arg.strip_prefix("-p")
                && !password.is_empty()
                && !arg.starts_with("--")
                && !is_reference(password)
            {
                out.push(format!("-p{REDACTED}"));
                self.found(&location, "flag_value");
                continue;
            }
            out.push(self.text(&location, arg));
        }
        out
    }

    /// `Name: value` or `Name=value` given to a header flag: the value goes.
    fn header_arg(&mut self, location: &str, arg: &str) -> String {
        let split = arg
            .find(':')
            .filter(|&i| !arg[..i].contains('='))
            .or_else(|| arg.find('='));
        match split {
            Some(i) => {
                let (name, rest) = arg.split_at(i);
                let sep_len = rest
                    .char_indices()
                    .skip(1)
                    .find(|(_, c)| !c.is_whitespace())
                    .map_or(rest.len(), |(j, _)| j);
                let value = &rest[sep_len..];
                if is_reference(value) || references_only(value) {
                    return arg.to_owned();
                }
                self.found(location, "header_value");
                format!("{name}{}{REDACTED}", &rest[..sep_len])
            }
            None if !is_reference(arg) => {
                self.found(location, "header_value");
                REDACTED.to_owned()
            }
            None => arg.to_owned(),
        }
    }

    /// `NAME=value` in an env position: the value goes (env values are never sent).
    fn env_value(&mut self, location: &str, name: &str, value: &str) -> String {
        if is_reference(value) {
            return format!("{name}={value}");
        }
        self.found(location, "env_value");
        format!("{name}={REDACTED}")
    }

    /// Words of token characters that look random: API keys of shapes not listed.
    fn high_entropy(&mut self, location: &str, text: &str) -> String {
        let mut hit = false;
        let out: String = split_keep(text)
            .into_iter()
            .map(|(word, is_word)| {
                if is_word && looks_random(word, 32) {
                    hit = true;
                    REDACTED.to_owned()
                } else {
                    word.to_owned()
                }
            })
            .collect();
        if hit {
            self.found(location, "high_entropy_string");
        }
        out
    }
}

/// `Bearer ${TOKEN}`: a value made only of references and scheme words.
fn references_only(value: &str) -> bool {
    value.split_whitespace().all(|w| {
        is_reference(w)
            || matches!(
                w.to_ascii_lowercase().as_str(),
                "bearer" | "basic" | "token"
            )
    })
}

/// A user name as people write them in URLs (`git`, `deploy`, `alice.b`), not a token.
fn plain_username(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && user.chars().filter(char::is_ascii_digit).count() < 5
}

/// A URL path segment that is a credential: random-looking, a long hex string, or a
/// UUID (gateways put per-user keys in the path).
fn token_segment(seg: &str) -> bool {
    let hexish = seg
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '-')
        .count()
        == seg.len();
    let uuid = seg.len() == 36 && hexish && seg.matches('-').count() == 4;
    // One opaque word of letters and many digits (`a1b2c3d4e5f6a7b8c9d0`): a key in
    // a path, whatever its case. Words joined by dashes (`server-filesystem`) are not.
    let digits = seg.chars().filter(char::is_ascii_digit).count();
    let opaque = seg.len() >= 16
        && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && digits >= 5
        && seg.chars().any(|c| c.is_ascii_alphabetic())
        && shannon(seg) >= 3.3;
    (hexish && seg.len() >= 32 && digits > 0) || uuid || opaque || looks_random(seg, 20)
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '=')
}

/// Split into runs of token characters and the rest, keeping everything.
fn split_keep(text: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut current: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let kind = token_char(c);
        match current {
            Some(k) if k == kind => {}
            Some(k) => {
                out.push((&text[start..i], k));
                start = i;
                current = Some(kind);
            }
            None => current = Some(kind),
        }
    }
    if let Some(k) = current {
        out.push((&text[start..], k));
    }
    out
}

/// Whether `word` (at least `min_len` long) looks like a random key: letters and
/// digits mixed, dense (high Shannon entropy), not a hex digest, a path, or words
/// joined by dashes.
fn looks_random(word: &str, min_len: usize) -> bool {
    if word.len() < min_len
        || word.contains('/') && word.split('/').filter(|p| !p.is_empty()).count() > 1
    {
        return false;
    }
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    let has_upper = word.chars().any(|c| c.is_ascii_uppercase());
    let has_lower = word.chars().any(|c| c.is_ascii_lowercase());
    if !(has_digit && (has_upper || has_lower)) {
        return false;
    }
    // Hex digests (commit ids, sha256 pins) are identifiers, not secrets.
    if word.chars().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    // Words joined by dashes or underscores (package names) are not random.
    if word.split(['-', '_', '.']).filter(|p| p.len() >= 3).count() >= 3
        && word.split(['-', '_', '.']).all(|p| !looks_dense(p))
    {
        return false;
    }
    let needed = if word.len() >= 32 { 4.0 } else { 3.7 };
    shannon(word) >= needed && (word.len() >= 32 || (has_upper && has_lower))
}

fn looks_dense(part: &str) -> bool {
    part.len() >= 16 && part.chars().any(|c| c.is_ascii_digit())
}

fn shannon(word: &str) -> f64 {
    let mut counts = [0u32; 128];
    let mut n = 0u32;
    for b in word.bytes().filter(|b| b.is_ascii()) {
        counts[usize::from(b)] += 1;
        n += 1;
    }
    let n = f64::from(n.max(1));
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fake secrets of each recognised shape (none is real).
    pub const PLANTED: &[(&str, &str)] = &[
        ("github_token", "ghp_R4nd0mLooking1234567890abcdefGHIJKL"),
        (
            "github_token",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
        ),
        ("gitlab_token", "glpat-AbCdEfGhIjKlMnOpQrSt"),
        ("slack_token", "xoxb-1234567890-0987654321-AbCdEfGhIjKl"),
        (
            "anthropic_key",
            "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123",
        ),
        ("openai_key", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
        ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("google_api_key", "AIzaSyA1234567890abcdefghijklmnopqrstu"),
        ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
        (
            "telegram_bot_token",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        ),
        ("twilio_api_key", "SK0123456789abcdef0123456789abcdef"),
        ("mailgun_key", "key-0123456789abcdefghijklmnopqrstuv"),
        (
            "discord_bot_token",
            "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.AbCdEfGhIjKlMnOpQrStUvWxYz0123456",
        ),
        (
            "jwt",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
    ];

    #[test]
    fn every_shape_is_redacted_and_named() {
        for (kind, secret) in PLANTED {
            let mut r = Redactor::default();
            let out = r.text(
                "args[1]",
                &format!("--header=Authorization: Bearer {secret}"),
            );
            assert!(!out.contains(secret), "{kind}: {out}");
            assert!(out.contains(REDACTED));
            assert!(r.findings.iter().any(|f| f.location == "args[1]"), "{kind}");
        }
    }

    #[test]
    fn url_passwords_and_secret_query_values_are_redacted() {
        let mut r = Redactor::default();
        let out = r.text(
            "args[2]",
            "postgresql://admin:Sup3rS3cret!@db.internal:5432/app",
        );
        assert_eq!(out, "postgresql://admin:[REDACTED]@db.internal:5432/app");
        let out = r.text(
            "url",
            "https://mcp.example.com/sse?api_key=abc123def&team=x",
        );
        assert_eq!(out, "https://mcp.example.com/sse?api_key=[REDACTED]&team=x");
        let kinds: Vec<&str> = r.findings.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["url_password", "url_query_secret"]);
        let mut clean = Redactor::default();
        assert_eq!(
            clean.text("url", "postgresql://localhost/app"),
            "postgresql://localhost/app"
        );
        assert_eq!(
            clean.text("url", "postgresql://u:${DB_PASSWORD}@h/db"),
            "postgresql://u:${DB_PASSWORD}@h/db"
        );
        assert!(clean.findings.is_empty());
    }

    #[test]
    fn secret_flags_redact_their_values() {
        let args: Vec<String> = [
            "-y",
            "server",
            "--api-key",
            "plainvalue123",
            "--token=abc",
            "--password",
            "${PW}",
            "--verbose",
            "x",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut r = Redactor::default();
        let out = r.args("args", "npx", &args);
        assert_eq!(
            out,
            [
                "-y",
                "server",
                "--api-key",
                "[REDACTED]",
                "--token=[REDACTED]",
                "--password",
                "${PW}",
                "--verbose",
                "x"
            ]
        );
        assert_eq!(r.findings.len(), 2);
        assert_eq!(r.findings[0].location, "args[3]");
    }

    fn redact_args(program: &str, args: &[&str]) -> (Vec<String>, Vec<SecretFinding>) {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let mut r = Redactor::default();
        let out = r.args("args", program, &args);
        (out, r.findings)
    }

    /// Every family of secret shapes the agent must catch, each with a unique value
    /// that must not survive, in the argument lists clients really write.
    #[test]
    fn secrets_are_found_by_position_and_name() {
        let cases: &[(&str, &[&str], &str)] = &[
            (
                "npx",
                &[
                    "-y",
                    "mcp-remote",
                    "https://x.example/mcp",
                    "--header",
                    "Authorization: Bearer summer2024!a",
                ],
                "summer2024!a",
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://x",
                    "--header",
                    "Authorization:${AUTH}",
                    "--header=X-Api-Key:winter2024!b",
                ],
                "winter2024!b",
            ),
            (
                "npx",
                &["mcp-remote", "https://x", "-H", "Cookie: sid=autumn2024c"],
                "autumn2024c",
            ),
            (
                "docker",
                &[
                    "run",
                    "-i",
                    "--rm",
                    "-e",
                    "GITHUB_TOKEN=spring2024!d",
                    "ghcr.io/github/github-mcp-server",
                ],
                "spring2024!d",
            ),
            (
                "docker",
                &["run", "--env=DB_URL=plainvalue2024e", "mcp/postgres"],
                "plainvalue2024e",
            ),
            (
                "node",
                &["server.js", "API_KEY=hunter2hunter2f"],
                "hunter2hunter2f",
            ),
            (
                "env",
                &[
                    "OPENAI_API_KEY=letmein2024g",
                    "LOG=debug",
                    "npx",
                    "-y",
                    "pkg",
                ],
                "letmein2024g",
            ),
            (
                "env",
                &["LOG_LEVEL=notsecretbutenv2024h", "npx", "pkg"],
                "notsecretbutenv2024h",
            ),
            (
                "cmd",
                &["/c", "set API_TOKEN=cmdsecret2024i&& npx -y pkg"],
                "cmdsecret2024i",
            ),
            (
                "cmd",
                &["/c", "set", "TOKEN=cmdsplit2024j&&", "npx", "pkg"],
                "cmdsplit2024j",
            ),
            (
                "bash",
                &[
                    "-c",
                    "export SLACK_TOKEN='shellsecret 2024k' && exec npx pkg",
                ],
                "shellsecret 2024k",
            ),
            (
                "bash",
                &[
                    "-c",
                    "GH_TOKEN=inline2024l npx -y @modelcontextprotocol/server-github",
                ],
                "inline2024l",
            ),
            (
                "mysql-mcp",
                &["-h", "db", "-u", "root", "-pMysqlPass2024m"],
                "MysqlPass2024m",
            ),
            ("mysql", &["-pmysqlpass"], "mysqlpass"),
            ("some-mcp", &["-k", "shortflag2024n"], "shortflag2024n"),
            (
                "some-mcp",
                &["--bearer", "bearerflag2024o"],
                "bearerflag2024o",
            ),
            (
                "some-mcp",
                &["--client-secret=clientsec2024p"],
                "clientsec2024p",
            ),
            (
                "some-mcp",
                &["--auth-token", "authtok2024q"],
                "authtok2024q",
            ),
            (
                "npx",
                &[
                    "-y",
                    "pkg",
                    "--config",
                    r#"{"apiKey": "jsonsecret2024r", "region": "eu"}"#,
                ],
                "jsonsecret2024r",
            ),
            (
                "npx",
                &[
                    "-y",
                    "pkg",
                    r#"{"auth":{"client_secret":"nestedjson2024s"}}"#,
                ],
                "nestedjson2024s",
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://mcp.example.com/sse#access_token=fragment2024t",
                ],
                "fragment2024t",
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://tokenuser2024Uabc@mcp.example.com/sse",
                ],
                "tokenuser2024Uabc",
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://mcp.pipedream.net/3f2c1a9e-5b7d-4e21-9c3a-8d6f0b1e2a47/gmail",
                ],
                "3f2c1a9e-5b7d-4e21-9c3a-8d6f0b1e2a47",
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://actions.example.com/mcp/Zk3mQ9pL2xV7rT4nB8wY/sse",
                ],
                "Zk3mQ9pL2xV7rT4nB8wY",
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://mcp.example.com/sse/9f2c4e1a7b3d8c6e5f0a1b",
                ],
                "9f2c4e1a7b3d8c6e5f0a1b",
            ),
            (
                "crush-proxy",
                &["--header", "X-Api-Key", "shortkey42"],
                "shortkey42",
            ),
            (
                "mcp-mysql",
                &["serve", "root:goDsnPass1@tcp(localhost:3306)/app"],
                "goDsnPass1",
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://mcp.example.com/u/k3j4h5g6f7d8s9a0qwer/mcp",
                ],
                "k3j4h5g6f7d8s9a0qwer",
            ),
            (
                "uvx",
                &[
                    "mcp-server-postgres",
                    "postgresql://admin:p@ss/w0rd@db.internal/app",
                ],
                "p@ss",
            ),
            (
                "uvx",
                &[
                    "mcp-mssql",
                    "Server=db;User Id=sa;Password=connstr2024v;Database=app",
                ],
                "connstr2024v",
            ),
            ("npx", &["pkg", "--token", "summer2024!"], "summer2024!"),
            ("npx", &["pkg", "--password=Tr0ub4dor&3"], "Tr0ub4dor&3"),
            (
                "python",
                &["-m", "srv", "--db-password", "correcthorse"],
                "correcthorse",
            ),
        ];
        for (program, args, secret) in cases {
            let (out, findings) = redact_args(program, args);
            let joined = out.join(" ");
            assert!(
                !joined.contains(secret),
                "{program} {args:?} leaked: {joined}"
            );
            assert!(!findings.is_empty(), "{program} {args:?}: no finding");
            assert!(
                findings.iter().all(|f| f.location.starts_with("args[")),
                "{findings:?}"
            );
        }
    }

    #[test]
    fn non_secret_values_stay_readable() {
        let cases: &[(&str, &[&str])] = &[
            (
                "docker",
                &[
                    "run",
                    "-i",
                    "--rm",
                    "-e",
                    "GITHUB_TOKEN",
                    "-v",
                    "/home/a/data:/data",
                    "ghcr.io/github/github-mcp-server:v0.9.0",
                ],
            ),
            (
                "npx",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem@2025.8.21",
                    "/home/alice/projects",
                    "~/notes",
                ],
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://mcp.notion.com/mcp",
                    "--header",
                    "Authorization: Bearer ${NOTION_TOKEN}",
                ],
            ),
            (
                "npx",
                &[
                    "-y",
                    "pkg",
                    "--key-file",
                    "/etc/ssl/private/key.pem",
                    "--port",
                    "3000",
                ],
            ),
            (
                "uvx",
                &["mcp-server-fetch==2025.4.7", "--user-agent=MyBot/1.0"],
            ),
            (
                "npx",
                &[
                    "-y",
                    "@upstash/context7-mcp",
                    "--api-key",
                    "${CONTEXT7_API_KEY}",
                ],
            ),
            (
                "node",
                &[
                    "/opt/servers/weather/build/index.js",
                    "--max-tokens",
                    "1000",
                    "--no-auth",
                ],
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://api.githubcopilot.com/mcp/",
                    "--transport",
                    "http-only",
                ],
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://mcp.example.com/v2024/servers/github-mcp-server/sse",
                ],
            ),
            (
                "npx",
                &[
                    "mcp-remote",
                    "https://registry.example.com/packages/server_filesystem2/latest",
                ],
            ),
            (
                "uvx",
                &["--from", "git+https://github.com/org/repo@main", "repo-mcp"],
            ),
            ("npx", &["-y", "pkg", "--api-key", "YOUR_API_KEY_HERE"]),
            (
                "docker",
                &[
                    "run",
                    "-p",
                    "8080:80",
                    "mcp/fetch@sha256:4a8bb9b0c2f0d1f6e7e12f3e5b0c1d2e3f4a5b6c7d8e9f00112233445566778",
                ],
            ),
        ];
        for (program, args) in cases {
            let (out, findings) = redact_args(program, args);
            let expected: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(out, expected, "{program}");
            assert!(findings.is_empty(), "{program} {args:?}: {findings:?}");
        }
    }

    #[test]
    fn names_say_secret_or_not() {
        for name in [
            "API_KEY",
            "apiKey",
            "--api-key",
            "X-Auth-Token",
            "clientSecret",
            "GITHUB_PERSONAL_ACCESS_TOKEN",
            "db_password",
            "Authorization",
            "--pat",
            "DSN",
            "accesstoken",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "API_KEY_FILE",
            "--key-file",
            "TOKEN_URL",
            "AUTH_TYPE",
            "--no-auth",
            "--max-tokens",
            "CLIENT_ID",
            "monkey",
            "--path",
            "LOG_LEVEL",
            "--keyboard",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn ordinary_arguments_are_left_alone() {
        let mut r = Redactor::default();
        for arg in [
            "@modelcontextprotocol/server-filesystem@2025.8.21",
            "/home/alice/projects/some-long-project-directory-name",
            "mcp/fetch@sha256:4a8bb9b0c2f0d1f6e7e12f3e5b0c1d2e3f4a5b6c7d8e9f00112233445566778",
            "--allowed-origins=https://example.com",
            "awslabs.aws-documentation-mcp-server@latest",
            "C:\\Users\\alice\\AppData\\Roaming\\npm\\node_modules\\pkg\\dist\\index.js",
            "mcp-server-kubernetes-with-a-very-long-descriptive-name",
        ] {
            assert_eq!(r.text("args[0]", arg), arg);
        }
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(r.text("x", "Zk3mQ9pL2xV7rT4nB8wY6cJ1hF5dG0sA"), REDACTED);
    }
}
