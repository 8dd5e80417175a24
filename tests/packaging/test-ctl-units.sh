#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# `modelkeeperctl units`, which the polkit rule trusts to say which units user modelkeeper may
# restart: the units of model files that load, each once, sorted; nothing from a refused file;
# nothing and a failure when modelkeeper.yaml itself is refused. Usage: test-ctl-units.sh CTL

set -euo pipefail
ctl=${1:?usage: $0 MODELKEEPERCTL}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/models.d"
echo "daemon: {watch_models: false}" >"$tmp/modelkeeper.yaml"
printf 'model: a\nserve:\n  reload: {systemd_unit: z-server.service}\n' >"$tmp/models.d/a.yaml"
printf 'model: b\nserve:\n  reload: {systemd_unit: a-server.service, action: reload}\n' >"$tmp/models.d/b.yaml"
printf 'model: c\nserve:\n  reload: {systemd_unit: z-server.service, action: try-restart}\n' >"$tmp/models.d/c.yaml"
printf 'model: d\nserve:\n  reload: {exec: [/bin/true]}\n' >"$tmp/models.d/d.yaml"
printf 'model: e\nserve:\n  reload: {http: "http://127.0.0.1:1/reload"}\n' >"$tmp/models.d/e.yaml"
# Refused: a bad action, a name that does not match the file, a unit that is not a service.
printf 'model: f\nserve:\n  reload: {systemd_unit: evil.service, action: stop}\n' >"$tmp/models.d/f.yaml"
printf 'model: other\nserve:\n  reload: {systemd_unit: evil2.service}\n' >"$tmp/models.d/g.yaml"
printf 'model: h\nserve:\n  reload: {systemd_unit: evil3.socket}\n' >"$tmp/models.d/h.yaml"
# Not a model file at all.
printf 'model: i\nserve:\n  reload: {systemd_unit: evil4.service}\n' >"$tmp/models.d/.i.yaml"
printf 'model: j\nserve:\n  reload: {systemd_unit: evil5.service}\n' >"$tmp/models.d/j.yaml.bak"

fail=0
check() { # WHAT GOT WANT
        if [ "$2" != "$3" ]; then
                printf 'FAIL: %s:\n  got:  %s\n  want: %s\n' "$1" "$2" "$3"
                fail=1
        fi
}
out=$("$ctl" units --config "$tmp/modelkeeper.yaml" 2>"$tmp/err")
check "units" "$(printf "%s" "$out" | tr "\n" " ")" "a-server.service z-server.service"
check "warning" "$(grep -c "3 model files with errors left out" "$tmp/err")" "1"
out=$("$ctl" --json units --config="$tmp/modelkeeper.yaml" 2>/dev/null | tr -d ' \n')
check "--json units" "$out" '["a-server.service","z-server.service"]'

# A broken main file grants nothing, and says so.
echo "daemon: {max_jobs: lots}" >"$tmp/modelkeeper.yaml"
if out=$("$ctl" units --config "$tmp/modelkeeper.yaml" 2>"$tmp/err"); then
        echo "FAIL: units succeeded with a broken modelkeeper.yaml"
        fail=1
fi
check "output with a broken modelkeeper.yaml" "$out" ""
grep -q "modelkeeper.yaml:1:20" "$tmp/err" || { echo "FAIL: no file:line:col for the broken main file"; cat "$tmp/err"; fail=1; }
"$ctl" units --config "$tmp/nonexistent.yaml" >/dev/null 2>&1 && { echo "FAIL: units succeeded without a configuration"; fail=1; }
"$ctl" units extra >/dev/null 2>&1 && { echo "FAIL: units took an argument"; fail=1; }

[ $fail = 0 ] && echo "PASS: modelkeeperctl units"
exit $fail
