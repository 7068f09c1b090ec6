//! Running as a Windows service: the service control manager starts
//! `mcpwatch-agent.exe service`; this registers the control handler, reports
//! "starting" at once and "running" as soon as the agent has its settings and state (a
//! service that is slow to report is killed with error 1053),
//! runs the daemon with the config file's settings until Stop or Shutdown arrives, and
//! reports "stopped" with why (the exit code `exit` gives). At start it sets its own
//! crash restarts, which a package cannot. Logs go to `agent.log` in the state dir
//! (see `logging`).

use std::ffi::OsString;
use std::time::Duration;

use std::sync::Mutex;

use anyhow::Context as _;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;

use crate::config::{self, Resolved};

const SERVICE_NAME: &str = mcpwatch_installer::SERVICE_NAME;

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

/// The settings the service runs with, resolved by `service` before the manager calls
/// [`service_main`] on its own thread.
static SETTINGS: Mutex<Option<Result<Resolved, config::Error>>> = Mutex::new(None);

/// Hand this thread to the service control manager until the service stops, with the
/// settings `run` would use (config file, environment).
pub fn run(settings: Result<Resolved, config::Error>) -> anyhow::Result<()> {
    if let Ok(mut slot) = SETTINGS.lock() {
        *slot = Some(settings);
    }
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
            ServiceExitCode::ServiceSpecific(u32::from(crate::exit::code(&e)))
        }
    };
    handle.set_service_status(status(ServiceState::Stopped, exit, Duration::ZERO))?;
    Ok(())
}

/// The daemon with the settings [`run`] was given.
fn run_daemon(shutdown: impl Future<Output = ()>, ready: impl FnOnce()) -> anyhow::Result<()> {
    let settings = SETTINGS.lock().ok().and_then(|mut slot| slot.take());
    let resolved = match settings {
        Some(Ok(resolved)) => resolved,
        Some(Err(e)) => {
            crate::logging::to_file(&crate::paths::default_state_dir(), "info");
            return Err(e.into());
        }
        None => anyhow::bail!("the service started without its settings"),
    };
    crate::logging::to_file(&resolved.settings.state_dir, &resolved.log_level);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "Windows service starting."
    );
    // A package registered the service without failure actions (wixl cannot write
    // them): the service sets its own crash restarts, as `install` does.
    match mcpwatch_installer::windows::configure_running_service() {
        Ok(()) => tracing::info!("Crash restarts configured (10 s, 1 min, then every 5 min)."),
        Err(e) => tracing::warn!(error = %e, "Crash restarts could not be configured."),
    }
    crate::daemon::runtime()?
        .block_on(crate::daemon::run_with_ready(
            resolved.settings,
            shutdown,
            ready,
        ))
        .map_err(anyhow::Error::from)
}
