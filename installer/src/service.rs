//! Install and uninstall: the directories, the program, the config file and the
//! service (systemd, launchd or the Windows service manager), and the service's state.
//! Every step says what it did, so `install` can report it.

use std::fmt;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::layout::{Layout, Platform};
use crate::{Error, LAUNCHD_LABEL, Result, SERVICE_NAME, Settings, config, io};

/// What the service manager says about the agent's service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceState {
    Running,
    /// Installed but not running; the manager's own words.
    Stopped(String),
    NotInstalled,
    /// The service manager could not be asked (a scratch root, no systemd).
    Unknown(String),
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running => f.write_str("running"),
            Self::Stopped(how) => write!(f, "not running ({how})"),
            Self::NotInstalled => f.write_str("not installed"),
            Self::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// Installs the agent according to a [`Layout`].
#[derive(Clone, Debug)]
pub struct Installer {
    layout: Layout,
}

impl Installer {
    pub fn new(layout: Layout) -> Self {
        Self { layout }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Make the directories (state owner-only), put the program in place (unless a
    /// package owns it), make the config file if there is none, and set `settings` in
    /// the install drop-in.
    pub fn prepare(&self, program: &Path, settings: &Settings) -> Result<Vec<String>> {
        self.check_privileges()?;
        let layout = &self.layout;
        let mut done = Vec::new();
        if let Some(data) = layout.data_dir() {
            fs::create_dir_all(&data).map_err(io("creating", &data))?;
            #[cfg(windows)]
            crate::windows::restrict_to_admins(&data)?;
            done.push(format!(
                "{} is open to SYSTEM and Administrators only",
                data.display()
            ));
        }
        let state = layout.on_disk(&layout.state_dir);
        crate::files::create_private_dir(&state).map_err(io("creating", &state))?;
        done.push(format!("state directory {} (owner only)", state.display()));
        let config_file = layout.on_disk(&layout.config_file);
        if let Some(dir) = config_file.parent() {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        if let Some(log) = &layout.log_file {
            let log = layout.on_disk(log);
            if let Some(dir) = log.parent() {
                fs::create_dir_all(dir).map_err(io("creating", dir))?;
            }
        }
        if !layout.packaged {
            let target = layout.on_disk(&layout.binary);
            if same_file(program, &target) {
                done.push(format!("program {} already in place", target.display()));
            } else {
                #[cfg(windows)]
                crate::windows::stop()?;
                copy_program(program, &target)?;
                done.push(format!("installed the program as {}", target.display()));
            }
        }
        if config::create_if_absent(&config_file)? {
            done.push(format!("config file {} created", config_file.display()));
        }
        if settings != &Settings::default() {
            let (drop_in, changed) = config::write_install_drop_in(&config_file, settings)?;
            done.push(format!(
                "settings {} {}",
                drop_in.display(),
                if changed { "written" } else { "unchanged" }
            ));
        }
        Ok(done)
    }

    /// Write the service definition, register it to start at boot and, with `start`,
    /// (re)start it so it runs with the newest program and settings.
    pub fn register(&self, start: bool) -> Result<Vec<String>> {
        self.check_privileges()?;
        let layout = &self.layout;
        let mut done = Vec::new();
        match layout.platform {
            Platform::Linux => {
                if let Some(unit) = &layout.service_file {
                    let text = crate::systemd::unit(&layout.binary, &layout.state_dir);
                    let path = layout.on_disk(unit);
                    if write_public(&path, text.as_bytes())? {
                        done.push(format!("wrote the systemd unit {}", path.display()));
                    }
                }
                if let Some(why) = self.no_service_manager() {
                    done.push(why);
                    return Ok(done);
                }
                let unit = format!("{SERVICE_NAME}.service");
                run("systemctl", &["daemon-reload"])?;
                run("systemctl", &["enable", &unit])?;
                done.push(format!("enabled {unit} at boot"));
                if start {
                    run("systemctl", &["restart", &unit])?;
                    done.push(format!("started {unit}"));
                }
            }
            Platform::Macos => {
                let plist = self.plist_path();
                let log = layout.log_file.clone().unwrap_or_default();
                let xml = crate::launchd::plist(
                    &layout.binary,
                    &layout.config_file,
                    &layout.state_dir,
                    &log,
                );
                if write_public(&layout.on_disk(&plist), &xml)? {
                    done.push(format!("wrote the launchd daemon {}", plist.display()));
                }
                if let Some(why) = self.no_service_manager() {
                    done.push(why);
                    return Ok(done);
                }
                let target = format!("system/{LAUNCHD_LABEL}");
                // Unload the old definition (not loaded yet is fine), then load the new.
                let _ = run("launchctl", &["bootout", &target]);
                run("launchctl", &["enable", &target])?;
                if start {
                    run(
                        "launchctl",
                        &["bootstrap", "system", &plist.to_string_lossy()],
                    )?;
                    done.push(format!("loaded and started {LAUNCHD_LABEL}"));
                }
            }
            Platform::Windows => {
                #[cfg(windows)]
                done.extend(crate::windows::register(layout, start)?);
                #[cfg(not(windows))]
                return Err(Error::ServiceManager(
                    "a Windows service can only be registered on Windows".into(),
                ));
            }
        }
        Ok(done)
    }

    /// Stop and remove the service and the program; with `purge` also the config file
    /// and the state (the agent's identity: it must enroll again).
    pub fn uninstall(&self, purge: bool) -> Result<Vec<String>> {
        self.check_privileges()?;
        let layout = &self.layout;
        if layout.packaged {
            return Err(Error::ServiceManager(
                "the mcpwatch-agent package installed this agent: remove it with `apt remove mcpwatch-agent` (`apt purge` also removes its config and state)".into(),
            ));
        }
        let mut done = Vec::new();
        match layout.platform {
            Platform::Linux => {
                let unit = format!("{SERVICE_NAME}.service");
                let live = self.no_service_manager().is_none();
                if live {
                    // Not loaded is fine: there is nothing to stop.
                    if run("systemctl", &["disable", "--now", &unit]).is_ok() {
                        done.push(format!("stopped and disabled {unit}"));
                    }
                }
                if let Some(path) = &layout.service_file {
                    remove_file(&layout.on_disk(path), &mut done)?;
                }
                if live {
                    run("systemctl", &["daemon-reload"])?;
                }
            }
            Platform::Macos => {
                if self.no_service_manager().is_none()
                    && run(
                        "launchctl",
                        &["bootout", &format!("system/{LAUNCHD_LABEL}")],
                    )
                    .is_ok()
                {
                    done.push(format!("stopped and unloaded {LAUNCHD_LABEL}"));
                }
                remove_file(&layout.on_disk(&self.plist_path()), &mut done)?;
            }
            Platform::Windows => {
                #[cfg(windows)]
                done.extend(crate::windows::unregister()?);
            }
        }
        let program = layout.on_disk(&layout.binary);
        let running_this = std::env::current_exe().is_ok_and(|exe| same_file(&exe, &program));
        if layout.platform == Platform::Windows && running_this {
            done.push(format!(
                "{} is this running program: delete it after this command ends",
                program.display()
            ));
        } else {
            remove_file(&program, &mut done)?;
        }
        if purge {
            let config_file = layout.on_disk(&layout.config_file);
            remove_file(&config_file, &mut done)?;
            let drop_ins = config::drop_in_dir(&config_file);
            if drop_ins.exists() {
                fs::remove_dir_all(&drop_ins).map_err(io("removing", &drop_ins))?;
                done.push(format!("removed {}", drop_ins.display()));
            }
            let state = layout.on_disk(&layout.state_dir);
            if state.exists() {
                fs::remove_dir_all(&state).map_err(io("removing", &state))?;
                done.push(format!("removed {}", state.display()));
            }
            if let Some(log) = &layout.log_file {
                remove_file(&layout.on_disk(log), &mut done)?;
            }
            // The directories we made, if nothing else lives there.
            for dir in [config_file.parent(), state.parent()].into_iter().flatten() {
                let _ = fs::remove_dir(dir);
            }
        }
        Ok(done)
    }

    /// What the service manager says about the service.
    pub fn state(&self) -> ServiceState {
        let layout = &self.layout;
        if layout.platform != Platform::Windows
            && let Some(why) = self.no_service_manager()
        {
            return ServiceState::Unknown(why);
        }
        match layout.platform {
            Platform::Linux => {
                let unit = format!("{SERVICE_NAME}.service");
                match run("systemctl", &["show", "-p", "LoadState,ActiveState", &unit]) {
                    Ok(out) if out.contains("LoadState=not-found") => ServiceState::NotInstalled,
                    Ok(out) if out.contains("ActiveState=active") => ServiceState::Running,
                    Ok(out) => ServiceState::Stopped(
                        out.lines()
                            .find_map(|l| l.strip_prefix("ActiveState="))
                            .unwrap_or("inactive")
                            .to_owned(),
                    ),
                    Err(e) => ServiceState::Unknown(e.to_string()),
                }
            }
            Platform::Macos => {
                match run("launchctl", &["print", &format!("system/{LAUNCHD_LABEL}")]) {
                    Ok(out) if out.contains("state = running") => ServiceState::Running,
                    Ok(_) => ServiceState::Stopped("loaded".into()),
                    Err(_) if layout.on_disk(&self.plist_path()).exists() => {
                        ServiceState::Stopped("not loaded".into())
                    }
                    Err(_) => ServiceState::NotInstalled,
                }
            }
            Platform::Windows => {
                #[cfg(windows)]
                return crate::windows::state();
                #[cfg(not(windows))]
                ServiceState::Unknown("not on Windows".into())
            }
        }
    }

    fn plist_path(&self) -> std::path::PathBuf {
        self.layout.service_file.clone().unwrap_or_default()
    }

    /// Why the service manager is not called here, if it is not.
    fn no_service_manager(&self) -> Option<String> {
        if !self.layout.is_live() {
            return Some(format!(
                "{} is not the live system: the service manager was not called",
                self.layout.root.display()
            ));
        }
        if self.layout.platform == Platform::Linux && !Path::new("/run/systemd/system").exists() {
            return Some(
                "systemd is not running on this machine: start `mcpwatch-agent run` with your init system".into(),
            );
        }
        None
    }

    fn check_privileges(&self) -> Result<()> {
        if self.layout.is_live() && self.layout.platform != Platform::Windows && !is_root() {
            return Err(Error::NotPrivileged);
        }
        Ok(())
    }
}

/// Whether this process runs as root (Unix). Windows checks happen in the service
/// manager, which refuses non-administrators.
#[cfg(unix)]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

#[cfg(not(unix))]
pub fn is_root() -> bool {
    false
}

/// Run a service manager command; its error output becomes the error.
fn run(program: &str, args: &[&str]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(Error::Command {
            command,
            message: if stderr.is_empty() {
                out.status.to_string()
            } else {
                stderr
            },
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Write a file everyone may read (a unit, a plist) if its content differs; returns
/// whether it did.
fn write_public(path: &Path, bytes: &[u8]) -> Result<bool> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    crate::files::write_private(path, bytes).map_err(io("writing", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))
            .map_err(io("setting permissions of", path))?;
    }
    Ok(true)
}

/// Copy the program next to its target, then rename over it: a running old copy keeps
/// its file, and a crash leaves either the old or the new program, never half of one.
fn copy_program(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let tmp = dir.join(".mcpwatch-agent.new");
    fs::copy(from, &tmp).map_err(io("copying the program to", &tmp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .map_err(io("setting permissions of", &tmp))?;
    }
    fs::rename(&tmp, to).map_err(io("replacing", to))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn remove_file(path: &Path, done: &mut Vec<String>) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            done.push(format!("removed {}", path.display()));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("removing", path)(e)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path)
            .expect("file exists")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn install_twice_then_uninstall_with_purge_under_a_scratch_root() {
        let root = tempfile::tempdir().unwrap();
        let program = root.path().join("download/mcpwatch-agent");
        fs::create_dir_all(program.parent().unwrap()).unwrap();
        fs::write(&program, b"#!/bin/sh\n").unwrap();
        let installer = Installer::new(Layout::new(Platform::Linux, root.path()));
        let first = Settings {
            collector_url: Some("https://one.example".into()),
            ca_file: Some("/etc/mcpwatch/ca.pem".into()),
        };
        let done = installer.prepare(&program, &first).unwrap();
        assert!(
            done.iter().any(|d| d.contains("installed the program")),
            "{done:?}"
        );
        let done = installer.register(true).unwrap();
        assert!(
            done.iter().any(|d| d.contains("not the live system")),
            "{done:?}"
        );

        let unit = root
            .path()
            .join("etc/systemd/system/mcpwatch-agent.service");
        let config = root.path().join("etc/mcpwatch/agent.toml");
        let drop_in = root.path().join("etc/mcpwatch/agent.d/50-install.toml");
        let state = root.path().join("var/lib/mcpwatch/agent");
        let binary = root.path().join("usr/local/bin/mcpwatch-agent");
        assert!(
            fs::read_to_string(&unit)
                .unwrap()
                .contains("ExecStart=/usr/local/bin/mcpwatch-agent run")
        );
        assert_eq!(mode(&unit), 0o644);
        assert_eq!(mode(&config), 0o600);
        assert_eq!(mode(&drop_in), 0o600);
        assert_eq!(fs::read_to_string(&config).unwrap(), config::TEMPLATE);
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&binary), 0o755);

        // Again with a new URL: one unit, the newest settings, the CA kept.
        let second = Settings {
            collector_url: Some("https://two.example".into()),
            ..Settings::default()
        };
        installer.prepare(&program, &second).unwrap();
        installer.register(true).unwrap();
        let text = fs::read_to_string(&drop_in).unwrap();
        assert!(
            text.contains("collector_url = \"https://two.example\""),
            "{text}"
        );
        assert!(!text.contains("one.example"), "{text}");
        assert!(
            text.contains("ca_file = \"/etc/mcpwatch/ca.pem\""),
            "{text}"
        );
        assert_eq!(fs::read_to_string(&config).unwrap(), config::TEMPLATE);
        let units: Vec<_> = fs::read_dir(unit.parent().unwrap()).unwrap().collect();
        assert_eq!(units.len(), 1, "one unit, no temp files");

        // Uninstall keeps config and state; purge removes them.
        fs::write(state.join("state.json"), "{}").unwrap();
        installer.uninstall(false).unwrap();
        assert!(!unit.exists() && !binary.exists());
        assert!(config.exists() && state.join("state.json").exists());
        installer.uninstall(true).unwrap();
        assert!(!config.exists() && !state.exists() && !drop_in.exists());
        assert!(!root.path().join("etc/mcpwatch").exists());
    }

    #[test]
    fn a_packaged_agent_is_configured_but_its_program_and_unit_are_left_to_the_package() {
        let root = tempfile::tempdir().unwrap();
        let units = root.path().join("lib/systemd/system");
        fs::create_dir_all(&units).unwrap();
        fs::write(units.join("mcpwatch-agent.service"), "[Unit]\n").unwrap();
        let installer = Installer::new(Layout::new(Platform::Linux, root.path()));
        let program = root.path().join("mcpwatch-agent");
        fs::write(&program, b"x").unwrap();
        installer
            .prepare(
                &program,
                &Settings {
                    collector_url: Some("https://c.example".into()),
                    ..Settings::default()
                },
            )
            .unwrap();
        installer.register(false).unwrap();
        assert!(!root.path().join("usr/bin/mcpwatch-agent").exists());
        assert!(!root.path().join("etc/systemd/system").exists());
        assert!(root.path().join("etc/mcpwatch/agent.toml").exists());
        let err = installer.uninstall(true).unwrap_err().to_string();
        assert!(err.contains("apt remove"), "{err}");
    }

    #[test]
    fn macos_layout_writes_the_plist_under_a_scratch_root() {
        let root = tempfile::tempdir().unwrap();
        let installer = Installer::new(Layout::new(Platform::Macos, root.path()));
        let program = root.path().join("mcpwatch-agent");
        fs::write(&program, b"x").unwrap();
        installer.prepare(&program, &Settings::default()).unwrap();
        installer.register(true).unwrap();
        let plist = root
            .path()
            .join("Library/LaunchDaemons/dev.mcpwatch.agent.plist");
        let value = plist::Value::from_file(&plist).unwrap();
        assert_eq!(
            value
                .as_dictionary()
                .and_then(|d| d.get("Label"))
                .and_then(plist::Value::as_string),
            Some("dev.mcpwatch.agent")
        );
        assert!(root.path().join("Library/Logs/mcpwatch").is_dir());
        assert_eq!(
            installer.state(),
            ServiceState::Unknown(format!(
                "{} is not the live system: the service manager was not called",
                root.path().display()
            ))
        );
    }
}
