#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The Debian package under real systemd 252 (Debian 12 in systemd-nspawn), checked through what an
# administrator has: dpkg, systemctl, journalctl, modelkeeperctl, busctl.
#
#   - dpkg -i creates the user, starts the service as that user, with the exposure it was built for;
#   - notify readiness, STATUS=, the structured start entry and its catalog text (journalctl -x);
#   - systemctl reload with a broken model file: refused with file:line:col, the old one kept;
#   - the polkit rule: user modelkeeper may restart/reload a unit named in a model file, not
#     another unit and not with another verb; the age credential is optional;
#   - the whole lifecycle: a local HTTPS repository, a signed release, update and activation that
#     restart the model server through systemd and polkit, the model server reading its model
#     through storage.group, a second release picked up by the timer, a metric regression, and the
#     automatic rollback found with `journalctl -u modelkeeperd MODEL=digits ACTION=rollback`;
#   - systemctl stop: exit 0.
#
# Usage: test-systemd.sh BUILD_DIR. Exit 77 (SKIP) where nspawn or the package build cannot run.

set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=nspawn-lib.sh
. "$here/nspawn-lib.sh"

build=$(readlink -f "${1:?usage: $0 BUILD_DIR}")
nspawn_preflight
set +e
deb=$("$here/../../packaging/build-deb.sh" "$build/deb")
rc=$?
set -e
[ $rc = 0 ] || { printf '%s\n' "$deb"; exit $rc; }
deb=$(printf '%s\n' "$deb" | tail -1)
nspawn_image

work=$(mktemp -d /var/tmp/mk-system.XXXXXX)
trap 'rm -rf "$work"' EXIT
nspawn_instance "$work" "$deb"

cat >"$work/root/usr/local/bin/mk-check" <<'EOF'
#!/bin/bash
exec >/results/log 2>&1
set -x
fail() { set +x; echo "FAIL: $*"; journalctl -u modelkeeperd --no-pager | tail -60; journalctl --no-pager -u digits-server -u mk-repo | tail -20; echo FAIL >/results/status; exit 1; }
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
        local t=$1; shift
        for _ in $(seq $((t * 4))); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.25
        done
        return 1
}
tools=/usr/local/lib/mk-test
cfg=/etc/modelkeeper

# --- the package ---------------------------------------------------------------------------------
dpkg -i /root/modelkeeper.deb || fail "dpkg -i"
id modelkeeper || fail "no user modelkeeper after installation"
[ -d $cfg/models.d ] && [ -d $cfg/trust ] || fail "tmpfiles.d did not create the configuration tree"
# Enabled and started by the package, with the shipped (empty) configuration.
wait_for 10 systemctl is-active --quiet modelkeeperd || fail "not started by dpkg"
[ "$(systemctl is-enabled modelkeeperd)" = enabled ] || fail "not enabled"
pid=$(systemctl show -p MainPID --value modelkeeperd)
[ "$(awk '/^Uid:/ {print $2}' /proc/$pid/status)" = "$(id -u modelkeeper)" ] || fail "the daemon does not run as modelkeeper"
grep -q "^CapEff:\s*0*$" /proc/$pid/status || fail "the daemon has capabilities"
score=$(systemd-analyze security --no-pager modelkeeperd | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s > 0 && s <= 1.5) }' || fail "exposure $score above 1.5"
stat -c '%a %U' /var/lib/modelkeeper | grep -qx "711 modelkeeper" || fail "state directory mode"
stat -c '%a %U' /run/modelkeeper | grep -qx "755 modelkeeper" || fail "runtime directory mode"

# The start entry, by MESSAGE_ID, with the catalog's text (installed by the package's trigger).
journalctl -u modelkeeperd MESSAGE_ID=aeae6991015f44e3ae5b2bd389f1bfd6 -o json --no-pager | grep -q '"ACTION":"start"' \
        || fail "no structured start entry"
journalctl -u modelkeeperd MESSAGE_ID=aeae6991015f44e3ae5b2bd389f1bfd6 -x --no-pager | grep -q "has loaded its configuration" \
        || fail "catalog text not shown"

