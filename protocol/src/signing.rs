//! The agent's request signature: Ed25519 over the method, the path, a timestamp, a
//! nonce and the SHA-256 of the body.
//!
//! Header (`X-MCPWatch-Signature`): `v1;t=<unix seconds>;n=<nonce, 32 hex>;s=<signature, base64>`.
//!
//! The signed message is the canonical string
//!
//! ```text
//! mcpwatch-request-v1\n<METHOD>\n<path and query>\n<t>\n<nonce>\n<hex sha256(body)>
//! ```
//!
//! The collector rejects a signature that does not verify, a timestamp more than
//! [`REPLAY_WINDOW_SECS`] away from its own clock, and a nonce it has already seen
//! within the window ([`ReplayGuard`]). This module does no I/O: callers pass the time
//! and the random nonce in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::hash::Hash;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-mcpwatch-signature";

/// How far (seconds) a request's timestamp may be from the collector's clock.
pub const REPLAY_WINDOW_SECS: i64 = 300;

const SCHEME: &str = "v1";
const DOMAIN: &str = "mcpwatch-request-v1";

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The header is not of the documented form.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the replay window.
    #[error(
        "signature timestamp is {skew_secs}s away from the collector's clock (limit {REPLAY_WINDOW_SECS}s)"
    )]
    Stale {
        /// Request time minus collector time, in seconds.
        skew_secs: i64,
    },
    /// The signature does not match the request and the agent's key.
    #[error("signature does not verify")]
    BadSignature,
    /// The same nonce was already used within the window.
    #[error("request was already seen (replay)")]
    Replayed,
    /// The public key is not a valid Ed25519 key.
    #[error("invalid public key: {0}")]
    InvalidKey(&'static str),
}

/// The parsed signature header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    /// Unix seconds when the agent signed.
    pub timestamp: i64,
    /// 16 random bytes, hex.
    pub nonce: String,
    /// The Ed25519 signature.
    pub signature: Signature,
}

impl SignatureHeader {
    /// Parse `v1;t=...;n=...;s=...`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let mut parts = value.split(';');
        if parts.next().map(str::trim) != Some(SCHEME) {
            return Err(Error::Malformed("unknown scheme, expected v1"));
        }
        let (mut t, mut n, mut s) = (None, None, None);
        for part in parts {
            let (key, val) = part
                .trim()
                .split_once('=')
                .ok_or(Error::Malformed("expected key=value"))?;
            let slot = match key {
                "t" => &mut t,
                "n" => &mut n,
                "s" => &mut s,
                _ => return Err(Error::Malformed("unknown key")),
            };
            if slot.replace(val).is_some() {
                return Err(Error::Malformed("repeated key"));
            }
        }
        let timestamp = t
            .ok_or(Error::Malformed("missing t"))?
            .parse::<i64>()
            .map_err(|_| Error::Malformed("t is not an integer"))?;
        let nonce = n.ok_or(Error::Malformed("missing n"))?;
        if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Malformed("n must be 32 hex digits"));
        }
        let sig_bytes = STANDARD
            .decode(s.ok_or(Error::Malformed("missing s"))?)
            .map_err(|_| Error::Malformed("s is not base64"))?;
        let sig_array: [u8; 64] = sig_bytes
            .try_into()
            .map_err(|_| Error::Malformed("s must be 64 bytes"))?;
        Ok(Self {
            timestamp,
            nonce: nonce.to_ascii_lowercase(),
            signature: Signature::from_bytes(&sig_array),
        })
    }

    /// The nonce as a number (it is 32 hex digits): a compact replay-guard key.
    pub fn nonce_value(&self) -> Result<u128, Error> {
        u128::from_str_radix(&self.nonce, 16).map_err(|_| Error::Malformed("n is not hex"))
    }

    /// The header's wire form.
    pub fn to_header_value(&self) -> String {
        format!(
            "{SCHEME};t={};n={};s={}",
            self.timestamp,
            self.nonce,
            STANDARD.encode(self.signature.to_bytes())
        )
    }
}

