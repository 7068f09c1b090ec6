//! The client catalog: data, not code. One entry per MCP client application with its
//! user-level config files per OS, its project-level file names, machine-wide files,
//! each file's format and where in the file the servers are. Sources: `mcp-clients.md`.
//!
//! Paths are written with `/` and resolved by `paths.rs` against a home directory (or
//! the filesystem root for machine-wide files) for a chosen OS layout. A component may
//! hold one `*` (one directory level) or be `**` (any depth, bounded).
//!
//! The entries are in `apps` (desktop apps, editors and their extensions) and
//! `agents` (terminal agents and the rest), in `mcp-clients.md` order; [`CLIENTS`] is
//! all of them.

mod agents;
mod apps;

/// An operating-system layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Os {
    Linux,
    Macos,
    Windows,
}

impl Os {
    /// The layout of the machine this runs on.
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Self::Macos
        } else if cfg!(windows) {
            Self::Windows
        } else {
            Self::Linux
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::Macos => "macos",
            Self::Windows => "windows",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::Linux => L,
            Self::Macos => M,
            Self::Windows => W,
        }
    }
}

pub(super) const L: u8 = 1;
pub(super) const M: u8 = 2;
pub(super) const W: u8 = 4;
pub(super) const ALL: u8 = L | M | W;

/// How a file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON, read leniently: comments and trailing commas are accepted everywhere.
    Json,
    Toml,
    Yaml,
}

/// Where in a parsed file the servers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A map of name → server at this key path (a key may contain dots literally).
    Map(&'static [&'static str]),
    /// A list of servers at this key path, each naming itself in the given field.
    List(&'static [&'static str], &'static str),
    /// `~/.claude.json`: `mcpServers` (user scope) and `projects.<path>.mcpServers`.
    ClaudeCode,
    /// Maps of name → server at each of these key paths, all read (VS Code reads
    /// `servers` and migrates `mcpServers` on load).
    Maps(&'static [&'static [&'static str]]),
    /// Goose's `extensions`: every entry is a server, bundled ones (`builtin`,
    /// `platform`) included.
    Goose,
    /// A file of unknown wrapper: `mcpServers`, `servers`, `mcp.servers`,
    /// `mcp_servers`, or a flat map.
    Any,
}

/// The directory a user-level path starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// The home directory.
    Home,
    /// Windows `%APPDATA%` (`<home>\AppData\Roaming`).
    AppData,
    /// Windows `%LOCALAPPDATA%` (`<home>\AppData\Local`).
    LocalAppData,
    /// `$XDG_CONFIG_HOME`, default `~/.config` (any OS: some tools use it on macOS too).
    XdgConfig,
    /// macOS `~/Library/Application Support`.
    AppSupport,
    /// The per-app "user data" dir: macOS Application Support, Windows %APPDATA%,
    /// Linux `$XDG_CONFIG_HOME`.
    UserData,
}

/// One user-level config file.
#[derive(Clone, Copy, Debug)]
pub struct UserFile {
    pub os: u8,
    pub base: Base,
    /// Relative to `base`; one component may be `*` (matched against a directory listing).
    pub rel: &'static str,
    pub format: Format,
    pub shape: Shape,
    /// When scanning one's own home with this variable set: the file is at
    /// `$VAR/<second>` instead.
    pub env: Option<(&'static str, &'static str)>,
}

impl UserFile {
    pub fn applies_to(&self, os: Os) -> bool {
        self.os & os.bit() != 0
    }
}

/// A project-level config file, relative to a project directory.
#[derive(Clone, Copy, Debug)]
pub struct ProjectFile {
    pub rel: &'static str,
    pub format: Format,
    pub shape: Shape,
}

/// A machine-wide file, relative to the filesystem root (`C:/` on Windows).
#[derive(Clone, Copy, Debug)]
pub struct SystemFile {
    pub os: u8,
    pub path: &'static str,
    pub format: Format,
    pub shape: Shape,
}

/// One MCP client application.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub id: &'static str,
    pub name: &'static str,
    pub user: &'static [UserFile],
    pub project: &'static [ProjectFile],
    pub system: &'static [SystemFile],
}

pub(super) const MCP: Shape = Shape::Map(&["mcpServers"]);
pub(super) const SERVERS: Shape = Shape::Maps(&[&["servers"], &["mcpServers"]]);
pub(super) const VSCODE_SETTINGS: Shape =
    Shape::Maps(&[&["mcp", "servers"], &["mcp", "mcpServers"]]);
pub(super) const CODEX: Shape = Shape::Map(&["mcp_servers"]);

pub(super) const fn u(
    os: u8,
    base: Base,
    rel: &'static str,
    format: Format,
    shape: Shape,
) -> UserFile {
    UserFile {
        os,
        base,
        rel,
        format,
        shape,
        env: None,
    }
}

pub(super) const fn ue(
    os: u8,
    base: Base,
    rel: &'static str,
    format: Format,
    shape: Shape,
    env: (&'static str, &'static str),
) -> UserFile {
    UserFile {
        os,
        base,
        rel,
        format,
        shape,
        env: Some(env),
    }
}

pub(super) const fn p(rel: &'static str, format: Format, shape: Shape) -> ProjectFile {
    ProjectFile { rel, format, shape }
}

pub(super) const fn s(os: u8, path: &'static str, format: Format, shape: Shape) -> SystemFile {
    SystemFile {
        os,
        path,
        format,
        shape,
    }
}

/// Every client the agent knows.
pub struct Catalog;

/// Every client the agent knows, in `mcp-clients.md` order.
pub static CLIENTS: &Catalog = &Catalog;

type Clients =
    std::iter::Chain<std::slice::Iter<'static, Client>, std::slice::Iter<'static, Client>>;

impl Catalog {
    pub fn iter(&self) -> Clients {
        apps::CLIENTS.iter().chain(agents::CLIENTS)
    }
}

impl IntoIterator for &'static Catalog {
    type Item = &'static Client;
    type IntoIter = Clients;

    fn into_iter(self) -> Clients {
        self.iter()
    }
}

/// The client with this id.
pub fn client(id: &str) -> Option<&'static Client> {
    CLIENTS.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_client_has_a_file() {
        let mut ids: Vec<&str> = CLIENTS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(n, ids.len());
        for c in CLIENTS {
            assert!(!c.user.is_empty() || !c.project.is_empty(), "{}", c.id);
            for f in c.user {
                assert!(!f.rel.starts_with('/') && f.os != 0, "{} {}", c.id, f.rel);
            }
        }
    }
}
