//! Discovery: find every MCP server that any MCP client on a machine (or a directory
//! standing for one) is configured to launch or connect to, for every user, and
//! describe each in the protocol's server record with no secret in it.
//!
//! - [`catalog`]: the clients and their files (data);
//! - [`paths`]: where those files are for one user and OS layout (pure);
//! - [`users`]: the machine's users;
//! - [`read`]: reading a user-controlled file safely;
//! - [`parse`]: JSON (lenient), TOML, YAML;
//! - [`normalize`]: entries → records; [`redact`]: secrets out.
//!
//! A file that cannot be read or parsed is a [`ConfigError`] for that path; it never
//! stops the scan of the other files. What one user's files can cost is capped
//! (servers per file, per user and per scan, projects per user, entries per
//! directory listing), and each cut is said in a config error.

pub mod catalog;
pub mod normalize;
pub mod parse;
pub mod paths;
pub mod read;
pub mod redact;
pub mod users;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use mcpwatch_protocol::server::{ConfigScope, ServerRecord};
use mcpwatch_protocol::wire::ConfigError;
use serde_json::Value;

use self::catalog::{Format, Os, Shape};
use self::normalize::Origin;
use self::paths::{Candidate, Env, under_root};

/// What to scan.
#[derive(Clone, Debug)]
pub enum Target {
    /// A filesystem root: every user of the machine (or only `user`), plus machine-wide files.
    Root { root: PathBuf, user: Option<String> },
    /// One home directory, scanned as `user`; `env` relocations apply when it is one's own.
    Home {
        home: PathBuf,
        user: String,
        env: Option<Env>,
    },
}

/// How to scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub os: Os,
    pub target: Target,
    /// Directories searched for project-level configs, besides the ones clients record.
    pub project_roots: Vec<PathBuf>,
    /// How deep below each project root to look.
    pub project_depth: usize,
}

/// What a scan found.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub servers: Vec<ServerRecord>,
    pub config_errors: Vec<ConfigError>,
}

/// The most servers taken from one file.
pub const MAX_SERVERS_PER_FILE: usize = 1000;
/// The most servers taken from one user's files.
pub const MAX_SERVERS_PER_USER: usize = 2000;
/// The most servers one scan holds (the report is fitted to the collector's limits
/// after that).
pub const MAX_SERVERS_PER_SCAN: usize = 20_000;
/// The most bytes of launch text (commands, arguments, URLs) taken from one user's
/// files: what is redacted and reported is bounded, however the files are written.
pub const MAX_LAUNCH_BYTES_PER_USER: usize = 4 * 1024 * 1024;
/// The most project directories read per user.
pub const MAX_PROJECTS_PER_USER: usize = 500;
/// The most entries read from one directory listing (a `*` in a catalog path).
pub const MAX_DIR_ENTRIES: usize = 10_000;

/// Directories never descended into when searching project roots.
const SKIP_DIRS: &[&str] = &[
    "node_modules",
    ".git",
    "target",
    ".cache",
    "Library",
    "AppData",
    ".venv",
    "venv",
    "__pycache__",
    ".npm",
    ".cargo",
    ".rustup",
    "dist",
    "build",
];

/// VS Code-family apps whose recent workspaces name project folders.
const WORKSPACE_APPS: &[&str] = &[
    "Code",
    "Code - Insiders",
    "Cursor",
    "Windsurf",
    "Kiro",
    "Trae",
];

struct Scanner<'a> {
    opts: &'a ScanOptions,
    /// The filesystem root the scanned machine's absolute paths live under.
    root: PathBuf,
    /// The same, with symbolic links resolved (resolved project paths start with it).
    real_root: PathBuf,
    seen_files: HashSet<(&'static str, PathBuf, String)>,
    seen_projects: HashSet<PathBuf>,
    /// Servers taken from the user being scanned so far.
    user_servers: usize,
    /// Bytes of launch text taken from the user being scanned so far.
    user_bytes: usize,
    out: Inventory,
}

