//! The state every handler shares: the store, the token service, settings, agent
//! presence, the replay guard, the rate limiters, the decompressed agent keys, the
//! signature checker and the notifier.

use std::sync::{Arc, Mutex};

use mcpwatch_protocol::ids::AgentId;
use mcpwatch_protocol::signing::ReplayGuard;

use crate::auth::signatures::SignatureChecker;
use crate::auth::tokens::TokenService;
use crate::config::Settings;
use crate::limits::{FailureLimiter, WindowLimiter};
use crate::notify::send::Notifier;
use crate::presence::Presence;
use crate::store::Store;

/// How many agents' decompressed public keys are kept (about 200 bytes each).
const VERIFYING_KEYS_CACHED: usize = 100_000;

/// What handlers get through `State<SharedState>`.
pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub tokens: TokenService,
    pub settings: Settings,
    pub presence: Presence,
    /// Nonces of signed agent requests seen within the replay window.
    pub replay: Mutex<ReplayGuard<(AgentId, u128)>>,
    /// Failed logins per account from one address: locks that pair out.
    pub login_by_pair: FailureLimiter<(String, std::net::IpAddr)>,
    /// Failed logins per account from any address: slows further attempts down (never
    /// locks, so that an attacker's failures cannot lock the owner out).
    pub login_by_account: FailureLimiter<String>,
    /// Failed logins and enrollments per client address, any account: locks it out.
    pub login_by_address: FailureLimiter<std::net::IpAddr>,
    /// Requests per agent API key.
    pub agent_requests: WindowLimiter<[u8; 32]>,
    /// Agents' public keys, decompressed: decompressing one costs a tenth of a
    /// signature check. Derived from the key bytes alone, so never stale: revocation
    /// is the agent lookup's business, which every request still makes.
    pub verifying_keys: quick_cache::sync::Cache<[u8; 32], ed25519_dalek::VerifyingKey>,
    /// Checks agent request signatures, in batches.
    pub signatures: SignatureChecker,
    /// Notified when stored servers should be rescored (a policy change); the
    /// background jobs (`jobs`) wait on it.
    pub rescore_wanted: tokio::sync::Notify,
    /// When API tokens were last used, not yet saved.
    pub token_use: crate::auth::token_use::TokenUse,
    /// Sends events to notification channels (the delivery worker and channel tests).
    pub notifier: Arc<Notifier>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: TokenService,
        settings: Settings,
        notifier: Arc<Notifier>,
    ) -> Self {
        Self {
            notifier,
            token_use: crate::auth::token_use::TokenUse::default(),
            store,
            tokens,
            presence: Presence::default(),
            replay: Mutex::new(ReplayGuard::default()),
            verifying_keys: quick_cache::sync::Cache::new(VERIFYING_KEYS_CACHED),
            signatures: SignatureChecker::start(),
            rescore_wanted: tokio::sync::Notify::new(),
            login_by_pair: FailureLimiter::new(
                settings.login_failures_per_account,
                settings.login_lockout,
            ),
            login_by_account: FailureLimiter::new(u32::MAX, settings.login_lockout),
            login_by_address: FailureLimiter::new(
                settings.login_failures_per_address,
                settings.login_lockout,
            ),
            agent_requests: WindowLimiter::new(
                settings.agent_requests_per_minute,
                std::time::Duration::from_secs(60),
            ),
            settings,
        }
    }
}
