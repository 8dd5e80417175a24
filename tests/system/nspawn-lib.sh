# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Boot a real Debian 12 with systemd in systemd-nspawn (../shared/RECIPES.md), install the Debian
# package of this tree, run a check script as a oneshot unit that writes its results to /results and powers
# off, and read the results from the host.
#
# The container root is made once per machine with debootstrap and cached as a tarball under
# $MK_NSPAWN_CACHE (default /var/tmp/modelkeeper-nspawn), so a test run pays ~80 s once.

set -euo pipefail

MK_NSPAWN_CACHE=${MK_NSPAWN_CACHE:-/var/tmp/modelkeeper-nspawn}
# What the container needs at run time: the package's dependencies (and polkitd, which it
# recommends; polkitd needs a logind), and the test peers.
MK_NSPAWN_PACKAGES=systemd,systemd-sysv,dbus,libpam-systemd,polkitd,libyaml-0-2,libjansson4,libcurl4,libssl3,ca-certificates,openssl,curl,nginx-light,python3,python3-numpy
MK_NSPAWN_IMAGE="$MK_NSPAWN_CACHE/bookworm-$(printf %s "$MK_NSPAWN_PACKAGES" | sha256sum | cut -c1-12).tar"

skip() {
        echo "SKIP: $*"
        exit 77
}

nspawn_preflight() {
        [ "$(id -u)" = 0 ] || skip "needs root"
        command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not installed (apt-get install systemd-container)"
        command -v debootstrap >/dev/null || [ -f "$MK_NSPAWN_IMAGE" ] || skip "debootstrap is not installed"
}

nspawn_image() {
        local tmp
        mkdir -p "$MK_NSPAWN_CACHE"
        if [ -f "$MK_NSPAWN_IMAGE" ]; then
                return 0
        fi
        echo "Creating the container image (once per machine): $MK_NSPAWN_IMAGE"
        tmp=$(mktemp -d "$MK_NSPAWN_CACHE/build.XXXXXX")
        if ! debootstrap --variant=minbase --include="$MK_NSPAWN_PACKAGES" bookworm "$tmp/root" >"$tmp/debootstrap.log" 2>&1; then
                tail -20 "$tmp/debootstrap.log"
                rm -rf "$tmp"
                skip "debootstrap failed (no network to the Debian mirror?)"
        fi
        # A machine id is generated at first boot; the rest of the image stays as debootstrap made it.
        rm -f "$tmp/root/etc/machine-id"
        tar -C "$tmp/root" -cf "$tmp/image.tar" .
        mv "$tmp/image.tar" "$MK_NSPAWN_IMAGE"
        rm -rf "$tmp"
}

# nspawn_instance DIR DEB: a fresh root under DIR/root, the package waiting in /root/modelkeeper.deb
# (the check script installs it with dpkg on the running system, as an administrator would), and
# the test tools in /usr/local/lib/mk-test.
nspawn_instance() {
        local dir=$1 deb=$2 tools
        tools=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../tools
        mkdir -p "$dir/root" "$dir/results"
        tar -C "$dir/root" -xf "$MK_NSPAWN_IMAGE"
        cp "$deb" "$dir/root/root/modelkeeper.deb"
        mkdir -p "$dir/root/usr/local/lib/mk-test"
        cp "$tools"/*.py "$tools"/*.sh "$dir/root/usr/local/lib/mk-test/"
        # Results and the check script; the check runs once the system is up, then powers off.
        mkdir -p "$dir/root/results"
        cat >"$dir/root/etc/systemd/system/mk-check.service" <<'EOF'
[Unit]
Description=modelkeeper system test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/bash /usr/local/bin/mk-check
ExecStopPost=/bin/systemctl --no-block poweroff
StandardOutput=journal+console
TimeoutStartSec=400
[Install]
WantedBy=multi-user.target
EOF
        ln -sf /etc/systemd/system/mk-check.service "$dir/root/etc/systemd/system/multi-user.target.wants/mk-check.service"
        # Nothing else should slow down or disturb the boot.
        rm -f "$dir/root/etc/systemd/system/multi-user.target.wants/nginx.service"
        echo "mk-test" >"$dir/root/etc/hostname"
        # A machine id of its own: without one systemd treats the boot as the first and enables
        # units by preset behind the test's back.
        od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$dir/root/etc/machine-id"
}

# nspawn_boot DIR: boot it (bounded), leave the results in DIR/root/results.
nspawn_boot() {
        local dir=$1 rc=0
        timeout 480 systemd-nspawn -D "$dir/root" --boot --register=no --keep-unit --console=pipe \
                -M "mk-test-$$" --bind="$dir/results:/results" >"$dir/console.log" 2>&1 </dev/null || rc=$?
        if [ ! -f "$dir/results/status" ]; then
                echo "The container produced no result (nspawn exit $rc). Console:"
                tail -50 "$dir/console.log"
                if grep -q -e "Failed to create" -e "cgroup" -e "Operation not permitted" "$dir/console.log" && [ "$rc" != 0 ]; then
                        skip "systemd-nspawn cannot boot a container here"
                fi
                return 1
        fi
        cat "$dir/results/log" 2>/dev/null || true
        [ "$(cat "$dir/results/status")" = PASS ]
}
