#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The Debian package: build it from this tree (packaging/build-deb.sh), check its contents, and run
# lintian on it. Errors and warnings fail the test; info and pedantic tags are printed.
# Usage: test-deb.sh OUTDIR. Exit 77 (SKIP) without the Debian tools.

set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
out=${1:?usage: $0 OUTDIR}

set +e
build=$("$here/../../packaging/build-deb.sh" "$out")
rc=$?
set -e
printf '%s\n' "$build"
[ $rc = 0 ] || exit $rc
deb=$(printf '%s\n' "$build" | tail -1)
[ -f "$deb" ] || { echo "FAIL: no package"; exit 1; }

fail=0
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/sbin/modelkeeperd /usr/bin/modelkeeperctl /usr/lib/modelkeeper/modelkeeper-agent \
        /lib/systemd/system/modelkeeperd.service /usr/lib/sysusers.d/modelkeeper.conf \
        /usr/lib/tmpfiles.d/modelkeeper.conf /usr/share/polkit-1/rules.d/50-modelkeeper.rules \
        /usr/lib/systemd/catalog/modelkeeper.catalog /usr/share/bash-completion/completions/modelkeeperctl \
        /usr/share/man/man8/modelkeeperd.8.gz /usr/share/man/man5/modelkeeper.yaml.5.gz \
        /usr/share/doc/modelkeeper/examples/example-model.yaml /etc/modelkeeper/modelkeeper.yaml; do
        printf '%s\n' "$contents" | grep -qxF "$f" || { echo "FAIL: $f is not in the package"; fail=1; }
done
# The package never carries the test-only fault points or test verbs.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
if "$tmp/usr/lib/modelkeeper/modelkeeper-agent" --help | grep -qw test; then
        echo "FAIL: the packaged agent has the test verb (built with fault injection)"
        fail=1
fi
# The polkit rule calls the installed modelkeeperctl.
grep -q '"/usr/bin/modelkeeperctl", "units"' "$tmp/usr/share/polkit-1/rules.d/50-modelkeeper.rules" ||
        { echo "FAIL: the polkit rule does not run /usr/bin/modelkeeperctl units"; fail=1; }
dpkg-deb -f "$deb" Depends Recommends

if command -v lintian >/dev/null; then
        changes=$(dirname "$deb")/$(basename "$deb" .deb | sed 's/_[^_]*$//')_$(dpkg-deb -f "$deb" Architecture).changes
        [ -f "$changes" ] || changes=$deb
        report=$(lintian --display-info --pedantic --show-overrides "$changes" 2>&1 |
                grep -v '^running with root privileges' || true)
        printf '%s\n' "$report" | sed 's/^/lintian: /'
        if printf '%s\n' "$report" | grep -qE '^[EW]: '; then
                echo "FAIL: lintian reports errors or warnings"
                fail=1
        fi
        echo "lintian: $(printf '%s\n' "$report" | grep -cE '^[EWIPX]: ' || true) tags ($(printf '%s\n' "$report" | grep -cE '^[IP]: ' || true) info/pedantic)"
else
        echo "lintian is not installed: not checked"
fi
[ $fail = 0 ] && echo "PASS: $(basename "$deb")"
exit $fail
