//! Credentials: password hashing ([`password`]), the collector's signed access and
//! refresh tokens ([`tokens`]), agent API keys, enroll secrets and API tokens
//! ([`keys`]), when API tokens were last used ([`token_use`]), and agent request
//! signatures ([`signatures`]).

pub mod keys;
pub mod password;
pub mod signatures;
pub mod token_use;
pub mod tokens;

/// Why a credential was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token is malformed, expired, of the wrong kind, or not signed by this collector.
    #[error("invalid token")]
    InvalidToken,
    /// The signing key file could not be read or written.
    #[error("signing key {path}: {message}")]
    SigningKey { path: String, message: String },
    /// The password could not be hashed (argon2 parameters or RNG failure).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The OS random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Fill `buf` from the OS random number generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
}
