//! The state every handler shares: the store, the token service, settings, agent
//! presence, the replay guard and the rate limiters.

use std::sync::{Arc, Mutex};

use mcpwatch_protocol::ids::AgentId;
use mcpwatch_protocol::signing::ReplayGuard;

use crate::auth::tokens::TokenService;
use crate::config::Settings;
use crate::limits::{FailureLimiter, WindowLimiter};
use crate::presence::Presence;
use crate::store::Store;

/// What handlers get through `State<SharedState>`.
pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub tokens: TokenService,
    pub settings: Settings,
    pub presence: Presence,
    /// Nonces of signed agent requests seen within the replay window.
    pub replay: Mutex<ReplayGuard<(AgentId, String)>>,
    /// Failed logins per account.
    pub login_by_account: FailureLimiter<String>,
    /// Failed logins and enrollments per client address.
    pub login_by_address: FailureLimiter<std::net::IpAddr>,
    /// Requests per agent API key.
    pub agent_requests: WindowLimiter<[u8; 32]>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, tokens: TokenService, settings: Settings) -> Self {
        Self {
            store,
            tokens,
            presence: Presence::default(),
            replay: Mutex::new(ReplayGuard::default()),
            login_by_account: FailureLimiter::new(
                settings.login_failures_per_account,
                settings.login_lockout,
            ),
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
