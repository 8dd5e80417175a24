#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Build the Debian package from this source tree: copy the tree (without build directories and
# .git) to a scratch directory, put packaging/debian/ where dpkg-buildpackage wants it, and run
# `dpkg-buildpackage -us -uc -b`. The .deb files land in OUTDIR, under a name derived from the
# sources, so a second call for the same sources (e.g. the system test after the package test)
# reuses them. Prints the path of the modelkeeper .deb on its last line.
#
# Usage: build-deb.sh OUTDIR. Exit 77 (SKIP) without dpkg-buildpackage or debhelper.

set -euo pipefail
src=$(readlink -f "$(dirname "$0")/..")
out=${1:?usage: $0 OUTDIR}

command -v dpkg-buildpackage >/dev/null || { echo "SKIP: dpkg-buildpackage is not installed (dpkg-dev)"; exit 77; }
command -v dh >/dev/null || { echo "SKIP: debhelper is not installed"; exit 77; }
if ! dpkg-checkbuilddeps "$src/packaging/debian/control" 2>/dev/null; then
        dpkg-checkbuilddeps "$src/packaging/debian/control" || true
        echo "SKIP: build dependencies of the package are missing"
        exit 77
fi

# What goes into the package: every file but build trees, VCS data and caches.
files() {
        (cd "$src" && find . \( -name .git -o -name 'build*' -o -name __pycache__ -o -name 'obj-*' \) -prune \
                -o -type f -print | LC_ALL=C sort)
}
key=$(cd "$src" && files | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -c1-16)
mkdir -p "$out"
out=$(readlink -f "$out")
if compgen -G "$out/$key/modelkeeper_*.deb" >/dev/null; then
        echo "Reusing the package built from the same sources:"
        ls "$out/$key"/modelkeeper_*.deb
        exit 0
fi

work=$(mktemp -d "$out/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/modelkeeper"
(cd "$src" && files | tar --no-recursion -cf - -T -) | tar -C "$work/modelkeeper" -xf -
cp -a "$src/packaging/debian" "$work/modelkeeper/debian"

echo "Building the package in $work"
if ! (cd "$work/modelkeeper" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
        dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
        tail -40 "$work/build.log"
        echo "FAIL: dpkg-buildpackage"
        exit 1
fi
mkdir -p "$work/result"
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$work/build.log" "$work/result/"
# One package at a time: what older sources built is of no use any more.
find "$out" -mindepth 1 -maxdepth 1 ! -name "$(basename "$work")" -exec rm -rf {} +
mv "$work/result" "$out/$key"
ls "$out/$key"/modelkeeper_*.deb
