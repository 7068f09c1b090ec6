//! The limits a report must respect, defined once for both sides: the collector
//! refuses a report that breaks one (422, or 413 for the body size), and the agent
//! fits what it found into them before it sends ([`fit_server`], [`fit_config_error`]),
//! so that one user's odd file never makes the whole machine's report unsendable.
//!
//! Every text limit counts characters (Unicode scalar values), never bytes.

use crate::server::ServerRecord;
use crate::wire::{ConfigError, ReportRequest};

/// The largest request body the collector accepts by default (it can be configured).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The most servers one report may hold.
pub const MAX_SERVERS_PER_REPORT: usize = 10_000;
/// The most config errors one report may hold.
pub const MAX_CONFIG_ERRORS: usize = 200;
/// A server name: 1 to this many characters once trimmed.
pub const MAX_NAME_CHARS: usize = 512;
/// `command` (a whole launch line) and `url`.
pub const MAX_LINE_CHARS: usize = 8192;
/// One argument, a path (`scope`, `config_path`, `project_path`), `server_type`, a
/// package name.
pub const MAX_TEXT_CHARS: usize = 2048;
/// Short labels: client, OS user, env var and header names, tool names, package
/// ecosystem and version, secret finding fields.
pub const MAX_LABEL_CHARS: usize = 256;
/// Items in one list field (`args`, `env_vars`, `header_names`, `scope_paths`,
/// `auto_approve`, `secrets_found`).
pub const MAX_LIST_ITEMS: usize = 256;
/// A config error's message.
pub const MAX_ERROR_CHARS: usize = 512;
/// One server record, as JSON: every list of servers a person pages through stays
/// small, however an agent fills its fields.
pub const MAX_SERVER_BYTES: usize = 64 * 1024;

/// The name a server with a blank name is reported under.
pub const UNNAMED: &str = "(unnamed)";

/// A field of a report that breaks a limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Violation {
    /// The JSON path of the field (`servers[3].args[2]`).
    pub field: String,
    pub message: String,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn text(field: impl FnOnce() -> String, value: &str, max: usize) -> Result<(), Violation> {
    let n = chars(value);
    if n > max {
        return Err(Violation {
            field: field(),
            message: format!("at most {max} characters are accepted, got {n}"),
        });
    }
    Ok(())
}

fn opt(field: impl FnOnce() -> String, value: Option<&str>, max: usize) -> Result<(), Violation> {
    value.map_or(Ok(()), |v| text(field, v, max))
}

fn list<T>(
    field: &str,
    items: &[T],
    max_chars: usize,
    get: impl Fn(&T) -> &str,
) -> Result<(), Violation> {
    if items.len() > MAX_LIST_ITEMS {
        return Err(Violation {
            field: field.to_owned(),
            message: format!(
                "at most {MAX_LIST_ITEMS} items are accepted, got {}",
                items.len()
            ),
        });
    }
    for (i, item) in items.iter().enumerate() {
        text(|| format!("{field}[{i}]"), get(item), max_chars)?;
    }
    Ok(())
}

