//! What secrets look like: token shapes of known services, and the patterns of
//! connection strings, URLs, headers and assignments that hold them.

use std::sync::LazyLock;

use regex_lite::Regex;

/// Token shapes of known services.
pub(super) struct Shapes {
    pub(super) list: Vec<(&'static str, &'static [&'static str], Regex)>,
}

/// The patterns run on short texts (one argument, one URL): `regex-lite`, whose
/// compiled patterns take a fraction of the memory of `regex`'s, is fast enough and
/// keeps the idle agent small. Its classes (`\\b`, `\\s`, `\\w`) are ASCII.
pub(super) fn re(pattern: &str) -> Regex {
    // The patterns are constants checked by the tests below.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("secret pattern compiles")
}

/// A token shape: its kind, literals one of which its matches contain (the regex runs
/// only on texts that hold one), and the pattern.
pub(super) fn shape(
    kind: &'static str,
    hints: &'static [&'static str],
    pattern: &'static str,
) -> (&'static str, &'static [&'static str], &'static str) {
    (kind, hints, pattern)
}

pub(super) static SHAPES: LazyLock<Shapes> = LazyLock::new(|| {
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
pub(super) static URL_AUTHORITY: LazyLock<Regex> =
    LazyLock::new(|| re(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/\s?#]*)@"));

/// `?name=value`, `&name=value`, `#name=value`, `;name=value` in a URL.
pub(super) static URL_PARAM: LazyLock<Regex> =
    LazyLock::new(|| re(r"([?&#;])([A-Za-z0-9_.\-\[\]]+)=([^&#;\s]*)"));

/// An http(s)/ws(s) URL's path.
pub(super) static URL_PATH: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(?:https?|wss?)://[^/\s?#]+(/[^\s?#]*)"));

/// `Bearer X`, `Basic X`, `Token X`, `Bot X`.
pub(super) static AUTH_SCHEME: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\b((?i:bearer|basic)|Token|Bot)(\s+)([^\s"',;]{6,})"#));

/// `Name: value` (a header written in a line).
pub(super) static COLON_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(^|[\s"'{,;(])([A-Za-z][A-Za-z0-9_\-]*)(\s*:\s*)("[^"]*"|'[^']*'|[^\s,;"'}]+)"#)
});

/// `NAME=value`, optionally after `set`, `export` or `env` (shell lines); the value
/// may be quoted and ends at a shell separator.
pub(super) static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(\b(?:set|export|env|setx)\s+"?)?\b([A-Za-z_][A-Za-z0-9_.\-]*)(=)("[^"]*"|'[^']*'|[^\s&;,|"'<>]*)"#,
    )
});

/// A flag and its value in one line: `--token X`, `--token=X`, `-H "Name: X"`.
pub(super) static LINE_FLAG: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(^|\s)(--?[A-Za-z][A-Za-z0-9_.\-]*)(=|\s+)("[^"]*"|'[^']*'|[^\s"']+)"#));

/// `"name": "value"` (a JSON or JSON-like document in an argument).
pub(super) static JSON_PAIR: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(["'])([^"'\\]+)(["']\s*:\s*)(["'])((?:[^"'\\]|\\.)*)(["'])"#));

/// `Password=X;` in a semicolon-separated connection string.
/// `user:password@tcp(host)/db`: a Go / MySQL driver DSN, which has no scheme.
pub(super) static DSN_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| re(r"(^|[\s=\x22'])([A-Za-z0-9_.\-]*:)([^@\s/:]+)(@(?:tcp|unix|udp)\()"));

pub(super) static CONN_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)((?:^|;)\s*(?:password|pwd|passwd|user\s+password|account\s*key|shared\s*access\s*key|accesskey|sharedaccesskey)\s*=\s*)([^;]*)",
    )
});
