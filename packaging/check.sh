#!/usr/bin/env bash
# Check the packages packaging/build.sh put in dist/, for real, on this machine (as
# root; it installs and purges the debs here, so run it on a throwaway machine or CI):
#   debs: lintian, contents, install with enrollment from the environment against the
#         packaged collector running as its own user, units (systemd-analyze verify),
#         conffiles, purge;
#   Windows: the agent under wine scans a Windows-layout tree; the MSI's tables; the
#         MSI installed with msiexec /qn and its properties (files, config, service,
#         enrollment and a report reaching the collector), upgraded in place, removed.
# KEEP_WORK=1 keeps the scratch directory (Wine prefix, logs) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
agent_deb="dist/mcpwatch-agent_${version}-1_amd64.deb"
collector_deb="dist/mcpwatch-collector_${version}-1_amd64.deb"
msi="dist/mcpwatch-agent-${version}-x64.msi"
work=$(mktemp -d)
collector_pid=""
cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null || true
  if [ -n "${WINEPREFIX:-}" ]; then wineserver -k 2>/dev/null || true; fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() { echo "FAILED: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }

# ---------------------------------------------------------------- debs
echo "== lintian"
lintian --fail-on error --suppress-tags initial-upload-closes-no-bugs "$collector_deb" "$agent_deb"
ok "lintian: no errors"

echo "== units"
dpkg-deb -x "$agent_deb" "$work/agent-root"
dpkg-deb -x "$collector_deb" "$work/collector-root"
for unit in "$work"/agent-root/usr/lib/systemd/system/*.service "$work"/collector-root/usr/lib/systemd/system/*.service; do
  # The programs are not installed yet: verify with them on the PATH systemd checks.
  out=$(systemd-analyze verify "$unit" 2>&1 | grep -v 'is not executable: No such file' || true)
  [ -z "$out" ] || fail "systemd-analyze verify $(basename "$unit"): $out"
done
ok "systemd-analyze verify: both units"

echo "== install the collector deb"
dpkg -i "$collector_deb" >/dev/null
getent passwd mcpwatch >/dev/null || fail "no mcpwatch user"
[ "$(stat -c '%U %a' /var/lib/mcpwatch/collector)" = "mcpwatch 700" ] || fail "collector data dir: $(stat -c '%U %a' /var/lib/mcpwatch/collector)"
[ "$(stat -c '%U %a' /etc/mcpwatch/collector.env)" = "root 600" ] || fail "collector.env permissions"
dpkg-query -W -f='${Conffiles}\n' mcpwatch-collector | grep /etc/mcpwatch/collector.env >/dev/null || fail "collector.env is not a conffile"
systemd-analyze verify /usr/lib/systemd/system/mcpwatch-collector.service
ok "collector: user, data dir, conffile, unit"

# The packaged collector, as its own user, on the data dir the unit uses.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
runuser -u mcpwatch -- /usr/bin/mcpwatch-collector serve --listen "127.0.0.1:$port" \
  --data-dir /var/lib/mcpwatch/collector >"$work/collector.log" 2>&1 &
collector_pid=$!
for _ in $(seq 100); do curl -fsS "$base/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$base/health" >/dev/null || fail "collector did not start: $(cat "$work/collector.log")"
curl -fsS -X POST "$base/auth/register" -H 'content-type: application/json' \
  -d '{"email":"admin@example.com","password":"PackagingCheck1!","organization_name":"Packaging"}' >/dev/null
token=$(curl -fsS -X POST "$base/auth/login" -H 'content-type: application/json' \
  -d '{"email":"admin@example.com","password":"PackagingCheck1!"}' | json 'd["access_token"]')
new_secret() {
  curl -fsS -X POST "$base/enroll-secrets" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"name\":\"$1\"}" | json 'd["secret"]'
}
agent_count() { curl -fsS "$base/agents/" -H "authorization: Bearer $token" | json 'len(d)'; }
[ "$(stat -c '%U' /var/lib/mcpwatch/collector/*.redb 2>/dev/null | sort -u)" = "mcpwatch" ] || fail "database not owned by mcpwatch"
ok "packaged collector runs as mcpwatch"

echo "== install the agent deb with enrollment from the environment"
secret=$(new_secret debian)
MCPWATCH_COLLECTOR_URL="$base" MCPWATCH_ENROLL_SECRET="$secret" dpkg -i "$agent_deb" >"$work/agent-install.log" 2>&1 \
  || fail "dpkg -i agent: $(cat "$work/agent-install.log")"
[ -x /usr/bin/mcpwatch-agent ] || fail "agent program"
[ "$(stat -c '%U %a' /etc/mcpwatch/agent.toml)" = "root 600" ] || fail "agent.toml permissions"
grep -q "^collector_url = \"$base\"" /etc/mcpwatch/agent.toml || fail "collector_url not written"
grep -q "^enroll_secret = " /etc/mcpwatch/agent.toml || fail "enroll_secret not written"
dpkg-query -W -f='${Conffiles}\n' mcpwatch-agent | grep /etc/mcpwatch/agent.toml >/dev/null || fail "agent.toml is not a conffile"
[ "$(stat -c '%a' /var/lib/mcpwatch/agent)" = "700" ] || fail "agent state dir permissions"
[ -f /var/lib/mcpwatch/agent/state.json ] || fail "the agent did not enroll at install: $(cat "$work/agent-install.log")"
[ "$(agent_count)" = 1 ] || fail "collector should list 1 agent"
systemd-analyze verify /usr/lib/systemd/system/mcpwatch-agent.service
grep -q "$secret" "$work/agent-install.log" && fail "the enroll secret was printed at install"
ok "agent deb: files, conffile, enrolled at install, unit"

echo "== the packaged agent reports"
MCPWATCH_STATE_DIR=/var/lib/mcpwatch/agent timeout 20 /usr/bin/mcpwatch-agent run --rescan-interval 10 >"$work/agent-run.log" 2>&1 &
run_pid=$!
for _ in $(seq 100); do grep -q "Report accepted" "$work/agent-run.log" && break; sleep 0.2; done
kill "$run_pid" 2>/dev/null || true
grep -q "Report accepted" "$work/agent-run.log" || fail "no report: $(cat "$work/agent-run.log")"
ok "packaged agent reports"

echo "== purge"
dpkg --purge mcpwatch-agent >/dev/null
[ ! -e /usr/bin/mcpwatch-agent ] && [ ! -e /etc/mcpwatch/agent.toml ] && [ ! -e /var/lib/mcpwatch/agent ] || fail "agent purge left files"
kill "$collector_pid"; wait "$collector_pid" 2>/dev/null || true; collector_pid=""
dpkg --purge mcpwatch-collector >/dev/null 2>"$work/purge.log"
[ ! -e /usr/bin/mcpwatch-collector ] && [ ! -e /etc/mcpwatch/collector.env ] || fail "collector purge left files"
[ -d /var/lib/mcpwatch/collector ] || fail "purging the collector must keep its database"
rm -rf /var/lib/mcpwatch
ok "purge removes the agent's state and keeps the collector's database"

# ---------------------------------------------------------------- Windows
echo "== Windows agent under wine"
export WINEPREFIX="$work/wine" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# Make the prefix, let that wineserver end (services it started during the first boot
# can hold Wine's service start lock for good), then keep one new wineserver, and so
# one service manager, for the whole check.
wineboot -i >/dev/null 2>&1
wineserver -w
wineserver -p
# msiexec under Wine. Wine's service manager holds a start lock while any service start
# is in progress, and its starts of RpcSs and MSIServer (which msiexec needs) can time
# out while holding it; the MSI's StartServices then fails with "database locked"
# (1055) and the install rolls back. Start those services first, and give a rolled-back
# install a second and third try: each try is a complete install, checked below.
msiexec() {
  local service attempt
  for attempt in 1 2 3; do
    for service in RpcSs MSIServer; do
      for _ in $(seq 30); do
        wine sc query "$service" 2>/dev/null | grep RUNNING >/dev/null && break
        wine net start "$service" >/dev/null 2>&1 || sleep 1
      done
    done
    if wine msiexec "$@"; then
      return 0
    fi
    echo "msiexec $1 failed (try $attempt of 3)" >&2
  done
  return 1
}

# Wine 8 lacks bcryptprimitives!ProcessPrng, which Rust's std imports.
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
  packaging/wine/bcryptprimitives.c packaging/wine/bcryptprimitives.def -ladvapi32
c="$WINEPREFIX/drive_c"
mkdir -p "$c/users/alice/.cursor" "$c/users/alice/AppData/Roaming/Claude"
cat >"$c/users/alice/.cursor/mcp.json" <<'JSON'
{"mcpServers": {"files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "C:\\Users\\alice"]}}}
JSON
cat >"$c/users/alice/AppData/Roaming/Claude/claude_desktop_config.json" <<'JSON'
{"mcpServers": {"github": {"command": "docker", "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
  "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_WinePlantedToken000000000000000000001"}}}}
JSON
wine dist/mcpwatch-agent.exe scan --json --root 'C:\' >"$work/scan.json" 2>"$work/scan.err" || fail "scan under wine: $(cat "$work/scan.err")"
found=$(json '" ".join(sorted(s["client"] + ":" + s["server_name"] for s in d["servers"]))' <"$work/scan.json")
[ "$found" = "claude_desktop:github cursor:files" ] || fail "wine scan found: $found"
grep -q ghp_WinePlanted "$work/scan.json" && fail "the scan leaked a token"
ok "wine scan of a Windows tree: $found"

echo "== MSI tables"
tables=$(msiinfo tables "$msi")
for t in ServiceInstall ServiceControl CustomAction Upgrade File; do
  grep -qx "$t" <<<"$tables" || fail "MSI has no $t table"
done
# (Exported to files first: `grep -q` closing a pipe early would fail the pipeline.)
for t in ServiceInstall Property CustomAction; do msiinfo export "$msi" "$t" >"$work/$t.idt"; done
grep -q $'^AgentService\tmcpwatch-agent\t' "$work/ServiceInstall.idt" || fail "ServiceInstall row"
grep -q $'\tservice\tAgent\t' "$work/ServiceInstall.idt" || fail "service arguments"
grep -q $'^UpgradeCode\t{ea2cc1f1-0e89-406f-a6da-5ca6cdad1a4c}' "$work/Property.idt" || fail "UpgradeCode changed"
grep -q $'^SecureCustomProperties\tSERVER_URL;ENROLL_SECRET;CA_FILE' "$work/Property.idt" || fail "SecureCustomProperties"
grep -q $'^MsiHiddenProperties\tENROLL_SECRET' "$work/Property.idt" || fail "MsiHiddenProperties"
grep -q 'install --no-service --server="\[SERVER_URL\]"' "$work/CustomAction.idt" || fail "ConfigureAgent action"
ok "MSI tables: service, control, custom actions, upgrade code, secure and hidden properties"

echo "== MSI install under wine"
# A packaged collector again, now on plain loopback for the wine agent.
mkdir -p "$work/collector-data"
dpkg-deb -x "$collector_deb" "$work/collector-bin"
"$work/collector-bin/usr/bin/mcpwatch-collector" serve --listen "127.0.0.1:$port" --data-dir "$work/collector-data" \
  >"$work/collector2.log" 2>&1 &
collector_pid=$!
for _ in $(seq 100); do curl -fsS "$base/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X POST "$base/auth/register" -H 'content-type: application/json' \
  -d '{"email":"admin@example.com","password":"PackagingCheck1!","organization_name":"Packaging"}' >/dev/null
token=$(curl -fsS -X POST "$base/auth/login" -H 'content-type: application/json' \
  -d '{"email":"admin@example.com","password":"PackagingCheck1!"}' | json 'd["access_token"]')
secret=$(new_secret windows)
msiexec /i "$msi" /qn SERVER_URL="$base" ENROLL_SECRET="$secret" >"$work/msiexec.out" 2>&1 \
  || fail "msiexec /i: $(cat "$work/msiexec.out")"
[ -f "$c/Program Files/mcpwatch/mcpwatch-agent.exe" ] || fail "program not installed"
config="$c/ProgramData/mcpwatch/agent.toml"
grep -q "^collector_url = \"$base\"" "$config" || fail "SERVER_URL not in the config"
grep -q "^enroll_secret = \"$secret\"" "$config" || fail "ENROLL_SECRET not in the config"
# Windows Installer leaves MsiHiddenProperties out of its logs; Wine's msiexec writes
# every property to a verbose log, so the log is not checked here.
wine reg query 'HKLM\System\CurrentControlSet\Services\mcpwatch-agent' >"$work/service.reg" 2>/dev/null || fail "service not registered"
# (Windows Installer quotes the program path; Wine's msi does not.)
grep -q 'Program Files\\mcpwatch\\mcpwatch-agent.exe"\? service' "$work/service.reg" || fail "service command: $(cat "$work/service.reg")"
grep -q 'Start.*0x2' "$work/service.reg" || fail "service is not automatic"
agent_id=$(wine 'C:\Program Files\mcpwatch\mcpwatch-agent.exe' status 2>/dev/null | sed -n 's/^agent id: *//p' | tr -d '\r')
[ -n "$agent_id" ] && [ "$agent_id" != "-" ] || fail "not enrolled after the MSI install"
servers() { curl -fsS "$base/mcp/servers" -H "authorization: Bearer $token" | json 'len(d["items"])'; }
for _ in $(seq 150); do [ "$(servers)" = 2 ] && break; sleep 0.2; done
[ "$(servers)" = 2 ] || fail "the Windows service sent no report; service log: $(cat "$c/ProgramData/mcpwatch/state/agent.log" 2>/dev/null)"
wine sc query mcpwatch-agent | grep RUNNING >/dev/null || fail "service not running"
# The service sets its own crash restarts at start (wixl cannot write failure actions);
# Wine stores no failure actions, so the check is that the service made the call.
grep -q "Crash restarts configured" "$c/ProgramData/mcpwatch/state/agent.log" \
  || fail "the service did not configure its crash restarts: $(cat "$c/ProgramData/mcpwatch/state/agent.log")"
ok "MSI install: program, config, service registered and running, enrolled ($agent_id), report received, crash restarts configured"

echo "== the service stops when asked"
wine sc stop mcpwatch-agent >/dev/null
for _ in $(seq 100); do wine sc query mcpwatch-agent | grep STOPPED >/dev/null && break; sleep 0.2; done
wine sc query mcpwatch-agent | grep STOPPED >/dev/null || fail "the service did not stop"
grep -q "Windows service stopped" "$c/ProgramData/mcpwatch/state/agent.log" || fail "no clean stop in the service log"
ok "sc stop: the service stops cleanly"

echo "== MSI upgrade in place"
rm -rf "$work/upgrade" && mkdir -p "$work/upgrade"
next="${version%.*}.$(( ${version##*.} + 1 ))"
wixl -a x64 -D Version="$next" -D AgentExe=dist/mcpwatch-agent.exe -o "$work/upgrade/agent.msi" packaging/msi/mcpwatch-agent.wxs
msiexec /i "$work/upgrade/agent.msi" /qn >"$work/msiexec.out" 2>&1 || fail "upgrade: $(cat "$work/msiexec.out")"
again=$(wine 'C:\Program Files\mcpwatch\mcpwatch-agent.exe' status 2>/dev/null | sed -n 's/^agent id: *//p' | tr -d '\r')
[ "$again" = "$agent_id" ] || fail "the upgrade changed the agent's identity ($again)"
[ "$(wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s 2>/dev/null | grep -c 'mcpwatch agent')" = 1 ] \
  || fail "two products installed after the upgrade"
ok "MSI upgrade $version -> $next keeps one product and the identity"

echo "== MSI uninstall"
msiexec /x "$work/upgrade/agent.msi" /qn >"$work/msiexec.out" 2>&1 || fail "msiexec /x: $(cat "$work/msiexec.out")"
[ ! -e "$c/Program Files/mcpwatch/mcpwatch-agent.exe" ] || fail "program left behind"
wine reg query 'HKLM\System\CurrentControlSet\Services\mcpwatch-agent' >/dev/null 2>&1 && fail "service left behind"
[ -e "$config" ] && [ -e "$c/ProgramData/mcpwatch/state/state.json" ] || fail "uninstall must keep the config and identity"
ok "MSI uninstall removes program and service, keeps config and identity"
echo "packaging checks passed"