/// Check one server of a report (`at` is its index, for the field path).
pub fn check_server(at: usize, s: &ServerRecord) -> Result<(), Violation> {
    let f = |name: &str| format!("servers[{at}].{name}");
    let name = chars(s.server_name.trim());
    if name == 0 || name > MAX_NAME_CHARS {
        return Err(Violation {
            field: f("server_name"),
            message: format!("must be 1 to {MAX_NAME_CHARS} characters long once trimmed"),
        });
    }
    opt(
        || f("server_type"),
        s.server_type.as_deref(),
        MAX_TEXT_CHARS,
    )?;
    opt(|| f("command"), s.command.as_deref(), MAX_LINE_CHARS)?;
    opt(|| f("url"), s.url.as_deref(), MAX_LINE_CHARS)?;
    opt(|| f("scope"), s.scope.as_deref(), MAX_TEXT_CHARS)?;
    opt(|| f("client"), s.client.as_deref(), MAX_LABEL_CHARS)?;
    opt(
        || f("config_path"),
        s.config_path.as_deref(),
        MAX_TEXT_CHARS,
    )?;
    opt(
        || f("project_path"),
        s.project_path.as_deref(),
        MAX_TEXT_CHARS,
    )?;
    opt(|| f("os_user"), s.os_user.as_deref(), MAX_LABEL_CHARS)?;
    opt(
        || f("fingerprint"),
        s.fingerprint.as_deref(),
        MAX_LABEL_CHARS,
    )?;
    list(&f("args"), &s.args, MAX_TEXT_CHARS, |a| a)?;
    list(&f("env_vars"), &s.env_vars, MAX_LABEL_CHARS, |a| a)?;
    list(&f("header_names"), &s.header_names, MAX_LABEL_CHARS, |a| a)?;
    list(&f("scope_paths"), &s.scope_paths, MAX_TEXT_CHARS, |a| a)?;
    list(&f("auto_approve"), &s.auto_approve, MAX_LABEL_CHARS, |a| a)?;
    list(
        &f("secrets_found"),
        &s.secrets_found,
        MAX_LABEL_CHARS,
        |x| &x.location,
    )?;
    list(
        &f("secrets_found"),
        &s.secrets_found,
        MAX_LABEL_CHARS,
        |x| &x.kind,
    )?;
    if let Some(l) = &s.launch {
        text(|| f("launch.program"), &l.program, MAX_TEXT_CHARS)?;
        text(|| f("launch.runs"), &l.runs, MAX_TEXT_CHARS)?;
        list(&f("launch.wrappers"), &l.wrappers, MAX_LABEL_CHARS, |w| w)?;
    }
    if let Some(p) = &s.package {
        text(|| f("package.ecosystem"), &p.ecosystem, MAX_LABEL_CHARS)?;
        text(|| f("package.name"), &p.name, MAX_TEXT_CHARS)?;
        opt(
            || f("package.version"),
            p.version.as_deref(),
            MAX_LABEL_CHARS,
        )?;
    }
    let bytes = server_bytes(s);
    if bytes > MAX_SERVER_BYTES {
        return Err(Violation {
            field: format!("servers[{at}]"),
            message: format!(
                "a server record may be at most {MAX_SERVER_BYTES} bytes as JSON, got {bytes}"
            ),
        });
    }
    Ok(())
}

/// The record's size as JSON: exact when it could be near the limit, else a bound
/// from its texts' lengths (a report's usual servers are checked without serialising).
fn server_bytes(s: &ServerRecord) -> usize {
    let texts = [
        &s.server_name,
        s.server_type.as_deref().unwrap_or_default(),
        s.command.as_deref().unwrap_or_default(),
        s.scope.as_deref().unwrap_or_default(),
        s.client.as_deref().unwrap_or_default(),
        s.config_path.as_deref().unwrap_or_default(),
        s.project_path.as_deref().unwrap_or_default(),
        s.os_user.as_deref().unwrap_or_default(),
        s.url.as_deref().unwrap_or_default(),
        s.fingerprint.as_deref().unwrap_or_default(),
    ];
    let lists = [
        &s.env_vars,
        &s.scope_paths,
        &s.args,
        &s.header_names,
        &s.auto_approve,
    ];
    let mut text: usize = texts.iter().map(|t| t.len() + 16).sum();
    text += lists
        .iter()
        .flat_map(|l| l.iter())
        .map(|t| t.len() + 4)
        .sum::<usize>();
    text += s
        .secrets_found
        .iter()
        .map(|f| f.location.len() + f.kind.len() + 32)
        .sum::<usize>();
    if let Some(p) = &s.package {
        text += p.ecosystem.len() + p.name.len() + p.version.as_deref().map_or(0, str::len) + 64;
    }
    if let Some(l) = &s.launch {
        text += l.program.len()
            + l.runs.len()
            + l.wrappers.iter().map(|w| w.len() + 4).sum::<usize>()
            + 64;
    }
    // Field names and punctuation stay under 1 KiB; escaping can make a text six
    // times longer (`\u0000`).
    if (text * 6 + 1024) < MAX_SERVER_BYTES {
        return text;
    }
    serde_json::to_vec(s).map_or(usize::MAX, |b| b.len())
}

