# mcpwatch-agent %post. As the deb's postinst: the config is the admin's
# (/etc/mcpwatch/agent.toml, made from the example where none exists; drop-ins in
# /etc/mcpwatch/agent.d), settings given in the environment go to the install drop-in
# and the agent enrolls now if it can; then the service is enabled and (re)started.
install -d -m 0755 /etc/mcpwatch
install -d -m 0700 /etc/mcpwatch/agent.d
if [ ! -e /etc/mcpwatch/agent.toml ]; then
    install -m 0600 /usr/share/mcpwatch/agent.toml /etc/mcpwatch/agent.toml
fi
if [ -n "${MCPWATCH_COLLECTOR_URL:-}" ] || [ -n "${MCPWATCH_ENROLL_SECRET:-}" ] || [ -n "${MCPWATCH_CA_FILE:-}" ]; then
    if ! /usr/bin/mcpwatch-agent install --no-service; then
        echo "mcpwatch-agent: the package is installed but the agent is not enrolled (see above); enroll it with: mcpwatch-agent enroll --collector-url URL --enroll-secret SECRET" >&2
    fi
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" = 1 ]; then
        systemctl enable --now mcpwatch-agent.service >/dev/null 2>&1 || :
    else
        systemctl try-restart mcpwatch-agent.service >/dev/null 2>&1 || :
    fi
fi
