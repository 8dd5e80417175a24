#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Install what is needed, build with warnings as errors, and run every test: once in a normal
# build and once under AddressSanitizer + UndefinedBehaviorSanitizer. Run as root on Debian 12:
#     sudo ./test.sh
# (root: package installation, tests that switch users, and the systemd-nspawn system tests).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh

echo "== build (werror)"
[ -d build ] || meson setup build -Dwerror=true --buildtype=debugoptimized >/dev/null
meson configure build -Dwerror=true -Dtests=true >/dev/null   # demo.sh sets up build without tests
ninja -C build
echo "== tests"
meson test -C build --print-errorlogs "$@"

echo "== tests under ASan + UBSan"
[ -d build-asan ] || meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dsystem_tests=false --buildtype=debug >/dev/null
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        meson test -C build-asan --print-errorlogs --no-suite slow --no-suite system --no-suite package "$@"
echo "== all tests passed"
