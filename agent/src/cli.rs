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
    /// Log line format: `text`, or `json` (one object per line, for log shippers).
    #[arg(
        long,
        global = true,
        env = "MCPWATCH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scan once and print what was found (no network). Exit status 0 when the scan
    /// ran, even if some config files had errors (they are listed).
    Scan(ScanArgs),
    /// Enroll this machine with a collector: make the agent's signing key and exchange
    /// an enroll secret (or bind an API key made with `POST /agents/`) for its identity.
    Enroll(EnrollArgs),
    /// Run the agent: watch every MCP config, heartbeat, and report changes. This is
    /// what the OS service starts.
    Run(RunArgs),
    /// Show the agent's identity, last heartbeat and report, and pending work.
    Status(StateArgs),
    /// Check the settings `run` would use (config file, environment, command line) and
    /// print them with nothing secret; exit status 78 when they cannot be used.
    CheckConfig(RunArgs),
    /// Install this program as the machine's agent service (systemd unit, launchd
    /// daemon or Windows service): copy it into place, write the config file, enroll if
    /// given a collector and an enroll secret, and start the service. Run it again to
    /// change settings or upgrade; it leaves one service with the newest settings.
    Install(InstallArgs),
    /// Stop and remove the agent's service and program; with --purge also its config
    /// and state (its identity: it must enroll again).
    Uninstall(UninstallArgs),
    /// Run under the Windows service control manager (what the Windows service starts),
    /// with the settings `run` takes.
    #[cfg(windows)]
    #[command(hide = true)]
    Service(RunArgs),
    /// Print the version.
    Version,
}

#[derive(Args, Debug)]
pub struct StateArgs {
    /// The agent's state dir [default: /var/lib/mcpwatch, /Library/Application Support/mcpwatch/state, %ProgramData%\\mcpwatch\\state].
    #[arg(long, env = "MCPWATCH_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    pub fn dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(crate::paths::default_state_dir)
    }
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// The collector's URL (https://...).
    #[arg(
        long,
        visible_alias = "server",
        env = "MCPWATCH_COLLECTOR_URL",
        value_name = "URL"
    )]
    pub collector_url: String,
    /// An enroll secret made by an admin with `POST /enroll-secrets`.
    #[arg(
        long,
        env = "MCPWATCH_ENROLL_SECRET",
        hide_env_values = true,
        conflicts_with = "api_key",
        required_unless_present = "api_key"
    )]
    pub enroll_secret: Option<String>,
    /// An agent API key made with `POST /agents/` (its signing key is bound now).
    #[arg(long, env = "MCPWATCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A PEM file of the CA that signed the collector's certificate (private CA).
    #[arg(long, env = "MCPWATCH_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The collector's URL (https://...), written to the config file.
    #[arg(
        long,
        visible_alias = "server",
        env = "MCPWATCH_COLLECTOR_URL",
        value_name = "URL"
    )]
    pub collector_url: Option<String>,
    /// An enroll secret made by an admin with `POST /enroll-secrets`: the agent enrolls
    /// now, or when the collector can first be reached.
    #[arg(long, env = "MCPWATCH_ENROLL_SECRET", hide_env_values = true)]
    pub enroll_secret: Option<String>,
    /// A PEM file of the CA that signed the collector's certificate (private CA).
    #[arg(long, env = "MCPWATCH_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<String>,
    /// Write the config, make the state dir and enroll, but leave the service to the
    /// package that owns it (the deb's postinst and the MSI use this).
    #[arg(long)]
    pub no_service: bool,
    /// Install below DIR as if it were / (images, tests): files only, no service
    /// manager is called.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UninstallArgs {
    /// Also remove the config file and the state (the agent's identity and key).
    #[arg(long)]
    pub purge: bool,
    /// Uninstall from below DIR as if it were / (images, tests).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The collector's URL, if it moved since enrollment [default: the enrolled one].
    #[arg(
        long,
        visible_alias = "server",
        env = "MCPWATCH_COLLECTOR_URL",
        value_name = "URL"
    )]
    pub collector_url: Option<String>,
    /// The config file, read with its drop-ins (`agent.d/*.toml` beside it, in name
    /// order) [default: /etc/mcpwatch/agent.toml, /Library/Application Support/mcpwatch/agent.toml, %ProgramData%\\mcpwatch\\agent.toml; optional].
    #[arg(long, env = "MCPWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A PEM file of the CA that signed the collector's certificate.
    #[arg(long, env = "MCPWATCH_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Enroll with this secret at start if the agent has no identity yet (retrying
    /// while the collector cannot be reached).
    #[arg(long, env = "MCPWATCH_ENROLL_SECRET", hide_env_values = true)]
    pub enroll_secret: Option<String>,
    /// Seconds between heartbeats, 5 to 86400. Set here or in the config file, it is
    /// kept even when the collector suggests another [default: the collector's, 60
    /// until it says].
    #[arg(long, env = "MCPWATCH_HEARTBEAT_INTERVAL", value_name = "SECS")]
    pub heartbeat_interval: Option<u64>,
    /// Seconds between full rescans, which catch missed file events, 10 to 86400
    /// [default: 900].
    #[arg(long, env = "MCPWATCH_RESCAN_INTERVAL", value_name = "SECS")]
    pub rescan_interval: Option<u64>,
    /// Also look for project-level configs under DIR (repeatable; replaces the config
    /// file's `project_roots`; the variable holds a path list).
    #[arg(
        long = "project-root",
        value_name = "DIR",
        env = "MCPWATCH_PROJECT_ROOTS"
    )]
    #[cfg_attr(unix, arg(value_delimiter = ':'))]
    #[cfg_attr(windows, arg(value_delimiter = ';'))]
    pub project_roots: Vec<PathBuf>,
    /// How many directory levels below each project root to search, 0 to 16
    /// [default: 3].
    #[arg(long, env = "MCPWATCH_PROJECT_DEPTH", value_name = "N")]
    pub project_depth: Option<u64>,
    /// Scan DIR as the filesystem root instead of this machine's (tests, mounted images).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// The OS layout to resolve paths for [default: this OS].
    #[arg(long, value_enum)]
    pub os: Option<OsArg>,
    /// Log level or filter; RUST_LOG wins when set [default: info].
    #[arg(long, env = "MCPWATCH_LOG")]
    pub log_level: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
}