/// Check a whole report against every limit but the body size (which the collector
/// checks before it parses).
pub fn check_report(report: &ReportRequest) -> Result<(), Violation> {
    if report.servers.len() > MAX_SERVERS_PER_REPORT {
        return Err(Violation {
            field: "servers".into(),
            message: format!(
                "a report may hold at most {MAX_SERVERS_PER_REPORT} servers, got {}",
                report.servers.len()
            ),
        });
    }
    if report.config_errors.len() > MAX_CONFIG_ERRORS {
        return Err(Violation {
            field: "config_errors".into(),
            message: format!(
                "a report may hold at most {MAX_CONFIG_ERRORS} config errors, got {}",
                report.config_errors.len()
            ),
        });
    }
    for (i, s) in report.servers.iter().enumerate() {
        check_server(i, s)?;
    }
    for (i, e) in report.config_errors.iter().enumerate() {
        text(
            || format!("config_errors[{i}].path"),
            &e.path,
            MAX_TEXT_CHARS,
        )?;
        opt(
            || format!("config_errors[{i}].client"),
            e.client.as_deref(),
            MAX_LABEL_CHARS,
        )?;
        text(
            || format!("config_errors[{i}].error"),
            &e.error,
            MAX_ERROR_CHARS,
        )?;
    }
    opt(
        || "hostname".into(),
        report.hostname.as_deref(),
        MAX_LABEL_CHARS,
    )?;
    opt(
        || "agent_version".into(),
        report.agent_version.as_deref(),
        MAX_LABEL_CHARS,
    )?;
    opt(
        || "scanned_at".into(),
        report.scanned_at.as_deref(),
        MAX_LABEL_CHARS,
    )?;
    opt(
        || "inventory_hash".into(),
        report.inventory_hash.as_deref(),
        MAX_LABEL_CHARS,
    )?;
    Ok(())
}

/// `value` cut to at most `max` characters, ending in `…` when it was cut.
pub fn shorten(value: &str, max: usize) -> Option<String> {
    if chars(value) <= max {
        return None;
    }
    let mut out: String = value.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    Some(out)
}

fn fit(value: &mut String, max: usize, what: &str, notes: &mut Vec<String>) {
    if let Some(short) = shorten(value, max) {
        notes.push(format!(
            "{what} of {} characters shortened to {max}",
            chars(value)
        ));
        *value = short;
    }
}

fn fit_opt(value: &mut Option<String>, max: usize, what: &str, notes: &mut Vec<String>) {
    if let Some(v) = value {
        fit(v, max, what, notes);
    }
}

fn fit_list(items: &mut Vec<String>, max: usize, what: &str, notes: &mut Vec<String>) {
    if items.len() > MAX_LIST_ITEMS {
        notes.push(format!(
            "{what}: {} items, only the first {MAX_LIST_ITEMS} reported",
            items.len()
        ));
        items.truncate(MAX_LIST_ITEMS);
    }
    for item in items.iter_mut() {
        fit(item, max, what, notes);
    }
}

