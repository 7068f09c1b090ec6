//! Enrollment: make the agent's signing key and exchange an enroll secret (or bind an
//! API key made with `POST /agents/`) for the agent's identity, saved in the state
//! dir. Used by `enroll`, by `install`, and by `run` when it has an enroll secret but
//! no identity yet.

use mcpwatch_protocol::wire::{EnrollRequest, HeartbeatRequest};

use crate::discovery::catalog::Os;
use crate::state::{State, StateDir};
use crate::upload::{self, Client};

/// How enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the collector refused the enroll secret (unknown, deleted or expired)")]
    SecretRefused,
    #[error("the collector refused the API key")]
    KeyRefused,
    #[error(
        "this API key already has another signing key bound; ask an admin for a new key or an enroll secret"
    )]
    KeyBoundElsewhere,
    #[error(transparent)]
    Upload(#[from] upload::Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
}

impl Error {
    /// How long the collector asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Upload(e) => e.retry_after(),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (the collector was away), as opposed to
    /// a credential that will never work.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Upload(
                upload::Error::Transport { .. }
                    | upload::Error::Unavailable { .. }
                    | upload::Error::RateLimited(_)
            )
        )
    }
}

/// How this agent proves it may join.
pub enum Credential<'a> {
    EnrollSecret(&'a str),
    ApiKey(&'a str),
}

fn hostname() -> Option<String> {
    gethostname::gethostname().into_string().ok()
}

/// Enroll with the collector at `server` and save the identity; returns the agent id.
/// The state dir's pending report (from an earlier identity) is dropped.
pub async fn enroll(
    dir: &StateDir,
    http: reqwest::Client,
    server: &str,
    credential: Credential<'_>,
) -> Result<String, Error> {
    let key = dir.new_signing_key()?;
    let public_key = mcpwatch_protocol::signing::encode_public_key(&key.verifying_key());
    let os = Os::current().as_str().to_owned();
    let (agent_id, api_key, key_bound) = match credential {
        Credential::EnrollSecret(secret) => {
            let mut request = EnrollRequest {
                enroll_secret: secret.to_owned(),
                public_key,
                name: hostname(),
                hostname: hostname(),
                os_type: Some(os),
                os_version: crate::host::os_version(),
                username: std::env::var("USER")
                    .or_else(|_| std::env::var("USERNAME"))
                    .ok(),
                agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                machine: crate::host::machine_facts(
                    crate::discovery::catalog::Os::current(),
                    std::path::Path::new(if cfg!(windows) { "C:\\" } else { "/" }),
                ),
            };
            mcpwatch_protocol::limits::fit_host(request.host_mut());
            if let Some(name) = &mut request.name {
                *name =
                    mcpwatch_protocol::limits::shorten(name, 200).unwrap_or_else(|| name.clone());
            }
            let answer = upload::enroll(&http, server, &request)
                .await
                .map_err(|e| match e {
                    upload::Error::Unauthorized(_) => Error::SecretRefused,
                    other => Error::Upload(other),
                })?;
            (answer.agent_id.to_string(), answer.api_key, true)
        }
        Credential::ApiKey(api_key) => {
            let client = Client::new(http, server, api_key.to_owned(), key, false);
            let request = HeartbeatRequest {
                hostname: hostname(),
                os_type: Some(os),
                agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                public_key: Some(client.public_key()),
                ..Default::default()
            };
            let answer = client.heartbeat(&request).await.map_err(|e| match e {
                upload::Error::Unauthorized(_) => Error::KeyRefused,
                upload::Error::Rejected { status: 409, .. } => Error::KeyBoundElsewhere,
                other => Error::Upload(other),
            })?;
            (
                answer.agent_id.to_string(),
                api_key.to_owned(),
                answer.signing_required,
            )
        }
    };
    let state = State {
        agent_id: Some(agent_id.clone()),
        collector_url: Some(server.trim_end_matches('/').to_owned()),
        api_key: Some(api_key),
        key_bound,
        ..State::default()
    };
    dir.clear_pending()?;
    dir.save(&state)?;
    Ok(agent_id)
}
