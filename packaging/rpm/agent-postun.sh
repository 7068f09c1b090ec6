# mcpwatch-agent %postun: rpm has no purge; on erase the config and the identity stay,
# and it says so.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" = 0 ]; then
    echo "mcpwatch-agent: kept /etc/mcpwatch/agent.toml, /etc/mcpwatch/agent.d and the agent's identity in /var/lib/mcpwatch/agent; remove them to forget this agent" >&2
fi
