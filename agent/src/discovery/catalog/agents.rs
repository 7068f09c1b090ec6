//! Terminal agents, and the other clients.

use super::{ALL, Base, CODEX, Client, Format, L, M, MCP, Shape, W, p, s, u, ue};
use Base::{AppData, Home, LocalAppData, UserData, XdgConfig};
use Format::{Json, Toml, Yaml};

pub(super) static CLIENTS: &[Client] = &[
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
