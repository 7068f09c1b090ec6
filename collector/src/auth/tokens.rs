//! Access and refresh tokens: JWTs signed with EdDSA by the collector's own Ed25519
//! key, kept in the data dir (created on first start, owner-only). No shared secret.
//!
//! Claims: `sub` (user), `org`, `sid` (session), `typ` (`access`, `refresh` or
//! `console`: the console's session cookie), `jti`, `iat`, `exp`. An access token is only as good as its session: the API checks that
//! the session still exists, so logout, password change and user removal end it.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mcpwatch_protocol::ids::{OrgId, SessionId, UserId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Error, Result, random_bytes};

/// How long an access token lives.
pub const ACCESS_TTL: Duration = Duration::minutes(30);
/// How long a refresh token lives.
pub const REFRESH_TTL: Duration = Duration::days(7);
/// How long the console's session cookie lives (a working day; then log in again).
pub const CONSOLE_TTL: Duration = Duration::hours(12);
/// The file in the data dir that holds the signing key's 32-byte seed.
pub const KEY_FILE: &str = "token-signing.key";
/// The name of the signing key's seed among a shared store's secrets.
const SHARED_KEY_NAME: &str = "token-signing-key";

const ISSUER: &str = "mcpwatch-collector";

/// The two kinds of token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
    Console,
}

/// What a token says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: UserId,
    pub org: OrgId,
    pub sid: SessionId,
    pub typ: TokenType,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Signs and checks tokens.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Derived from the signing key: the console's CSRF tokens.
    csrf_key: [u8; 32],
}

/// A freshly issued token.
pub struct Issued {
    pub token: String,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

impl TokenService {
    /// Load the signing key from `data_dir`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let err = |message: String| Error::SigningKey {
            path: path.display().to_string(),
            message,
        };
        let seed: [u8; 32] = match fs::read(&path) {
            Ok(bytes) => bytes.try_into().map_err(|_| {
                err(
                    "must hold exactly 32 bytes; delete it to create a new key (all sessions end)"
                        .into(),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                random_bytes(&mut seed)?;
                write_private(&path, &seed).map_err(|e| err(e.to_string()))?;
                seed
            }
            Err(e) => return Err(err(e.to_string())),
        };
        Self::from_seed(&seed).map_err(|e| err(e.to_string()))
    }

    /// The signing key every instance on one database shares, kept in the store
    /// (made by the first instance to start).
    pub async fn shared(store: &dyn crate::store::Store) -> Result<Self> {
        let err = |message: String| Error::SigningKey {
            path: "(the database)".into(),
            message,
        };
        let mut made = [0u8; 32];
        random_bytes(&mut made)?;
        let seed = store
            .shared_secret(SHARED_KEY_NAME, made)
            .await
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(|| err("this store keeps no shared secrets".into()))?;
        Self::from_seed(&seed).map_err(|e| err(e.to_string()))
    }

    /// Offer the data dir's signing key (if it has one) as the key `store` shares;
    /// answers whether the store's key is now that one (`false`: it already had
    /// another, which stays).
    pub async fn share_key_file(data_dir: &Path, store: &dyn crate::store::Store) -> Result<bool> {
        let path = data_dir.join(KEY_FILE);
        let err = |message: String| Error::SigningKey {
            path: path.display().to_string(),
            message,
        };
        let seed: [u8; 32] = match fs::read(&path) {
            Ok(bytes) => bytes
                .try_into()
                .map_err(|_| err("must hold exactly 32 bytes".into()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(err(e.to_string())),
        };
        let shared = store
            .shared_secret(SHARED_KEY_NAME, seed)
            .await
            .map_err(|e| err(e.to_string()))?
            .ok_or_else(|| err("this store keeps no shared secrets".into()))?;
        Ok(shared == seed)
    }

    fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        let signing = SigningKey::from_bytes(seed);
        let der = signing.to_pkcs8_der().map_err(|e| Error::SigningKey {
            path: String::new(),
            message: e.to_string(),
        })?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let decoding = DecodingKey::from_ed_der(signing.verifying_key().as_bytes());
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 5;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let csrf_key = Hmac::<Sha256>::new_from_slice(seed)
            .map_err(|_| Error::InvalidToken)?
            .chain_update(b"mcpwatch console csrf")
            .finalize()
            .into_bytes()
            .into();
        Ok(Self {
            encoding,
            decoding,
            validation,
            csrf_key,
        })
    }

    /// Sign a token of the given type for a session.
    pub fn issue(
        &self,
        user: UserId,
        org: OrgId,
        sid: SessionId,
        typ: TokenType,
    ) -> Result<Issued> {
        let now = Utc::now();
        let expires_at = now
            + match typ {
                TokenType::Access => ACCESS_TTL,
                TokenType::Refresh => REFRESH_TTL,
                TokenType::Console => CONSOLE_TTL,
            };
        let mut jti = [0u8; 16];
        random_bytes(&mut jti)?;
        let jti = hex::encode(jti);
        let claims = Claims {
            sub: user,
            org,
            sid,
            typ,
            jti: jti.clone(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(|_| Error::InvalidToken)?;
        Ok(Issued {
            token,
            jti,
            expires_at,
        })
    }

    /// Check a token's signature, expiry and type.
    pub fn verify(&self, token: &str, typ: TokenType) -> Result<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| Error::InvalidToken)?;
        if data.claims.typ != typ {
            return Err(Error::InvalidToken);
        }
        Ok(data.claims)
    }
}

impl TokenService {
    fn csrf_mac(&self, scope: &[u8]) -> Hmac<Sha256> {
        // A 32-byte key always fits HMAC-SHA256.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.csrf_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(scope);
        mac
    }

    /// The CSRF token of the console's forms for a session (or, before login, for the
    /// login form's nonce): stable for the session, useless for any other.
    pub fn csrf_token(&self, scope: &[u8]) -> String {
        hex::encode(self.csrf_mac(scope).finalize().into_bytes())
    }

    /// Whether `given` is the CSRF token for `scope` (compared in constant time).
    pub fn csrf_ok(&self, scope: &[u8], given: &str) -> bool {
        hex::decode(given.trim())
            .is_ok_and(|bytes| self.csrf_mac(scope).verify_slice(&bytes).is_ok())
    }
}

/// Write a file readable by its owner only, replacing nothing.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (UserId, OrgId, SessionId) {
        (UserId::new(), OrgId::new(), SessionId::new())
    }

