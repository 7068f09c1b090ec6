//! Secrets never leave the machine. Arguments, URLs and command lines are scanned for
//! secrets; each one found is replaced by `[REDACTED]` and recorded as a finding
//! `{location, kind}` without its value. (Env var values and header values are never
//! read into a record at all: only their names are.)
//!
//! Recognised: GitHub, GitLab, Slack, OpenAI, Anthropic, Google, Stripe, AWS and npm
//! tokens by shape; JWTs; private-key blocks; passwords in `scheme://user:pass@host`;
//! values of secret-named URL query parameters and of `--token`/`--api-key`/
//! `--password`-style flags; and long high-entropy strings.

use std::sync::LazyLock;

use mcpwatch_protocol::server::{REDACTED, SecretFinding};
use regex::Regex;

struct Shape {
    kind: &'static str,
    re: Regex,
}

fn shape(kind: &'static str, pattern: &str) -> Shape {
    // The patterns are constants checked by the tests below.
    #[allow(clippy::expect_used)]
    Shape {
        kind,
        re: Regex::new(pattern).expect("secret pattern compiles"),
    }
}

static SHAPES: LazyLock<Vec<Shape>> = LazyLock::new(|| {
    vec![
        shape("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        shape(
            "github_token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})",
        ),
        shape("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
        shape("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
        shape("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
        shape("openai_key", r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"),
        shape("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
        shape("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
        shape("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        shape("npm_token", r"\bnpm_[A-Za-z0-9]{36}"),
        shape(
            "jwt",
            r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        ),
    ]
});

/// `scheme://user:password@` — the password part.
static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)([^@/\s]+)(@)")
        .expect("url pattern compiles")
});

/// `?token=...` / `&api_key=...`.
static QUERY_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r"(?i)([?&](?:[a-z0-9_\-]*(?:token|key|secret|password|passwd|pwd|auth|signature|sig|credential)[a-z0-9_\-]*)=)([^&#\s]+)")
        .expect("query pattern compiles")
});

/// Flags whose value is a secret.
static SECRET_FLAG: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r"(?i)^--?(?:[a-z0-9]+[-_])*(?:token|api[-_]?key|apikey|key|secret|password|passwd|pwd|pat|auth|credentials?|access[-_]key|client[-_]secret)$")
        .expect("flag pattern compiles")
});

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

    /// Redact secrets of known shapes, URL passwords and secret query values in `text`.
    pub fn text(&mut self, location: &str, text: &str) -> String {
        let mut out = text.to_owned();
        if URL_PASSWORD.is_match(&out)
            && !is_reference(
                &URL_PASSWORD
                    .captures(&out)
                    .map(|c| c[2].to_owned())
                    .unwrap_or_default(),
            )
        {
            out = URL_PASSWORD
                .replace_all(&out, format!("${{1}}{REDACTED}${{3}}"))
                .into_owned();
            self.found(location, "url_password");
        }
        let mut query_hit = false;
        out = QUERY_SECRET
            .replace_all(&out, |c: &regex::Captures<'_>| {
                if is_reference(&c[2]) || &c[2] == REDACTED {
                    c[0].to_owned()
                } else {
                    query_hit = true;
                    format!("{}{REDACTED}", &c[1])
                }
            })
            .into_owned();
        if query_hit {
            self.found(location, "url_query_secret");
        }
        for shape in SHAPES.iter() {
            if shape.re.is_match(&out) {
                out = shape.re.replace_all(&out, REDACTED).into_owned();
                self.found(location, shape.kind);
            }
        }
        out = self.high_entropy(location, &out);
        out
    }

    /// Redact a list of arguments: each by [`Self::text`], plus the value of every
    /// secret-named flag (`--token VALUE` or `--token=VALUE`).
    pub fn args(&mut self, prefix: &str, args: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(args.len());
        let mut secret_next = false;
        for (i, arg) in args.iter().enumerate() {
            let location = format!("{prefix}[{i}]");
            if secret_next {
                secret_next = false;
                if !arg.starts_with('-') && !is_reference(arg) {
                    out.push(REDACTED.to_owned());
                    self.found(&location, "flag_value");
                    continue;
                }
            }
            if let Some((flag, value)) = arg.split_once('=')
                && SECRET_FLAG.is_match(flag)
            {
                if !value.is_empty() && !is_reference(value) {
                    out.push(format!("{flag}={REDACTED}"));
                    self.found(&location, "flag_value");
                    continue;
                }
            } else if SECRET_FLAG.is_match(arg) {
                secret_next = true;
            }
            out.push(self.text(&location, arg));
        }
        out
    }

    /// Words of at least 32 characters from a token alphabet with high Shannon
    /// entropy and both letters and digits: API keys of shapes not listed above.
    fn high_entropy(&mut self, location: &str, text: &str) -> String {
        let mut hit = false;
        let out: String = split_keep(text)
            .into_iter()
            .map(|(word, is_word)| {
                if is_word && looks_random(word) {
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

/// `${VAR}`, `${input:x}`, `$VAR`, `{env:X}`, `%VAR%`: a reference, not a secret.
fn is_reference(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    (v.starts_with("${") && v.ends_with('}'))
        || (v.starts_with('$')
            && v[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && v.len() > 1)
        || (v.starts_with("{env:") || v.starts_with("{file:"))
        || (v.starts_with('%') && v.ends_with('%') && v.len() > 2)
        || v.starts_with('<') && v.ends_with('>')
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

fn looks_random(word: &str) -> bool {
    if word.len() < 32
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
    if word.split(['-', '_']).filter(|p| p.len() >= 3).count() >= 3
        && word.split(['-', '_']).all(|p| !looks_dense(p))
    {
        return false;
    }
    shannon(word) >= 4.0
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
        let out = r.args("args", &args);
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
