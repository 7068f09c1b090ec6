//! Path resolution: where each client's files are for one user, as a pure function of
//! the OS layout, the home directory and (for one's own home only) the environment.
//! A service scanning other users cannot know their environment, so it uses defaults.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::catalog::{Base, CLIENTS, Client, Format, Os, Shape};

/// Environment variables that may relocate config files.
#[derive(Clone, Debug, Default)]
pub struct Env(pub HashMap<String, String>);

impl Env {
    /// The process environment (for scanning one's own home).
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// One place a client's config may be; `path` may still hold a `*` component.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub client: &'static Client,
    pub path: PathBuf,
    pub format: Format,
    pub shape: Shape,
}

/// Join a `/`-separated relative path.
pub fn join(base: &Path, rel: &str) -> PathBuf {
    rel.split('/')
        .filter(|c| !c.is_empty())
        .fold(base.to_path_buf(), |p, c| p.join(c))
}

fn base_dir(os: Os, base: Base, home: &Path, env: Option<&Env>) -> PathBuf {
    let var = |name: &str| env.and_then(|e| e.get(name)).map(PathBuf::from);
    match base {
        Base::Home => home.to_path_buf(),
        Base::AppData => var("APPDATA").unwrap_or_else(|| join(home, "AppData/Roaming")),
        Base::LocalAppData => var("LOCALAPPDATA").unwrap_or_else(|| join(home, "AppData/Local")),
        Base::AppSupport => join(home, "Library/Application Support"),
        Base::XdgConfig => match os {
            Os::Windows => join(home, ".config"),
            _ => var("XDG_CONFIG_HOME").unwrap_or_else(|| join(home, ".config")),
        },
        Base::UserData => match os {
            Os::Macos => base_dir(os, Base::AppSupport, home, env),
            Os::Windows => base_dir(os, Base::AppData, home, env),
            Os::Linux => base_dir(os, Base::XdgConfig, home, env),
        },
    }
}

/// Every user-level file of every client for a user of `os` whose home is `home`.
/// `env` is given only when scanning one's own home.
pub fn user_candidates(os: Os, home: &Path, env: Option<&Env>) -> Vec<Candidate> {
    let mut out = Vec::new();
    for client in CLIENTS {
        for file in client.user.iter().filter(|f| f.applies_to(os)) {
            let relocated = file.env.and_then(|(var, rel)| {
                env.and_then(|e| e.get(var))
                    .map(|dir| join(Path::new(dir), rel))
            });
            let path =
                relocated.unwrap_or_else(|| join(&base_dir(os, file.base, home, env), file.rel));
            out.push(Candidate {
                client,
                path,
                format: file.format,
                shape: file.shape,
            });
        }
    }
    out
}

/// Every project-level file of every client inside `project`.
pub fn project_candidates(project: &Path) -> Vec<Candidate> {
    CLIENTS
        .iter()
        .flat_map(|client| {
            client.project.iter().map(move |file| Candidate {
                client,
                path: join(project, file.rel),
                format: file.format,
                shape: file.shape,
            })
        })
        .collect()
}

/// Every machine-wide file for `os`, under the filesystem root `root`.
pub fn system_candidates(os: Os, root: &Path) -> Vec<Candidate> {
    let mut out = Vec::new();
    for client in CLIENTS {
        for file in client.system.iter().filter(|f| f.os & os_bit(os) != 0) {
            out.push(Candidate {
                client,
                path: join(root, file.path),
                format: file.format,
                shape: file.shape,
            });
        }
    }
    out
}

fn os_bit(os: Os) -> u8 {
    match os {
        Os::Linux => 1,
        Os::Macos => 2,
        Os::Windows => 4,
    }
}

