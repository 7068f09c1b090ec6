# mcpwatch-collector %preun: on erase (not upgrade), stop and disable the service.
if [ "$1" = 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now mcpwatch-collector.service >/dev/null 2>&1 || :
fi
