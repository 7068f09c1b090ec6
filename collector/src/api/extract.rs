//! Extractors: who is calling and what they sent.
//!
//! - [`AuthUser`]: a person, from `Authorization: Bearer <access token>` (its session
//!   and user checked against the store on every request) or `Authorization: Bearer
//!   mcp_pat_...` (an API token: its owner checked the same way, its role at most the
//!   owner's).
//! - [`AgentRequest`]: an agent, from `X-API-Key`, with its JSON body; an agent with a
//!   bound public key must also sign the request (see `protocol::signing`).
//! - [`ApiJson`], [`ApiQuery`]: a JSON body and query parameters whose rejections use
//!   the API's error envelope.
//!
//! A handler without one of the first two is public, and that is visible in its
//! signature.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use chrono::Utc;
use ed25519_dalek::VerifyingKey;
use mcpwatch_protocol::signing::{self, SignatureHeader};
use mcpwatch_protocol::wire::API_KEY_HEADER;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::keys;
use crate::auth::tokens::TokenType;
use crate::model::{Agent, ApiToken, Role, Session, User};
use crate::state::SharedState;

/// Query parameters whose rejections (a repeated parameter, say) use the API's error
/// envelope.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// A JSON body; malformed JSON is a 400 and a wrong or missing field a 422 naming it.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// How a person proved who they are.
#[derive(Clone, Debug)]
pub enum Credential {
    /// An access token of a login session.
    Session(Session),
    /// An API token.
    ApiToken(ApiToken),
}

/// An authenticated person. `user.role` is the role this request has: the user's, or
/// the API token's when that is lower.
#[derive(Clone)]
pub struct AuthUser {
    pub user: User,
    pub via: Credential,
}

impl AuthUser {
    /// The login session, when the request came with an access token.
    pub fn session(&self) -> Option<&Session> {
        match &self.via {
            Credential::Session(s) => Some(s),
            Credential::ApiToken(_) => None,
        }
    }

    /// The API token, when the request came with one.
    pub fn api_token(&self) -> Option<&ApiToken> {
        match &self.via {
            Credential::ApiToken(t) => Some(t),
            Credential::Session(_) => None,
        }
    }

    /// Refuse with 403 unless the user's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.user.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this action needs the {} role", role.as_str()))
                .with_details(serde_json::json!({ "required_role": role.as_str(), "role": self.user.role.as_str() })))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The person the router authenticated and authorised for this request (see
/// `router::authorize`), for the handler's [`AuthUser`].
#[derive(Clone)]
pub struct Authenticated(pub AuthUser);

/// The answer to an agent whose key was revoked (or never issued), or whose record
/// went away while its request was handled.
pub fn agent_key_invalid() -> ApiError {
    ApiError::unauthorized("API key is not valid (revoked or never issued)")
}

/// A store error while handling an agent's request: `NotFound` means the agent
/// itself is gone.
pub fn agent_store_error(err: crate::store::Error) -> ApiError {
    match err {
        crate::store::Error::NotFound => agent_key_invalid(),
        other => other.into(),
    }
}

impl FromRequestParts<SharedState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(Authenticated(user)) = parts.extensions.remove::<Authenticated>() {
            return Ok(user);
        }
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("missing Authorization: Bearer <access token or API token>")
        })?;
        if token.starts_with(keys::API_TOKEN_PREFIX) {
            return by_api_token(token, state).await;
        }
        by_session_token(token, TokenType::Access, state).await
    }
}

/// A person by a token of a login session (an access token, or the console's
/// cookie): signed by this collector, of type `typ`, its session still there and its
/// user active.
pub async fn by_session_token(
    token: &str,
    typ: TokenType,
    state: &SharedState,
) -> Result<AuthUser, ApiError> {
    let claims = state.tokens.verify(token, typ)?;
    let (session, user) = match state.store.get_session(claims.sid).await {
        Ok(found) => found,
        Err(crate::store::Error::NotFound) => {
            return Err(ApiError::unauthorized("session has ended; log in again"));
        }
        Err(e) => return Err(e.into()),
    };
    if session.user_id != claims.sub || session.org_id != claims.org || user.org_id != claims.org {
        return Err(ApiError::unauthorized("token does not match its session"));
    }
    if !user.is_active {
        return Err(ApiError::unauthorized("account is disabled"));
    }
    Ok(AuthUser {
        user,
        via: Credential::Session(session),
    })
}

/// A person by API token: known, not expired, its owner present and active; the
/// request gets the lower of the two roles.
async fn by_api_token(token: &str, state: &SharedState) -> Result<AuthUser, ApiError> {
    let found = state.store.find_api_token(keys::hash(token)).await?;
    let now = Utc::now();
    let (record, mut user) = found.ok_or(TokenRefusal::Unknown)?;
    user.role = token_role(&record, &user, now)?;
    state.token_use.note(record.org_id, record.id, now);
    Ok(AuthUser {
        user,
        via: Credential::ApiToken(record),
    })
}

/// Why an API token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired,
    Disabled,
}

impl From<TokenRefusal> for ApiError {
    fn from(r: TokenRefusal) -> Self {
        ApiError::unauthorized(match r {
            TokenRefusal::Unknown => "API token is not valid (revoked or never issued)",
            TokenRefusal::Expired => "API token has expired",
            TokenRefusal::Disabled => "account is disabled",
        })
    }
}

/// The role a request with `token` of `user` has at `now`, or why it has none.
pub fn token_role(
    token: &ApiToken,
    user: &User,
    now: chrono::DateTime<Utc>,
) -> Result<Role, TokenRefusal> {
    if token.org_id != user.org_id || token.user_id != user.id {
        return Err(TokenRefusal::Unknown);
    }
    if token.expires_at <= now {
        return Err(TokenRefusal::Expired);
    }
    if !user.is_active {
        return Err(TokenRefusal::Disabled);
    }
    Ok(user.role.min(token.role))
}

