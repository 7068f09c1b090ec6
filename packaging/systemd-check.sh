#!/usr/bin/env bash
# The debs under a real systemd: systemd 25x booted as PID 1 in its own PID, mount and
# cgroup namespace, on an overlay of this machine's root (every write goes to a tmpfs;
# the machine itself is left as it was), sharing the network. In it, both debs are
# installed with apt the way a fleet does (the collector with a prepared collector.env,
# the agent with a prepared agent.toml holding the enroll secret), and checked:
#   - both services start, and the agent's report reaches the collector;
#   - the collector cannot read /home; the agent reads every home but cannot write one;
#   - the agent removed the used enroll secret from its config file;
#   - a crashed service (SIGABRT) is restarted; exit code 78 is not restarted;
#   - `journalctl -u` shows readable lines with no escape codes.
# Needs root, util-linux (unshare, nsenter), systemd, curl, python3.
# Usage: packaging/systemd-check.sh AGENT_DEB COLLECTOR_DEB
set -euo pipefail
cd "$(dirname "$0")/.."
agent_deb=$(realpath "$1")
collector_deb=$(realpath "$2")

fail() {
  echo "FAILED: $*" >&2
  if [ -n "${pid:-}" ]; then
    nsenter -t "$pid" -m -p -r -w -- systemctl status --no-pager --full mcpwatch-collector mcpwatch-agent >&2 2>&1 || true
    nsenter -t "$pid" -m -p -r -w -- journalctl -n 40 --no-pager >&2 2>&1 || true
  fi
  exit 1
}
ok() { echo "ok: $*"; }
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }

work=$(mktemp -d /tmp/mcpwatch-systemd.XXXXXX)
cgroup=/sys/fs/cgroup/unified/mcpwatch-systemd-check
[ -d /sys/fs/cgroup/unified ] || cgroup=/sys/fs/cgroup/mcpwatch-systemd-check
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -s SIGRTMIN+4 "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # systemd made its own cgroups below ours: remove them deepest first.
  [ -d "$cgroup" ] && find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- boot
mkdir -p "$work/ovl" "$work/root"
cat >"$work/boot" <<EOF
#!/usr/bin/env bash
set -euo pipefail
mount -t tmpfs tmpfs "$work/ovl"
mkdir -p "$work/ovl/upper" "$work/ovl/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/ovl/upper,workdir=$work/ovl/work" "$work/root"
mount -t proc proc "$work/root/proc"
mount --rbind /dev "$work/root/dev"
mount -t sysfs -o ro sysfs "$work/root/sys"
mount -t cgroup2 cgroup2 "$work/root/sys/fs/cgroup"
mount -t tmpfs tmpfs "$work/root/run"
mount -t tmpfs tmpfs "$work/root/tmp"
export container=mcpwatch-check
exec chroot "$work/root" /lib/systemd/systemd --system --unit=basic.target
EOF
chmod +x "$work/boot"
mkdir -p "$cgroup"
(
  echo "$BASHPID" >"$cgroup/cgroup.procs"
  exec setsid unshare --pid --fork --mount --cgroup --propagation private "$work/boot" >"$work/boot.log" 2>&1
) &
for _ in $(seq 100); do
  pid=$(pgrep -f "^/lib/systemd/systemd --system --unit=basic.target" | head -n 1 || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || fail "systemd did not start: $(cat "$work/boot.log")"
in_sd() { nsenter -t "$pid" -m -p -r -w -- "$@"; }
state=""
for _ in $(seq 300); do
  state=$(in_sd systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.1
done
case "$state" in running|degraded) ;; *) fail "systemd did not finish booting ($state): $(cat "$work/boot.log")" ;; esac
ok "systemd $(in_sd systemctl --version | head -n 1 | cut -d' ' -f2) is PID 1 in its own namespaces ($state)"

# ---------------------------------------------------------------- install
apt_in() {
  in_sd env DEBIAN_FRONTEND=noninteractive apt-get "$@" </dev/null >"$work/apt.log" 2>&1 \
    || fail "apt-get $*: $(cat "$work/apt.log")"
}
# Unit properties, one value each.
prop() { in_sd systemctl show -p "$2" --value "$1"; }
wait_for() { # seconds, description, command...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $(( seconds * 5 ))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "timed out after ${seconds}s waiting for $what"
}