    #[test]
    fn tokens_verify_with_their_type_only() {
        let dir = tempfile::tempdir().unwrap();
        let service = TokenService::load_or_create(dir.path()).unwrap();
        let (user, org, sid) = ids();
        let access = service.issue(user, org, sid, TokenType::Access).unwrap();
        let claims = service.verify(&access.token, TokenType::Access).unwrap();
        assert_eq!((claims.sub, claims.org, claims.sid), (user, org, sid));
        assert!(service.verify(&access.token, TokenType::Refresh).is_err());
        let refresh = service.issue(user, org, sid, TokenType::Refresh).unwrap();
        assert!(service.verify(&refresh.token, TokenType::Access).is_err());
        assert!(service.verify("garbage", TokenType::Access).is_err());
    }

    #[test]
    fn the_key_persists_and_other_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenService::load_or_create(dir.path()).unwrap();
        let (user, org, sid) = ids();
        let token = first
            .issue(user, org, sid, TokenType::Access)
            .unwrap()
            .token;
        let again = TokenService::load_or_create(dir.path()).unwrap();
        assert!(again.verify(&token, TokenType::Access).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other_dir = tempfile::tempdir().unwrap();
        let other = TokenService::load_or_create(other_dir.path()).unwrap();
        assert!(other.verify(&token, TokenType::Access).is_err());
    }

    #[test]
    fn a_tampered_or_unsigned_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let service = TokenService::load_or_create(dir.path()).unwrap();
        let (user, org, sid) = ids();
        let token = service
            .issue(user, org, sid, TokenType::Access)
            .unwrap()
            .token;
        let mut parts: Vec<&str> = token.split('.').collect();
        // alg=none with the same claims
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        parts[0] = none_header;
        assert!(
            service
                .verify(&format!("{}.{}.", parts[0], parts[1]), TokenType::Access)
                .is_err()
        );
    }

    #[test]
    fn csrf_tokens_hold_for_their_scope_and_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let service = TokenService::load_or_create(dir.path()).unwrap();
        let token = service.csrf_token(b"session-1");
        assert!(service.csrf_ok(b"session-1", &token));
        assert!(!service.csrf_ok(b"session-2", &token));
        assert!(!service.csrf_ok(b"session-1", ""));
        assert!(!service.csrf_ok(b"session-1", &token[..10]));
        let other = TokenService::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(!other.csrf_ok(b"session-1", &token));
        // The same key after a restart: forms already open still post.
        let again = TokenService::load_or_create(dir.path()).unwrap();
        assert!(again.csrf_ok(b"session-1", &token));
    }

    #[test]
    fn a_damaged_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let err = TokenService::load_or_create(dir.path()).err().unwrap();
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }
}
