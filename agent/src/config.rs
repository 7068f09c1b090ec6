//! The agent's settings, and the one rule for where each comes from: built-in default
//! < config file < environment (`MCPWATCH_*`) < command line, for every key alike (a
//! list such as `project_roots` is replaced by a later source, never merged).
//!
//! The config file is `agent.toml` and its drop-ins, `agent.d/*.toml` beside it, read
//! in name order after it: a key in a later file wins. `agent.toml` is the admin's (no
//! package ships or edits it); `install` writes `agent.d/50-install.toml`; a fleet tool
//! may drop its own. The command line and the environment arrive together in
//! [`Given`] (clap resolves a flag over its variable); [`resolve`] lays them over the
//! files, checks every value against its range, and refuses what is out of range with
//! the key and the range (nothing is clamped silently).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::daemon::Settings;
use crate::discovery::catalog::Os;

/// Heartbeat interval bounds, in seconds (the collector answers within the same).
pub const HEARTBEAT_SECS: (u64, u64) = (5, 86_400);
/// Rescan interval bounds, in seconds.
pub const RESCAN_SECS: (u64, u64) = (10, 86_400);
/// How deep below a project root the agent may search.
pub const PROJECT_DEPTH: (u64, u64) = (0, 16);
const DEFAULT_RESCAN_SECS: u64 = 900;
const DEFAULT_PROJECT_DEPTH: usize = 3;
const DEFAULT_LOG_LEVEL: &str = "info";

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key} must be {min} to {max} (got {value}, from {from})")]
    OutOfRange {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
        from: Source,
    },
    #[error("{key} must not be empty (from {from})")]
    Empty { key: &'static str, from: Source },
}

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    /// The command line or the environment.
    Given,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Default => "the default",
            Self::File => "the config file",
            Self::Given => "the command line or environment",
        })
    }
}

/// The agent's config file (TOML); every key is optional, an unknown one an error.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub collector_url: Option<String>,
    pub enroll_secret: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub heartbeat_interval_secs: Option<u64>,
    pub rescan_interval_secs: Option<u64>,
    pub project_roots: Option<Vec<PathBuf>>,
    pub project_depth: Option<u64>,
    pub log_level: Option<String>,
}

impl FileConfig {
    /// `later` over `self`: each key `later` sets wins.
    fn under(self, later: FileConfig) -> FileConfig {
        FileConfig {
            collector_url: later.collector_url.or(self.collector_url),
            enroll_secret: later.enroll_secret.or(self.enroll_secret),
            ca_file: later.ca_file.or(self.ca_file),
            heartbeat_interval_secs: later
                .heartbeat_interval_secs
                .or(self.heartbeat_interval_secs),
            rescan_interval_secs: later.rescan_interval_secs.or(self.rescan_interval_secs),
            project_roots: later.project_roots.or(self.project_roots),
            project_depth: later.project_depth.or(self.project_depth),
            log_level: later.log_level.or(self.log_level),
        }
    }

    /// Read the file at `path`. A missing file is an empty config unless `explicit`
    /// (named on the command line), when it is an error.
    pub fn read(path: &Path, explicit: bool) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Self::default()),
            Err(source) => Err(Error::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            message: e.message().to_owned(),
        })
    }
}

/// What the command line and environment give; `None` (or an empty list) where they
/// say nothing.
#[derive(Debug, Default, Clone)]
pub struct Given {
    pub collector_url: Option<String>,
    pub enroll_secret: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub heartbeat_interval_secs: Option<u64>,
    pub rescan_interval_secs: Option<u64>,
    pub project_roots: Vec<PathBuf>,
    pub project_depth: Option<u64>,
    pub log_level: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub os: Option<Os>,
}

/// The settings the agent runs with (with the config files they were read from), and
/// the log filter.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub settings: Settings,
    pub log_level: String,
}

/// The config files: `config` and its drop-ins (`<name>.d/*.toml`), in the order they
/// are read. Only files that exist are listed.
pub fn files(config: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out: Vec<PathBuf> = config
        .is_file()
        .then(|| config.to_path_buf())
        .into_iter()
        .collect();
    let dir = mcpwatch_installer::config::drop_in_dir(config);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(Error::Read { path: dir, source }),
    };
    let mut drop_ins: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    drop_ins.sort();
    out.extend(drop_ins);
    Ok(out)
}

