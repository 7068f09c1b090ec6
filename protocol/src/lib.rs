//! `mcpwatch-protocol`: what the mcpwatch agent and collector agree on.
//!
//! This crate is pure: no I/O, no async runtime, no HTTP. It owns
//!
//! - [`ids`]: the identifier newtypes (`OrgId`, `AgentId`, ...);
//! - [`wire`]: the request and response bodies the agent exchanges with the collector;
//! - [`server`]: the normalised MCP server record and its fingerprint;
//! - [`launch`]: reading launch lines into the program and package they run;
//! - [`limits`]: the limits a report respects, checked by the collector and met by the agent;
//! - [`signing`]: the Ed25519 request-signing scheme and its replay window;
//! - [`risk`]: the risk rules, the 0–100 score and the level derived from it.
//!
//! The agent uses it to build and sign what it sends and to show scores in `scan`;
//! the collector uses it to check what it receives and to score it the same way.

pub mod compact;
pub mod ids;
pub mod launch;
pub mod limits;
pub mod risk;
pub mod server;
pub mod signing;
pub mod wire;
