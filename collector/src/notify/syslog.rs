//! Syslog channels: an event as one RFC 5424 message (the event as JSON in the
//! message, for a SIEM to parse), sent over UDP (one datagram), TCP or TLS (octet
//! counted framing, RFC 6587 and RFC 5425).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::Outcome;
use super::targets::{Policy, SyslogTarget, SyslogTransport};
use crate::events::Event;
use mcpwatch_protocol::risk::RiskLevel;

/// The facility: security/authorization messages (10, `authpriv`).
const FACILITY: u8 = 10;
/// How long connecting and sending may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest datagram sent over UDP; a bigger message is refused (use TCP).
const MAX_UDP: usize = 65_000;

/// The syslog severity of an event: alerts by their level, other events informational.
fn severity(event: &Event) -> u8 {
    match super::event_severity(event) {
        Some(RiskLevel::Critical) => 2,
        Some(RiskLevel::High) => 3,
        Some(RiskLevel::Medium) => 4,
        Some(RiskLevel::Low) => 5,
        None => 6,
    }
}

/// Printable US-ASCII without spaces, at most `max` characters, `-` when empty (the
/// header fields of RFC 5424).
fn header_field(value: &str, max: usize) -> String {
    let out: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if out.is_empty() { "-".to_owned() } else { out }
}

/// The message for `event`, sent from `hostname`.
pub fn format(event: &Event, hostname: &str) -> String {
    let pri = FACILITY * 8 + severity(event);
    let timestamp = event
        .timestamp
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    format!(
        "<{pri}>1 {timestamp} {} mcpwatch {} {} - {json}",
        header_field(hostname, 255),
        std::process::id(),
        header_field(event.event.as_str(), 32),
    )
}

/// Send `message` to `target`.
pub async fn send(
    target: &SyslogTarget,
    policy: Policy,
    tls: &Arc<rustls::ClientConfig>,
    message: &str,
) -> Outcome {
    match tokio::time::timeout(TIMEOUT, deliver(target, policy, tls, message)).await {
        Ok(Ok(())) => Outcome::Delivered { status: None },
        Ok(Err(outcome)) => outcome,
        Err(_) => retry("timed out"),
    }
}

fn retry(error: impl Into<String>) -> Outcome {
    Outcome::Retry {
        status: None,
        error: error.into(),
        retry_after: None,
    }
}

async fn deliver(
    target: &SyslogTarget,
    policy: Policy,
    tls: &Arc<rustls::ClientConfig>,
    message: &str,
) -> Result<(), Outcome> {
    let addrs = policy
        .resolve(&target.host, target.port)
        .await
        .map_err(|e| match e {
            super::targets::TargetError::Private { .. } => Outcome::Refused {
                status: None,
                error: e.to_string(),
            },
            _ => retry(e.to_string()),
        })?;
    let addr = addrs[0];
    if target.transport == SyslogTransport::Udp {
        if message.len() > MAX_UDP {
            return Err(Outcome::Refused {
                status: None,
                error: format!(
                    "message is {} bytes, too big for UDP; use tcp:// or tls://",
                    message.len()
                ),
            });
        }
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(|e| retry(format!("opening a UDP socket: {e}")))?;
        socket
            .send_to(message.as_bytes(), addr)
            .await
            .map_err(|e| retry(format!("sending to {addr}: {e}")))?;
        return Ok(());
    }
    let frame = format!("{} {message}", message.len());
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| retry(format!("connecting to {addr}: {e}")))?;
    let written = if target.transport == SyslogTransport::Tls {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
            Outcome::Refused {
                status: None,
                error: format!("{}: {e}", target.host),
            }
        })?;
        let mut stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, stream)
            .await
            .map_err(|e| retry(format!("TLS with {addr}: {e}")))?;
        write_all(&mut stream, frame.as_bytes()).await
    } else {
        let mut stream = stream;
        write_all(&mut stream, frame.as_bytes()).await
    };
    written.map_err(|e| retry(format!("sending to {addr}: {e}")))
}

async fn write_all<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventName;
    use chrono::TimeZone as _;
    use mcpwatch_protocol::ids::OrgId;

    #[test]
    fn a_message_is_rfc5424_with_the_event_as_json() {
        let event = Event {
            id: 3,
            event: EventName::AlertCreated,
            timestamp: chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            organization_id: OrgId::new(),
            data: serde_json::json!({ "alert": { "severity": "critical", "title": "x\ny" } }),
        };
        let line = format(&event, "collector 1\u{1b}");
        let pid = std::process::id();
        let head =
            format!("<82>1 2026-01-02T03:04:05.000Z collector1 mcpwatch {pid} alert.created - ");
        assert!(line.starts_with(&head), "{line}");
        let json: serde_json::Value = serde_json::from_str(&line[head.len()..]).unwrap();
        assert_eq!(json["id"], 3);
        assert!(!line.contains('\n'));
    }
}
