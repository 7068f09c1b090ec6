# mcpwatch-collector %postun: the database is the security team's record; erase keeps
# it, the settings and the mcpwatch user, and says so.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" = 0 ]; then
    echo "mcpwatch-collector: kept the database in /var/lib/mcpwatch/collector, /etc/mcpwatch/collector.env and the system user mcpwatch; remove them yourself if you mean to" >&2
fi
