//! End-to-end tests: each starts the real `mcpwatch-collector` on 127.0.0.1 with a
//! temporary data dir and talks to it over HTTP only.

// This binary is test code throughout; its helpers panic on unexpected answers.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod agent_scan;
mod api_tokens;
mod audit;
mod auth;
mod authz;
mod backup;
mod census;
mod console;
mod daemon;
mod disk_full;
mod durability;
mod events;
mod export;
mod hostile_machine;
mod install;
mod instances;
mod inventory;
mod limits;
mod metrics;
mod migrate_store;
mod notifications;
mod openapi;
mod policy;
mod secrets;
mod seed_agent;
mod signing;
mod sorting;
mod tenancy;
mod tls;
mod upgrade;
