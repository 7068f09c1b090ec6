//! Sending one event to one channel: the [`Notifier`] holds what every kind needs (the
//! HTTP client that resolves through the address policy and follows no redirect, the
//! TLS settings for syslog, the SMTP mailer) and answers an [`Outcome`].

use std::sync::Arc;

use reqwest::Url;
use rustls_platform_verifier::ConfigVerifierExt as _;

use super::email::{Mailer, SmtpError, SmtpSettings};
use super::targets::{self, Policy, TargetError};
use super::{Channel, ChannelKind, Outcome, syslog, webhook};
use crate::events::Event;

/// How notifications are sent, as the operator set it.
#[derive(Clone, Debug, Default)]
pub struct NotifySettings {
    /// Let channels reach loopback, private and link-local addresses.
    pub allow_private_targets: bool,
    pub smtp: Option<SmtpSettings>,
    /// Where the console is reached, for links in messages.
    pub public_url: Option<Url>,
}

/// Why notifications cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error("notification HTTP client: {0}")]
    Http(String),
    #[error("TLS settings for syslog: {0}")]
    Tls(String),
}

/// Sends events to channels.
pub struct Notifier {
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    mailer: Option<Mailer>,
    pub policy: Policy,
    public_url: Option<Url>,
    hostname: String,
}

impl Notifier {
    pub fn new(settings: &NotifySettings) -> Result<Self, SetupError> {
        // Only fails when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Policy {
            allow_private: settings.allow_private_targets,
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("mcpwatch-collector/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on our behalf to addresses the policy never saw.
            .no_proxy()
            .dns_resolver(targets::resolver(policy))
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(webhook::REQUEST_TIMEOUT)
            .build()
            .map_err(|e| SetupError::Http(e.to_string()))?;
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| SetupError::Tls(e.to_string()))?;
        let mailer = settings.smtp.as_ref().map(Mailer::new).transpose()?;
        Ok(Self {
            http,
            tls: Arc::new(tls),
            mailer,
            policy,
            public_url: settings.public_url.clone(),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        })
    }

    /// Whether email can be sent (an SMTP server is configured).
    pub fn can_email(&self) -> bool {
        self.mailer.is_some()
    }

    /// Check a channel's target as it would be saved: its form, and (for URLs and
    /// syslog) that it resolves to addresses the policy allows.
    pub async fn check_target(&self, kind: ChannelKind, target: &str) -> Result<(), TargetError> {
        match kind {
            ChannelKind::Webhook | ChannelKind::Slack => {
                targets::http_target(target, self.policy).await.map(drop)
            }
            ChannelKind::Email => targets::email_targets(target).map(drop),
            ChannelKind::Syslog => {
                let t = targets::syslog_target(target)?;
                self.policy.resolve(&t.host, t.port).await.map(drop)
            }
        }
    }

    /// Send `event` to `channel` once.
    pub async fn send(&self, channel: &Channel, event: &Event) -> Outcome {
        let refused = |e: TargetError| Outcome::Refused {
            status: None,
            error: e.to_string(),
        };
        match channel.kind {
            ChannelKind::Webhook | ChannelKind::Slack => {
                // Checked again now: the name may resolve elsewhere than when saved
                // (the resolver checks names; this checks literal addresses too).
                let url = match targets::http_target(&channel.target, self.policy).await {
                    Ok(url) => url,
                    Err(e @ TargetError::Unresolved(_)) => {
                        return Outcome::Retry {
                            status: None,
                            error: e.to_string(),
                            retry_after: None,
                        };
                    }
                    Err(e) => return refused(e),
                };
                let (body, secret) = if channel.kind == ChannelKind::Webhook {
                    (serde_json::to_vec(event), channel.secret.as_deref())
                } else {
                    (
                        serde_json::to_vec(&webhook::slack_body(event, self.public_url.as_ref())),
                        None,
                    )
                };
                let body = body.unwrap_or_default();
                webhook::post(&self.http, url, event, body, secret).await
            }
            ChannelKind::Email => {
                let Some(mailer) = &self.mailer else {
                    return Outcome::Retry {
                        status: None,
                        error: "no SMTP server is configured (--smtp-url and --smtp-from)".into(),
                        retry_after: None,
                    };
                };
                match targets::email_targets(&channel.target) {
                    Ok(to) => mailer.send(&to, event).await,
                    Err(e) => refused(e),
                }
            }
            ChannelKind::Syslog => match targets::syslog_target(&channel.target) {
                Ok(target) => {
                    let message = syslog::format(event, &self.hostname);
                    syslog::send(&target, self.policy, &self.tls, &message).await
                }
                Err(e) => refused(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventName;
    use crate::notify::{ChannelSource, DeliveryStatus};
    use mcpwatch_protocol::ids::{ChannelId, OrgId};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A receiver on 127.0.0.1 that answers 200 to each connection; answers its port.
    async fn receiver() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        port
    }

    fn channel(target: String) -> Channel {
        let now = chrono::Utc::now();
        Channel {
            id: ChannelId::new(),
            org_id: OrgId::new(),
            name: "c".into(),
            kind: ChannelKind::Webhook,
            target,
            secret: Some("0123456789abcdef".into()),
            min_severity: mcpwatch_protocol::risk::RiskLevel::Low,
            events: vec![EventName::AlertCreated],
            enabled: true,
            source: ChannelSource::Api,
            created_by: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn event() -> Event {
        Event {
            id: 1,
            event: EventName::ChannelTest,
            timestamp: chrono::Utc::now(),
            organization_id: OrgId::new(),
            data: serde_json::json!({}),
        }
    }

    fn notifier(allow_private_targets: bool) -> Notifier {
        Notifier::new(&NotifySettings {
            allow_private_targets,
            ..NotifySettings::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn the_address_policy_is_checked_again_at_send_time_for_names_and_literals() {
        let port = receiver().await;
        // A name goes through the checking resolver, which keeps the URL's port.
        let by_name = channel(format!("http://localhost:{port}/hook"));
        let literal = channel(format!("http://127.0.0.1:{port}/hook"));
        let mapped = channel(format!("http://[::ffff:127.0.0.1]:{port}/hook"));
        let lax = notifier(true);
        for c in [&by_name, &literal] {
            assert_eq!(
                lax.send(c, &event()).await,
                Outcome::Delivered { status: Some(200) }
            );
        }
        // Saved while private targets were allowed, sent after they no longer are.
        let strict = notifier(false);
        for c in [&by_name, &literal, &mapped] {
            match strict.send(c, &event()).await {
                Outcome::Refused { error, .. } => {
                    assert!(error.contains("--allow-private-targets"), "{error}");
                }
                other => panic!("{other:?}"),
            }
        }
        // Refused for good: the delivery fails at once.
        let mut d = crate::notify::Delivery::new(&literal, &event(), chrono::Utc::now());
        let outcome = strict.send(&literal, &event()).await;
        assert!(crate::notify::after_attempt(
            &mut d,
            outcome,
            chrono::Utc::now(),
            0.0
        ));
        assert_eq!(d.status, DeliveryStatus::Failed);
    }
}
