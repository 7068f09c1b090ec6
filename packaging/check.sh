#!/usr/bin/env bash
# Check the packages packaging/build.sh put in dist/, for real, on this machine (as
# root; it installs and purges the debs here, so run it on a throwaway machine or CI):
#   debs: lintian, contents (man pages, docs, no file in /etc), units; every unattended
#         apt path (fresh install with and without a prepared config, reinstall,
#         upgrade over a changed shipped example, remove, purge) against the packaged
#         collector running as its own user; enrollment from the environment and from
#         a prepared config with the secret gone from disk afterwards; a refused
#         secret; status as root and as a normal user;
#   systemd: packaging/systemd-check.sh, the debs under a real systemd as PID 1;
#   rpms: rpmlint, info, scriptlets, the debs' files, a scratch-root install;
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
agent_rpm="dist/mcpwatch-agent-${version}-1.x86_64.rpm"
collector_rpm="dist/mcpwatch-collector-${version}-1.x86_64.rpm"
work=$(mktemp -d)
collector_pid=""
cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null || true
  if [ -n "${WINEPREFIX:-}" ]; then wineserver -k 2>/dev/null || true; fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The script's own stderr, for notes that must show even where a step's output is
# redirected to a log.
exec 3>&2
fail() { echo "FAILED: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
json() { python3 -c "import sys, json; d = json.load(sys.stdin); print($1)"; }

# ---------------------------------------------------------------- debs
# Installed the way docs/deployment.md tells fleets to: apt, unattended, no terminal.
apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get "$@" </dev/null >"$work/apt.log" 2>&1 \
    || fail "apt-get $*: $(cat "$work/apt.log")"
}
no_conffiles() {
  [ -z "$(dpkg-query -W -f='${Conffiles}' "$1")" ] || fail "$1 ships conffiles: $(dpkg-query -W -f='${Conffiles}' "$1")"
}
# A later version of a deb whose shipped example config changed ($3: the file).
next_deb() {
  rm -rf "$work/repack"
  dpkg-deb -R "$1" "$work/repack"
  sed -i "s/^Version: .*/Version: ${version}-2/" "$work/repack/DEBIAN/control"
  echo "# shipped example changed in ${version}-2" >>"$work/repack/$3"
  (cd "$work/repack" && find usr -type f -exec md5sum {} + >DEBIAN/md5sums)
  dpkg-deb --root-owner-group -b "$work/repack" "$2" >/dev/null
}
# No file below the given directories holds the secret $1.
secret_nowhere() {
  local secret=$1; shift
  if grep -rlF -- "$secret" "$@" 2>/dev/null; then fail "the enroll secret is still on disk (files above)"; fi
}

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

echo "== contents: man pages and docs"
for f in usr/share/man/man1/mcpwatch-agent.1.gz usr/share/man/man1/mcpwatch-agent-run.1.gz \
  usr/share/doc/mcpwatch-agent/deployment.md usr/share/mcpwatch/agent.toml; do
  [ -f "$work/agent-root/$f" ] || fail "the agent deb lacks $f"
done
for f in usr/share/man/man1/mcpwatch-collector.1.gz usr/share/man/man1/mcpwatch-collector-serve.1.gz \
  usr/share/doc/mcpwatch-collector/deployment.md usr/share/mcpwatch/collector.env; do
  [ -f "$work/collector-root/$f" ] || fail "the collector deb lacks $f"
done
zcat "$work/agent-root/usr/share/man/man1/mcpwatch-agent-run.1.gz" >"$work/run.1"
grep -q -- 'heartbeat' "$work/run.1" || fail "the run man page is empty"
[ ! -e "$work/agent-root/etc" ] && [ ! -e "$work/collector-root/etc" ] || fail "a deb ships files in /etc"
ok "man pages for both programs, deployment.md, examples under /usr/share, nothing in /etc"

