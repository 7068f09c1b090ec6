//! The Windows service: registered with the service control manager to start at boot
//! as LocalSystem, restarted by the manager if it crashes, and its data directory
//! closed to everyone but SYSTEM and Administrators.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceErrorControl, ServiceFailureActions,
    ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState as ScmState,
    ServiceType,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::{Error, Layout, Result, SERVICE_NAME, ServiceState};

const DISPLAY_NAME: &str = "mcpwatch agent";
const DESCRIPTION: &str = "Inventories the MCP servers configured on this computer and reports them to the mcpwatch collector.";
/// Windows' "access denied" and "the service does not exist".
const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;

fn scm_error(e: windows_service::Error) -> Error {
    if os_error(&e) == Some(ERROR_ACCESS_DENIED) {
        return Error::NotPrivileged;
    }
    match e {
        windows_service::Error::Winapi(io) => Error::ServiceManager(io.to_string()),
        other => Error::ServiceManager(other.to_string()),
    }
}

fn os_error(e: &windows_service::Error) -> Option<i32> {
    match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, access).map_err(scm_error)
}

/// Create or update the service, set its crash restarts and, with `start`, (re)start it.
pub fn register(layout: &Layout, start: bool) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let info = ServiceInfo {
        name: OsString::from(SERVICE_NAME),
        display_name: OsString::from(DISPLAY_NAME),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: layout.binary.clone(),
        launch_arguments: vec![OsString::from("service")],
        dependencies: vec![],
        account_name: None, // LocalSystem
        account_password: None,
    };
    let scm = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    let access = ServiceAccess::QUERY_STATUS
        | ServiceAccess::QUERY_CONFIG
        | ServiceAccess::CHANGE_CONFIG
        | ServiceAccess::START
        | ServiceAccess::STOP;
    let service = match scm.open_service(SERVICE_NAME, access) {
        Ok(service) => {
            service.change_config(&info).map_err(scm_error)?;
            done.push(format!("updated the Windows service {SERVICE_NAME}"));
            service
        }
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            let service = scm.create_service(&info, access).map_err(scm_error)?;
            done.push(format!("registered the Windows service {SERVICE_NAME}"));
            service
        }
        Err(e) => return Err(scm_error(e)),
    };
    service.set_description(DESCRIPTION).map_err(scm_error)?;
    restart_after_crashes(&service)?;
    done.push("restarts after a crash (10 s, 1 min, then every 5 min)".into());
    if start {
        stop_service(&service)?;
        service.start::<&str>(&[]).map_err(scm_error)?;
        done.push(format!("started {SERVICE_NAME}"));
    }
    Ok(done)
}

/// A crash (the process gone without reporting "stopped") restarts the service; a stop
/// the agent reports itself, with its reason in the log, does not.
fn restart_after_crashes(service: &windows_service::service::Service) -> Result<()> {
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(
                [10, 60, 300]
                    .into_iter()
                    .map(|secs| ServiceAction {
                        action_type: ServiceActionType::Restart,
                        delay: Duration::from_secs(secs),
                    })
                    .collect(),
            ),
        })
        .map_err(scm_error)
}

/// Called by the running service on itself (it runs as LocalSystem): crash restarts
/// for a service a package registered, which cannot say so itself (wixl has no
/// failure actions).
pub fn configure_running_service() -> Result<()> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let service = scm
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_CONFIG | ServiceAccess::CHANGE_CONFIG | ServiceAccess::START,
        )
        .map_err(scm_error)?;
    restart_after_crashes(&service)
}

/// Stop the service if it is installed and running.
pub fn stop() -> Result<()> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    match scm.open_service(
        SERVICE_NAME,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP,
    ) {
        Ok(service) => stop_service(&service),
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => Ok(()),
        Err(e) => Err(scm_error(e)),
    }
}

fn stop_service(service: &windows_service::service::Service) -> Result<()> {
    let status = service.query_status().map_err(scm_error)?;
    if status.current_state == ScmState::Stopped {
        return Ok(());
    }
    if status.current_state != ScmState::StopPending {
        service.stop().map_err(scm_error)?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if service.query_status().map_err(scm_error)?.current_state == ScmState::Stopped {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Error::ServiceManager(format!(
        "{SERVICE_NAME} did not stop within 30 s"
    )))
}

/// Stop and delete the service.
pub fn unregister() -> Result<Vec<String>> {
    let scm = manager(ServiceManagerAccess::CONNECT)?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = match scm.open_service(SERVICE_NAME, access) {
        Ok(service) => service,
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => return Ok(vec![]),
        Err(e) => return Err(scm_error(e)),
    };
    stop_service(&service)?;
    service.delete().map_err(scm_error)?;
    Ok(vec![format!(
        "stopped and removed the Windows service {SERVICE_NAME}"
    )])
}

/// The service's state as the service manager reports it.
pub fn state() -> ServiceState {
    let scm = match manager(ServiceManagerAccess::CONNECT) {
        Ok(scm) => scm,
        Err(e) => return ServiceState::Unknown(e.to_string()),
    };
    match scm.open_service(SERVICE_NAME, ServiceAccess::QUERY_STATUS) {
        Ok(service) => match service.query_status() {
            Ok(status) if status.current_state == ScmState::Running => ServiceState::Running,
            Ok(status) => ServiceState::Stopped(format!("{:?}", status.current_state)),
            Err(e) => ServiceState::Unknown(e.to_string()),
        },
        Err(e) if os_error(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => ServiceState::NotInstalled,
        Err(e) => ServiceState::Unknown(e.to_string()),
    }
}

/// Replace `dir`'s permissions with full control for SYSTEM and Administrators only,
/// inherited by everything below it, and nothing inherited from above.
#[allow(unsafe_code)]
pub fn restrict_to_admins(dir: &Path) -> Result<()> {
    use std::os::windows::ffi::OsStrExt as _;

    use windows_sys::Win32::Foundation::{ERROR_SUCCESS, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT,
        SetNamedSecurityInfoW,
    };
    use windows_sys::Win32::Security::{
        ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };

    let failed = |what: &str| {
        Error::ServiceManager(format!(
            "restricting {} to SYSTEM and Administrators: {what}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ))
    };
    // Protected DACL: SYSTEM and Administrators, full control, inherited by files and
    // subdirectories.
    let sddl: Vec<u16> = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
        .encode_utf16()
        .chain(Some(0))
        .collect();
    let path: Vec<u16> = dir.as_os_str().encode_wide().chain(Some(0)).collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; `descriptor` receives a LocalAlloc'd buffer
    // that is freed below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(failed("building the security descriptor"));
    }
    let mut present = 0;
    let mut defaulted = 0;
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `descriptor` is the valid descriptor made above; `dacl` points into it
    // and is used only while it lives.
    let ok =
        unsafe { GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted) };
    let result = if ok == 0 || present == 0 {
        Err(failed("reading the access list"))
    } else {
        // SAFETY: `path` is NUL-terminated; `dacl` is valid (see above); owner, group
        // and SACL are not changed.
        let status = unsafe {
            SetNamedSecurityInfoW(
                path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            )
        };
        if status == ERROR_SUCCESS {
            Ok(())
        } else {
            Err(Error::ServiceManager(format!(
                "restricting {} to SYSTEM and Administrators: {}",
                dir.display(),
                std::io::Error::from_raw_os_error(status as i32)
            )))
        }
    };
    // SAFETY: `descriptor` was allocated by the conversion above and not freed yet.
    unsafe { LocalFree(descriptor) };
    result
}
