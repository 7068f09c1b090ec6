//! What names and values say: secret-sounding names, references and placeholders,
//! paths, flags that take secrets, and how random a word looks.

use mcpwatch_protocol::server::REDACTED;

/// Words of a name that make its value a secret.
pub(super) const SECRET_WORDS: &[&str] = &[
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
pub(super) const SECRET_COMPOUNDS: &[&str] = &[
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
pub(super) const NOT_SECRET_WORDS: &[&str] = &[
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
pub(super) const HEADER_FLAGS: &[&str] =
    &["-h", "--header", "--headers", "--http-header", "-header"];
/// Flags whose next argument is an env assignment `NAME=value`.
pub(super) const ENV_FLAGS: &[&str] = &[
    "-e",
    "--env",
    "--env-var",
    "--set-env",
    "--environment",
    "-env",
];
/// Short flags whose value is a secret.
pub(super) const SHORT_SECRET_FLAGS: &[&str] = &["-k", "-a"];
/// Database clients whose `-pX` is the password.
pub(super) const DB_CLIENTS: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mariadb",
    "mariadb-dump",
    "mysqlsh",
    "mycli",
];

/// The words of a name: split at separators and at lower→upper case changes.
pub(super) fn words(name: &str) -> Vec<String> {
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
pub(super) fn is_reference(value: &str) -> bool {
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
pub(super) fn looks_like_path(value: &str) -> bool {
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

/// `Bearer ${TOKEN}`: a value made only of references and scheme words.
pub(super) fn references_only(value: &str) -> bool {
    value.split_whitespace().all(|w| {
        is_reference(w)
            || matches!(
                w.to_ascii_lowercase().as_str(),
                "bearer" | "basic" | "token"
            )
    })
}

/// A user name as people write them in URLs (`git`, `deploy`, `alice.b`), not a token.
pub(super) fn plain_username(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && user.chars().filter(char::is_ascii_digit).count() < 5
}

/// A URL path segment that is a credential: random-looking, a long hex string, or a
/// UUID (gateways put per-user keys in the path).
pub(super) fn token_segment(seg: &str) -> bool {
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

pub(super) fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '=')
}

/// Split into runs of token characters and the rest, keeping everything.
pub(super) fn split_keep(text: &str) -> Vec<(&str, bool)> {
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
pub(super) fn looks_random(word: &str, min_len: usize) -> bool {
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

pub(super) fn looks_dense(part: &str) -> bool {
    part.len() >= 16 && part.chars().any(|c| c.is_ascii_digit())
}

pub(super) fn shannon(word: &str) -> f64 {
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
