//! The default locations of the agent running as a system service (the installer's
//! layout), and the installer's helpers for owner-only files.

use std::path::PathBuf;

/// Where the service's config file is by default.
pub fn default_config_file() -> PathBuf {
    mcpwatch_installer::Layout::system().config_file
}

/// Where the service keeps its state by default.
pub fn default_state_dir() -> PathBuf {
    mcpwatch_installer::Layout::system().state_dir
}

/// Whether this process runs with root (Unix) privileges.
pub fn is_root() -> bool {
    mcpwatch_installer::service::is_root()
}

pub use mcpwatch_installer::files::{create_private_dir, write_private};
