//! The report built from a scan — exactly what the agent sends to `POST /mcp/report` —
//! fitted into the limits the collector takes ([`fit`]), and the human-readable table
//! `scan` prints.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{SecondsFormat, Utc};
use mcpwatch_protocol::limits::{self, MAX_CONFIG_ERRORS, MAX_NAME_CHARS, MAX_SERVERS_PER_REPORT};
use mcpwatch_protocol::risk;
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::{ConfigError, ReportRequest};
use sha2::{Digest, Sha256};

use crate::discovery::Inventory;
use crate::printable::cell;

pub use crate::printable::escape as safe;

/// The most bytes of servers a report carries: the collector's default body limit,
/// less room for the config errors and the envelope.
pub const REPORT_BUDGET_BYTES: usize = limits::DEFAULT_MAX_BODY_BYTES - 512 * 1024;
/// The budget never goes below this, however often the collector answers 413.
pub const MIN_REPORT_BUDGET_BYTES: usize = 64 * 1024;

/// A scan as found (kept to merge partial rescans into) and as it will be sent.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub scanned: Inventory,
    pub fitted: Inventory,
}

/// Fit a scan into what the collector takes: every server within the field limits
/// (blank names named, long texts shortened), one name per server identity (client,
/// config path, name), at most [`MAX_SERVERS_PER_REPORT`] servers in at most `budget`
/// bytes (default [`REPORT_BUDGET_BYTES`]) — leaving out servers of the users with the
/// most — and at most [`MAX_CONFIG_ERRORS`] config errors. Everything changed or left
/// out is said in a config error of the file (or user) it concerns.
pub fn fit(scanned: Inventory, budget: Option<usize>) -> Fitted {
    let budget = budget.unwrap_or(REPORT_BUDGET_BYTES);
    let mut servers = scanned.servers.clone();
    let mut errors = scanned.config_errors.clone();
    let mut notes: BTreeMap<(String, Option<String>), BTreeSet<String>> = BTreeMap::new();
    let file_of = |s: &ServerRecord| (s.config_path.clone().unwrap_or_default(), s.client.clone());

    for s in &mut servers {
        let changed = limits::fit_server(s);
        if !changed.is_empty() {
            notes.entry(file_of(s)).or_default().extend(changed);
        }
    }
    unique_names(&mut servers, &mut notes);

    let (kept, left_out) = within_budget(servers, budget);
    for (user, n) in left_out {
        errors.push(ConfigError {
            path: user.as_ref().map_or_else(|| "(machine-wide files)".to_owned(), |u| format!("(files of user {u})")),
            client: None,
            error: format!(
                "{n} server(s) left out: the report would exceed what the collector takes ({MAX_SERVERS_PER_REPORT} servers, {budget} bytes); the users with the most servers are cut first"
            ),
        });
    }
    for ((path, client), changed) in notes {
        errors.push(ConfigError {
            path,
            client,
            error: changed.into_iter().collect::<Vec<_>>().join("; "),
        });
    }
    errors.sort_by(|a, b| (&a.path, &a.client).cmp(&(&b.path, &b.client)));
    if errors.len() > MAX_CONFIG_ERRORS {
        let more = errors.len() - (MAX_CONFIG_ERRORS - 1);
        errors.truncate(MAX_CONFIG_ERRORS - 1);
        errors.push(ConfigError {
            path: "(more files)".to_owned(),
            client: None,
            error: format!("{more} more config error(s) not listed"),
        });
    }
    for e in &mut errors {
        limits::fit_config_error(e);
    }
    Fitted {
        scanned,
        fitted: Inventory {
            servers: kept,
            config_errors: errors,
        },
    }
}