/// An authenticated agent request with its parsed JSON body.
pub struct AgentRequest<T> {
    pub agent: Agent,
    pub body: T,
    /// Whether the request carried a valid signature.
    pub signed: bool,
}

/// Parse a JSON body with serde's field path in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => Ok(value),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("malformed JSON: {inner}"),
                ))
            } else if path == "." {
                Err(ApiError::body_field_error(&inner.to_string()))
            } else {
                Err(ApiError::body_field_error(&format!("{path}: {inner}")))
            }
        }
    }
}

impl<T: DeserializeOwned + Send> FromRequest<SharedState> for AgentRequest<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let key = parts
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::unauthorized("missing X-API-Key header"))?;
        let key_hash = keys::hash(key);
        let limit = state.settings.max_body_bytes;
        let bytes: Bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::payload_too_large(limit))?;
        let agent = state
            .store
            .find_agent_by_key(key_hash)
            .await?
            .ok_or_else(agent_key_invalid)?;

        let signature = parts.headers.get(signing::SIGNATURE_HEADER);
        let signed = match (agent.public_key, signature) {
            (Some(_), None) => {
                return Err(ApiError::unauthorized(
                    "this agent must sign its requests (X-MCPWatch-Signature missing)",
                ));
            }
            (Some(public_key), Some(value)) => {
                verify_signature(state, &agent, &public_key, value, &parts, &bytes).await?;
                true
            }
            // Keys made with POST /agents/ work alone until a public key is bound.
            (None, _) => false,
        };
        let body = parse_json(&bytes)?;
        Ok(Self {
            agent,
            body,
            signed,
        })
    }
}

async fn verify_signature(
    state: &SharedState,
    agent: &Agent,
    public_key: &[u8; 32],
    value: &axum::http::HeaderValue,
    parts: &Parts,
    body: &[u8],
) -> Result<(), ApiError> {
    let refuse =
        |e: signing::Error| ApiError::unauthorized(format!("request signature refused: {e}"));
    let header = SignatureHeader::parse(
        value
            .to_str()
            .map_err(|_| refuse(signing::Error::Malformed("not ASCII")))?,
    )
    .map_err(refuse)?;
    let key = match state.verifying_keys.get(public_key) {
        Some(key) => key,
        None => {
            // Checked once here, when the stored key is decompressed (small-order keys
            // are refused at enrollment and binding; one stored before that never
            // verifies anything).
            let key = VerifyingKey::from_bytes(public_key)
                .ok()
                .filter(|k| !k.is_weak())
                .ok_or_else(|| refuse(signing::Error::InvalidKey("stored key")))?;
            state.verifying_keys.insert(*public_key, key);
            key
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |pq| pq.as_str());
    let now = Utc::now().timestamp();
    let message =
        signing::signed_message(&header, parts.method.as_str(), path, body, now).map_err(refuse)?;
    let verified = state
        .signatures
        .verify(key, message, header.signature)
        .await;
    crate::metrics::METRICS.signature(verified);
    if !verified {
        return Err(refuse(signing::Error::BadSignature));
    }
    let nonce = header.nonce_value().map_err(refuse)?;
    state
        .replay
        .lock()
        .map_err(|_| ApiError::internal("replay guard lock poisoned"))?
        .check_and_record((agent.id, nonce), header.timestamp, now)
        .map_err(refuse)?;
    // Instances sharing a database share the guard too: a request accepted by another
    // instance is refused here.
    let until = header
        .timestamp
        .saturating_add(signing::REPLAY_WINDOW_SECS)
        .clamp(now, now.saturating_add(2 * signing::REPLAY_WINDOW_SECS));
    let until = chrono::DateTime::from_timestamp(until, 0).unwrap_or_else(Utc::now);
    if !state.store.claim_nonce(agent.id, nonce, until).await? {
        return Err(refuse(signing::Error::Replayed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpwatch_protocol::ids::{ApiTokenId, OrgId, UserId};

    #[test]
    fn a_token_has_the_lower_role_until_it_expires_or_its_owner_is_disabled() {
        let now = Utc::now();
        let user = User {
            id: UserId::new(),
            org_id: OrgId::new(),
            email: "a@a.example".into(),
            full_name: String::new(),
            role: Role::Analyst,
            password_hash: String::new(),
            is_active: true,
            created_at: now,
            updated_at: now,
        };
        let token = ApiToken {
            id: ApiTokenId::new(),
            org_id: user.org_id,
            user_id: user.id,
            name: "ci".into(),
            role: Role::Admin,
            token_hash: [0; 32],
            token_prefix: "mcp_pat_x".into(),
            created_at: now,
            expires_at: now + chrono::Duration::days(1),
            last_used_at: None,
        };
        assert_eq!(token_role(&token, &user, now), Ok(Role::Analyst));
        let viewer_token = ApiToken {
            role: Role::Viewer,
            ..token.clone()
        };
        assert_eq!(token_role(&viewer_token, &user, now), Ok(Role::Viewer));
        let later = now + chrono::Duration::days(1);
        assert_eq!(token_role(&token, &user, later), Err(TokenRefusal::Expired));
        let disabled = User {
            is_active: false,
            ..user.clone()
        };
        assert_eq!(
            token_role(&token, &disabled, now),
            Err(TokenRefusal::Disabled)
        );
        let other = User {
            id: UserId::new(),
            ..user
        };
        assert_eq!(token_role(&token, &other, now), Err(TokenRefusal::Unknown));
    }
}
