//! `GET /mcp/servers/export?format=csv|json|cyclonedx`: every server matching the list
//! filters, streamed as it is read (constant memory however many there are, no page
//! limit). CSV cells that a spreadsheet would take for a formula are defused; the
//! CycloneDX 1.6 document lists the servers as `services` with their risk as
//! properties.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mcpwatch_protocol::ids::AgentId;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser};
use super::param;
use super::servers::{ListParams, server_query};
use crate::model::Server;
use crate::state::SharedState;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;

/// An export's format.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
    CycloneDx,
}

impl Format {
    fn parse(value: &Option<String>) -> Result<Self, ApiError> {
        match param(value) {
            None | Some("csv") => Ok(Self::Csv),
            Some("json") => Ok(Self::Json),
            Some("cyclonedx") => Ok(Self::CycloneDx),
            Some(_) => Err(ApiError::invalid_field(
                "format",
                "format must be csv, json or cyclonedx",
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::CycloneDx => "application/vnd.cyclonedx+json; version=1.6",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::CycloneDx => "cdx.json",
        }
    }
}

/// The CSV columns.
const COLUMNS: [&str; 19] = [
    "id",
    "server_name",
    "hostname",
    "agent_id",
    "client",
    "os_user",
    "config_path",
    "config_scope",
    "transport",
    "command",
    "package_ecosystem",
    "package_name",
    "package_version",
    "risk_level",
    "risk_score",
    "status",
    "is_verified",
    "first_seen_at",
    "last_seen_at",
];

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR) gets a
/// leading `'`, so that it shows as text.
pub fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// One CSV line (quoted as needed by the csv crate).
fn csv_row<I: IntoIterator<Item = T>, T: AsRef<[u8]>>(cells: I) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(cells);
    writer.into_inner().unwrap_or_default()
}

/// How a value is named on the wire (`"stdio"`), empty when absent.
fn wire<T: serde::Serialize>(value: &Option<T>) -> String {
    value
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Writes one export, server by server.
struct Writer {
    format: Format,
    hosts: HashMap<AgentId, String>,
    first: bool,
}

impl Writer {
    fn new(format: Format, hosts: HashMap<AgentId, String>) -> Self {
        Self {
            format,
            hosts,
            first: true,
        }
    }

    /// What comes before the first server.
    fn start(&mut self, org_name: &str) -> Vec<u8> {
        match self.format {
            Format::Csv => csv_row(COLUMNS),
            Format::Json => b"[".to_vec(),
            Format::CycloneDx => {
                let head = json!({
                    "bomFormat": "CycloneDX",
                    "specVersion": "1.6",
                    "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                    "version": 1,
                    "metadata": {
                        "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "tools": { "components": [{
                            "type": "application",
                            "name": "mcpwatch-collector",
                            "version": env!("CARGO_PKG_VERSION"),
                        }]},
                        "component": {
                            "type": "application",
                            "name": format!("MCP servers of {org_name}"),
                        },
                    },
                });
                let mut text = head.to_string();
                text.pop(); // the closing brace: services follow
                text.push_str(",\"services\":[");
                text.into_bytes()
            }
        }
    }

    fn host(&self, server: &Server) -> String {
        self.hosts
            .get(&server.agent_id)
            .cloned()
            .unwrap_or_default()
    }

    /// One server.
    fn server(&mut self, s: &Server) -> Vec<u8> {
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            ","
        };
        match self.format {
            Format::Csv => {
                let r = &s.record;
                let package = r.package.as_ref();
                let row = [
                    s.id.to_string(),
                    r.server_name.clone(),
                    self.host(s),
                    s.agent_id.to_string(),
                    r.client.clone().unwrap_or_default(),
                    r.os_user.clone().unwrap_or_default(),
                    r.config_path.clone().unwrap_or_default(),
                    wire(&r.config_scope),
                    wire(&r.transport),
                    r.launch_line(),
                    package.map(|p| p.ecosystem.clone()).unwrap_or_default(),
                    package.map(|p| p.name.clone()).unwrap_or_default(),
                    package.and_then(|p| p.version.clone()).unwrap_or_default(),
                    s.risk_level.as_str().to_owned(),
                    s.risk_score.to_string(),
                    s.status.as_str().to_owned(),
                    s.is_verified.to_string(),
                    s.first_seen_at.to_rfc3339(),
                    s.last_seen_at.to_rfc3339(),
                ];
                csv_row(row.iter().map(|c| defuse(c).into_owned()))
            }
            Format::Json => {
                let mut value = serde_json::to_value(s).unwrap_or_default();
                value["hostname"] = json!(self.host(s));
                format!("{separator}{value}").into_bytes()
            }
            Format::CycloneDx => format!("{separator}{}", self.service(s)).into_bytes(),
        }
    }

    /// A server as a CycloneDX service.
    fn service(&self, s: &Server) -> serde_json::Value {
        let r = &s.record;
        let mut properties = vec![
            json!({ "name": "mcpwatch:risk_level", "value": s.risk_level.as_str() }),
            json!({ "name": "mcpwatch:risk_score", "value": s.risk_score.to_string() }),
            json!({ "name": "mcpwatch:status", "value": s.status.as_str() }),
            json!({ "name": "mcpwatch:verified", "value": s.is_verified.to_string() }),
            json!({ "name": "mcpwatch:hostname", "value": self.host(s) }),
            json!({ "name": "mcpwatch:command", "value": r.launch_line() }),
            json!({ "name": "mcpwatch:first_seen_at", "value": s.first_seen_at.to_rfc3339() }),
            json!({ "name": "mcpwatch:last_seen_at", "value": s.last_seen_at.to_rfc3339() }),
        ];
        for (name, value) in [
            ("mcpwatch:client", &r.client),
            ("mcpwatch:os_user", &r.os_user),
            ("mcpwatch:config_path", &r.config_path),
        ] {
            if let Some(v) = value {
                properties.push(json!({ "name": name, "value": v }));
            }
        }
        if let Some(p) = &r.package {
            properties.push(json!({ "name": "mcpwatch:package", "value": format!("{}:{}", p.ecosystem, p.name) }));
        }
        for f in &s.findings {
            properties.push(json!({
                "name": "mcpwatch:finding",
                "value": format!("{} ({}): {}", f.rule_id, f.severity.as_str(), f.message),
            }));
        }
        let mut service = json!({
            "bom-ref": s.id.to_string(),
            "name": r.server_name,
            "properties": properties,
        });
        if let Some(version) = r.package.as_ref().and_then(|p| p.version.clone()) {
            service["version"] = json!(version);
        }
        if let Some(url) = r.url.as_deref().filter(|u| reqwest::Url::parse(u).is_ok()) {
            service["endpoints"] = json!([url]);
        }
        service
    }

    /// What comes after the last server.
    fn end(&mut self) -> Vec<u8> {
        match self.format {
            Format::Csv => Vec::new(),
            Format::Json => b"]".to_vec(),
            Format::CycloneDx => b"]}".to_vec(),
        }
    }
}

