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

mod shapes;
mod words;

use mcpwatch_protocol::launch::basename;
use mcpwatch_protocol::server::{REDACTED, SecretFinding};
use std::sync::LazyLock;

use regex_lite::{Captures, Regex};

use shapes::*;
use words::*;

/// Collects findings while redacting one server's strings.
#[derive(Default)]
pub struct Redactor {
    pub findings: Vec<SecretFinding>,
}

/// What the next argument is, by the flag before it.
#[derive(Clone, Copy, PartialEq)]
enum Next {
    Plain,
    Secret,
    Header,
    Env,
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
            let word = match self.positional(&location, arg, expected, &mut next) {
                Some(word) => word,
                None => self.word(&location, arg, db_client, &mut next),
            };
            out.push(word);
        }
        out
    }

    /// The word after a flag that takes a secret, a header or an assignment, redacted
    /// as that position says; `None` where the position says nothing of it.
    fn positional(
        &mut self,
        location: &str,
        arg: &str,
        expected: Next,
        next: &mut Next,
    ) -> Option<String> {
        match expected {
            Next::Secret
                if !arg.starts_with('-') && !is_reference(arg) && !looks_like_path(arg) =>
            {
                self.found(location, "flag_value");
                Some(REDACTED.to_owned())
            }
            Next::Header if !arg.starts_with('-') => {
                if arg.contains([':', '=']) {
                    Some(self.header_arg(location, arg))
                } else {
                    // `--header NAME VALUE` (Crush, some proxies): the name stays,
                    // the next word is the value.
                    *next = Next::Secret;
                    Some(arg.to_owned())
                }
            }
            Next::Env if !arg.starts_with('-') => arg
                .split_once('=')
                .map(|(name, value)| self.env_value(location, name, value)),
            _ => None,
        }
    }

    /// One word by what it is: `--flag=value` (a header, an assignment, a secret), a
    /// flag whose next word is a value (noted in `next`), a database client's `-pX`,
    /// else text.
    fn word(&mut self, location: &str, arg: &str, db_client: bool, next: &mut Next) -> String {
        let lower = arg.to_ascii_lowercase();
        if let Some((flag, value)) = arg.split_once('=')
            && flag.starts_with('-')
        {
            let flag_lower = flag.to_ascii_lowercase();
            if HEADER_FLAGS.contains(&flag_lower.as_str()) {
                return format!("{flag}={}", self.header_arg(location, value));
            }
            if ENV_FLAGS.contains(&flag_lower.as_str())
                && let Some((name, v)) = value.split_once('=')
            {
                return format!("{flag}={}", self.env_value(location, name, v));
            }
            if is_secret_name(flag) && !is_reference(value) && !looks_like_path(value) {
                self.found(location, "flag_value");
                return format!("{flag}={REDACTED}");
            }
        } else if HEADER_FLAGS.contains(&lower.as_str()) {
            *next = Next::Header;
        } else if ENV_FLAGS.contains(&lower.as_str()) {
            *next = Next::Env;
        } else if arg.starts_with('-') && (is_secret_name(arg) || SHORT_SECRET_FLAGS.contains(&arg))
        {
            *next = Next::Secret;
        } else if db_client
            && let Some(password) = arg.strip_prefix("-p")
            && !password.is_empty()
            && !arg.starts_with("--")
            && !is_reference(password)
        {
            self.found(location, "flag_value");
            return format!("-p{REDACTED}");
        }
        self.text(location, arg)
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