echo "== collector deb: install, reinstall, upgrade over a changed example, unattended"
apt_get install -y "./$collector_deb"
getent passwd mcpwatch >/dev/null || fail "no mcpwatch user"
[ "$(stat -c '%U %a' /var/lib/mcpwatch/collector)" = "mcpwatch 700" ] || fail "collector data dir: $(stat -c '%U %a' /var/lib/mcpwatch/collector)"
[ "$(stat -c '%U %a' /etc/mcpwatch/collector.env)" = "root 600" ] || fail "collector.env permissions"
cmp -s /etc/mcpwatch/collector.env /usr/share/mcpwatch/collector.env || fail "collector.env is not the example"
no_conffiles mcpwatch-collector
systemd-analyze verify /usr/lib/systemd/system/mcpwatch-collector.service
apt_get install -y --reinstall "./$collector_deb"
echo "MCPWATCH_LOG=debug" >>/etc/mcpwatch/collector.env
next_deb "$collector_deb" "$work/collector-next.deb" usr/share/mcpwatch/collector.env
apt_get install -y "$work/collector-next.deb"
grep -q '^MCPWATCH_LOG=debug$' /etc/mcpwatch/collector.env || fail "the upgrade changed the admin's collector.env"
grep -q 'shipped example changed' /etc/mcpwatch/collector.env && fail "the upgrade wrote the new example over the admin's file"
grep -q 'shipped example changed' /usr/share/mcpwatch/collector.env || fail "the upgrade did not ship the new example"
sed -i '/^MCPWATCH_LOG=debug$/d' /etc/mcpwatch/collector.env
ok "collector: user, data dir, settings from the example, no conffile; reinstall and upgrade keep the admin's settings"

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
# The packaged agent's run until it has reported ($1: what the log must show).
agent_reports() {
  MCPWATCH_STATE_DIR=/var/lib/mcpwatch/agent timeout 20 /usr/bin/mcpwatch-agent run --rescan-interval 10 >"$work/agent-run.log" 2>&1 &
  local run_pid=$!
  for _ in $(seq 100); do grep -q "Report accepted" "$work/agent-run.log" && break; sleep 0.2; done
  kill "$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
  grep -q "Report accepted" "$work/agent-run.log" || fail "no report: $(cat "$work/agent-run.log")"
}

echo "== agent deb: fresh install, reinstall, upgrade over a changed example, remove, purge"
apt_get install -y "./$agent_deb"
[ -x /usr/bin/mcpwatch-agent ] || fail "agent program"
[ "$(stat -c '%U %a' /etc/mcpwatch/agent.toml)" = "root 600" ] || fail "agent.toml permissions"
[ "$(stat -c '%a' /etc/mcpwatch/agent.d)" = "700" ] || fail "agent.d permissions"
cmp -s /etc/mcpwatch/agent.toml /usr/share/mcpwatch/agent.toml || fail "agent.toml is not the example"
no_conffiles mcpwatch-agent
systemd-analyze verify /usr/lib/systemd/system/mcpwatch-agent.service
apt_get install -y --reinstall "./$agent_deb"
echo 'project_depth = 2' >>/etc/mcpwatch/agent.toml
next_deb "$agent_deb" "$work/agent-next.deb" usr/share/mcpwatch/agent.toml
apt_get install -y "$work/agent-next.deb"
grep -q '^project_depth = 2$' /etc/mcpwatch/agent.toml || fail "the upgrade changed the admin's agent.toml"
grep -q 'shipped example changed' /etc/mcpwatch/agent.toml && fail "the upgrade wrote the new example over the admin's file"
apt_get remove -y mcpwatch-agent
[ ! -e /usr/bin/mcpwatch-agent ] && [ -e /etc/mcpwatch/agent.toml ] || fail "remove: the program must go, the config stay"
apt_get purge -y mcpwatch-agent
[ ! -e /etc/mcpwatch/agent.toml ] && [ ! -e /etc/mcpwatch/agent.d ] && [ ! -e /var/lib/mcpwatch/agent ] || fail "agent purge left files"
ok "agent: example config, no conffile; reinstall, upgrade (admin's file kept), remove, purge, all unattended"

echo "== agent deb with a prepared config (the fleet path)"
secret=$(new_secret prepared)
install -d -m 0755 /etc/mcpwatch
printf '# prepared by the fleet\ncollector_url = "%s"\nenroll_secret = "%s"\n' "$base" "$secret" >/etc/mcpwatch/agent.toml
chmod 600 /etc/mcpwatch/agent.toml
apt_get install -y "./$agent_deb"
grep -q "^enroll_secret = \"$secret\"" /etc/mcpwatch/agent.toml || fail "the install changed the prepared config"
agent_reports
grep -q "the enroll secret was removed from the config file" "$work/agent-run.log" || fail "the used secret was not removed: $(cat "$work/agent-run.log")"
[ "$(head -n 2 /etc/mcpwatch/agent.toml)" = "$(printf '# prepared by the fleet\ncollector_url = "%s"' "$base")" ] || fail "the rest of the prepared config was not kept: $(cat /etc/mcpwatch/agent.toml)"
secret_nowhere "$secret" /etc/mcpwatch /var/lib/mcpwatch/agent
grep -qF "$secret" "$work/agent-run.log" "$work/apt.log" && fail "the enroll secret was printed"
apt_get purge -y mcpwatch-agent
ok "prepared config: installed unattended, enrolled by the agent, the secret removed from the file"