impl RunArgs {
    /// Built-in defaults < config file < environment and command line (see `config`).
    pub(crate) fn settings(self) -> Result<crate::config::Resolved, crate::config::Error> {
        let given = crate::config::Given {
            collector_url: self.collector_url,
            enroll_secret: self.enroll_secret,
            ca_file: self.ca_file,
            heartbeat_interval_secs: self.heartbeat_interval,
            rescan_interval_secs: self.rescan_interval,
            project_roots: self.project_roots,
            project_depth: self.project_depth,
            log_level: self.log_level,
            state_dir: self.state.state_dir,
            root: self.root,
            os: self.os.map(Os::from),
        };
        crate::config::load(self.config.as_deref(), given)
    }
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
    /// With --json: add each server's risk assessment (score, level, findings with rule
    /// id, severity and evidence) and the dangerous combinations, under `"risk"`.
    #[arg(long, requires = "json")]
    pub risk: bool,
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
    fn options(self) -> anyhow::Result<(ScanOptions, bool, bool)> {
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
            (None, None) if crate::paths::is_root() => {
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
            self.risk,
        ))
    }
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        crate::logging::set_format(self.log_format);
        match self.command {
            Command::Enroll(args) => {
                crate::logging::to_stderr("warn");
                crate::daemon::runtime()?.block_on(crate::setup::enroll(args))
            }
            Command::Run(args) => {
                let resolved = args.settings()?;
                crate::logging::to_stderr(&resolved.log_level);
                crate::daemon::runtime()?
                    .block_on(crate::daemon::run(
                        resolved.settings,
                        crate::daemon::shutdown_signal(),
                    ))
                    .map_err(anyhow::Error::from)
            }
            Command::CheckConfig(args) => {
                let resolved = args.settings()?;
                #[allow(clippy::print_stdout)]
                {
                    print!("{}", crate::config::describe(&resolved));
                    println!("The settings are valid.");
                }
                Ok(())
            }
            Command::Status(args) => {
                let text = crate::daemon::status(&args.dir())?;
                #[allow(clippy::print_stdout)]
                {
                    print!("{text}");
                }
                Ok(())
            }
            Command::Install(args) => {
                crate::logging::to_stderr("warn");
                crate::daemon::runtime()?.block_on(crate::setup::install(args))
            }
            Command::Uninstall(args) => crate::setup::uninstall(&args),
            #[cfg(windows)]
            Command::Service(args) => crate::winservice::run(args.settings()),
            Command::Version => {
                #[allow(clippy::print_stdout)]
                {
                    println!("mcpwatch-agent {}", env!("CARGO_PKG_VERSION"));
                }
                Ok(())
            }
            Command::Scan(args) => {
                let (options, json, risk) = args.options()?;
                let report =
                    inventory::report(inventory::fit(discovery::scan(&options), None).fitted);
                let text = if risk {
                    serde_json::to_string_pretty(&inventory::with_risk(&report)?)?
                } else if json {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_collector_url_has_one_name_and_an_alias_everywhere() {
        for argv in [
            ["mcpwatch-agent", "run", "--server", "https://a.example"],
            [
                "mcpwatch-agent",
                "run",
                "--collector-url",
                "https://a.example",
            ],
        ] {
            let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else {
                unreachable!("run parses as run");
            };
            assert_eq!(args.collector_url.as_deref(), Some("https://a.example"));
        }
        for flag in ["--server", "--collector-url"] {
            let argv = [
                "mcpwatch-agent",
                "enroll",
                flag,
                "https://a.example",
                "--enroll-secret",
                "s",
            ];
            let Command::Enroll(args) = Cli::try_parse_from(argv).unwrap().command else {
                unreachable!("enroll parses as enroll");
            };
            assert_eq!(args.collector_url, "https://a.example");
            let argv = ["mcpwatch-agent", "install", flag, "https://a.example"];
            let Command::Install(args) = Cli::try_parse_from(argv).unwrap().command else {
                unreachable!("install parses as install");
            };
            assert_eq!(args.collector_url.as_deref(), Some("https://a.example"));
        }
    }

    #[test]
    fn flags_replace_the_config_file_for_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "collector_url = \"https://c.example\"\nheartbeat_interval_secs = 30\nproject_roots = [\"/srv/a\"]\nlog_level = \"debug\"\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let argv = [
            "mcpwatch-agent",
            "run",
            "--config",
            f,
            "--heartbeat-interval",
            "10",
            "--project-root",
            "/srv/b",
        ];
        let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!("run parses as run");
        };
        let r = args.settings().unwrap();
        assert_eq!(
            r.settings.collector_url.as_deref(),
            Some("https://c.example")
        );
        assert_eq!(
            r.settings.heartbeat_interval,
            Some(std::time::Duration::from_secs(10))
        );
        assert_eq!(r.settings.project_roots, [PathBuf::from("/srv/b")]);
        assert_eq!(r.log_level, "debug");
    }
}
