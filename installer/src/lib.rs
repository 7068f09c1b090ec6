//! Installs the mcpwatch agent as a service of the OS it runs on: where its files go
//! ([`layout`]), its config file ([`config`]), the service definition (a systemd unit,
//! a launchd daemon or a Windows service) and the service manager commands that load,
//! start, stop and remove it ([`service`]). Installing twice leaves one service with
//! the newest settings; uninstalling removes what installing made.
//!
//! Under a root other than `/` (tests, images) files are written below that root and
//! no service manager is called.

pub mod config;
pub mod files;
pub mod launchd;
pub mod layout;
pub mod service;
pub mod systemd;
#[cfg(windows)]
pub mod windows;

use std::path::PathBuf;

pub use config::Settings;
pub use layout::{Layout, Platform};
pub use service::{Installer, ServiceState};

/// The service's name everywhere: the systemd unit, the Windows service.
pub const SERVICE_NAME: &str = "mcpwatch-agent";
/// The launchd label.
pub const LAUNCHD_LABEL: &str = "dev.mcpwatch.agent";

/// What went wrong while installing or uninstalling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("the service manager: {0}")]
    ServiceManager(String),
    #[error(
        "installing a service needs administrator rights; run this as root (sudo) or an administrator"
    )]
    NotPrivileged,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}