echo "== agent deb with enrollment from the environment"
secret=$(new_secret environment)
MCPWATCH_COLLECTOR_URL="$base" MCPWATCH_ENROLL_SECRET="$secret" apt_get install -y "./$agent_deb"
[ -f /var/lib/mcpwatch/agent/state.json ] || fail "the agent did not enroll at install: $(cat "$work/apt.log")"
[ "$(stat -c '%a' /var/lib/mcpwatch/agent)" = "700" ] || fail "agent state dir permissions"
grep -q "^collector_url = \"$base\"" /etc/mcpwatch/agent.d/50-install.toml || fail "collector_url not in the install drop-in"
[ "$(stat -c '%a' /etc/mcpwatch/agent.d/50-install.toml)" = "600" ] || fail "drop-in permissions"
secret_nowhere "$secret" /etc/mcpwatch /var/lib/mcpwatch/agent
grep -qF "$secret" "$work/apt.log" && fail "the enroll secret was printed at install"
[ "$(agent_count)" = 2 ] || fail "the collector should list 2 agents, lists $(agent_count)"
/usr/bin/mcpwatch-agent status >"$work/status.out" || fail "status as root: $(cat "$work/status.out")"
grep -q "^enrolled: *yes" "$work/status.out" || fail "status: $(cat "$work/status.out")"
if runuser -u nobody -- /usr/bin/mcpwatch-agent status >"$work/status.out" 2>&1; then fail "status as a normal user should refuse"; fi
[ "$(wc -l <"$work/status.out")" = 1 ] && grep -q "run \`sudo mcpwatch-agent status\`" "$work/status.out" \
  || fail "status as a normal user: $(cat "$work/status.out")"
agent_reports
ok "environment: enrolled at install, URL in the drop-in, no secret on disk or in the output, status true for root and one line for others"

echo "== agent deb with a refused secret"
apt_get purge -y mcpwatch-agent
MCPWATCH_COLLECTOR_URL="$base" MCPWATCH_ENROLL_SECRET="mcp_es_not-a-real-secret" apt_get install -y "./$agent_deb"
grep -q "the package is installed but the agent is not enrolled" "$work/apt.log" || fail "apt output: $(cat "$work/apt.log")"
[ "$(dpkg-query -W -f='${Status}' mcpwatch-agent)" = "install ok installed" ] || fail "the package is not fully installed"
/usr/bin/mcpwatch-agent status >"$work/status.out"
grep -q "^enrolled: *no" "$work/status.out" && grep -q "enrollment refused" "$work/status.out" || fail "status: $(cat "$work/status.out")"
if MCPWATCH_STATE_DIR=/var/lib/mcpwatch/agent timeout 20 /usr/bin/mcpwatch-agent run >"$work/agent-run.log" 2>&1; then fail "an agent that is not enrolled must stop"; else code=$?; fi
[ "$code" = 78 ] || fail "not enrolled: exit $code, not 78: $(cat "$work/agent-run.log")"
secret_nowhere "mcp_es_not-a-real-secret" /etc/mcpwatch /var/lib/mcpwatch/agent
apt_get purge -y mcpwatch-agent
ok "refused secret: the package installs (apt answers 0), says how to enroll, status says refused, the agent exits 78"

echo "== collector purge"
kill "$collector_pid"; wait "$collector_pid" 2>/dev/null || true; collector_pid=""
apt_get purge -y mcpwatch-collector
[ ! -e /usr/bin/mcpwatch-collector ] && [ ! -e /etc/mcpwatch/collector.env ] || fail "collector purge left files"
[ -d /var/lib/mcpwatch/collector ] || fail "purging the collector must keep its database"
grep -q "kept the database in /var/lib/mcpwatch/collector and the system user mcpwatch" "$work/apt.log" || fail "purge does not say what it keeps: $(cat "$work/apt.log")"
rm -rf /var/lib/mcpwatch
deluser --system mcpwatch >/dev/null 2>&1 || true
ok "collector purge removes its settings, keeps the database and the mcpwatch user, and says so"

# ---------------------------------------------------------------- real systemd
echo "== the debs under a real systemd"
bash packaging/systemd-check.sh "$agent_deb" "$collector_deb"

