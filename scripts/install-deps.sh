#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Install what modelkeeper needs on Debian 12 (or newer). Needs root; does nothing when all is there.
#     install-deps.sh          everything: build, tests, packaging (scripts/debian-packages.txt; test.sh)
#     install-deps.sh demo     only what building and running the demo needs
#                              (scripts/debian-packages-demo.txt; demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-all}" in
all) list=scripts/debian-packages.txt ;;
demo) list=scripts/debian-packages-demo.txt ;;
*)
        echo "usage: $0 [all|demo]" >&2
        exit 2
        ;;
esac
mapfile -t pkgs < <(grep -v -e '^#' -e '^$' "$list")
missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
        exit 0
fi
if [ "$(id -u)" != 0 ]; then
        echo "Missing packages: ${missing[*]}" >&2
        echo "Run as root (sudo), or install them: apt-get install ${missing[*]}" >&2
        exit 1
fi
echo "Installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