/// `GET /mcp/servers/export` (any user): the list filters, and `format`.
pub async fn export(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let format = Format::parse(&params.format)?;
    let query = server_query(&params)?;
    let org = auth.user.org_id;
    let org_name = state.store.get_org(org).await?.name;
    let hosts = state
        .store
        .list_agents(org)
        .await?
        .into_iter()
        .map(|a| (a.id, a.facts.hostname.unwrap_or(a.name)))
        .collect();
    let servers = state.store.export_servers(org, query).await?;
    let mut writer = Writer::new(format, hosts);
    let head = writer.start(&org_name);
    // One chunk at a time: the body asks for the next only when the last was sent.
    let chunks = futures_util::stream::unfold(
        (servers, writer, Some(head), false),
        |(mut servers, mut writer, mut pending, done)| async move {
            if done {
                return None;
            }
            let mut chunk = pending.take().unwrap_or_default();
            while chunk.len() < CHUNK {
                match servers.recv().await {
                    Some(Ok(server)) => chunk.extend(writer.server(&server)),
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "An export failed while reading servers.");
                        let failure = std::io::Error::other("reading servers failed");
                        return Some((Err(failure), (servers, writer, None, true)));
                    }
                    None => {
                        chunk.extend(writer.end());
                        return Some((Ok(Bytes::from(chunk)), (servers, writer, None, true)));
                    }
                }
            }
            Some((Ok(Bytes::from(chunk)), (servers, writer, None, false)))
        },
    );
    let filename = format!(
        "attachment; filename=\"mcp-servers-{}.{}\"",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_others_left_alone() {
        for cell in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(defuse(cell), format!("'{cell}"));
        }
        for cell in ["filesystem", "npx -y pkg", "", "a=b"] {
            assert_eq!(defuse(cell), cell);
        }
    }
}
