//! Email channels: the collector's SMTP settings (`--smtp-url`, `--smtp-password-file`,
//! `--smtp-from`), the mail made from an event, and sending it.
//!
//! `smtp://host[:port]` speaks STARTTLS and refuses to go on without it (port 587 by
//! default); `smtps://host[:port]` is TLS from the first byte (port 465). A relay on
//! the same machine or network that speaks no TLS is `smtp://host:25?tls=none`, which
//! is refused with a password unless the host is loopback.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use reqwest::Url;

use super::Outcome;
use super::text;
use crate::events::Event;

/// How long one SMTP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The SMTP settings as given.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub url: String,
    /// From `--smtp-password-file`; wins over a password in the URL.
    pub password: Option<String>,
    pub from: String,
}

/// Why the SMTP settings cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("--smtp-url: {0}")]
    Url(String),
    #[error("--smtp-from: {0:?} is not an email address")]
    From(String),
    #[error("--smtp-url: TLS settings for {host}: {message}")]
    Tls { host: String, message: String },
}

/// A configured mail sender.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the transport: it holds the password.
        f.debug_struct("Mailer")
            .field("from", &self.from.email.to_string())
            .finish()
    }
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, SmtpError> {
        // The URL is never put into an error: it may hold a password.
        let url = Url::parse(settings.url.trim())
            .map_err(|e| SmtpError::Url(format!("not a URL ({e})")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| SmtpError::Url("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls_mode = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let params = || {
            TlsParameters::new(host.clone()).map_err(|e| SmtpError::Tls {
                host: host.clone(),
                message: e.to_string(),
            })
        };
        let (tls, default_port) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtps", None) => (Tls::Wrapper(params()?), 465),
            ("smtp", None | Some("required")) => (Tls::Required(params()?), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(params()?), 587),
            ("smtp", Some("none")) => (Tls::None, 25),
            (scheme @ ("smtp" | "smtps"), Some(other)) => {
                return Err(SmtpError::Url(format!(
                    "{scheme}:// takes tls=required, opportunistic or none, not {other:?}"
                )));
            }
            (other, _) => {
                return Err(SmtpError::Url(format!(
                    "scheme must be smtp:// (STARTTLS) or smtps:// (TLS), not {other}://"
                )));
            }
        };
        let user = percent_decode(url.username());
        let password = settings
            .password
            .clone()
            .or_else(|| url.password().map(percent_decode));
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if matches!(tls, Tls::None) && password.is_some() && !loopback {
            return Err(SmtpError::Url(
                "tls=none would send the SMTP password in the clear; use smtp:// (STARTTLS) or smtps://".into(),
            ));
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if !user.is_empty() {
            builder = builder.credentials(Credentials::new(user, password.unwrap_or_default()));
        }
        let from: Address = settings
            .from
            .trim()
            .parse()
            .map_err(|_| SmtpError::From(settings.from.clone()))?;
        Ok(Self {
            transport: builder.build(),
            from: Mailbox::new(Some("mcpwatch".to_owned()), from),
        })
    }

    /// Mail `event` to `to`.
    pub async fn send(&self, to: &[Address], event: &Event) -> Outcome {
        let message = match compose(&self.from, to, event) {
            Ok(m) => m,
            Err(error) => {
                return Outcome::Refused {
                    status: None,
                    error,
                };
            }
        };
        match self.transport.send(message).await {
            Ok(response) => Outcome::Delivered {
                status: Some(u16::from(response.code())),
            },
            Err(e) => {
                let status = e.status().map(u16::from);
                let error = text::clean(&format!("SMTP: {e}"), 500);
                if e.is_permanent() {
                    Outcome::Refused { status, error }
                } else {
                    Outcome::Retry {
                        status,
                        error,
                        retry_after: None,
                    }
                }
            }
        }
    }
}

fn percent_decode(value: &str) -> String {
    // `Url` leaves user and password percent-encoded.
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mail for `event`: the summary as the subject and lines, the event as JSON below.
fn compose(from: &Mailbox, to: &[Address], event: &Event) -> Result<Message, String> {
    let summary = text::summary(event);
    let mut body = String::new();
    for (label, value) in &summary.lines {
        body.push_str(&format!("{label}: {value}\n"));
    }
    body.push_str("\nThe event as JSON:\n");
    body.push_str(&serde_json::to_string_pretty(event).unwrap_or_default());
    body.push('\n');
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(format!("[mcpwatch] {}", summary.subject))
        .header(ContentType::TEXT_PLAIN);
    for address in to {
        builder = builder.to(Mailbox::new(None, address.clone()));
    }
    builder
        .body(body)
        .map_err(|e| format!("the mail could not be made: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> SmtpSettings {
        SmtpSettings {
            url: url.to_owned(),
            password: None,
            from: "mcpwatch@example.com".to_owned(),
        }
    }

    #[test]
    fn smtp_urls_choose_tls_and_refuse_a_clear_password_off_loopback() {
        assert!(Mailer::new(&settings("smtp://mail.example.com")).is_ok());
        assert!(Mailer::new(&settings("smtps://u:p@mail.example.com")).is_ok());
        assert!(Mailer::new(&settings("smtp://127.0.0.1:2525?tls=none")).is_ok());
        assert!(Mailer::new(&settings("smtp://u:p@127.0.0.1:2525?tls=none")).is_ok());
        let err = Mailer::new(&settings("smtp://u:hunter2@mail.example.com?tls=none")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(Mailer::new(&settings("http://mail.example.com")).is_err());
        assert!(Mailer::new(&settings("smtp://mail.example.com?tls=maybe")).is_err());
        let mut bad_from = settings("smtp://mail.example.com");
        bad_from.from = "nobody".into();
        assert!(matches!(Mailer::new(&bad_from), Err(SmtpError::From(_))));
        assert_eq!(percent_decode("p%40ss%2Fw"), "p@ss/w");
    }
}
