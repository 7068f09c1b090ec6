//! The report built from a scan — exactly what the agent sends to `POST /mcp/report` —
//! and the human-readable table `scan` prints.

use chrono::{SecondsFormat, Utc};
use mcpwatch_protocol::risk;
use mcpwatch_protocol::wire::ReportRequest;
use sha2::{Digest, Sha256};

use crate::discovery::Inventory;

/// The report for an inventory.
pub fn report(inventory: Inventory) -> ReportRequest {
    let inventory_hash = inventory_hash(&inventory);
    ReportRequest {
        servers: inventory.servers,
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        hostname: gethostname::gethostname().into_string().ok(),
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
        rows.push([
            s.os_user.clone().unwrap_or_else(|| "(machine)".into()),
            s.client.clone().unwrap_or_default(),
            format!("{}{disabled}", s.server_name),
            transport,
            truncate(&package, 48),
            format!("{} {}", a.level, a.score),
            a.findings
                .first()
                .map(|f| format!("{} {}", f.rule_id, f.message))
                .unwrap_or_default(),
        ]);
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
                c.message,
                c.os_user.as_deref().unwrap_or("-"),
                c.client.as_deref().unwrap_or("-"),
                c.servers.join(" + ")
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
                e.path,
                e.client.as_deref().unwrap_or("?"),
                e.error
            ));
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}
