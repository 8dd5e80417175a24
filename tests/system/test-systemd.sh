#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# modelkeeperd under real systemd 252 (Debian 12 in systemd-nspawn): notify readiness on start,
# reload, a structured journal entry with its MESSAGE_ID and catalog text, a refused model file
# that leaves the service running, modelkeeperctl over the control socket, a clean stop.
#
# Usage: test-systemd.sh BUILD_DIR. Exit 77 (SKIP) where nspawn cannot run.

set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=nspawn-lib.sh
. "$here/nspawn-lib.sh"

build=$(readlink -f "${1:?usage: $0 BUILD_DIR}")
nspawn_preflight
nspawn_image

work=$(mktemp -d /var/tmp/mk-system.XXXXXX)
trap 'rm -rf "$work"' EXIT
nspawn_instance "$work" "$build"

cat >"$work/root/usr/local/bin/mk-check" <<'EOF'
#!/bin/bash
exec >/results/log 2>&1
set -x
fail() { set +x; echo "FAIL: $*"; journalctl -u modelkeeperd --no-pager | tail -40; echo FAIL >/results/status; exit 1; }
export PATH=/usr/local/sbin:/usr/local/bin:$PATH

journalctl --update-catalog || fail "update-catalog"
cfg=/usr/local/etc/modelkeeper
mkdir -p $cfg/models.d
cat >$cfg/models.d/demo.yaml <<'M'
model: demo
storage: {keep_versions: 3}
M

# Type=notify: start returns only after READY=1.
systemctl start modelkeeperd || fail "start"
[ "$(systemctl is-active modelkeeperd)" = active ] || fail "not active after start"
systemctl show -p StatusText --value modelkeeperd | grep -q "1 model" || fail "STATUS= missing"
modelkeeperctl status | grep -q "^demo " || fail "modelkeeperctl status"
modelkeeperctl --json status | grep -q '"model": "demo"' || fail "modelkeeperctl --json"

# The structured start entry, found by its MESSAGE_ID, with the catalog's explanation.
journalctl -u modelkeeperd MESSAGE_ID=aeae6991015f44e3ae5b2bd389f1bfd6 -o json --no-pager | grep -q '"ACTION":"start"' \
        || fail "no structured start entry"
journalctl -u modelkeeperd MESSAGE_ID=aeae6991015f44e3ae5b2bd389f1bfd6 -x --no-pager | grep -q "has loaded its configuration" \
        || fail "catalog text not shown"

# Reload (ExecReload= sends SIGHUP): RELOADING=1 … READY=1, still running.
systemctl reload modelkeeperd || fail "reload"
journalctl -u modelkeeperd MESSAGE_ID=6d8c8af8632546ed9ec6b18bce484a95 --no-pager | grep -q "Configuration reloaded" \
        || fail "no reload entry"

# A broken model file: refused with file:line:col, the service keeps running the old one.
printf 'model: demo\nstorage: {keep_versions: many}\n' >$cfg/models.d/demo.yaml
systemctl reload modelkeeperd || fail "reload with a broken file"
sleep 1
[ "$(systemctl is-active modelkeeperd)" = active ] || fail "died on a broken model file"
journalctl -u modelkeeperd MESSAGE_ID=37cb1e37d5b84f6fbd505db53fb14684 -o json --no-pager | grep -q 'demo.yaml:2:26' \
        || fail "refusal without file:line:col"
modelkeeperctl status | grep -q "^demo " || fail "old model gone after a refused reload"

# Stop: STOPPING=1, exit 0.
systemctl stop modelkeeperd || fail "stop"
[ "$(systemctl show -p Result --value modelkeeperd)" = success ] || fail "stop result not success"
[ "$(systemctl show -p ExecMainStatus --value modelkeeperd)" = 0 ] || fail "exit status not 0"

set +x
echo PASS >/results/status
EOF

nspawn_boot "$work"
echo "PASS: modelkeeperd under systemd"