/// Run a scan.
pub fn scan(opts: &ScanOptions) -> Inventory {
    let root = match &opts.target {
        Target::Root { root, .. } => root.clone(),
        Target::Home { .. } => PathBuf::from(if opts.os == Os::Windows { "C:\\" } else { "/" }),
    };
    let mut scanner = Scanner {
        opts,
        real_root: dunce::canonicalize(&root).unwrap_or_else(|_| root.clone()),
        root,
        seen_files: HashSet::new(),
        seen_projects: HashSet::new(),
        user_servers: 0,
        user_bytes: 0,
        out: Inventory::default(),
    };
    match &opts.target {
        Target::Root { root, user } => {
            // Machine-wide files are root's: no ownership to check.
            let machine = read::Ground {
                base: root,
                owner: None,
            };
            for candidate in paths::system_candidates(opts.os, root) {
                scanner.file(&candidate, None, machine, None);
            }
            for u in users::enumerate(opts.os, root) {
                if user.as_ref().is_none_or(|wanted| *wanted == u.name) {
                    scanner.user(&u.name, &u.home, None);
                }
            }
        }
        Target::Home { home, user, env } => scanner.user(user, home, env.as_ref()),
    }
    let mut out = scanner.out;
    out.servers.sort_by(|a, b| {
        (
            &a.os_user,
            &a.client,
            &a.config_path,
            &a.project_path,
            &a.server_name,
        )
            .cmp(&(
                &b.os_user,
                &b.client,
                &b.config_path,
                &b.project_path,
                &b.server_name,
            ))
    });
    out.config_errors
        .sort_by(|a, b| (&a.path, &a.client).cmp(&(&b.path, &b.client)));
    out
}

