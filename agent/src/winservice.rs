//! Running as a Windows service: the service control manager starts
//! `mcpwatch-agent.exe service`; this registers the control handler, reports
//! "starting" at once and "running" as soon as the agent has its settings and state (a
//! service that is slow to report is killed with error 1053),
//! runs the daemon with the config file's settings until Stop or Shutdown arrives, and
//! reports "stopped" with why. Logs go to `agent.log` in the state dir (the previous
//! log is kept as `agent.log.1` once it passes 10 MiB).

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;

use crate::cli::{Cli, Command};

const SERVICE_NAME: &str = mcpwatch_installer::SERVICE_NAME;
const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;

// The entry point the service control manager calls on its own thread (the macro
// writes the FFI glue).
#[allow(unsafe_code)]
mod entry {
    use super::{SERVICE_NAME, service_dispatcher, service_main};

    windows_service::define_windows_service!(ffi_service_main, service_main);

    pub(super) fn start() -> windows_service::Result<()> {
        service_dispatcher::start(SERVICE_NAME, ffi_service_main)
    }
}

/// Hand this thread to the service control manager until the service stops.
pub fn run() -> anyhow::Result<()> {
    entry::start().context(
        "cannot connect to the service control manager (this command is what the Windows service runs; use `run` in a console)",
    )
}

fn service_main(_arguments: Vec<OsString>) {
    // Nowhere to report an error before logging works but the service status.
    let _ = serve();
}

fn status(state: ServiceState, exit: ServiceExitCode, wait: Duration) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: exit,
        checkpoint: 0,
        wait_hint: wait,
        process_id: None,
    }
}

fn serve() -> anyhow::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = stop_tx.send(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(SERVICE_NAME, handler)?;
    // "Starting" at once, "running" as soon as the agent has read its settings and
    // state (milliseconds; the network comes after): well inside the manager's limit.
    handle.set_service_status(status(
        ServiceState::StartPending,
        ServiceExitCode::Win32(0),
        Duration::from_secs(10),
    ))?;
    let ready = || {
        let _ = handle.set_service_status(status(
            ServiceState::Running,
            ServiceExitCode::Win32(0),
            Duration::ZERO,
        ));
    };
    let exit = match run_daemon(
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        },
        ready,
    ) {
        Ok(()) => {
            tracing::info!("Windows service stopped.");
            ServiceExitCode::Win32(0)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Agent stopped.");
            let code = match e.downcast_ref::<crate::daemon::Error>() {
                Some(
                    crate::daemon::Error::NotEnrolled
                    | crate::daemon::Error::Revoked
                    | crate::daemon::Error::Enroll(_),
                ) => 78,
                _ => 1,
            };
            ServiceExitCode::ServiceSpecific(code)
        }
    };
    handle.set_service_status(status(ServiceState::Stopped, exit, Duration::ZERO))?;
    Ok(())
}

/// The daemon with the same settings `run` would use (config file, environment).
fn run_daemon(shutdown: impl Future<Output = ()>, ready: impl FnOnce()) -> anyhow::Result<()> {
    let Command::Run(args) = Cli::try_parse_from(["mcpwatch-agent", "run"])?.command else {
        anyhow::bail!("`run` parses as run");
    };
    let (settings, level) = args.settings()?;
    init_file_logging(&settings.state_dir, &level);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "Windows service starting."
    );
    crate::cli::runtime()?
        .block_on(crate::daemon::run_with_ready(settings, shutdown, ready))
        .map_err(anyhow::Error::from)
}

/// Log to `agent.log` in the state dir, which only SYSTEM and Administrators can open.
fn init_file_logging(state_dir: &Path, level: &str) {
    if crate::paths::create_private_dir(state_dir).is_err() {
        return;
    }
    let path = state_dir.join("agent.log");
    if fs::metadata(&path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let _ = fs::rename(&path, state_dir.join("agent.log.1"));
    }
    let Ok(file) = fs::OpenOptions::new().create(true).append(true).open(&path) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(crate::cli::log_filter(level))
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
}
