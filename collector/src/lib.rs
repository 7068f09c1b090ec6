//! `mcpwatch-collector`: the self-hosted API that receives MCP server inventories from
//! agents, stores them, scores their risk and raises alerts.
//!
//! # Layout
//!
//! - [`cli`], [`config`], [`logging`]: the command line, settings and log setup;
//!   [`upkeep`]: backups, restores, consistency checks and compaction;
//!   [`move_store`]: copying a data dir into PostgreSQL;
//!   [`metrics`]: the Prometheus metrics;
//! - [`server`]: the accept loop; [`tls`]: HTTPS and its certificate reloads; [`router`]: the route table (method, path, the
//!   role each route needs, its audit action and OpenAPI description), request ids
//!   and spans; [`openapi`]: the OpenAPI document and reference page made from it; [`jobs`]: the background
//!   scheduler (presence, silent agents, rescoring);
//! - [`api`]: one module per resource, the error envelope and the auth extractors;
//!   [`console`]: the web console over them;
//! - [`auth`]: passwords, tokens, API keys;
//! - [`ingest`]: what a report, a heartbeat, silence or a new rule set does to stored
//!   servers and agents, and which alerts that raises; [`alerts`]: every alert's
//!   wording, and how repeats and dismissal work; [`events`]: what the outbox keeps
//!   and the live stream sends; [`notify`]: notification channels, which events each
//!   wants, sending (webhook, Slack, email, syslog) and the delivery worker; [`audit`]:
//!   the audit log's actions and entries;
//! - [`store`]: the storage interface, which finds, stores and indexes (and decides
//!   nothing a user reads), and its two implementations: redb (embedded, the default)
//!   and PostgreSQL (several collectors on one database);
//! - [`model`]: the stored records; [`presence`], [`limits`]: in-memory state.

#![cfg_attr(not(test), deny(clippy::too_many_lines))]

pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod census;
pub mod cli;
pub mod config;
pub mod console;
pub mod events;
pub mod ingest;
pub mod jobs;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod move_store;
pub mod notify;
pub mod openapi;
pub mod presence;
pub mod router;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod upkeep;