# The debs, copied in: the namespace's /tmp is its own (a checkout under /tmp is not
# visible there).
in_sd install -d -m 0755 /var/cache/mcpwatch-check
in_sd sh -c 'cat >/var/cache/mcpwatch-check/mcpwatch-agent.deb' <"$agent_deb"
in_sd sh -c 'cat >/var/cache/mcpwatch-check/mcpwatch-collector.deb' <"$collector_deb"
agent_deb=/var/cache/mcpwatch-check/mcpwatch-agent.deb
collector_deb=/var/cache/mcpwatch-check/mcpwatch-collector.deb
# A build image may forbid package scripts to start services (Docker's policy-rc.d,
# exit 101); a fleet machine does not. Only the overlay loses it.
in_sd rm -f /usr/sbin/policy-rc.d
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
in_sd install -d -m 0755 /etc/mcpwatch
printf 'MCPWATCH_LISTEN=127.0.0.1:%s\nMCPWATCH_HEARTBEAT_INTERVAL=5\n' "$port" | in_sd tee /etc/mcpwatch/collector.env >/dev/null
apt_in install -y "$collector_deb"
wait_for 30 "the collector service to answer" curl -fsS "$base/health"
[ "$(prop mcpwatch-collector ActiveState)" = active ] || fail "the collector service is not active"
curl -fsS -X POST "$base/auth/register" -H 'content-type: application/json' \
  -d '{"email":"admin@example.com","password":"SystemdCheck1!","organization_name":"Systemd"}' >/dev/null
token=$(curl -fsS -X POST "$base/auth/login" -H 'content-type: application/json' \
  -d '{"email":"admin@example.com","password":"SystemdCheck1!"}' | json 'd["access_token"]')
secret=$(curl -fsS -X POST "$base/enroll-secrets" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"name":"systemd"}' | json 'd["secret"]')
servers() { curl -fsS "$base/mcp/servers" -H "authorization: Bearer $token" | json 'len(d["items"])'; }

# A user with an MCP config, and a file no service may read or write.
in_sd sh -c 'mkdir -p /home/mcpcheck/.cursor && chmod 700 /home/mcpcheck
  printf "%s" "{\"mcpServers\": {\"files\": {\"command\": \"npx\", \"args\": [\"-y\", \"@modelcontextprotocol/server-filesystem\", \"/home/mcpcheck\"]}}}" >/home/mcpcheck/.cursor/mcp.json
  echo private >/home/mcpcheck/private.txt
  grep -q "^mcpcheck:" /etc/passwd || echo "mcpcheck:x:4242:4242::/home/mcpcheck:/bin/sh" >>/etc/passwd
  chown -R 4242:4242 /home/mcpcheck'
printf '# prepared by the fleet\ncollector_url = "%s"\nenroll_secret = "%s"\n' "$base" "$secret" \
  | in_sd sh -c 'umask 077; cat >/etc/mcpwatch/agent.toml'
apt_in install -y "$agent_deb"
ok "both debs installed with apt, unattended, each with a prepared config"

# ---------------------------------------------------------------- checks
wait_for 60 "the agent's report" sh -c "[ \"\$(curl -fsS '$base/mcp/servers' -H 'authorization: Bearer $token' | python3 -c 'import sys, json; print(len(json.load(sys.stdin)[\"items\"]))')\" -ge 1 ]"
[ "$(prop mcpwatch-agent ActiveState)" = active ] || fail "the agent service is not active"
ok "both services run; the agent enrolled itself and its report reached the collector ($(servers) server)"

in_sd grep -q "enroll_secret" /etc/mcpwatch/agent.toml && fail "the used enroll secret is still in agent.toml"
in_sd grep -rqF -- "$secret" /etc/mcpwatch /var/lib/mcpwatch/agent && fail "the enroll secret is still on disk"
in_sd grep -q "^collector_url = \"$base\"" /etc/mcpwatch/agent.toml || fail "the rest of the prepared config was lost"
ok "the agent took the used enroll secret out of its config file, under its unit's hardening"

