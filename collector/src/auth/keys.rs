//! Agent API keys (`mcp_sk_...`), enroll secrets (`mcp_es_...`), API tokens
//! (`mcp_pat_...`) and webhook secrets (`whsec_...`): random, shown
//! once, stored only as SHA-256. The keys carry 256 bits of randomness, so a fast hash
//! is enough (a slow one would cost a heartbeat's whole budget) and lookups by hash
//! are constant-time with respect to the key's contents.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpwatch_protocol::wire::API_KEY_PREFIX;
use sha2::{Digest, Sha256};

use super::{Result, random_bytes};

/// The prefix of every enroll secret.
pub const ENROLL_SECRET_PREFIX: &str = "mcp_es_";

/// How many characters of a key are kept to tell keys apart.
const DISPLAY_PREFIX_LEN: usize = 12;

fn generate(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// A new agent API key.
pub fn new_api_key() -> Result<String> {
    generate(API_KEY_PREFIX)
}

/// A new enroll secret.
pub fn new_enroll_secret() -> Result<String> {
    generate(ENROLL_SECRET_PREFIX)
}

/// The prefix of every API token.
pub const API_TOKEN_PREFIX: &str = "mcp_pat_";

/// A new API token.
pub fn new_api_token() -> Result<String> {
    generate(API_TOKEN_PREFIX)
}

/// A new webhook signing secret (the webhook receiver keeps it to check signatures).
pub fn new_webhook_secret() -> Result<String> {
    generate("whsec_")
}

/// The stored form of a key or secret.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The part of a key that may be shown again (`mcp_sk_AbCd`).
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(DISPLAY_PREFIX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hash_stably() {
        let a = new_api_key().unwrap();
        let b = new_api_key().unwrap();
        assert!(a.starts_with("mcp_sk_") && a.len() == 7 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(display_prefix(&a).len(), 12);
        assert!(new_enroll_secret().unwrap().starts_with("mcp_es_"));
    }
}
