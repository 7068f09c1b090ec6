//! Talking to the collector over HTTPS (reqwest with rustls; no OpenSSL): enrollment,
//! signed heartbeats and reports, with timeouts, and errors typed so that the daemon
//! can decide: 401 means the key may be revoked, 429/503 mean wait (honouring
//! `Retry-After`), other 4xx mean the request itself is wrong, transport errors mean
//! retry later.

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use mcpwatch_protocol::signing;
use mcpwatch_protocol::wire::{
    API_KEY_HEADER, EnrollRequest, EnrollResponse, HeartbeatRequest, HeartbeatResponse,
    ReportRequest, ReportResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the collector refused our credentials: {0}")]
    Unauthorized(String),
    #[error("the collector asks us to slow down")]
    RateLimited(Option<Duration>),
    #[error("the collector is unavailable (HTTP {status})")]
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("the collector rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("cannot reach the collector at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("cannot set up HTTPS: {0}")]
    Setup(String),
}

impl Error {
    /// How long the collector asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited(d) | Self::Unavailable { retry_after: d, .. } => *d,
            _ => None,
        }
    }
}

static PROVIDER: Once = Once::new();

/// An HTTPS client with timeouts, trusting the platform's roots and `ca_file` if given.
pub fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client, Error> {
    PROVIDER.call_once(|| {
        // Only fails if another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("mcpwatch-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| Error::Setup(format!("reading CA file {}: {e}", path.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| Error::Setup(format!("CA file {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| Error::Setup(e.to_string()))
}

fn transport(url: &str, e: &reqwest::Error) -> Error {
    // The error chain names TLS and connection failures; never the request body.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    Error::Transport {
        url: url.to_owned(),
        message,
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(3600)))
}

async fn answer<R: DeserializeOwned>(url: &str, response: reqwest::Response) -> Result<R, Error> {
    let status = response.status().as_u16();
    let wait = retry_after(&response);
    let text = response.text().await.map_err(|e| transport(url, &e))?;
    let message = || {
        serde_json::from_str::<mcpwatch_protocol::wire::ErrorBody>(&text)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| text.chars().take(200).collect())
    };
    match status {
        200..=299 => serde_json::from_str(&text).map_err(|e| Error::Rejected {
            status,
            message: format!("unreadable answer: {e}"),
        }),
        401 => Err(Error::Unauthorized(message())),
        429 => Err(Error::RateLimited(wait)),
        500..=599 => Err(Error::Unavailable {
            status,
            retry_after: wait,
        }),
        _ => Err(Error::Rejected {
            status,
            message: message(),
        }),
    }
}

/// Exchange an enroll secret for an agent identity.
pub async fn enroll(
    http: &reqwest::Client,
    base: &str,
    request: &EnrollRequest,
) -> Result<EnrollResponse, Error> {
    let url = format!("{}/agents/enroll", base.trim_end_matches('/'));
    let response = http
        .post(&url)
        .json(request)
        .send()
        .await
        .map_err(|e| transport(&url, &e))?;
    answer(&url, response).await
}

/// An enrolled agent's connection to its collector.
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: String,
    key: SigningKey,
    /// Sign requests (once the collector has our public key).
    pub sign: bool,
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        api_key: String,
        key: SigningKey,
        sign: bool,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
            key,
            sign,
        }
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, Error> {
        let url = format!("{}{path}", self.base);
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Setup(e.to_string()))?;
        let mut request = self
            .http
            .post(&url)
            .header(API_KEY_HEADER, &self.api_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if self.sign {
            let mut nonce = [0u8; 16];
            getrandom::fill(&mut nonce).map_err(|e| Error::Setup(e.to_string()))?;
            let header = signing::sign(
                &self.key,
                "POST",
                path,
                &bytes,
                chrono::Utc::now().timestamp(),
                nonce,
            );
            request = request.header(signing::SIGNATURE_HEADER, header);
        }
        let response = request
            .body(bytes)
            .send()
            .await
            .map_err(|e| transport(&url, &e))?;
        answer(&url, response).await
    }

    pub async fn heartbeat(&self, body: &HeartbeatRequest) -> Result<HeartbeatResponse, Error> {
        self.post("/agents/heartbeat", body).await
    }

    pub async fn report(&self, body: &ReportRequest) -> Result<ReportResponse, Error> {
        self.post("/mcp/report", body).await
    }

    /// The public key, as the collector expects it.
    pub fn public_key(&self) -> String {
        signing::encode_public_key(&self.key.verifying_key())
    }
}

/// Waits between retries: exponential from 1 s to 5 min, with jitter, or what the
/// collector asked for.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn next(&mut self, asked: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        if let Some(d) = asked {
            return d;
        }
        let base = Duration::from_secs(1u64 << self.failures.min(9).saturating_sub(1))
            .min(Duration::from_secs(300));
        let mut r = [0u8; 2];
        let _ = getrandom::fill(&mut r);
        // Up to +25% so that many agents do not retry in step.
        let jitter_ms = u64::from(u16::from_le_bytes(r)) % (base.as_millis() as u64 / 4 + 1);
        base + Duration::from_millis(jitter_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let mut b = Backoff::default();
        let first = b.next(None);
        assert!(
            first >= Duration::from_secs(1) && first <= Duration::from_millis(1250),
            "{first:?}"
        );
        let second = b.next(None);
        assert!(second >= Duration::from_secs(2));
        for _ in 0..20 {
            assert!(b.next(None) <= Duration::from_secs(375));
        }
        assert_eq!(b.next(Some(Duration::from_secs(7))), Duration::from_secs(7));
        b.reset();
        assert!(b.next(None) <= Duration::from_millis(1250));
    }
}