# ---------------------------------------------------------------- rpms
echo "== rpms"
for rpm_file in "$agent_rpm" "$collector_rpm"; do
  [ -f "$rpm_file" ] || fail "no $rpm_file"
  rpmlint -c packaging/rpm/rpmlintrc "$rpm_file" >"$work/rpmlint.out" 2>&1 \
    || fail "rpmlint $(basename "$rpm_file"): $(cat "$work/rpmlint.out")"
  rpm -qip "$rpm_file" >"$work/rpm-info.out" 2>/dev/null
  grep -q "^Version *: $version" "$work/rpm-info.out" && grep -q "^License *: Apache-2.0" "$work/rpm-info.out" \
    || fail "rpm -qip $(basename "$rpm_file"): $(cat "$work/rpm-info.out")"
  rpm -qp --scripts "$rpm_file" >"$work/rpm-scripts.out" 2>/dev/null
  grep -q 'systemctl enable --now' "$work/rpm-scripts.out" || fail "$(basename "$rpm_file") has no scriptlets"
done
rpm -qlp "$agent_rpm" 2>/dev/null >"$work/agent-rpm.files"
rpm -qlp "$collector_rpm" 2>/dev/null >"$work/collector-rpm.files"
# The same files as the debs (the debs' own Debian paths aside).
(cd "$work/agent-root" && find usr -type f | sed 's|^|/|' | grep -v -e '^/usr/share/lintian' -e '/changelog.Debian.gz$' -e '/copyright$' | sort) >"$work/agent-deb.files"
(cd "$work/collector-root" && find usr -type f | sed 's|^|/|' | grep -v -e '^/usr/share/lintian' -e '/changelog.Debian.gz$' -e '/copyright$' | sort) >"$work/collector-deb.files"
diff <(sort "$work/agent-rpm.files") "$work/agent-deb.files" || fail "the agent rpm and deb ship different files"
diff <(sort "$work/collector-rpm.files") "$work/collector-deb.files" || fail "the collector rpm and deb ship different files"
rpmroot="$work/rpmroot"
rpm --root "$rpmroot" --initdb
rpm --root "$rpmroot" -i --nodeps --noscripts "$agent_rpm" "$collector_rpm" 2>"$work/rpm-root.err" || fail "rpm --root -i: $(cat "$work/rpm-root.err")"
[ -x "$rpmroot/usr/bin/mcpwatch-agent" ] && [ -x "$rpmroot/usr/bin/mcpwatch-collector" ] || fail "rpm --root: programs missing"
rpm --root "$rpmroot" -V --nodeps mcpwatch-agent mcpwatch-collector || fail "rpm -V after installing into the scratch root"
rpm -qp --requires "$agent_rpm" >"$work/rpm-requires.out" 2>/dev/null
grep -q "^libc.so.6" "$work/rpm-requires.out" || fail "the agent rpm names no libc dependency"
[ "$("$rpmroot/usr/bin/mcpwatch-agent" version)" = "mcpwatch-agent $version" ] || fail "the rpm's agent does not run"
rpm --root "$rpmroot" -e --noscripts mcpwatch-agent mcpwatch-collector
[ ! -e "$rpmroot/usr/bin/mcpwatch-agent" ] || fail "rpm -e left the program"
ok "rpms: rpmlint, info, scriptlets, the debs' files, installed into and removed from a scratch root"

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
    wine_retries=$(( wine_retries + 1 ))
    echo "note: msiexec $1 failed under Wine (try $attempt of 3); retrying" >&3
  done
  return 1
}
wine_retries=0