/// Make `s` respect every per-server limit: a blank name becomes [`UNNAMED`], long
/// texts are shortened, long lists cut. Answers what had to change, in words for a
/// config error (never a value: the values may be long or odd, and are the user's).
/// The fingerprint is recomputed when the launch changed.
pub fn fit_server(s: &mut ServerRecord) -> Vec<String> {
    let mut notes = Vec::new();
    let trimmed = s.server_name.trim();
    if trimmed.is_empty() {
        notes.push(format!(
            "a server with a blank name is reported as {UNNAMED}"
        ));
        s.server_name = UNNAMED.to_owned();
    } else if trimmed.len() != s.server_name.len() {
        s.server_name = trimmed.to_owned();
    }
    fit(
        &mut s.server_name,
        MAX_NAME_CHARS,
        "a server name",
        &mut notes,
    );
    let launch_before = notes.len();
    fit_opt(&mut s.command, MAX_LINE_CHARS, "a command", &mut notes);
    fit_opt(&mut s.url, MAX_LINE_CHARS, "a URL", &mut notes);
    fit_list(&mut s.args, MAX_TEXT_CHARS, "arguments", &mut notes);
    if let Some(p) = &mut s.package {
        fit(&mut p.name, MAX_TEXT_CHARS, "a package name", &mut notes);
        fit(
            &mut p.ecosystem,
            MAX_LABEL_CHARS,
            "a package ecosystem",
            &mut notes,
        );
        fit_opt(
            &mut p.version,
            MAX_LABEL_CHARS,
            "a package version",
            &mut notes,
        );
    }
    if let Some(l) = &mut s.launch {
        fit(&mut l.program, MAX_TEXT_CHARS, "a program", &mut notes);
        fit(&mut l.runs, MAX_TEXT_CHARS, "a program", &mut notes);
        fit_list(
            &mut l.wrappers,
            MAX_LABEL_CHARS,
            "launch wrappers",
            &mut notes,
        );
    }
    let launch_changed = notes.len() > launch_before;
    fit_opt(
        &mut s.server_type,
        MAX_TEXT_CHARS,
        "a server type",
        &mut notes,
    );
    fit_opt(&mut s.scope, MAX_TEXT_CHARS, "a scope", &mut notes);
    fit_opt(&mut s.client, MAX_LABEL_CHARS, "a client id", &mut notes);
    fit_opt(
        &mut s.config_path,
        MAX_TEXT_CHARS,
        "a config path",
        &mut notes,
    );
    fit_opt(
        &mut s.project_path,
        MAX_TEXT_CHARS,
        "a project path",
        &mut notes,
    );
    fit_opt(&mut s.os_user, MAX_LABEL_CHARS, "a user name", &mut notes);
    fit_list(
        &mut s.env_vars,
        MAX_LABEL_CHARS,
        "env var names",
        &mut notes,
    );
    fit_list(
        &mut s.header_names,
        MAX_LABEL_CHARS,
        "header names",
        &mut notes,
    );
    fit_list(
        &mut s.scope_paths,
        MAX_TEXT_CHARS,
        "scope paths",
        &mut notes,
    );
    fit_list(
        &mut s.auto_approve,
        MAX_LABEL_CHARS,
        "auto-approved tools",
        &mut notes,
    );
    if s.secrets_found.len() > MAX_LIST_ITEMS {
        notes.push(format!(
            "secret findings: {}, only the first {MAX_LIST_ITEMS} reported",
            s.secrets_found.len()
        ));
        s.secrets_found.truncate(MAX_LIST_ITEMS);
    }
    for f in &mut s.secrets_found {
        fit(
            &mut f.location,
            MAX_LABEL_CHARS,
            "a secret location",
            &mut notes,
        );
        fit(&mut f.kind, MAX_LABEL_CHARS, "a secret kind", &mut notes);
    }
    // Whole lists go, longest first, until the record fits its byte limit.
    let size = |s: &ServerRecord| serde_json::to_vec(s).map_or(usize::MAX, |b| b.len());
    let mut cut_launch = false;
    while size(s) > MAX_SERVER_BYTES {
        let lists: [(&mut Vec<String>, &str); 5] = [
            (&mut s.args, "arguments"),
            (&mut s.scope_paths, "scope paths"),
            (&mut s.env_vars, "env var names"),
            (&mut s.header_names, "header names"),
            (&mut s.auto_approve, "auto-approved tools"),
        ];
        let secrets: usize = s
            .secrets_found
            .iter()
            .map(|f| f.location.len() + f.kind.len())
            .sum();
        let largest = lists
            .into_iter()
            .filter(|(l, _)| !l.is_empty())
            .max_by_key(|(l, _)| l.iter().map(String::len).sum::<usize>());
        let Some((list, what)) =
            largest.filter(|(l, _)| l.iter().map(String::len).sum::<usize>() >= secrets)
        else {
            if s.secrets_found.is_empty() {
                break;
            }
            let keep = s.secrets_found.len() / 2;
            notes.push(format!(
                "secret findings: {} left out to fit {MAX_SERVER_BYTES} bytes",
                s.secrets_found.len() - keep
            ));
            s.secrets_found.truncate(keep);
            continue;
        };
        let keep = list.len() / 2;
        notes.push(format!(
            "{what}: {} left out to fit {MAX_SERVER_BYTES} bytes",
            list.len() - keep
        ));
        cut_launch |= what == "arguments";
        list.truncate(keep);
    }
    // Still too big (long texts of multi-byte characters): halve the longest text.
    while size(s) > MAX_SERVER_BYTES {
        let texts: [(Option<&mut String>, &str); 7] = [
            (s.command.as_mut(), "a command"),
            (s.url.as_mut(), "a URL"),
            (s.server_type.as_mut(), "a server type"),
            (s.scope.as_mut(), "a scope"),
            (s.config_path.as_mut(), "a config path"),
            (s.project_path.as_mut(), "a project path"),
            (s.package.as_mut().map(|p| &mut p.name), "a package name"),
        ];
        let Some((text, what)) = texts
            .into_iter()
            .filter_map(|(t, w)| t.map(|t| (t, w)))
            .filter(|(t, _)| t.chars().count() > 16)
            .max_by_key(|(t, _)| t.len())
        else {
            break;
        };
        let half = text.chars().count() / 2;
        notes.push(format!("{what} shortened to fit {MAX_SERVER_BYTES} bytes"));
        cut_launch |= matches!(what, "a command" | "a URL" | "a package name");
        if let Some(short) = shorten(text, half) {
            *text = short;
        }
    }
    if launch_changed || cut_launch || s.fingerprint.is_some() {
        s.fingerprint = Some(s.compute_fingerprint());
    }
    notes.dedup();
    notes
}