impl Scanner<'_> {
    fn user(&mut self, name: &str, home: &Path, env: Option<&Env>) {
        let ground = read::Ground::of(home);
        self.user_servers = 0;
        self.user_bytes = 0;
        // Project folders the user's files record, as written (resolved below).
        let mut recorded: Vec<PathBuf> = Vec::new();
        for candidate in paths::user_candidates(self.opts.os, home, env) {
            let found = self.file(&candidate, Some(name), ground, None);
            // Claude Code's `projects` map and Codex's `[projects."<path>"]` tables name
            // the user's project folders.
            if (candidate.shape == Shape::ClaudeCode || candidate.client.id == "codex")
                && let Some(root) = found
            {
                let keys = root
                    .get("projects")
                    .and_then(Value::as_object)
                    .map(|m| m.keys());
                for path in keys.into_iter().flatten() {
                    recorded.extend(self.local_path(path));
                }
            }
        }
        // Project folders recorded by VS Code-family editors.
        let user_data = match self.opts.os {
            Os::Macos => paths::join(home, "Library/Application Support"),
            Os::Windows => paths::join(home, "AppData/Roaming"),
            Os::Linux => paths::join(home, ".config"),
        };
        for app in WORKSPACE_APPS {
            let pattern = paths::join(
                &user_data,
                &format!("{app}/User/workspaceStorage/*/workspace.json"),
            );
            for file in expand(&pattern) {
                let Ok(Some(text)) = read::read_config(&file, ground) else {
                    continue;
                };
                let Ok(value) = parse::parse(&text, Format::Json) else {
                    continue;
                };
                if let Some(uri) = value.get("folder").and_then(Value::as_str) {
                    recorded.extend(file_uri_path(uri).and_then(|p| self.local_path(&p)));
                }
            }
        }
        let mut walked = BTreeSet::new();
        for dir in self.opts.project_roots.clone() {
            self.walk(&dir, self.opts.project_depth, &mut walked);
        }
        // One project however it is spelled (`..`, `.`, `//`, links): resolved, and
        // followed only when it and every directory above it are the user's or root's.
        // A folder under an admin's project root that is another user's is simply not
        // this user's project; one this user's files record is worth saying.
        let mut projects: BTreeSet<PathBuf> = BTreeSet::new();
        let mut refused = 0usize;
        let mut over = 0usize;
        let listed = recorded
            .into_iter()
            .map(|p| (p, true))
            .chain(walked.into_iter().map(|p| (p, false)));
        for (path, recorded) in listed {
            match read::own_dir(&path, ground.owner) {
                Some(real) if projects.contains(&real) => {}
                Some(_) if projects.len() >= MAX_PROJECTS_PER_USER => over += 1,
                Some(real) => {
                    projects.insert(real);
                }
                None if recorded && path.is_dir() => refused += 1,
                None => {}
            }
        }
        let shown_home = self.shown(home);
        if refused > 0 {
            self.out.config_errors.push(ConfigError {
                path: shown_home.clone(),
                client: None,
                error: format!(
                    "{refused} recorded project folder(s) not read: they lie in directories of another user"
                ),
            });
        }
        if over > 0 {
            self.out.config_errors.push(ConfigError {
                path: shown_home,
                client: None,
                error: format!(
                    "{over} more project folder(s) not read: at most {MAX_PROJECTS_PER_USER} per user"
                ),
            });
        }
        for project in projects {
            self.project(&project, name, ground.owner);
        }
    }

    /// A path recorded on the scanned machine, as it is reachable from here.
    fn local_path(&self, recorded: &str) -> Option<PathBuf> {
        if self.root == Path::new("/") || self.root == Path::new("C:\\") {
            Some(PathBuf::from(recorded))
        } else {
            under_root(&self.root, recorded)
        }
    }

    /// How a local path is shown: as the scanned machine knows it.
    fn shown(&self, path: &Path) -> String {
        let Ok(rel) = path
            .strip_prefix(&self.root)
            .or_else(|_| path.strip_prefix(&self.real_root))
        else {
            return path.to_string_lossy().into_owned();
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        match self.opts.os {
            Os::Windows => format!("C:\\{}", rel.replace('/', "\\")),
            _ => format!("/{rel}"),
        }
    }

    fn walk(&self, dir: &Path, depth: usize, projects: &mut BTreeSet<PathBuf>) {
        projects.insert(dir.to_path_buf());
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !SKIP_DIRS.contains(&name.as_str()) {
                self.walk(&entry.path(), depth - 1, projects);
            }
        }
    }

    /// Read a project's files; `dir` is resolved and known to be the user's.
    fn project(&mut self, dir: &Path, user: &str, owner: Option<u32>) {
        if !self.seen_projects.insert(dir.to_path_buf()) {
            return;
        }
        let shown = self.shown(dir);
        let ground = read::Ground { base: dir, owner };
        for candidate in paths::project_candidates(dir) {
            self.file(&candidate, Some(user), ground, Some(&shown));
        }
    }

    /// Read, parse and record one candidate (expanding `*`); answers the parsed root of
    /// the last file read, for callers that need more from it.
    fn file(
        &mut self,
        candidate: &Candidate,
        user: Option<&str>,
        ground: read::Ground<'_>,
        project: Option<&str>,
    ) -> Option<Value> {
        let mut last = None;
        for path in expand(&candidate.path) {
            if !self.seen_files.insert((
                candidate.client.id,
                path.clone(),
                format!("{:?}", candidate.shape),
            )) {
                continue;
            }
            let shown = self.shown(&path);
            let error = |message: String| ConfigError {
                path: shown.clone(),
                client: Some(candidate.client.id.to_owned()),
                error: message,
            };
            let text = match read::read_config(&path, ground) {
                Ok(Some(text)) => text,
                Ok(None) => continue,
                Err(e) => {
                    self.out.config_errors.push(error(e.to_string()));
                    continue;
                }
            };
            let value = match parse::parse(&text, candidate.format) {
                Ok(v) => v,
                Err(e) => {
                    self.out.config_errors.push(error(e.to_string()));
                    continue;
                }
            };
            let origin = Origin {
                client: candidate.client.id,
                config_path: shown.clone(),
                scope: if project.is_some() {
                    ConfigScope::Project
                } else {
                    ConfigScope::User
                },
                project_path: project.map(str::to_owned),
                os_user: user.map(str::to_owned),
            };
            let entries = normalize::entries(&value, candidate.shape);
            let room = MAX_SERVERS_PER_FILE
                .min(MAX_SERVERS_PER_USER.saturating_sub(self.user_servers))
                .min(MAX_SERVERS_PER_SCAN.saturating_sub(self.out.servers.len()));
            if entries.len() > room {
                self.out.config_errors.push(error(format!(
                    "holds {} servers; only {room} reported (at most {MAX_SERVERS_PER_FILE} per file, {MAX_SERVERS_PER_USER} per user, {MAX_SERVERS_PER_SCAN} per machine)",
                    entries.len()
                )));
            }
            let mut taken = 0;
            for entry in entries.iter().take(room) {
                let bytes = launch_bytes(entry.body);
                if user.is_some() && self.user_bytes + bytes > MAX_LAUNCH_BYTES_PER_USER {
                    self.out.config_errors.push(error(format!(
                        "{} server(s) not reported: the user's launch lines exceed {MAX_LAUNCH_BYTES_PER_USER} bytes",
                        room.min(entries.len()) - taken
                    )));
                    break;
                }
                self.user_bytes += bytes;
                self.out.servers.push(normalize::record(entry, &origin));
                taken += 1;
            }
            if user.is_some() {
                self.user_servers += taken;
            }
            last = Some(value);
        }
        last
    }
}

