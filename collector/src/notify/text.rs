//! The words of a notification: a subject and labelled lines for people (Slack, email),
//! made from an event. Every value in an event may have been written on a laptop, so
//! control and invisible characters are dropped and long values are cut here; each
//! format escapes the rest itself (Slack's `&<>`).

use crate::events::{Event, EventName};

/// A notification for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub subject: String,
    pub lines: Vec<(&'static str, String)>,
}

/// The longest value a line shows.
const MAX_VALUE_CHARS: usize = 300;

/// `value` without control, bidirectional or invisible format characters, cut to
/// `max` characters.
pub fn clean(value: &str, max: usize) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| {
            !c.is_control()
                && !matches!(*c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2069 | 0xFEFF)
        })
        .take(max + 1)
        .collect();
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
    }
    out
}

fn text_at(event: &Event, path: &[&str]) -> Option<String> {
    let mut v = &event.data;
    for key in path {
        v = v.get(key)?;
    }
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(clean(s, MAX_VALUE_CHARS)),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What a person is told of `event`.
pub fn summary(event: &Event) -> Summary {
    let mut lines = Vec::new();
    let mut push = |label, value: Option<String>| {
        if let Some(v) = value {
            lines.push((label, v));
        }
    };
    let subject = match event.event {
        EventName::AlertCreated | EventName::AlertUpdated | EventName::AlertDismissed => {
            let severity = text_at(event, &["alert", "severity"]).unwrap_or_default();
            let title = text_at(event, &["alert", "title"]).unwrap_or_else(|| "Alert".into());
            push("Severity", Some(severity.clone()));
            push("Details", text_at(event, &["alert", "message"]));
            push("Server", text_at(event, &["server", "server_name"]));
            push("Client", text_at(event, &["server", "client"]));
            push(
                "Host",
                text_at(event, &["agent", "hostname"])
                    .or_else(|| text_at(event, &["agent", "name"])),
            );
            push(
                "User",
                text_at(event, &["server", "os_user"])
                    .or_else(|| text_at(event, &["agent", "username"])),
            );
            push("Alert id", text_at(event, &["alert", "id"]));
            let what = match event.event {
                EventName::AlertUpdated => "again: ",
                EventName::AlertDismissed => "dismissed: ",
                _ => "",
            };
            format!("[{}] {what}{title}", severity.to_uppercase())
        }
        EventName::AgentEnrolled | EventName::AgentDeleted | EventName::AgentSilent => {
            let host = text_at(event, &["agent", "hostname"])
                .or_else(|| text_at(event, &["agent", "name"]))
                .unwrap_or_else(|| "an unnamed machine".into());
            push("Host", Some(host.clone()));
            push("OS", text_at(event, &["agent", "os_type"]));
            push("Agent id", text_at(event, &["agent", "id"]));
            push("Last seen", text_at(event, &["agent", "last_seen_at"]));
            match event.event {
                EventName::AgentEnrolled => format!("Agent enrolled on {host}"),
                EventName::AgentDeleted => format!("Agent on {host} deleted"),
                _ => format!("Agent on {host} has gone silent"),
            }
        }
        EventName::Audit(action) => {
            let who = text_at(event, &["audit", "actor", "email"])
                .or_else(|| text_at(event, &["audit", "actor", "id"]))
                .unwrap_or_else(|| "someone".into());
            push("Actor", Some(who.clone()));
            push("Target", text_at(event, &["audit", "target", "kind"]));
            push("Target id", text_at(event, &["audit", "target", "id"]));
            push("From", text_at(event, &["audit", "source_ip"]));
            format!("Audit: {} by {who}", action.as_str())
        }
        EventName::ChannelTest => "Test notification from mcpwatch".to_owned(),
    };
    lines.push(("Event", format!("{} #{}", event.event.as_str(), event.id)));
    lines.push((
        "At",
        event
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ));
    Summary {
        subject: clean(&subject, 200),
        lines,
    }
}

/// Escape text for Slack's message format (`&`, `<`, `>`: what makes links and
/// mentions such as `<!channel>`).
pub fn slack_escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use mcpwatch_protocol::ids::OrgId;

    #[test]
    fn an_alert_summary_names_severity_server_host_and_user_without_control_characters() {
        let event = Event {
            id: 7,
            event: EventName::AlertCreated,
            timestamp: Utc::now(),
            organization_id: OrgId::new(),
            data: serde_json::json!({
                "alert": { "severity": "critical", "title": "New critical risk MCP server \"x\u{1b}[31m\"", "message": "Score 90" },
                "server": { "server_name": "x\u{202e}gpj", "client": "cursor", "os_user": "jane" },
                "agent": { "hostname": "laptop\r\nBcc: evil" },
            }),
        };
        let s = summary(&event);
        assert!(s.subject.starts_with("[CRITICAL] New critical"));
        assert!(!s.subject.contains('\u{1b}'));
        let get = |l: &str| {
            s.lines
                .iter()
                .find(|(k, _)| *k == l)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("Server").as_deref(), Some("xgpj"));
        assert_eq!(get("Host").as_deref(), Some("laptop Bcc: evil"));
        assert_eq!(get("User").as_deref(), Some("jane"));
        assert_eq!(get("Event").as_deref(), Some("alert.created #7"));
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        assert_eq!(
            slack_escape("<!channel> & <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"
        );
        assert_eq!(clean(&"a".repeat(10), 5), "aaaa…");
    }
}