/// The most users listed in a machine's facts.
pub const MAX_MACHINE_USERS: usize = 200;

fn machine_fields(m: &crate::wire::MachineFacts) -> [(&'static str, Option<&str>); 9] {
    [
        ("os_name", m.os_name.as_deref()),
        ("kernel_version", m.kernel_version.as_deref()),
        ("arch", m.arch.as_deref()),
        ("hardware_vendor", m.hardware_vendor.as_deref()),
        ("hardware_model", m.hardware_model.as_deref()),
        ("hardware_serial", m.hardware_serial.as_deref()),
        ("machine_id", m.machine_id.as_deref()),
        ("boot_time", m.boot_time.as_deref()),
        ("ip_address", m.ip_address.as_deref()),
    ]
}

/// Check the host facts an agent sends (heartbeat or enrollment): every text a label,
/// at most [`MAX_MACHINE_USERS`] users, the report error a config error's length.
pub fn check_host(
    facts: [(&'static str, Option<&str>); 5],
    machine: &crate::wire::MachineFacts,
    report_error: Option<&str>,
) -> Result<(), Violation> {
    for (field, value) in facts.into_iter().chain(machine_fields(machine)) {
        opt(|| field.to_owned(), value, MAX_LABEL_CHARS)?;
    }
    if let Some(users) = &machine.users {
        if users.len() > MAX_MACHINE_USERS {
            return Err(Violation {
                field: "users".into(),
                message: format!(
                    "at most {MAX_MACHINE_USERS} users are accepted, got {}",
                    users.len()
                ),
            });
        }
        for (i, u) in users.iter().enumerate() {
            text(|| format!("users[{i}]"), u, MAX_LABEL_CHARS)?;
        }
    }
    opt(|| "report_error".into(), report_error, MAX_ERROR_CHARS)
}

/// Check a heartbeat's host facts.
pub fn check_heartbeat(h: &crate::wire::HeartbeatRequest) -> Result<(), Violation> {
    check_host(
        [
            ("hostname", h.hostname.as_deref()),
            ("os_type", h.os_type.as_deref()),
            ("os_version", h.os_version.as_deref()),
            ("username", h.username.as_deref()),
            ("agent_version", h.agent_version.as_deref()),
        ],
        &h.machine,
        h.report_error.as_deref(),
    )
}

/// Check an enrollment's host facts.
pub fn check_enroll(e: &crate::wire::EnrollRequest) -> Result<(), Violation> {
    check_host(
        [
            ("hostname", e.hostname.as_deref()),
            ("os_type", e.os_type.as_deref()),
            ("os_version", e.os_version.as_deref()),
            ("username", e.username.as_deref()),
            ("agent_version", e.agent_version.as_deref()),
        ],
        &e.machine,
        None,
    )
}

/// Make host facts respect the limits (the agent does this before it sends), given
/// as `HeartbeatRequest::host_mut` or `EnrollRequest::host_mut` answers them.
pub fn fit_host((texts, machine): ([&mut Option<String>; 5], &mut crate::wire::MachineFacts)) {
    let mut ignored = Vec::new();
    for field in texts {
        fit_opt(field, MAX_LABEL_CHARS, "", &mut ignored);
    }
    fit_machine_facts(machine);
}

/// Make a machine's facts respect the label limit.
pub fn fit_machine_facts(m: &mut crate::wire::MachineFacts) {
    let mut ignored = Vec::new();
    for field in [
        &mut m.os_name,
        &mut m.kernel_version,
        &mut m.arch,
        &mut m.hardware_vendor,
        &mut m.hardware_model,
        &mut m.hardware_serial,
        &mut m.machine_id,
        &mut m.boot_time,
        &mut m.ip_address,
    ] {
        fit_opt(field, MAX_LABEL_CHARS, "", &mut ignored);
    }
    if let Some(users) = &mut m.users {
        users.truncate(MAX_MACHINE_USERS);
        for u in users.iter_mut() {
            fit(u, MAX_LABEL_CHARS, "", &mut ignored);
        }
    }
}

/// Make a config error respect its limits.
pub fn fit_config_error(e: &mut ConfigError) {
    let mut ignored = Vec::new();
    fit(&mut e.path, MAX_TEXT_CHARS, "", &mut ignored);
    fit_opt(&mut e.client, MAX_LABEL_CHARS, "", &mut ignored);
    fit(&mut e.error, MAX_ERROR_CHARS, "", &mut ignored);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{Package, SecretFinding};

    fn huge() -> ServerRecord {
        huge_of("x")
    }

    fn huge_of(unit: &str) -> ServerRecord {
        let long = unit.repeat(100_000);
        ServerRecord {
            server_name: format!("  {long}  "),
            server_type: Some(long.clone()),
            command: Some(long.clone()),
            url: Some(long.clone()),
            scope: Some(long.clone()),
            env_vars: vec![long.clone(); 1000],
            scope_paths: vec![long.clone(); 300],
            client: Some(long.clone()),
            config_path: Some(long.clone()),
            project_path: Some(long.clone()),
            os_user: Some(long.clone()),
            args: vec![long.clone(); 1000],
            header_names: vec![long.clone(); 3],
            package: Some(Package {
                ecosystem: long.clone(),
                name: long.clone(),
                version: Some(long.clone()),
            }),
            auto_approve: vec![long.clone(); 1000],
            secrets_found: vec![
                SecretFinding {
                    location: long.clone(),
                    kind: long,
                };
                400
            ],
            ..ServerRecord::default()
        }
    }

    #[test]
    fn a_fitted_server_always_passes_the_check() {
        for mut s in [
            huge(),
            huge_of("𝄞"),
            ServerRecord::default(),
            ServerRecord {
                server_name: " \t\n ".into(),
                ..ServerRecord::default()
            },
        ] {
            assert!(check_server(0, &s).is_err());
            let notes = fit_server(&mut s);
            assert!(!notes.is_empty());
            check_server(0, &s).unwrap();
        }
    }

    #[test]
    fn fitting_changes_nothing_that_already_fits() {
        let mut s = ServerRecord {
            server_name: "ok".into(),
            command: Some("npx -y pkg".into()),
            args: vec!["-y".into(), "pkg".into()],
            ..ServerRecord::default()
        };
        let before = s.clone();
        assert!(fit_server(&mut s).is_empty());
        assert_eq!(s, before);
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let name = "é".repeat(MAX_NAME_CHARS);
        let s = ServerRecord {
            server_name: name,
            ..ServerRecord::default()
        };
        check_server(0, &s).unwrap();
        let cut = shorten(&"é".repeat(10), 5).unwrap();
        assert_eq!(cut.chars().count(), 5);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn host_facts_over_the_limits_are_named_and_fitted_ones_pass() {
        let mut h = crate::wire::HeartbeatRequest {
            hostname: Some("h".repeat(1 << 20)),
            ..Default::default()
        };
        assert_eq!(check_heartbeat(&h).unwrap_err().field, "hostname");
        h.machine.users = Some(vec!["u".into(); 500]);
        h.machine.kernel_version = Some("k".repeat(300));
        fit_host(h.host_mut());
        check_heartbeat(&h).unwrap();
    }

    #[test]
    fn the_report_check_names_the_field() {
        let report = ReportRequest {
            servers: vec![
                ServerRecord {
                    server_name: "a".into(),
                    ..ServerRecord::default()
                },
                ServerRecord {
                    server_name: "b".into(),
                    args: vec!["y".repeat(MAX_TEXT_CHARS + 1)],
                    ..ServerRecord::default()
                },
            ],
            ..ReportRequest::default()
        };
        let err = check_report(&report).unwrap_err();
        assert_eq!(err.field, "servers[1].args[0]");
    }
}