/// The later of two sources: given over file over default.
fn pick<T>(given: Option<T>, file: Option<T>) -> (Option<T>, Source) {
    match (given, file) {
        (Some(v), _) => (Some(v), Source::Given),
        (None, Some(v)) => (Some(v), Source::File),
        (None, None) => (None, Source::Default),
    }
}

fn in_range(
    key: &'static str,
    (value, source): (Option<u64>, Source),
    (min, max): (u64, u64),
) -> Result<Option<u64>, Error> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(Error::OutOfRange {
            key,
            value: v,
            min,
            max,
            from: source,
        }),
        other => Ok(other),
    }
}

/// A text setting: blank counts as an error where it was set, not as "unset".
fn text(
    key: &'static str,
    (value, source): (Option<String>, Source),
) -> Result<Option<String>, Error> {
    match value {
        Some(v) if v.trim().is_empty() => Err(Error::Empty { key, from: source }),
        other => Ok(other.map(|v| v.trim().to_owned())),
    }
}

/// Lay `given` over `file` over the defaults, and check every value.
pub fn resolve(file: FileConfig, given: Given) -> Result<Resolved, Error> {
    let heartbeat = in_range(
        "heartbeat_interval_secs",
        pick(given.heartbeat_interval_secs, file.heartbeat_interval_secs),
        HEARTBEAT_SECS,
    )?;
    let rescan = in_range(
        "rescan_interval_secs",
        pick(given.rescan_interval_secs, file.rescan_interval_secs),
        RESCAN_SECS,
    )?;
    let depth = in_range(
        "project_depth",
        pick(given.project_depth, file.project_depth),
        PROJECT_DEPTH,
    )?;
    let given_roots = (!given.project_roots.is_empty()).then_some(given.project_roots);
    let settings = Settings {
        collector_url: text(
            "collector_url",
            pick(given.collector_url, file.collector_url),
        )?,
        state_dir: given
            .state_dir
            .unwrap_or_else(crate::paths::default_state_dir),
        ca_file: pick(given.ca_file, file.ca_file).0,
        enroll_secret: text(
            "enroll_secret",
            pick(given.enroll_secret, file.enroll_secret),
        )?,
        heartbeat_interval: heartbeat.map(Duration::from_secs),
        rescan_interval: Duration::from_secs(rescan.unwrap_or(DEFAULT_RESCAN_SECS)),
        project_roots: pick(given_roots, file.project_roots).0.unwrap_or_default(),
        project_depth: depth.map_or(DEFAULT_PROJECT_DEPTH, |d| d as usize),
        root: given.root,
        os: given.os.unwrap_or_else(Os::current),
        config_files: Vec::new(),
    };
    let log_level = text("log_level", pick(given.log_level, file.log_level))?
        .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
    Ok(Resolved {
        settings,
        log_level,
    })
}

/// Read the config file (the one named, else the default one if it exists) and its
/// drop-ins, and resolve the settings.
pub fn load(config: Option<&Path>, given: Given) -> Result<Resolved, Error> {
    let path = config.map_or_else(crate::paths::default_config_file, Path::to_path_buf);
    if config.is_some() {
        // Named on the command line: it must be there.
        FileConfig::read(&path, true)?;
    }
    let files = files(&path)?;
    let mut merged = FileConfig::default();
    for file in &files {
        merged = merged.under(FileConfig::read(file, true)?);
    }
    let mut resolved = resolve(merged, given)?;
    resolved.settings.config_files = files;
    Ok(resolved)
}

