#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The built modelkeeperd.service: its exposure as `systemd-analyze security` measures it offline
# must stay at or below 1.5 (the score is printed), and `systemd-analyze verify` must find nothing
# to say about it. Usage: test-unit.sh UNIT BUILD_DIR. Exit 77 (SKIP) without systemd-analyze.

set -euo pipefail
unit=${1:?usage: $0 UNIT BUILD_DIR}
build=$(readlink -f "${2:?usage: $0 UNIT BUILD_DIR}")
limit=1.5

command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; exit 77; }

out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || true
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
        printf '%s\n' "$out"
        echo "FAIL: no exposure level in the output of systemd-analyze security"
        exit 1
fi
printf '%s\n' "$out" | grep '✗' || true
echo "exposure of modelkeeperd.service: $score (limit $limit)"
if ! awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s <= l) }'; then
        echo "FAIL: exposure $score is above $limit"
        exit 1
fi

# verify wants the commands to exist: point them at the build. Documentation= is checked by the
# man-pages test (the pages are not installed here).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -E -e "s|^(Exec[A-Za-z]*=)[^ ]*/modelkeeperd|\1$build/daemon/modelkeeperd|" \
       -e "s|^(Exec[A-Za-z]*=)[^ ]*/modelkeeperctl|\1$build/ctl/modelkeeperctl|" \
       "$unit" >"$tmp/modelkeeperd.service"
if ! verify=$(systemd-analyze verify --man=no "$tmp/modelkeeperd.service" 2>&1) || [ -n "$verify" ]; then
        printf '%s\n' "$verify"
        echo "FAIL: systemd-analyze verify"
        exit 1
fi
echo "PASS: systemd-analyze verify has nothing to say"