/// Map a path recorded on the scanned machine (`/home/a/x`, `C:\git\x`, `C:/git/x`) to
/// where it is under `root`.
pub fn under_root(root: &Path, recorded: &str) -> Option<PathBuf> {
    let unified = recorded.replace('\\', "/");
    let rest = if unified.len() >= 2
        && unified.as_bytes()[1] == b':'
        && unified.as_bytes()[0].is_ascii_alphabetic()
    {
        &unified[2..]
    } else if unified.starts_with('/') {
        &unified[..]
    } else {
        return None;
    };
    Some(join(root, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(c: &[Candidate], client: &str) -> Vec<String> {
        c.iter()
            .filter(|x| x.client.id == client)
            .map(|x| x.path.to_string_lossy().replace('\\', "/"))
            .collect()
    }

    #[test]
    fn each_os_layout_resolves_from_the_home_dir() {
        let cases: &[(Os, &str, &str, &str)] = &[
            (
                Os::Macos,
                "/Users/alice",
                "claude_desktop",
                "/Users/alice/Library/Application Support/Claude/claude_desktop_config.json",
            ),
            (
                Os::Windows,
                "/C/Users/alice",
                "claude_desktop",
                "/C/Users/alice/AppData/Roaming/Claude/claude_desktop_config.json",
            ),
            (
                Os::Windows,
                "/C/Users/alice",
                "claude_desktop",
                "/C/Users/alice/AppData/Local/Packages/Claude_*/LocalCache/Roaming/Claude/claude_desktop_config.json",
            ),
            (
                Os::Linux,
                "/home/alice",
                "claude_desktop",
                "/home/alice/.config/Claude/claude_desktop_config.json",
            ),
            (
                Os::Linux,
                "/home/alice",
                "claude_code",
                "/home/alice/.claude.json",
            ),
            (
                Os::Windows,
                "/C/Users/alice",
                "cursor",
                "/C/Users/alice/.cursor/mcp.json",
            ),
            (
                Os::Macos,
                "/Users/alice",
                "vscode",
                "/Users/alice/Library/Application Support/Code/User/mcp.json",
            ),
            (
                Os::Windows,
                "/C/Users/alice",
                "vscode",
                "/C/Users/alice/AppData/Roaming/Code/User/mcp.json",
            ),
            (
                Os::Linux,
                "/home/alice",
                "vscode",
                "/home/alice/.config/Code/User/mcp.json",
            ),
            (
                Os::Macos,
                "/Users/alice",
                "zed",
                "/Users/alice/.config/zed/settings.json",
            ),
            (
                Os::Windows,
                "/C/Users/alice",
                "zed",
                "/C/Users/alice/AppData/Roaming/Zed/settings.json",
            ),
            (
                Os::Linux,
                "/home/alice",
                "codex",
                "/home/alice/.codex/config.toml",
            ),
            (
                Os::Windows,
                "/C/Users/alice",
                "goose",
                "/C/Users/alice/AppData/Roaming/Block/goose/config/config.yaml",
            ),
            (
                Os::Linux,
                "/home/alice",
                "goose",
                "/home/alice/.config/goose/config.yaml",
            ),
            (
                Os::Linux,
                "/home/alice",
                "vscode_server",
                "/home/alice/.vscode-server/data/User/mcp.json",
            ),
            (
                Os::Windows,
                "/C/Users/alice",
                "visual_studio",
                "/C/Users/alice/.mcp.json",
            ),
            (
                Os::Macos,
                "/Users/alice",
                "boltai",
                "/Users/alice/.boltai/mcp.json",
            ),
        ];
        for (os, home, client, expected) in cases {
            let got = find(&user_candidates(*os, Path::new(home), None), client);
            assert!(
                got.iter().any(|g| g == expected),
                "{os:?} {client}: {got:?}"
            );
        }
        assert!(
            find(
                &user_candidates(Os::Linux, Path::new("/home/a"), None),
                "visual_studio"
            )
            .is_empty()
        );
        assert!(
            find(
                &user_candidates(Os::Windows, Path::new("/C/Users/a"), None),
                "vscode_server"
            )
            .is_empty()
        );
    }

    #[test]
    fn the_environment_relocates_only_when_given() {
        let env = Env([
            ("CLAUDE_CONFIG_DIR", "/opt/claude"),
            ("CODEX_HOME", "/srv/codex"),
            ("XDG_CONFIG_HOME", "/home/alice/xdg"),
            ("APPDATA", "D:/Roaming"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect());
        let linux = user_candidates(Os::Linux, Path::new("/home/alice"), Some(&env));
        assert!(find(&linux, "claude_code").contains(&"/opt/claude/.claude.json".to_owned()));
        assert_eq!(
            find(&linux, "codex"),
            [
                "/srv/codex/config.toml",
                "/srv/codex/*.config.toml",
                "/srv/codex/plugins/**/.mcp.json"
            ]
        );
        assert!(find(&linux, "zed").contains(&"/home/alice/xdg/zed/settings.json".to_owned()));
        let windows = user_candidates(Os::Windows, Path::new("/C/Users/alice"), Some(&env));
        assert!(
            find(&windows, "claude_desktop")
                .contains(&"D:/Roaming/Claude/claude_desktop_config.json".to_owned())
        );
        let defaults = user_candidates(Os::Linux, Path::new("/home/alice"), None);
        assert_eq!(
            find(&defaults, "codex")[0],
            "/home/alice/.codex/config.toml"
        );
    }

    #[test]
    fn recorded_paths_map_under_a_root() {
        let root = Path::new("/scan");
        assert_eq!(
            under_root(root, "/home/a/p"),
            Some(PathBuf::from("/scan/home/a/p"))
        );
        assert_eq!(
            under_root(root, "C:\\git\\x"),
            Some(PathBuf::from("/scan/git/x"))
        );
        assert_eq!(
            under_root(root, "C:/git/x"),
            Some(PathBuf::from("/scan/git/x"))
        );
        assert_eq!(under_root(root, "relative"), None);
    }
}
