//! Webhook and Slack-format channels: the body, the HMAC signature of a webhook
//! request, and the POST itself. A webhook receives the event as JSON with
//! `X-MCPWatch-Event`, `X-MCPWatch-Delivery` (the event id, the same on every retry)
//! and `X-MCPWatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use reqwest::Url;
use sha2::Sha256;

use super::Outcome;
use super::text::{self, slack_escape};
use crate::events::Event;

pub const EVENT_HEADER: &str = "x-mcpwatch-event";
pub const DELIVERY_HEADER: &str = "x-mcpwatch-delivery";
pub const SIGNATURE_HEADER: &str = "x-mcpwatch-signature";
/// How long one webhook request may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The signature header value for `body` sent at unix time `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A Slack message (`text`, which Teams and Mattermost incoming webhooks also take).
pub fn slack_body(event: &Event, console: Option<&Url>) -> serde_json::Value {
    let summary = text::summary(event);
    let mut out = format!("*{}*", slack_escape(&summary.subject));
    for (label, value) in &summary.lines {
        out.push_str(&format!("\n{label}: {}", slack_escape(value)));
    }
    if let Some(link) = console.and_then(|base| console_link(base, event)) {
        out.push_str(&format!("\n<{link}|Open in mcpwatch>"));
    }
    serde_json::json!({ "text": out })
}

/// Where the console shows an event's subject, when the collector knows its public URL.
fn console_link(base: &Url, event: &Event) -> Option<Url> {
    let id = |path: &[&str]| {
        let mut v = &event.data;
        for k in path {
            v = v.get(k)?;
        }
        v.as_str()?.parse::<uuid::Uuid>().ok()
    };
    let path = if let Some(server) = id(&["alert", "server_id"]) {
        format!("ui/servers/{server}")
    } else if let Some(agent) = id(&["agent", "id"]).or_else(|| id(&["alert", "agent_id"])) {
        format!("ui/agents/{agent}")
    } else {
        "ui/alerts".to_owned()
    };
    base.join(&path).ok()
}

/// POST `body` to `url`; `secret` signs it (webhooks), `event` names it in headers.
pub async fn post(
    client: &reqwest::Client,
    url: Url,
    event: &Event,
    body: Vec<u8>,
    secret: Option<&str>,
) -> Outcome {
    let mut request = client
        .post(url)
        .timeout(REQUEST_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, event.event.as_str())
        .header(DELIVERY_HEADER, event.id.to_string());
    if let Some(secret) = secret {
        let t = chrono::Utc::now().timestamp();
        request = request.header(SIGNATURE_HEADER, signature(secret, t, &body));
    }
    match request.body(body).send().await {
        Ok(response) => judge(&response),
        Err(e) => Outcome::Retry {
            status: None,
            error: describe(&e),
            retry_after: None,
        },
    }
}

/// What a receiver's answer means: 2xx delivered; 408, 429 and 5xx worth a retry
/// (after `Retry-After` when given); a redirect or any other answer refused for good.
fn judge(response: &reqwest::Response) -> Outcome {
    let status = response.status();
    let code = Some(status.as_u16());
    if status.is_success() {
        return Outcome::Delivered { status: code };
    }
    let error = format!("receiver answered HTTP {}", status.as_u16());
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Outcome::Retry {
            status: code,
            error,
            retry_after,
        };
    }
    let error = if status.is_redirection() {
        format!("{error} (a redirect; redirects are not followed)")
    } else {
        error
    };
    Outcome::Refused {
        status: code,
        error,
    }
}

/// A transport error in words: its chain, without the URL (which may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let mut message = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    text::clean(&message, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec
        assert_eq!(
            signature("whsec", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
    }
}
