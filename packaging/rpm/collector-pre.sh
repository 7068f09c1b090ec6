# mcpwatch-collector %pre: the system user the service runs as.
if ! getent passwd mcpwatch >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/mcpwatch/collector --no-create-home \
        --shell /sbin/nologin --comment "mcpwatch collector" mcpwatch
fi