/// Leave out servers of the users with the most bytes until the report holds at most
/// [`MAX_SERVERS_PER_REPORT`] servers in `budget` bytes; answers the servers kept and
/// how many were left out of each user's.
fn within_budget(
    servers: Vec<ServerRecord>,
    budget: usize,
) -> (Vec<ServerRecord>, BTreeMap<Option<String>, usize>) {
    let sizes: Vec<usize> = servers
        .iter()
        .map(|s| serde_json::to_vec(s).map_or(0, |b| b.len() + 1))
        .collect();
    let mut per_user: HashMap<Option<String>, (usize, Vec<usize>)> = HashMap::new();
    for (i, s) in servers.iter().enumerate() {
        let entry = per_user.entry(s.os_user.clone()).or_default();
        entry.0 += sizes[i];
        entry.1.push(i);
    }
    let mut total: usize = sizes.iter().sum();
    let mut count = servers.len();
    let mut dropped = vec![false; servers.len()];
    let mut left_out: BTreeMap<Option<String>, usize> = BTreeMap::new();
    while total > budget || count > MAX_SERVERS_PER_REPORT {
        let Some((user, (bytes, indices))) = per_user
            .iter_mut()
            .filter(|(_, (_, idx))| !idx.is_empty())
            .max_by(|a, b| (a.1.0, &b.0).cmp(&(b.1.0, &a.0)))
        else {
            break;
        };
        let Some(i) = indices.pop() else { break };
        *bytes -= sizes[i];
        total -= sizes[i];
        count -= 1;
        dropped[i] = true;
        *left_out.entry(user.clone()).or_default() += 1;
    }
    let kept = servers
        .into_iter()
        .zip(dropped)
        .filter_map(|(s, gone)| (!gone).then_some(s))
        .collect();
    (kept, left_out)
}

/// Servers that share an identity (client, config path, name) would overwrite each
/// other at the collector: Claude Code's `.claude.json` names the same server in many
/// projects, and trimming or naming blanks can make two names equal. Each such server
/// is named after its project, then numbered.
fn unique_names(
    servers: &mut [ServerRecord],
    notes: &mut BTreeMap<(String, Option<String>), BTreeSet<String>>,
) {
    let key = |s: &ServerRecord| {
        (
            s.client.clone(),
            s.config_path.clone(),
            s.server_name.clone(),
        )
    };
    let mut groups: HashMap<_, usize> = HashMap::new();
    for s in servers.iter() {
        *groups.entry(key(s)).or_default() += 1;
    }
    let mut taken: BTreeSet<_> = servers.iter().map(key).collect();
    let mut plain_kept = BTreeSet::new();
    for s in servers.iter_mut() {
        if groups.get(&key(s)).copied().unwrap_or(0) < 2 {
            continue;
        }
        let project = s.project_path.clone();
        // The first one of a name outside any project keeps it.
        if project.is_none() && plain_kept.insert(key(s)) {
            continue;
        }
        let base = s.server_name.clone();
        let mut n = 1;
        loop {
            let suffix = match (&project, n) {
                (Some(p), 1) => format!(" ({p})"),
                (Some(p), n) => format!(" ({p}) ({n})"),
                (None, 1) => {
                    n += 1;
                    continue;
                }
                (None, n) => format!(" ({n})"),
            };
            let room = MAX_NAME_CHARS.saturating_sub(suffix.chars().count()).max(1);
            let name = format!(
                "{}{suffix}",
                limits::shorten(&base, room).unwrap_or_else(|| base.clone())
            );
            let candidate = (s.client.clone(), s.config_path.clone(), name.clone());
            if !taken.contains(&candidate) {
                taken.insert(candidate);
                s.server_name = name;
                break;
            }
            n += 1;
        }
        notes
            .entry((s.config_path.clone().unwrap_or_default(), s.client.clone()))
            .or_default()
            .insert(
                "servers sharing a name are reported under their project or a number".to_owned(),
            );
    }
}

/// The report for an inventory.
pub fn report(inventory: Inventory) -> ReportRequest {
    let inventory_hash = inventory_hash(&inventory);
    ReportRequest {
        servers: inventory.servers,
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        hostname: gethostname::gethostname()
            .into_string()
            .ok()
            .map(|h| limits::shorten(&h, limits::MAX_LABEL_CHARS).unwrap_or(h)),
        scanned_at: Some(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)),
        sequence: None,
        inventory_hash: Some(inventory_hash),
        config_errors: inventory.config_errors,
    }
}

