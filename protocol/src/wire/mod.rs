//! Request and response bodies exchanged between the agent and the collector.
//!
//! Names follow `<Thing>Request` / `<Thing>Response`. The seed contract's fields keep
//! their names and meaning; every extension is optional so that a minimal client (the
//! seed's `curl` examples) stays valid.

mod enroll;
mod error;
mod heartbeat;
mod report;

pub use enroll::{EnrollRequest, EnrollResponse};
pub use error::{ErrorBody, ErrorDetail};
pub use heartbeat::{HeartbeatRequest, HeartbeatResponse, MachineFacts};
pub use report::{ConfigError, ReportRequest, ReportResponse};

/// The header that carries an agent's API key (seed contract).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The prefix of every agent API key.
pub const API_KEY_PREFIX: &str = "mcp_sk_";