# The Windows agent's `status` as root, as a line `agent id: ...`; the service may be
# writing its state as it is read, so a failed read is tried again for a few seconds,
# and a lasting failure names what `status` said.
agent_status() {
  local attempt
  for attempt in $(seq 20); do
    if wine 'C:\Program Files\mcpwatch\mcpwatch-agent.exe' status >"$work/status.out" 2>"$work/status.err"; then
      sed -n 's/^agent id: *//p' "$work/status.out" | tr -d '\r'
      return 0
    fi
    echo "note: mcpwatch-agent status under Wine failed (try $attempt): $(tr -d '\r' <"$work/status.err")" >&3
    sleep 0.25
  done
  fail "mcpwatch-agent status under Wine failed 20 times: $(cat "$work/status.out" "$work/status.err")"
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
grep -q 'install --no-service --collector-url="\[SERVER_URL\]"' "$work/CustomAction.idt" || fail "ConfigureAgent action"
type=$(awk -F'\t' '$1 == "ConfigureAgent" { print $2 }' "$work/CustomAction.idt")
[ $(( type & 0x2000 )) != 0 ] || fail "ConfigureAgent lacks HideTarget (type $type)"
product=$(packaging/msi/product-code "$version")
grep -q $'^ProductCode\t{'"$product"'}' "$work/Property.idt" || fail "ProductCode is not the one of $version: $(grep ProductCode "$work/Property.idt")"
# A rebuild of the same version is the same product.
wixl -a x64 -D Version="$version" -D ProductCode="$product" -D AgentExe=dist/mcpwatch-agent.exe \
  -o "$work/rebuilt.msi" packaging/msi/mcpwatch-agent.wxs
packaging/msi/hide-target "$work/rebuilt.msi"
msiinfo export "$work/rebuilt.msi" Property >"$work/rebuilt-Property.idt"
grep -q $'^ProductCode\t{'"$product"'}' "$work/rebuilt-Property.idt" || fail "a rebuild got another ProductCode"
ok "MSI tables: service, control, custom actions (the secret's hidden: type $type), upgrade code, ProductCode of $version, secure and hidden properties"

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
msiexec /i "$msi" /qn /l*v "$work/msiexec-verbose.log" SERVER_URL="$base" ENROLL_SECRET="$secret" >"$work/msiexec.out" 2>&1 \
  || fail "msiexec /i: $(cat "$work/msiexec.out")"
[ -f "$c/Program Files/mcpwatch/mcpwatch-agent.exe" ] || fail "program not installed"
config="$c/ProgramData/mcpwatch/agent.toml"
[ -f "$config" ] || fail "no config file"
grep -q "^collector_url = \"$base\"" "$c/ProgramData/mcpwatch/agent.d/50-install.toml" || fail "SERVER_URL not in the install drop-in"
secret_nowhere "$secret" "$c/ProgramData/mcpwatch"
# The verbose log (UTF-16 or UTF-8, as msiexec writes it) never holds the secret, but
# in one line that is Wine's, not ours: its closing dump of every property, which lists
# MsiHiddenProperties too (Windows Installer leaves them out). The custom action's
# command line, which carries the secret, is never logged (HideTarget).
[ -s "$work/msiexec-verbose.log" ] || fail "msiexec wrote no verbose log"
{ cat "$work/msiexec-verbose.log"; iconv -f UTF-16LE -t UTF-8 "$work/msiexec-verbose.log" 2>/dev/null || true; } \
  | tr -d '\r' >"$work/msiexec-verbose.txt"
grep -F -- "$secret" "$work/msiexec-verbose.txt" >"$work/secret-lines.txt" || true
grep -v '^Property([SC]): ENROLL_SECRET = ' "$work/secret-lines.txt" >"$work/secret-leaks.txt" || true
[ ! -s "$work/secret-leaks.txt" ] || fail "the enroll secret is in the verbose msiexec log: $(cat "$work/secret-leaks.txt")"
if [ -s "$work/secret-lines.txt" ]; then
  echo "note: Wine's msiexec lists the hidden ENROLL_SECRET in its closing property dump (Windows Installer does not); no other line of the verbose log holds it" >&3
fi
wine reg query 'HKLM\System\CurrentControlSet\Services\mcpwatch-agent' >"$work/service.reg" 2>/dev/null || fail "service not registered"
# (Windows Installer quotes the program path; Wine's msi does not.)
grep -q 'Program Files\\mcpwatch\\mcpwatch-agent.exe"\? service' "$work/service.reg" || fail "service command: $(cat "$work/service.reg")"
grep -q 'Start.*0x2' "$work/service.reg" || fail "service is not automatic"
agent_id=$(agent_status)
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
wixl -a x64 -D Version="$next" -D ProductCode="$(packaging/msi/product-code "$next")" \
  -D AgentExe=dist/mcpwatch-agent.exe -o "$work/upgrade/agent.msi" packaging/msi/mcpwatch-agent.wxs
packaging/msi/hide-target "$work/upgrade/agent.msi"
msiexec /i "$work/upgrade/agent.msi" /qn >"$work/msiexec.out" 2>&1 || fail "upgrade: $(cat "$work/msiexec.out")"
again=$(agent_status)
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
[ "$wine_retries" = 0 ] || echo "note: $wine_retries msiexec step(s) under Wine passed only when retried (see the notes above)"
echo "packaging checks passed"
