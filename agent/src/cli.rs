//! The command line. `scan` is one-shot and uses no network; the daemon commands come
//! with the daemon.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::discovery::catalog::Os;
use crate::discovery::paths::Env;
use crate::discovery::{self, ScanOptions, Target};
use crate::inventory;

#[derive(Parser, Debug)]
#[command(
    name = "mcpwatch-agent",
    version,
    about = "Finds the MCP servers configured on this machine, for every user, without their secrets"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scan once and print what was found (no network). Exit status 0 when the scan
    /// ran, even if some config files had errors (they are listed).
    Scan(ScanArgs),
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OsArg {
    Linux,
    Macos,
    Windows,
}

impl From<OsArg> for Os {
    fn from(o: OsArg) -> Self {
        match o {
            OsArg::Linux => Os::Linux,
            OsArg::Macos => Os::Macos,
            OsArg::Windows => Os::Windows,
        }
    }
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Print the report exactly as it would be sent to the collector (JSON).
    #[arg(long)]
    pub json: bool,
    /// Scan DIR as one user's home (relocations such as CODEX_HOME do not apply).
    #[arg(long, value_name = "DIR", conflicts_with = "root")]
    pub home: Option<PathBuf>,
    /// Treat DIR as the filesystem root and scan every user found in it.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The OS layout to resolve paths for [default: this OS].
    #[arg(long, value_enum)]
    pub os: Option<OsArg>,
    /// Only this user (with --root or the default machine scan); the user name with --home.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Also look for project-level configs under DIR (repeatable).
    #[arg(long = "project-root", value_name = "DIR")]
    pub project_roots: Vec<PathBuf>,
    /// How many directory levels below each --project-root to search.
    #[arg(long, default_value_t = 3)]
    pub project_depth: usize,
}

impl ScanArgs {
    /// Without --home or --root: as root, the whole machine; as a user, one's own home.
    fn options(self) -> anyhow::Result<(ScanOptions, bool)> {
        let os = self.os.map_or_else(Os::current, Os::from);
        let target = match (self.home, self.root) {
            (Some(home), _) => {
                let user = self
                    .user
                    .or_else(|| home.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| "user".into());
                Target::Home {
                    home,
                    user,
                    env: None,
                }
            }
            (None, Some(root)) => Target::Root {
                root,
                user: self.user,
            },
            (None, None) if is_root() => {
                let root = PathBuf::from(if os == Os::Windows { "C:\\" } else { "/" });
                Target::Root {
                    root,
                    user: self.user,
                }
            }
            (None, None) => {
                let home = dirs::home_dir().ok_or_else(|| {
                    anyhow::anyhow!("cannot find your home directory; pass --home")
                })?;
                let user = self
                    .user
                    .or_else(|| {
                        std::env::var("USER")
                            .or_else(|_| std::env::var("USERNAME"))
                            .ok()
                    })
                    .unwrap_or_else(|| "user".into());
                Target::Home {
                    home,
                    user,
                    env: Some(Env::from_process()),
                }
            }
        };
        Ok((
            ScanOptions {
                os,
                target,
                project_roots: self.project_roots,
                project_depth: self.project_depth,
            },
            self.json,
        ))
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Version => {
                #[allow(clippy::print_stdout)]
                {
                    println!("mcpwatch-agent {}", env!("CARGO_PKG_VERSION"));
                }
                Ok(())
            }
            Command::Scan(args) => {
                let (options, json) = args.options()?;
                let report = inventory::report(discovery::scan(&options));
                let text = if json {
                    serde_json::to_string_pretty(&report)?
                } else {
                    inventory::table(&report)
                };
                #[allow(clippy::print_stdout)]
                {
                    println!("{text}");
                }
                Ok(())
            }
        }
    }
}
