#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The demo: install what is needed, build, and run modelkeeperd in the foreground on the shipped
# example configuration, with its state and runtime directories under a temporary directory.
# Ctrl-C stops it and removes everything it created.
#     sudo ./demo.sh
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

demo=$(mktemp -d /tmp/modelkeeper-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
mkdir -p "$demo/models.d"
cp config/modelkeeper.yaml "$demo/modelkeeper.yaml"
# The example model without its remote source (no repository to fetch from here).
sed '/^source:/,/^$/d' config/example-model.yaml >"$demo/models.d/digits-mlp.yaml"

echo "modelkeeperd runs with $demo/modelkeeper.yaml; in another terminal:"
echo "  $PWD/build/ctl/modelkeeperctl --socket $demo/run/control status"
echo "Ctrl-C stops it."
MODELKEEPER_AGENT="$PWD/build/agent/modelkeeper-agent" \
        build/daemon/modelkeeperd --config "$demo/modelkeeper.yaml" \
        --state-directory "$demo/state" --runtime-directory "$demo/run" || true
