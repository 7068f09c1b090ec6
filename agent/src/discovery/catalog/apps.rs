//! Desktop apps, editors and their extensions.

use super::{
    ALL, Base, Client, Format, L, M, MCP, SERVERS, Shape, VSCODE_SETTINGS, W, p, s, u, ue,
};
use Base::{Home, LocalAppData, UserData};
use Format::{Json, Yaml};

pub(super) static CLIENTS: &[Client] = &[
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
];
