//! The client catalog: data, not code. One entry per MCP client application with its
//! user-level config files per OS, its project-level file names, machine-wide files,
//! each file's format and where in the file the servers are. Sources: `mcp-clients.md`.
//!
//! Paths are written with `/` and resolved by `paths.rs` against a home directory (or
//! the filesystem root for machine-wide files) for a chosen OS layout. A component may
//! hold one `*` (one directory level) or be `**` (any depth, bounded).

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

const L: u8 = 1;
const M: u8 = 2;
const W: u8 = 4;
const ALL: u8 = L | M | W;

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

const MCP: Shape = Shape::Map(&["mcpServers"]);
const SERVERS: Shape = Shape::Maps(&[&["servers"], &["mcpServers"]]);
const VSCODE_SETTINGS: Shape = Shape::Maps(&[&["mcp", "servers"], &["mcp", "mcpServers"]]);
const CODEX: Shape = Shape::Map(&["mcp_servers"]);

const fn u(os: u8, base: Base, rel: &'static str, format: Format, shape: Shape) -> UserFile {
    UserFile {
        os,
        base,
        rel,
        format,
        shape,
        env: None,
    }
}

const fn ue(
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

const fn p(rel: &'static str, format: Format, shape: Shape) -> ProjectFile {
    ProjectFile { rel, format, shape }
}

const fn s(os: u8, path: &'static str, format: Format, shape: Shape) -> SystemFile {
    SystemFile {
        os,
        path,
        format,
        shape,
    }
}

use Base::{AppData, Home, LocalAppData, UserData, XdgConfig};
use Format::{Json, Toml, Yaml};

/// Every client the agent knows, in `mcp-clients.md` order.
pub static CLIENTS: &[Client] = &[
    Client {
        id: "claude_desktop",
        name: "Claude Desktop",
        user: &[
            u(
                M | W | L,
                UserData,
                "Claude/claude_desktop_config.json",
                Json,
                MCP,
            ),
            u(
                W,
                LocalAppData,
                "Packages/Claude_*/LocalCache/Roaming/Claude/claude_desktop_config.json",
                Json,
                MCP,
            ),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "claude_code",
        name: "Claude Code",
        user: &[
            ue(
                ALL,
                Home,
                ".claude.json",
                Json,
                Shape::ClaudeCode,
                ("CLAUDE_CONFIG_DIR", ".claude.json"),
            ),
            // Plugins: `cache/<marketplace>/<plugin>/<version>/.mcp.json` (and the
            // legacy `repos/`), and inline `mcpServers` in their manifests.
            u(
                ALL,
                Home,
                ".claude/plugins/cache/**/.mcp.json",
                Json,
                Shape::Any,
            ),
            u(
                ALL,
                Home,
                ".claude/plugins/cache/**/.claude-plugin/plugin.json",
                Json,
                MCP,
            ),
            u(
                ALL,
                Home,
                ".claude/plugins/repos/**/.mcp.json",
                Json,
                Shape::Any,
            ),
        ],
        project: &[p(".mcp.json", Json, Shape::Any)],
        system: &[
            s(L, "etc/claude-code/managed-mcp.json", Json, MCP),
            s(
                M,
                "Library/Application Support/ClaudeCode/managed-mcp.json",
                Json,
                MCP,
            ),
            s(W, "Program Files/ClaudeCode/managed-mcp.json", Json, MCP),
            s(W, "ProgramData/ClaudeCode/managed-mcp.json", Json, MCP),
        ],
    },
    Client {
        id: "cursor",
        name: "Cursor",
        user: &[
            u(ALL, Home, ".cursor/mcp.json", Json, MCP),
            u(ALL, Home, ".cursor/plugins/**/mcp.json", Json, Shape::Any),
            u(ALL, Home, ".cursor/plugins/**/.mcp.json", Json, Shape::Any),
        ],
        project: &[p(".cursor/mcp.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "windsurf",
        name: "Windsurf",
        user: &[u(ALL, Home, ".codeium/windsurf/mcp_config.json", Json, MCP)],
        project: &[p(".windsurf/mcp.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "windsurf_jetbrains",
        name: "Windsurf for JetBrains",
        user: &[u(ALL, Home, ".codeium/mcp_config.json", Json, MCP)],
        project: &[],
        system: &[],
    },
    Client {
        id: "vscode",
        name: "VS Code",
        user: &[
            u(ALL, UserData, "Code/User/mcp.json", Json, SERVERS),
            u(
                ALL,
                UserData,
                "Code/User/profiles/*/mcp.json",
                Json,
                SERVERS,
            ),
            u(
                ALL,
                UserData,
                "Code/User/settings.json",
                Json,
                VSCODE_SETTINGS,
            ),
        ],
        project: &[
            p(".vscode/mcp.json", Json, SERVERS),
            p(".vscode/settings.json", Json, VSCODE_SETTINGS),
            // A workspace-root `.mcp.json` in Claude's format (`workspaceDotMcpDiscovery.ts`).
            p(".mcp.json", Json, MCP),
            p(
                "*.code-workspace",
                Json,
                Shape::Maps(&[&["settings", "mcp", "servers"]]),
            ),
            p(
                ".devcontainer/devcontainer.json",
                Json,
                Shape::Maps(&[&["customizations", "vscode", "mcp", "servers"]]),
            ),
        ],
        system: &[],
    },
    Client {
        id: "vscode_insiders",
        name: "VS Code Insiders",
        user: &[
            u(
                ALL,
                UserData,
                "Code - Insiders/User/mcp.json",
                Json,
                SERVERS,
            ),
            u(
                ALL,
                UserData,
                "Code - Insiders/User/settings.json",
                Json,
                VSCODE_SETTINGS,
            ),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "vscode_server",
        name: "VS Code Server",
        user: &[u(
            L,
            Home,
            ".vscode-server/data/User/mcp.json",
            Json,
            SERVERS,
        )],
        project: &[],
        system: &[],
    },
    Client {
        id: "visual_studio",
        name: "Visual Studio",
        user: &[u(W, Home, ".mcp.json", Json, Shape::Any)],
        project: &[p(".vs/mcp.json", Json, Shape::Any)],
        system: &[],
    },
    Client {
        id: "github_copilot_cli",
        name: "GitHub Copilot CLI",
        user: &[ue(
            ALL,
            Home,
            ".copilot/mcp-config.json",
            Json,
            MCP,
            ("COPILOT_HOME", "mcp-config.json"),
        )],
        project: &[],
        system: &[],
    },
    Client {
        id: "cline",
        name: "Cline",
        user: &[
            ue(
                ALL,
                Home,
                ".cline/data/settings/cline_mcp_settings.json",
                Json,
                MCP,
                ("CLINE_DIR", "data/settings/cline_mcp_settings.json"),
            ),
            u(
                ALL,
                UserData,
                "Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
                Json,
                MCP,
            ),
            u(
                ALL,
                UserData,
                "Cursor/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
                Json,
                MCP,
            ),
            u(
                ALL,
                Home,
                "Documents/Cline/MCP/cline_mcp_settings.json",
                Json,
                MCP,
            ),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "roo_code",
        name: "Roo Code",
        user: &[u(
            ALL,
            UserData,
            "Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json",
            Json,
            MCP,
        )],
        project: &[p(".roo/mcp.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "kilo_code",
        name: "Kilo Code",
        user: &[u(
            ALL,
            UserData,
            "Code/User/globalStorage/kilocode.kilo-code/settings/mcp_settings.json",
            Json,
            MCP,
        )],
        project: &[p(".kilocode/mcp.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "continue",
        name: "Continue",
        user: &[
            u(
                ALL,
                Home,
                ".continue/config.yaml",
                Yaml,
                Shape::List(&["mcpServers"], "name"),
            ),
            u(
                ALL,
                Home,
                ".continue/config.json",
                Json,
                Shape::List(&["mcpServers"], "name"),
            ),
        ],
        project: &[
            p(
                ".continue/config.yaml",
                Yaml,
                Shape::List(&["mcpServers"], "name"),
            ),
            p(
                ".continue/mcpServers/*.yaml",
                Yaml,
                Shape::List(&["mcpServers"], "name"),
            ),
            p(".continue/mcpServers/*.json", Json, Shape::Any),
        ],
        system: &[],
    },
    Client {
        id: "zed",
        name: "Zed",
        user: &[
            u(
                L | M,
                XdgConfig,
                "zed/settings.json",
                Json,
                Shape::Map(&["context_servers"]),
            ),
            u(
                W,
                AppData,
                "Zed/settings.json",
                Json,
                Shape::Map(&["context_servers"]),
            ),
        ],
        project: &[p(
            ".zed/settings.json",
            Json,
            Shape::Map(&["context_servers"]),
        )],
        system: &[],
    },
    Client {
        id: "gemini_cli",
        name: "Gemini CLI",
        user: &[
            ue(
                ALL,
                Home,
                ".gemini/settings.json",
                Json,
                MCP,
                ("GEMINI_CLI_HOME", ".gemini/settings.json"),
            ),
            u(
                ALL,
                Home,
                ".gemini/extensions/*/gemini-extension.json",
                Json,
                MCP,
            ),
        ],
        project: &[p(".gemini/settings.json", Json, MCP)],
        system: &[
            s(L, "etc/gemini-cli/settings.json", Json, MCP),
            s(
                M,
                "Library/Application Support/GeminiCli/settings.json",
                Json,
                MCP,
            ),
            s(W, "ProgramData/gemini-cli/settings.json", Json, MCP),
        ],
    },
    Client {
        id: "qwen_code",
        name: "Qwen Code",
        user: &[u(ALL, Home, ".qwen/settings.json", Json, MCP)],
        project: &[p(".qwen/settings.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "antigravity",
        name: "Google Antigravity",
        user: &[
            u(ALL, Home, ".gemini/antigravity/mcp_config.json", Json, MCP),
            u(ALL, Home, ".gemini/config/mcp_config.json", Json, MCP),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "codex",
        name: "OpenAI Codex",
        user: &[
            ue(
                ALL,
                Home,
                ".codex/config.toml",
                Toml,
                CODEX,
                ("CODEX_HOME", "config.toml"),
            ),
            // Profile overlays (`--profile <name>`).
            ue(
                ALL,
                Home,
                ".codex/*.config.toml",
                Toml,
                CODEX,
                ("CODEX_HOME", "*.config.toml"),
            ),
            ue(
                ALL,
                Home,
                ".codex/plugins/**/.mcp.json",
                Json,
                Shape::Any,
                ("CODEX_HOME", "plugins/**/.mcp.json"),
            ),
        ],
        project: &[p(".codex/config.toml", Toml, CODEX)],
        system: &[
            s(
                L | M,
                "etc/codex/config.toml",
                Toml,
                Shape::Map(&["mcp_servers"]),
            ),
            s(
                W,
                "ProgramData/OpenAI/Codex/config.toml",
                Toml,
                Shape::Map(&["mcp_servers"]),
            ),
        ],
    },
    Client {
        id: "amazon_q",
        name: "Amazon Q Developer",
        user: &[
            u(ALL, Home, ".aws/amazonq/mcp.json", Json, MCP),
            u(ALL, Home, ".aws/amazonq/cli-agents/*.json", Json, MCP),
            u(ALL, Home, ".aws/amazonq/agents/default.json", Json, MCP),
        ],
        project: &[p(".amazonq/mcp.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "kiro",
        name: "Kiro",
        user: &[
            // Installed Powers are namespaced into a `powers.mcpServers` block.
            u(
                ALL,
                Home,
                ".kiro/settings/mcp.json",
                Json,
                Shape::Maps(&[&["mcpServers"], &["powers", "mcpServers"]]),
            ),
            u(ALL, Home, ".kiro/agents/*.json", Json, MCP),
            u(
                ALL,
                Home,
                ".kiro/powers/installed/*/mcp.json",
                Json,
                Shape::Any,
            ),
        ],
        project: &[
            p(".kiro/settings/mcp.json", Json, MCP),
            p(".kiro/agents/*.json", Json, MCP),
        ],
        system: &[],
    },
    Client {
        id: "lm_studio",
        name: "LM Studio",
        user: &[
            u(ALL, Home, ".lmstudio/mcp.json", Json, MCP),
            u(ALL, Home, ".cache/lm-studio/mcp.json", Json, MCP),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "goose",
        name: "Goose",
        user: &[
            u(L | M, XdgConfig, "goose/config.yaml", Yaml, Shape::Goose),
            u(
                W,
                AppData,
                "Block/goose/config/config.yaml",
                Yaml,
                Shape::Goose,
            ),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "opencode",
        name: "opencode",
        user: &[
            u(
                ALL,
                XdgConfig,
                "opencode/opencode.json",
                Json,
                Shape::Map(&["mcp"]),
            ),
            u(
                ALL,
                XdgConfig,
                "opencode/opencode.jsonc",
                Json,
                Shape::Map(&["mcp"]),
            ),
            u(
                ALL,
                Home,
                ".opencode/opencode.json",
                Json,
                Shape::Map(&["mcp"]),
            ),
        ],
        project: &[
            p("opencode.json", Json, Shape::Map(&["mcp"])),
            p("opencode.jsonc", Json, Shape::Map(&["mcp"])),
        ],
        system: &[
            s(L, "etc/opencode/opencode.json", Json, Shape::Map(&["mcp"])),
            s(
                M,
                "Library/Application Support/opencode/opencode.json",
                Json,
                Shape::Map(&["mcp"]),
            ),
            s(
                W,
                "ProgramData/opencode/opencode.json",
                Json,
                Shape::Map(&["mcp"]),
            ),
        ],
    },
    Client {
        id: "crush",
        name: "Crush",
        user: &[
            u(
                L | M,
                XdgConfig,
                "crush/crush.json",
                Json,
                Shape::Map(&["mcp"]),
            ),
            u(
                W,
                LocalAppData,
                "crush/crush.json",
                Json,
                Shape::Map(&["mcp"]),
            ),
        ],
        project: &[
            p(".crush.json", Json, Shape::Map(&["mcp"])),
            p("crush.json", Json, Shape::Map(&["mcp"])),
        ],
        system: &[],
    },
    Client {
        id: "junie",
        name: "JetBrains Junie",
        user: &[u(ALL, Home, ".junie/mcp/mcp.json", Json, MCP)],
        project: &[p(".junie/mcp/mcp.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "jetbrains_air",
        name: "JetBrains Air",
        user: &[],
        project: &[p(".air/mcp.json", Json, Shape::Any)],
        system: &[],
    },
    Client {
        id: "amp",
        name: "Amp",
        user: &[
            u(
                ALL,
                XdgConfig,
                "amp/settings.json",
                Json,
                Shape::Map(&["amp.mcpServers"]),
            ),
            u(
                ALL,
                XdgConfig,
                "amp/settings.jsonc",
                Json,
                Shape::Map(&["amp.mcpServers"]),
            ),
            u(
                W,
                AppData,
                "amp/settings.json",
                Json,
                Shape::Map(&["amp.mcpServers"]),
            ),
        ],
        project: &[
            p(".amp/settings.json", Json, Shape::Map(&["amp.mcpServers"])),
            p(".amp/settings.jsonc", Json, Shape::Map(&["amp.mcpServers"])),
        ],
        system: &[
            s(
                L,
                "etc/ampcode/managed-settings.json",
                Json,
                Shape::Map(&["amp.mcpServers"]),
            ),
            s(
                M,
                "Library/Application Support/ampcode/managed-settings.json",
                Json,
                Shape::Map(&["amp.mcpServers"]),
            ),
            s(
                W,
                "ProgramData/ampcode/managed-settings.json",
                Json,
                Shape::Map(&["amp.mcpServers"]),
            ),
        ],
    },
    Client {
        id: "augment",
        name: "Augment Code",
        user: &[
            u(
                ALL,
                UserData,
                "Code/User/settings.json",
                Json,
                Shape::List(&["augment.advanced", "mcpServers"], "name"),
            ),
            u(ALL, Home, ".augment/settings.json", Json, MCP),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "trae",
        name: "Trae",
        user: &[
            u(ALL, UserData, "Trae/User/mcp.json", Json, MCP),
            u(L, XdgConfig, "trae/mcp.json", Json, MCP),
        ],
        project: &[p(".trae/mcp.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "qoder",
        name: "Qoder",
        user: &[
            u(L | M, Home, ".qoder/mcp.json", Json, MCP),
            u(W, AppData, "Qoder/SharedClientCache/mcp.json", Json, MCP),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "factory_droid",
        name: "Factory Droid",
        user: &[u(ALL, Home, ".factory/mcp.json", Json, MCP)],
        project: &[p(".factory/mcp.json", Json, MCP)],
        system: &[],
    },
    Client {
        id: "kimi_cli",
        name: "Kimi Code CLI",
        user: &[u(ALL, Home, ".kimi/mcp.json", Json, MCP)],
        project: &[],
        system: &[],
    },
    Client {
        id: "mistral_vibe",
        name: "Mistral Vibe",
        user: &[u(
            ALL,
            Home,
            ".vibe/config.toml",
            Toml,
            Shape::List(&["mcp_servers"], "name"),
        )],
        project: &[p(
            ".vibe/config.toml",
            Toml,
            Shape::List(&["mcp_servers"], "name"),
        )],
        system: &[],
    },
    Client {
        id: "tabnine",
        name: "Tabnine",
        user: &[u(ALL, Home, ".tabnine/agent/settings.json", Json, MCP)],
        project: &[p(".tabnine/agent/settings.json", Json, MCP)],
        system: &[
            s(L, "etc/tabnine-cli/settings.json", Json, MCP),
            s(
                M,
                "Library/Application Support/TabnineCli/settings.json",
                Json,
                MCP,
            ),
        ],
    },
    Client {
        id: "warp",
        name: "Warp",
        user: &[u(ALL, Home, ".warp/.mcp.json", Json, Shape::Any)],
        project: &[p(".warp/.mcp.json", Json, Shape::Any)],
        system: &[],
    },
    Client {
        id: "boltai",
        name: "BoltAI",
        user: &[u(M, Home, ".boltai/mcp.json", Json, MCP)],
        project: &[],
        system: &[],
    },
    Client {
        id: "fiveire",
        name: "5ire",
        user: &[u(ALL, UserData, "5ire/mcp.json", Json, Shape::Any)],
        project: &[],
        system: &[],
    },
    Client {
        id: "witsy",
        name: "Witsy",
        user: &[
            u(
                ALL,
                UserData,
                "Witsy/settings.json",
                Json,
                Shape::List(&["mcp", "servers"], "label"),
            ),
            u(ALL, UserData, "Witsy/settings.json", Json, MCP),
        ],
        project: &[],
        system: &[],
    },
    Client {
        id: "mcphub_nvim",
        name: "mcphub.nvim",
        user: &[u(L | M, XdgConfig, "mcphub/servers.json", Json, MCP)],
        project: &[],
        system: &[],
    },
];

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