collector_pid=$(prop mcpwatch-collector MainPID)
agent_pid=$(prop mcpwatch-agent MainPID)
# What each service sees: its own mount namespace and root.
as_service() { local service_pid=$1; shift; in_sd nsenter -t "$service_pid" -m -r -- "$@"; }
as_service "$collector_pid" test -d /var/lib/mcpwatch/collector || fail "cannot enter the collector's namespace"
if as_service "$collector_pid" cat /home/mcpcheck/private.txt >/dev/null 2>&1; then
  fail "the collector service can read /home"
fi
as_service "$agent_pid" cat /home/mcpcheck/private.txt >/dev/null 2>"$work/nsenter.err" \
  || fail "the agent service cannot read a home: $(cat "$work/nsenter.err")"
if as_service "$agent_pid" sh -c 'echo x >/home/mcpcheck/written-by-agent' 2>/dev/null; then
  fail "the agent service can write to a home"
fi
as_service "$agent_pid" sh -c 'echo x >/etc/mcpwatch/.write-check && rm /etc/mcpwatch/.write-check' \
  || fail "the agent service cannot write its config dir (to remove a used secret)"
if as_service "$agent_pid" sh -c 'echo x >/etc/written-by-agent' 2>/dev/null; then
  fail "the agent service can write to /etc"
fi
ok "the collector cannot read /home; the agent reads every home and cannot write one, nor /etc beyond /etc/mcpwatch"

restarts=$(prop mcpwatch-agent NRestarts)
old_pid=$(prop mcpwatch-agent MainPID)
# SIGABRT, as an abort would (Rust's runtime catches a SIGSEGV sent from outside once, for
# its stack-overflow check).
in_sd systemctl kill --signal=SIGABRT mcpwatch-agent
restarted() {
  [ "$(prop mcpwatch-agent NRestarts)" -gt "$restarts" ] && [ "$(prop mcpwatch-agent ActiveState)" = active ] \
    && [ "$(prop mcpwatch-agent MainPID)" != "$old_pid" ]
}
wait_for 40 "the crashed agent restarted" restarted
ok "a crashed agent is restarted"

# Not enrolled (its identity gone): exit 78, which the unit does not restart on.
in_sd systemctl stop mcpwatch-agent
in_sd sh -c 'rm -rf /var/lib/mcpwatch/agent/*'
in_sd systemctl start mcpwatch-agent || true
exited_78() { [ "$(prop mcpwatch-agent ExecMainStatus)" = 78 ] && [ "$(prop mcpwatch-agent ActiveState)" = failed ]; }
wait_for 20 "the agent to stop with 78" exited_78
# (A start by hand resets the restart counter: count from here.)
restarts=$(prop mcpwatch-agent NRestarts)
# RestartSec is 10 s: a restart would have come within 15.
for _ in $(seq 75); do
  [ "$(prop mcpwatch-agent ActiveState)" = active ] && fail "the agent was restarted after exit 78 ($(prop mcpwatch-agent NRestarts) restarts, was $restarts)"
  sleep 0.2
done
[ "$(prop mcpwatch-agent NRestarts)" = "$restarts" ] || fail "the agent was restarted after exit 78"
ok "exit 78 (not enrolled) is not restarted"

for unit in mcpwatch-agent mcpwatch-collector; do
  in_sd journalctl -u "$unit" -o cat --no-pager >"$work/$unit.journal"
  [ -s "$work/$unit.journal" ] || fail "journalctl -u $unit shows nothing"
  if grep -q $'\x1b' "$work/$unit.journal"; then fail "$unit's journal holds escape codes: $(grep -m 3 $'\x1b' "$work/$unit.journal" | cat -v)"; fi
done
grep -q "Agent started" "$work/mcpwatch-agent.journal" || fail "the agent's journal: $(head -n 20 "$work/mcpwatch-agent.journal")"
grep -q "this agent is not enrolled" "$work/mcpwatch-agent.journal" || fail "the journal does not say why the agent stopped"
grep -qF -- "$secret" "$work/mcpwatch-agent.journal" "$work/mcpwatch-collector.journal" && fail "the enroll secret is in the journal"
ok "journalctl -u: readable lines, no escape codes, no secret"
echo "systemd checks passed"
