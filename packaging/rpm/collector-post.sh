# mcpwatch-collector %post. As the deb's postinst: the data dir (owner only), the
# admin's settings /etc/mcpwatch/collector.env made from the example where none
# exists; then the service is enabled and (re)started.
install -d -m 0755 /var/lib/mcpwatch
install -d -m 0700 -o mcpwatch -g mcpwatch /var/lib/mcpwatch/collector
install -d -m 0755 /etc/mcpwatch
if [ ! -e /etc/mcpwatch/collector.env ]; then
    install -m 0600 /usr/share/mcpwatch/collector.env /etc/mcpwatch/collector.env
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" = 1 ]; then
        systemctl enable --now mcpwatch-collector.service >/dev/null 2>&1 || :
    else
        systemctl try-restart mcpwatch-collector.service >/dev/null 2>&1 || :
    fi
fi
