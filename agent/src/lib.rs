//! `mcpwatch-agent`: finds the MCP servers every MCP client on a laptop is configured to
//! run, for every user, and reports them (never their secrets) to the collector.
//!
//! - [`discovery`]: the client catalog, users, safe reading, parsing, normalisation
//!   and redaction;
//! - [`inventory`]: the report built from a scan, fitted to the collector's limits,
//!   and how `scan` shows it; [`printable`]: user-written text made safe to print;
//! - [`daemon`]: `run`, the service: watch, heartbeat, report; [`upload`]: the
//!   collector's API over HTTPS; [`state`], [`paths`]: what the agent keeps on disk;
//! - [`enroll`]: joining a collector; [`setup`]: the `install`, `enroll` and
//!   `uninstall` commands; [`host`]: the machine's facts it reports;
//! - [`watch`]: which directories the daemon watches, from the last scan;
//! - [`cli`]: the command line; [`config`]: settings and where each comes from;
//!   [`logging`]: where the log goes; [`exit`]: the exit-code policy; `winservice`:
//!   running under the Windows service control manager.

#![cfg_attr(not(test), deny(clippy::too_many_lines))]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod enroll;
pub mod exit;
pub mod host;
pub mod inventory;
pub mod logging;
pub mod paths;
pub mod printable;
pub mod setup;
pub mod state;
#[cfg(test)]
mod test_support;
pub mod upload;
pub mod watch;
#[cfg(windows)]
pub mod winservice;