/// A stable hash of what was found: it changes exactly when the servers or the config
/// errors change.
pub fn inventory_hash(inventory: &Inventory) -> String {
    let mut hasher = Sha256::new();
    for server in &inventory.servers {
        if let Ok(bytes) = serde_json::to_vec(server) {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        }
    }
    for error in &inventory.config_errors {
        if let Ok(bytes) = serde_json::to_vec(error) {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        }
    }
    hex::encode(hasher.finalize())
}

/// The report with each server's assessment and the dangerous combinations added
/// under `"risk"` (`scan --json --risk`): what the table shows, for scripts.
pub fn with_risk(report: &ReportRequest) -> Result<serde_json::Value, serde_json::Error> {
    let (assessments, combinations) =
        risk::assess_inventory(&report.servers, &risk::Policy::default());
    let servers: Vec<serde_json::Value> = report
        .servers
        .iter()
        .zip(&assessments)
        .map(|(s, a)| {
            serde_json::json!({
                "server_name": s.server_name,
                "client": s.client,
                "config_path": s.config_path,
                "os_user": s.os_user,
                "score": a.score,
                "level": a.level,
                "findings": a.findings,
            })
        })
        .collect();
    let mut value = serde_json::to_value(report)?;
    value["risk"] = serde_json::json!({
        "rules_version": risk::RULES_VERSION,
        "servers": servers,
        "combinations": combinations,
    });
    Ok(value)
}

/// One server's row of the table `scan` prints.
fn row(s: &ServerRecord, a: &risk::Assessment) -> [String; 7] {
    let package = s.package.as_ref().map_or_else(
        || s.server_type.clone().unwrap_or_default(),
        |p| match &p.version {
            Some(v) => format!("{}@{v}", p.name),
            None => p.name.clone(),
        },
    );
    let transport = s
        .transport
        .map(|t| format!("{t:?}").to_lowercase())
        .unwrap_or_default();
    let disabled = if s.disabled { " (disabled)" } else { "" };
    [
        cell(s.os_user.as_deref().unwrap_or("(machine)"), 24),
        cell(s.client.as_deref().unwrap_or_default(), 20),
        format!("{}{disabled}", cell(&s.server_name, 40)),
        transport,
        cell(&package, 48),
        format!("{} {}", a.level, a.score),
        cell(
            &a.findings
                .first()
                .map(|f| format!("{} {}", f.rule_id, f.message))
                .unwrap_or_default(),
            120,
        ),
    ]
}

/// The table `scan` prints: one row per server, then the config errors.
pub fn table(report: &ReportRequest) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "USER".into(),
        "CLIENT".into(),
        "SERVER".into(),
        "TRANSPORT".into(),
        "PACKAGE".into(),
        "RISK".into(),
        "TOP FINDING".into(),
    ]];
    let (assessments, combinations) =
        risk::assess_inventory(&report.servers, &risk::Policy::default());
    for (s, a) in report.servers.iter().zip(assessments) {
        rows.push(row(s, &a));
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (c, cell) in row.iter().enumerate() {
            if c < 6 {
                out.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    if !combinations.is_empty() {
        out.push_str("\nDangerous combinations:\n");
        for c in &combinations {
            out.push_str(&format!(
                "  {} {} [{} / {}]: {}\n",
                c.rule_id,
                cell(&c.message, 120),
                cell(c.os_user.as_deref().unwrap_or("-"), 24),
                cell(c.client.as_deref().unwrap_or("-"), 20),
                cell(&c.servers.join(" + "), 200)
            ));
        }
    }
    out.push_str(&format!("\n{} server(s)", report.servers.len()));
    if report.config_errors.is_empty() {
        out.push('\n');
    } else {
        out.push_str(&format!(
            ", {} config file(s) with errors:\n",
            report.config_errors.len()
        ));
        for e in &report.config_errors {
            out.push_str(&format!(
                "  {} [{}]: {}\n",
                cell(&e.path, 200),
                cell(e.client.as_deref().unwrap_or("?"), 20),
                cell(&e.error, 400)
            ));
        }
    }
    out
}
