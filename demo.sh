#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The demo, in one command (Debian 12, as root: it installs what it needs):
#     sudo ./demo.sh
# Trains a small model, publishes signed releases over HTTPS on 127.0.0.1, runs a model server and
# modelkeeperd, and shows the whole lifecycle as it happens: install, verify, seal, activate,
# probation, promotion; a broken release rolled back and quarantined; memory pressure answered by
# an int8 re-compression that has to pass the accuracy gate. Under a minute after the build.
# Everything it starts is stopped and removed at the end, also on Ctrl-C, SIGTERM or SIGHUP.
# Options: --keep DIR (keep the files to look at), --fast (shorter intervals).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh demo      # the demo's own short list (scripts/debian-packages-demo.txt)
# Without the test suite (it needs more packages); test.sh turns it on in the same build directory.
[ -d build ] || meson setup build -Dtests=false >/dev/null
ninja -C build >/dev/null
exec /usr/bin/python3 demo/run.py build "$@"