/// How deep a `**` component reaches.
pub const MAX_GLOB_DEPTH: usize = 6;
/// The most directories a `**` component visits.
pub const MAX_GLOB_DIRS: usize = 5000;

/// `dir` and the directories below it, `depth` levels down at most; symbolic links
/// and [`SKIP_DIRS`] are not entered.
fn descendants(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if out.len() >= MAX_GLOB_DIRS {
        return;
    }
    out.push(dir.to_path_buf());
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<_> = entries
        .flatten()
        .take(MAX_DIR_ENTRIES)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !SKIP_DIRS.contains(&e.file_name().to_string_lossy().as_ref()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        descendants(&d, depth - 1, out);
    }
}

/// The existing paths matching `pattern`, whose components may contain one `*` or be
/// `**` (zero or more directories, [`MAX_GLOB_DEPTH`] at most).
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::new()];
    let components: Vec<_> = pattern.components().collect();
    for (i, component) in components.iter().enumerate() {
        let text = component.as_os_str().to_string_lossy();
        let last = i + 1 == components.len();
        if text == "**" {
            let mut next = Vec::new();
            for dir in &current {
                descendants(dir, MAX_GLOB_DEPTH, &mut next);
            }
            current = next;
        } else if let Some((prefix, suffix)) = text.split_once('*') {
            let mut next = Vec::new();
            for dir in &current {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<_> = entries.flatten().take(MAX_DIR_ENTRIES).collect();
                names.sort_by_key(std::fs::DirEntry::file_name);
                for entry in names {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let kind_ok = last || entry.file_type().is_ok_and(|t| t.is_dir());
                    if kind_ok
                        && name.len() >= prefix.len() + suffix.len()
                        && name.starts_with(prefix)
                        && name.ends_with(suffix)
                    {
                        next.push(entry.path());
                    }
                }
            }
            current = next;
        } else {
            for p in &mut current {
                p.push(component.as_os_str());
            }
        }
    }
    current
}

/// The bytes of text a server entry's launch holds (what redaction reads).
fn launch_bytes(body: &serde_json::Map<String, Value>) -> usize {
    fn strings(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Array(items) => items.iter().map(strings).sum(),
            Value::Object(map) => map.values().map(strings).sum(),
            _ => 0,
        }
    }
    [
        "command",
        "cmd",
        "args",
        "url",
        "serverUrl",
        "httpUrl",
        "uri",
    ]
    .iter()
    .filter_map(|k| body.get(*k))
    .map(strings)
    .sum()
}

/// `file:///home/a/My%20Project` → `/home/a/My Project`; `file:///c%3A/x` → `c:/x`.
fn file_uri_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("file://")?;
    let mut bytes = Vec::with_capacity(rest.len());
    let raw = rest.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && i + 2 < raw.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).ok()?, 16)
        {
            bytes.push(b);
            i += 3;
            continue;
        }
        bytes.push(raw[i]);
        i += 1;
    }
    let path = String::from_utf8(bytes).ok()?;
    // `/c:/x` → `c:/x`
    let trimmed = path
        .strip_prefix('/')
        .filter(|p| p.as_bytes().get(1) == Some(&b':'))
        .map_or(path.clone(), str::to_owned);
    Some(trimmed)
}