/// The settings as `check-config` prints them: every key, its value and where it came
/// from. The enroll secret is never shown, only whether it is set.
pub fn describe(resolved: &Resolved) -> String {
    let s = &resolved.settings;
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "(none)".into());
    let path = |p: &Path| crate::printable::escape(&p.to_string_lossy()).into_owned();
    let rows = [
        (
            "config files",
            if s.config_files.is_empty() {
                "(none found)".into()
            } else {
                s.config_files
                    .iter()
                    .map(|p| path(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "collector_url",
            or_none(
                s.collector_url
                    .as_deref()
                    .map(|u| crate::printable::escape(u).into_owned()),
            ),
        ),
        (
            "enroll_secret",
            if s.enroll_secret.is_some() {
                "(set)"
            } else {
                "(none)"
            }
            .into(),
        ),
        ("ca_file", or_none(s.ca_file.as_deref().map(path))),
        (
            "heartbeat_interval_secs",
            match s.heartbeat_interval {
                Some(d) => format!("{} (kept over the collector's)", d.as_secs()),
                None => "as the collector says (60 until it does)".into(),
            },
        ),
        (
            "rescan_interval_secs",
            s.rescan_interval.as_secs().to_string(),
        ),
        (
            "project_roots",
            if s.project_roots.is_empty() {
                "(none)".into()
            } else {
                s.project_roots
                    .iter()
                    .map(|p| path(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("project_depth", s.project_depth.to_string()),
        (
            "log_level",
            crate::printable::escape(&resolved.log_level).into_owned(),
        ),
        ("state dir", path(&s.state_dir)),
    ];
    rows.iter().map(|(k, v)| format!("{k:<24} {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        FileConfig::parse(Path::new("agent.toml"), text).unwrap()
    }

    const FULL_FILE: &str = "collector_url = \"https://file.example\"\nenroll_secret = \"mcp_es_file\"\nca_file = \"/file/ca.pem\"\nheartbeat_interval_secs = 30\nrescan_interval_secs = 600\nproject_roots = [\"/srv/file\"]\nproject_depth = 2\nlog_level = \"debug\"\n";

    /// Each key, from each source: given beats file beats default.
    #[test]
    fn every_key_follows_one_precedence() {
        let given = Given {
            collector_url: Some("https://given.example".into()),
            enroll_secret: Some("mcp_es_given".into()),
            ca_file: Some("/given/ca.pem".into()),
            heartbeat_interval_secs: Some(10),
            rescan_interval_secs: Some(120),
            project_roots: vec!["/srv/given".into()],
            project_depth: Some(5),
            log_level: Some("warn".into()),
            ..Given::default()
        };
        let both = resolve(file(FULL_FILE), given.clone()).unwrap();
        let file_only = resolve(file(FULL_FILE), Given::default()).unwrap();
        let none = resolve(FileConfig::default(), Given::default()).unwrap();
        type Show = fn(&Resolved) -> String;
        let table: [(&str, Show, [&str; 3]); 8] = [
            (
                "collector_url",
                |r| format!("{:?}", r.settings.collector_url),
                [
                    "Some(\"https://given.example\")",
                    "Some(\"https://file.example\")",
                    "None",
                ],
            ),
            (
                "enroll_secret",
                |r| format!("{:?}", r.settings.enroll_secret),
                ["Some(\"mcp_es_given\")", "Some(\"mcp_es_file\")", "None"],
            ),
            (
                "ca_file",
                |r| format!("{:?}", r.settings.ca_file),
                ["Some(\"/given/ca.pem\")", "Some(\"/file/ca.pem\")", "None"],
            ),
            (
                "heartbeat_interval_secs",
                |r| format!("{:?}", r.settings.heartbeat_interval.map(|d| d.as_secs())),
                ["Some(10)", "Some(30)", "None"],
            ),
            (
                "rescan_interval_secs",
                |r| r.settings.rescan_interval.as_secs().to_string(),
                ["120", "600", "900"],
            ),
            (
                "project_roots",
                |r| format!("{:?}", r.settings.project_roots),
                ["[\"/srv/given\"]", "[\"/srv/file\"]", "[]"],
            ),
            (
                "project_depth",
                |r| r.settings.project_depth.to_string(),
                ["5", "2", "3"],
            ),
            (
                "log_level",
                |r| r.log_level.clone(),
                ["warn", "debug", "info"],
            ),
        ];
        for (key, show, [over_file, from_file, default]) in table {
            assert_eq!(show(&both), over_file, "{key}: given over file");
            assert_eq!(show(&file_only), from_file, "{key}: file over default");
            assert_eq!(show(&none), default, "{key}: default");
        }
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_key_range_and_source() {
        let cases: [(&str, Given, &str); 5] = [
            (
                "heartbeat_interval_secs = 1\n",
                Given::default(),
                "heartbeat_interval_secs must be 5 to 86400 (got 1, from the config file)",
            ),
            (
                "",
                Given {
                    heartbeat_interval_secs: Some(100_000),
                    ..Given::default()
                },
                "heartbeat_interval_secs must be 5 to 86400 (got 100000, from the command line or environment)",
            ),
            (
                "rescan_interval_secs = 0\n",
                Given::default(),
                "rescan_interval_secs must be 10 to 86400 (got 0, from the config file)",
            ),
            (
                "project_depth = 99\n",
                Given::default(),
                "project_depth must be 0 to 16 (got 99, from the config file)",
            ),
            (
                "collector_url = \"  \"\n",
                Given::default(),
                "collector_url must not be empty (from the config file)",
            ),
        ];
        for (text, given, expected) in cases {
            let err = resolve(file(text), given).unwrap_err().to_string();
            assert_eq!(err, expected);
        }
        // A good value given over a bad one in the file: the given one is used.
        let fixed = Given {
            heartbeat_interval_secs: Some(30),
            ..Given::default()
        };
        let r = resolve(file("heartbeat_interval_secs = 1\n"), fixed).unwrap();
        assert_eq!(r.settings.heartbeat_interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn drop_ins_are_read_after_the_file_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            "collector_url = \"https://base.example\"\nproject_depth = 2\nlog_level = \"debug\"\n",
        )
        .unwrap();
        let d = dir.path().join("agent.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("50-install.toml"),
            "collector_url = \"https://install.example\"\n",
        )
        .unwrap();
        std::fs::write(d.join("90-fleet.toml"), "project_depth = 4\n").unwrap();
        std::fs::write(d.join("README"), "not toml: ignored\n").unwrap();
        let r = load(Some(&config), Given::default()).unwrap();
        assert_eq!(
            r.settings.collector_url.as_deref(),
            Some("https://install.example")
        );
        assert_eq!(r.settings.project_depth, 4);
        assert_eq!(r.log_level, "debug");
        assert_eq!(
            r.settings.config_files,
            [
                config.clone(),
                d.join("50-install.toml"),
                d.join("90-fleet.toml")
            ]
        );
        // The command line still wins over every file.
        let given = Given {
            project_depth: Some(1),
            ..Given::default()
        };
        assert_eq!(
            load(Some(&config), given).unwrap().settings.project_depth,
            1
        );
        // A broken drop-in is an error naming it.
        std::fs::write(d.join("95-bad.toml"), "project_depth = \n").unwrap();
        let err = load(Some(&config), Given::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("95-bad.toml"), "{err}");
    }

    #[test]
    fn a_typo_or_a_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "heartbeat_intervall_secs = 30\n").unwrap();
        let err = FileConfig::read(&path, true).unwrap_err().to_string();
        assert!(err.contains("heartbeat_intervall_secs"), "{err}");
        let missing = dir.path().join("nope.toml");
        assert!(matches!(
            FileConfig::read(&missing, true),
            Err(Error::Read { .. })
        ));
        assert!(
            FileConfig::read(&missing, false).is_ok(),
            "the default file is optional"
        );
    }

    #[test]
    fn every_key_the_shipped_config_file_documents_is_one_the_agent_reads() {
        let template = mcpwatch_installer::config::TEMPLATE;
        let uncommented: String = template
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(uncommented.lines().count(), 8, "{uncommented}");
        let file = file(&uncommented);
        assert_eq!(file.project_depth, Some(3));
        assert!(file.enroll_secret.is_some() && file.collector_url.is_some());
        assert!(
            resolve(file, Given::default()).is_ok(),
            "the documented values are in range"
        );
    }

    #[test]
    fn check_config_output_never_shows_the_enroll_secret() {
        let r = resolve(
            file("enroll_secret = \"mcp_es_topsecret\"\n"),
            Given::default(),
        )
        .unwrap();
        let text = describe(&r);
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("enroll_secret            (set)"), "{text}");
    }
}