# --- reload --------------------------------------------------------------------------------------
cat >/etc/systemd/system/demo-server.service <<'U'
[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/true
U
cat >/etc/systemd/system/other.service <<'U'
[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/true
U
systemctl daemon-reload
systemctl start demo-server other
cat >$cfg/models.d/demo.yaml <<'M'
model: demo
storage: {keep_versions: 3}
serve:
  reload: {systemd_unit: demo-server.service}
M
systemctl reload modelkeeperd || fail "reload"
journalctl -u modelkeeperd MESSAGE_ID=6d8c8af8632546ed9ec6b18bce484a95 --no-pager | grep -q "Configuration reloaded" \
        || fail "no reload entry"
systemctl show -p StatusText --value modelkeeperd | grep -q "1 model" || fail "STATUS= missing"
# What an operator reads: systemctl status shows the daemon's STATUS= line.
systemctl status --no-pager modelkeeperd | grep -q "Status: \"1 model" || fail "systemctl status lacks STATUS=: $(systemctl status --no-pager modelkeeperd)"
modelkeeperctl status | grep -q "^demo " || fail "modelkeeperctl status"
modelkeeperctl --json status | grep -q '"model": "demo"' || fail "modelkeeperctl --json"

# A broken model file: refused with file:line:col, the service keeps running the old one.
printf 'model: demo\nstorage: {keep_versions: many}\n' >$cfg/models.d/demo.yaml
systemctl reload modelkeeperd || fail "reload with a broken file"
sleep 1
systemctl is-active --quiet modelkeeperd || fail "died on a broken model file"
journalctl -u modelkeeperd MESSAGE_ID=37cb1e37d5b84f6fbd505db53fb14684 -o json --no-pager | grep -q 'demo.yaml:2:26' \
        || fail "refusal without file:line:col"
modelkeeperctl status | grep -q "^demo " || fail "old model gone after a refused reload"
printf 'model: demo\nserve:\n  reload: {systemd_unit: demo-server.service}\n' >$cfg/models.d/demo.yaml
systemctl reload modelkeeperd || fail "reload with the file fixed"

# --- polkit ----------------------------------------------------------------------------------------
[ "$(runuser -u polkitd -- modelkeeperctl units)" = demo-server.service ] || fail "modelkeeperctl units as polkitd"
call() { # USER METHOD UNIT
        runuser -u "$1" -- busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
                org.freedesktop.systemd1.Manager "$2" ss "$3" replace
}
call modelkeeper RestartUnit demo-server.service || fail "polkit: modelkeeper may not restart demo-server"
call modelkeeper ReloadUnit demo-server.service || fail "polkit: modelkeeper may not reload demo-server"
call modelkeeper TryRestartUnit demo-server.service || fail "polkit: modelkeeper may not try-restart demo-server"
call modelkeeper ReloadOrRestartUnit demo-server.service || fail "polkit: modelkeeper may not reload-or-restart demo-server"
call modelkeeper RestartUnit other.service && fail "polkit: modelkeeper may restart a unit no model file names"
call modelkeeper StopUnit demo-server.service && fail "polkit: modelkeeper may stop demo-server"
call modelkeeper StartUnit demo-server.service && fail "polkit: modelkeeper may start demo-server"
call nobody RestartUnit demo-server.service && fail "polkit: nobody may restart demo-server"
# A broken model file grants nothing.
printf 'model: demo\nserve:\n  reload: {systemd_unit: demo-server.service, action: stop}\n' >$cfg/models.d/demo.yaml
call modelkeeper RestartUnit demo-server.service && fail "polkit: a refused model file still grants its unit"
printf 'model: demo\nserve:\n  reload: {systemd_unit: demo-server.service}\n' >$cfg/models.d/demo.yaml
# What modelkeeperd(8) says about root without capabilities: polkit authorizes uid 0.
systemd-run --quiet --wait --pipe -p User=root -p CapabilityBoundingSet=CAP_CHOWN \
        busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager \
        RestartUnit ss other.service replace || fail "root without CAP_SYS_ADMIN cannot restart a unit"

# --- the age credential is optional ---------------------------------------------------------------
[ ! -e /run/credentials/modelkeeperd.service/modelkeeper-age ] || fail "a credential out of nowhere"
mkdir -p /etc/credstore.encrypted
echo "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ" |
        systemd-creds encrypt --name=modelkeeper-age - /etc/credstore.encrypted/modelkeeper-age || fail "systemd-creds encrypt"
systemctl restart modelkeeperd || fail "restart with a credential"
stat -c '%U %a' /run/credentials/modelkeeperd.service/modelkeeper-age | grep -qx "modelkeeper 400" \
        || fail "the credential is not the service user's"
pid=$(systemctl show -p MainPID --value modelkeeperd)
tr '\0' '\n' </proc/$pid/environ | grep -qx "CREDENTIALS_DIRECTORY=/run/credentials/modelkeeperd.service" \
        || fail "no CREDENTIALS_DIRECTORY"
rm /etc/credstore.encrypted/modelkeeper-age
systemctl restart modelkeeperd || fail "restart without the credential"

# --- the lifecycle ----------------------------------------------------------------------------------
# The model server: its own user in group digits, reading serve/digits, reloaded through systemd.
groupadd --system digits
useradd --system --gid digits --no-create-home --shell /usr/sbin/nologin digits-srv
cat >/etc/systemd/system/digits-server.service <<'U'
[Unit]
Description=digits test model server
[Service]
User=digits-srv
Group=digits
Environment=PORT=8080 SERVE_LINK=/run/modelkeeper/serve/digits
ExecStart=/usr/bin/python3 /usr/local/lib/mk-test/model-server.py
ExecReload=/usr/bin/curl -fsS -X POST http://127.0.0.1:8080/reload
U
# storage.group: modelkeeper must be a member of the model server's group (modelkeeper.yaml(5)).
mkdir -p /etc/systemd/system/modelkeeperd.service.d
printf '[Service]\nSupplementaryGroups=digits\n' >/etc/systemd/system/modelkeeperd.service.d/digits.conf
systemctl daemon-reload
systemctl start digits-server
wait_for 10 curl -fsS http://127.0.0.1:8080/state || fail "model server not up"
metrics() { curl -fsS -X POST "http://127.0.0.1:8080/set?$1" >/dev/null || fail "cannot set metrics"; }
metrics "tp_total=90&tn_total=5&fp_total=3&fn_total=2"

# A repository over HTTPS on 127.0.0.1, with a throwaway CA, and a signing key.
sh $tools/make-test-pki.sh /root/pki
install -m 0644 /root/pki/ca.crt $cfg/ca.pem
mkdir -p /srv/repo
echo '[]' >/root/rules.json
systemd-run --unit=mk-repo -p StandardOutput=file:/run/mk-repo.port \
        /usr/bin/python3 $tools/repo-server.py --root /srv/repo --cert /root/pki/server.crt \
        --key /root/pki/server.key --rules /root/rules.json
wait_for 10 test -s /run/mk-repo.port || fail "repository server not up"
port=$(cat /run/mk-repo.port)
modelkeeperctl keygen --type ed25519 --out /root/release.key || fail "keygen"
install -m 0644 /root/release.key.pub $cfg/trust/release-1.pub
publish() { # VERSION
        mkdir -p /root/export$1
        echo "weights of version $1" >/root/export$1/model.safetensors
        echo '{"architectures": ["digits"]}' >/root/export$1/config.json
        modelkeeperctl release create --model digits --channel stable --version $1 /root/export$1 --repo /srv/repo \
                || fail "release create $1"
        modelkeeperctl release sign --key /root/release.key /srv/repo/models/digits/stable.json || fail "release sign $1"
}
publish 1

cat >$cfg/modelkeeper.yaml <<'Y'
trust:
  keys: [trust/release-1.pub]
Y
cat >$cfg/models.d/digits.yaml <<M
model: digits
source:
  url: https://127.0.0.1:$port/
  channel: stable
  check_every: 10s
  jitter: 0
  tls: {ca_file: $cfg/ca.pem}
storage: {group: digits, keep_versions: 3}
serve:
  reload: {systemd_unit: digits-server.service, action: reload}
  ready: {http: "http://127.0.0.1:8080/ready", timeout: 30s}
metrics:
  scrape: {url: "http://127.0.0.1:8080/metrics", every: 1s, timeout: 1s}
  define:
    acc: accuracy(tp_total, tn_total, fp_total, fn_total)
rules:
  - {name: accuracy-floor, when: acc < 0.9, for: 2s, action: rollback}
M
modelkeeperd --check-config || fail "check-config"
systemctl restart modelkeeperd || fail "restart with the lifecycle configuration"

# Update → verified, downloaded, activated; the model server is told through systemd (polkit).
wait_for 60 sh -c 'modelkeeperctl --json status digits | grep -q "\"active\": \"1\""' || fail "version 1 not activated"
journalctl -u modelkeeperd MODEL=digits MESSAGE_ID=2b76383ce87a4258b3a8deceaa28e481 --no-pager | grep -q . \
        || fail "no release-verified entry"
journalctl -u modelkeeperd MODEL=digits MESSAGE_ID=c397bdc78269403689f9d330576afa54 -o json --no-pager | grep -q '"VERSION":"1"' \
        || fail "the model server was not told about version 1"
state() { curl -fsS http://127.0.0.1:8080/state; }
wait_for 10 sh -c 'curl -fsS http://127.0.0.1:8080/state | grep -q "versions/1/files"' || fail "the model server did not load version 1: $(state)"
stat -c %a /run/modelkeeper/serve | grep -qx 755 || fail "serve/ is not 0755 under UMask=0077"
runuser -u digits-srv -- cat /run/modelkeeper/serve/digits/model.safetensors | grep -q "version 1" \
        || fail "the model server's user cannot read its model through storage.group"
runuser -u nobody -- cat /run/modelkeeper/serve/digits/model.safetensors && fail "another user can read the model"

# Version 2, found by the check timer; it regresses.
# A model server that knows per-version metrics regresses as soon as it loads version 2; an older
# one is told after the switch.
per_version=no
if grep -q version_metrics $tools/model-server.py; then
        metrics "version=2&tp_total=50&fp_total=40"
        per_version=yes
fi
publish 2
wait_for 60 sh -c 'modelkeeperctl --json status digits | grep -q "\"active\": \"2\""' || fail "version 2 not activated by the timer"
journalctl -u modelkeeperd MODEL=digits ACTION=update --no-pager | grep -q . || fail "no update entry"

{
        [ $per_version = yes ] || metrics "tp_total=50&fp_total=40"
        # The rule's story (pending, firing: ACTION= is what it does) and the rollback itself.
        rolled_back() { journalctl -u modelkeeperd MODEL=digits ACTION=rollback MESSAGE_ID=e447df6b424742089bfdda1c07207ae3 -o json --no-pager; }
        wait_for 60 sh -c "$(declare -f rolled_back); rolled_back | grep -q ." || fail "no automatic rollback on the regression"
        journalctl -u modelkeeperd MODEL=digits ACTION=rollback --no-pager
        entry=$(rolled_back | tail -1)
        for field in '"RULE":"accuracy-floor"' '"FROM_VERSION":"2"' '"VERSION":"1"'; do
                printf '%s' "$entry" | grep -qF "$field" || fail "the rollback entry lacks $field: $entry"
        done
        wait_for 30 sh -c 'modelkeeperctl --json status digits | grep -q "\"active\": \"1\""' || fail "version 1 not active again"
        wait_for 10 sh -c 'curl -fsS http://127.0.0.1:8080/state | grep -q "versions/1/files"' || fail "the model server is not back on version 1: $(state)"
        journalctl -u modelkeeperd MODEL=digits ACTION=rollback -x --no-pager | grep -q "switched back" || fail "no catalog text for the rollback"
}

# --- stop ---------------------------------------------------------------------------------------
systemctl stop modelkeeperd || fail "stop"
[ "$(systemctl show -p Result --value modelkeeperd)" = success ] || fail "stop result not success"
[ "$(systemctl show -p ExecMainStatus --value modelkeeperd)" = 0 ] || fail "exit status not 0"
# The model server keeps its files while modelkeeperd is down (RuntimeDirectoryPreserve=yes).
runuser -u digits-srv -- cat /run/modelkeeper/serve/digits/model.safetensors >/dev/null || fail "serve/ gone with the daemon"
# Nothing of ours died of a signal (a system call the filter refused would be SIGSYS).
journalctl --no-pager | grep -E "modelkeeper.*(SIGSYS|Bad system call|core-dump|dumped core)" && fail "killed by a signal"

set +x
echo PASS >/results/status
EOF

nspawn_boot "$work"
echo "PASS: the modelkeeper package under systemd"