/// The bytes that are signed.
pub fn canonical_message(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(body));
    format!(
        "{DOMAIN}\n{}\n{path_and_query}\n{timestamp}\n{nonce}\n{body_hash}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

/// Sign a request; returns the header value. `nonce` must be fresh random bytes.
pub fn sign(
    key: &SigningKey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: i64,
    nonce: [u8; 16],
) -> String {
    let nonce = hex::encode(nonce);
    let message = canonical_message(method, path_and_query, timestamp, &nonce, body);
    SignatureHeader {
        timestamp,
        nonce,
        signature: key.sign(&message),
    }
    .to_header_value()
}

/// Check a parsed header against the request, the agent's key and the clock.
/// Does not check replay: pass the nonce to a [`ReplayGuard`] after this succeeds.
pub fn verify(
    key: &VerifyingKey,
    header: &SignatureHeader,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Error> {
    let message = signed_message(header, method, path_and_query, body, now)?;
    key.verify_strict(&message, &header.signature)
        .map_err(|_| Error::BadSignature)
}

/// The message a header's signature must verify against, once its timestamp is
/// checked against the clock: [`verify`] without the signature check, for a caller
/// that checks signatures in batches.
pub fn signed_message(
    header: &SignatureHeader,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: i64,
) -> Result<Vec<u8>, Error> {
    let skew_secs = header.timestamp.saturating_sub(now);
    if skew_secs.unsigned_abs() > REPLAY_WINDOW_SECS.unsigned_abs() {
        return Err(Error::Stale { skew_secs });
    }
    Ok(canonical_message(
        method,
        path_and_query,
        header.timestamp,
        &header.nonce,
        body,
    ))
}

/// Decode a base64 (standard alphabet) Ed25519 public key.
pub fn parse_public_key(base64_key: &str) -> Result<VerifyingKey, Error> {
    let bytes = STANDARD
        .decode(base64_key.trim())
        .map_err(|_| Error::InvalidKey("not base64"))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::InvalidKey("must be 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&array)
        .map_err(|_| Error::InvalidKey("not a valid Ed25519 point"))?;
    // A small-order point (the identity, and the seven others of small order) makes
    // one fixed signature verify for every message: never accept one as an identity.
    if key.is_weak() {
        return Err(Error::InvalidKey(
            "a weak (small-order) Ed25519 point, which cannot identify an agent",
        ));
    }
    Ok(key)
}

/// Encode a public key the way [`parse_public_key`] reads it.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// Remembers the nonces of accepted requests, so that a captured request cannot be
/// sent again. A request signed at `t` is accepted while the clock reads at most
/// `t +` [`REPLAY_WINDOW_SECS`], so its nonce is kept until then and then forgotten:
/// past that, the request is refused as stale anyway.
#[derive(Debug)]
pub struct ReplayGuard<K> {
    seen: HashSet<K>,
    /// When each remembered nonce may be forgotten, soonest first.
    expiry: BinaryHeap<Reverse<(i64, K)>>,
}

impl<K: Eq + Hash + Ord + Clone> Default for ReplayGuard<K> {
    fn default() -> Self {
        Self {
            seen: HashSet::new(),
            expiry: BinaryHeap::new(),
        }
    }
}

impl<K: Eq + Hash + Ord + Clone> ReplayGuard<K> {
    /// Record `key` (typically agent + nonce) of a request signed at `signed_at` and
    /// accepted at `now`; refuse it if it was already recorded and not yet forgotten.
    pub fn check_and_record(&mut self, key: K, signed_at: i64, now: i64) -> Result<(), Error> {
        self.expire(now);
        if self.seen.contains(&key) {
            return Err(Error::Replayed);
        }
        // `signed_at` is within the window of `now` (else the request is stale); the
        // clamp only keeps a careless caller from pinning a nonce for long.
        let until = signed_at
            .saturating_add(REPLAY_WINDOW_SECS)
            .clamp(now, now.saturating_add(2 * REPLAY_WINDOW_SECS));
        self.seen.insert(key.clone());
        self.expiry.push(Reverse((until, key)));
        Ok(())
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn expire(&mut self, now: i64) {
        while self
            .expiry
            .peek()
            .is_some_and(|Reverse((until, _))| *until < now)
        {
            if let Some(Reverse((_, key))) = self.expiry.pop() {
                self.seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn signed_request_verifies() {
        let key = key();
        let header = sign(&key, "POST", "/mcp/report", b"{}", 1_000, [1; 16]);
        let parsed = SignatureHeader::parse(&header).unwrap();
        verify(
            &key.verifying_key(),
            &parsed,
            "post",
            "/mcp/report",
            b"{}",
            1_010,
        )
        .unwrap();
    }

    #[test]
    fn any_change_to_the_request_breaks_the_signature() {
        let key = key();
        let header = sign(
            &key,
            "POST",
            "/mcp/report",
            b"{\"servers\":[]}",
            1_000,
            [1; 16],
        );
        let parsed = SignatureHeader::parse(&header).unwrap();
        let vk = key.verifying_key();
        let cases: [(&str, &str, &[u8]); 3] = [
            ("GET", "/mcp/report", b"{\"servers\":[]}"),
            ("POST", "/agents/heartbeat", b"{\"servers\":[]}"),
            ("POST", "/mcp/report", b"{\"servers\":[1]}"),
        ];
        for (method, path, body) in cases {
            assert_eq!(
                verify(&vk, &parsed, method, path, body, 1_000),
                Err(Error::BadSignature),
                "{method} {path}"
            );
        }
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(
            verify(
                &other,
                &parsed,
                "POST",
                "/mcp/report",
                b"{\"servers\":[]}",
                1_000
            ),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        let key = key();
        for (signed_at, now, ok) in [
            (1_000, 1_000 + REPLAY_WINDOW_SECS, true),
            (1_000, 1_001 + REPLAY_WINDOW_SECS, false),
            (1_000 + REPLAY_WINDOW_SECS, 1_000, true),
            (1_001 + REPLAY_WINDOW_SECS, 1_000, false),
            (i64::MIN, 0, false),
            (i64::MAX, 0, false),
        ] {
            let header = sign(&key, "POST", "/p", b"", signed_at, [2; 16]);
            let parsed = SignatureHeader::parse(&header).unwrap();
            let result = verify(&key.verifying_key(), &parsed, "POST", "/p", b"", now);
            assert_eq!(
                result.is_ok(),
                ok,
                "signed at {signed_at}, now {now}: {result:?}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        for value in [
            "",
            "v2;t=1;n=00000000000000000000000000000000;s=AA==",
            "v1;t=x;n=00000000000000000000000000000000;s=AA==",
            "v1;t=1;n=short;s=AA==",
            "v1;t=1;n=00000000000000000000000000000000;s=AA==",
            "v1;t=1;t=2;n=00000000000000000000000000000000;s=AA==",
            "v1;t=1;n=00000000000000000000000000000000",
            "v1;t=1;n=00000000000000000000000000000000;s=!!!",
            "v1;garbage",
        ] {
            assert!(
                matches!(SignatureHeader::parse(value), Err(Error::Malformed(_))),
                "{value:?}"
            );
        }
    }

    #[test]
    fn replay_guard_refuses_a_nonce_twice_and_forgets_it_when_it_would_be_stale() {
        let mut guard = ReplayGuard::default();
        guard.check_and_record(("agent", "n1"), 100, 100).unwrap();
        assert_eq!(
            guard.check_and_record(("agent", "n1"), 100, 101),
            Err(Error::Replayed)
        );
        guard.check_and_record(("other", "n1"), 100, 101).unwrap();
        // The last second the request would still be accepted: still remembered.
        let last = 100 + REPLAY_WINDOW_SECS;
        assert_eq!(
            guard.check_and_record(("agent", "n1"), 100, last),
            Err(Error::Replayed)
        );
        // Signed by a clock ahead of ours: kept longer.
        guard
            .check_and_record(("ahead", "n1"), last, last - 10)
            .unwrap();
        guard
            .check_and_record(("agent", "n2"), last, last + 1)
            .unwrap();
        assert_eq!(guard.len(), 2, "the first two are forgotten");
        assert_eq!(
            guard.check_and_record(("ahead", "n1"), last, last + 1),
            Err(Error::Replayed)
        );
        // The replay of a forgotten nonce is refused by the clock instead.
        let header = sign(&key(), "POST", "/p", b"", 100, [3; 16]);
        let parsed = SignatureHeader::parse(&header).unwrap();
        assert!(matches!(
            verify(&key().verifying_key(), &parsed, "POST", "/p", b"", last + 1),
            Err(Error::Stale { .. })
        ));
    }

    #[test]
    fn the_nonce_reads_as_a_number() {
        let header = sign(&key(), "POST", "/p", b"", 100, [0xab; 16]);
        let parsed = SignatureHeader::parse(&header).unwrap();
        assert_eq!(parsed.nonce_value(), Ok(u128::from_be_bytes([0xab; 16])));
    }

    #[test]
    fn public_keys_round_trip_and_bad_ones_are_refused() {
        let vk = key().verifying_key();
        assert_eq!(parse_public_key(&encode_public_key(&vk)).unwrap(), vk);
        assert!(parse_public_key("not base64!").is_err());
        assert!(parse_public_key("AAAA").is_err());
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The identity point (y = 1) and the other small-order points.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut order_two = [0u8; 32];
        order_two[0] = 0xec;
        order_two[1..31].fill(0xff);
        order_two[31] = 0x7f;
        for weak in [identity, order_two, [0u8; 32]] {
            let encoded = STANDARD.encode(weak);
            assert!(
                matches!(parse_public_key(&encoded), Err(Error::InvalidKey(m)) if m.contains("weak") || m.contains("valid")),
                "{weak:?}"
            );
        }
        let good = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        assert!(parse_public_key(&encode_public_key(&good)).is_ok());
    }
}
