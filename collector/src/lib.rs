//! `mcpwatch-collector`: the self-hosted API that receives MCP server inventories from
//! agents, stores them, scores their risk and raises alerts.
//!
//! # Layout
//!
//! - [`cli`], [`config`], [`logging`]: the command line, settings and log setup;
//! - [`server`]: the accept loop and background tasks; [`router`]: the route table;
//! - [`api`]: one module per resource, the error envelope and the auth extractors;
//! - [`auth`]: passwords, tokens, API keys;
//! - [`store`]: the storage interface and its redb implementation;
//! - [`ingest`]: what a report does to stored servers and which alerts it raises;
//! - [`model`]: the stored records; [`presence`], [`limits`]: in-memory state.

#![cfg_attr(not(test), deny(clippy::too_many_lines))]

pub mod alerts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod ingest;
pub mod jobs;
pub mod limits;
pub mod logging;
pub mod model;
pub mod presence;
pub mod router;
pub mod server;
pub mod state;
pub mod store;
