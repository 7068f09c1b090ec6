//! Where the agent's files go on each OS: the program, its config file, its state, the
//! service definition and its log. One table, used by the installer and by the agent
//! for its defaults.

use std::path::{Path, PathBuf};

use crate::{LAUNCHD_LABEL, SERVICE_NAME};

/// The OS families the agent installs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Linux,
    Macos,
    Windows,
}

impl Platform {
    /// The OS this program was built for (other Unixes install like Linux).
    pub fn current() -> Self {
        if cfg!(windows) {
            Self::Windows
        } else if cfg!(target_os = "macos") {
            Self::Macos
        } else {
            Self::Linux
        }
    }
}

/// The installed agent's paths, as the running service sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub platform: Platform,
    /// Where files are written: `/` on a live system, a scratch directory in tests.
    pub root: PathBuf,
    /// A package (deb, MSI) owns the program and the service definition; the
    /// installer only writes the config, makes the state dir and enrolls.
    pub packaged: bool,
    pub binary: PathBuf,
    pub config_file: PathBuf,
    pub state_dir: PathBuf,
    /// The systemd unit or launchd plist the installer writes (none on Windows, where
    /// the service lives in the service manager's database).
    pub service_file: Option<PathBuf>,
    /// Where the service's own output goes when the OS does not keep it (journald
    /// does on Linux).
    pub log_file: Option<PathBuf>,
}

/// Where the deb puts the program and its unit.
const PACKAGED_BINARY: &str = "/usr/bin/mcpwatch-agent";
const PACKAGED_UNITS: [&str; 2] = [
    "/usr/lib/systemd/system/mcpwatch-agent.service",
    "/lib/systemd/system/mcpwatch-agent.service",
];

impl Layout {
    /// The layout on this machine (root `/`).
    pub fn system() -> Self {
        Self::new(Platform::current(), Path::new("/"))
    }

    /// The layout for `platform` with files under `root`. On Linux a unit shipped by
    /// the deb means the package owns the program and the service.
    pub fn new(platform: Platform, root: &Path) -> Self {
        let root = root.to_path_buf();
        match platform {
            Platform::Linux => {
                let packaged = PACKAGED_UNITS
                    .iter()
                    .any(|u| on_disk(&root, Path::new(u)).exists());
                Self {
                    platform,
                    packaged,
                    binary: PathBuf::from(if packaged {
                        PACKAGED_BINARY
                    } else {
                        "/usr/local/bin/mcpwatch-agent"
                    }),
                    config_file: PathBuf::from("/etc/mcpwatch/agent.toml"),
                    state_dir: PathBuf::from("/var/lib/mcpwatch/agent"),
                    service_file: (!packaged).then(|| {
                        PathBuf::from(format!("/etc/systemd/system/{SERVICE_NAME}.service"))
                    }),
                    log_file: None,
                    root,
                }
            }
            Platform::Macos => {
                let support = Path::new("/Library/Application Support/mcpwatch");
                Self {
                    platform,
                    packaged: false,
                    binary: PathBuf::from("/usr/local/bin/mcpwatch-agent"),
                    config_file: support.join("agent.toml"),
                    state_dir: support.join("state"),
                    service_file: Some(PathBuf::from(format!(
                        "/Library/LaunchDaemons/{LAUNCHD_LABEL}.plist"
                    ))),
                    log_file: Some(PathBuf::from("/Library/Logs/mcpwatch/agent.log")),
                    root,
                }
            }
            Platform::Windows => {
                let data = windows_dir(WindowsDir::ProgramData).join("mcpwatch");
                let state_dir = data.join("state");
                Self {
                    platform,
                    packaged: false,
                    binary: windows_dir(WindowsDir::ProgramFiles)
                        .join("mcpwatch")
                        .join("mcpwatch-agent.exe"),
                    config_file: data.join("agent.toml"),
                    log_file: Some(state_dir.join("agent.log")),
                    state_dir,
                    service_file: None,
                    root,
                }
            }
        }
    }

    /// Whether this is the live system (service managers are called) or a scratch root.
    pub fn is_live(&self) -> bool {
        self.platform == Platform::Windows || self.root == Path::new("/")
    }

    /// Where `path` (as the service sees it) is written.
    pub fn on_disk(&self, path: &Path) -> PathBuf {
        if self.platform == Platform::Windows {
            path.to_path_buf()
        } else {
            on_disk(&self.root, path)
        }
    }

    /// The directory that holds the config file and the state (Windows: one tree that
    /// only SYSTEM and Administrators may open).
    pub fn data_dir(&self) -> Option<PathBuf> {
        (self.platform == Platform::Windows)
            .then(|| self.config_file.parent().map(Path::to_path_buf))
            .flatten()
    }
}

fn on_disk(root: &Path, path: &Path) -> PathBuf {
    if root == Path::new("/") {
        return path.to_path_buf();
    }
    let relative: PathBuf = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    root.join(relative)
}

enum WindowsDir {
    ProgramData,
    ProgramFiles,
}

/// Asked of the shell's known folders on Windows, not of environment variables: a
/// service's environment may say otherwise (Wine gives services another ProgramData).
fn windows_dir(dir: WindowsDir) -> PathBuf {
    #[cfg(windows)]
    {
        let known = match dir {
            WindowsDir::ProgramData => known_folders::KnownFolder::ProgramData,
            WindowsDir::ProgramFiles => known_folders::KnownFolder::ProgramFilesX64,
        };
        if let Some(path) = known_folders::get_known_folder_path(known) {
            return path;
        }
    }
    PathBuf::from(match dir {
        WindowsDir::ProgramData => "C:\\ProgramData",
        WindowsDir::ProgramFiles => "C:\\Program Files",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_root_prefixes_every_path_and_is_not_live() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(Platform::Linux, root.path());
        assert!(!layout.is_live());
        assert!(!layout.packaged);
        assert_eq!(
            layout.on_disk(&layout.config_file),
            root.path().join("etc/mcpwatch/agent.toml")
        );
        assert_eq!(layout.binary, Path::new("/usr/local/bin/mcpwatch-agent"));
        assert!(Layout::new(Platform::Linux, Path::new("/")).is_live());
    }

    #[test]
    fn a_unit_from_the_deb_means_the_package_owns_program_and_service() {
        let root = tempfile::tempdir().unwrap();
        let units = root.path().join("usr/lib/systemd/system");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(units.join("mcpwatch-agent.service"), "").unwrap();
        let layout = Layout::new(Platform::Linux, root.path());
        assert!(layout.packaged);
        assert_eq!(layout.binary, Path::new("/usr/bin/mcpwatch-agent"));
        assert_eq!(layout.service_file, None);
    }

    #[test]
    fn macos_keeps_everything_under_library() {
        let layout = Layout::new(Platform::Macos, Path::new("/"));
        assert_eq!(
            layout.service_file.as_deref(),
            Some(Path::new("/Library/LaunchDaemons/dev.mcpwatch.agent.plist"))
        );
        assert!(
            layout
                .state_dir
                .starts_with("/Library/Application Support/mcpwatch")
        );
    }
}
