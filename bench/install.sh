#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The install pipeline for a 2 GiB model over loopback HTTPS (nginx), against the peers on the same
# URL and file in one run:
#   ours:  modelkeeper-agent update — fetch the signed release, verify it, stream the body through
#          SHA-256 into staging (fsync), check the digest, commit into the store
#   peer:  curl -o FILE URL && sha256sum FILE        (and with sync, since we fsync)
# and verification only:
#   ours:  modelkeeper-agent verify (re-hash the stored version against meta.json)
#   peer:  openssl dgst -sha256 FILE
#
#   bench/install.sh [BUILD_DIR] [SIZE_MiB]        (default build, 2048)
#
# Figures, not a test. Runs where the build and nginx are; needs ~3× SIZE of free disk.

set -euo pipefail
build=$(readlink -f "${1:-build}")
size_mib=${2:-2048}
src=$(dirname "$(readlink -f "$0")")/..
ctl=$build/ctl/modelkeeperctl
agent=$build/agent/modelkeeper-agent
command -v nginx >/dev/null || { echo "nginx is needed (apt-get install nginx-light)"; exit 1; }

work=$(mktemp -d /var/tmp/mk-bench-install.XXXXXX)
chmod 755 "$work"   # nginx's workers read the repository
cleanup() { [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

now() { date +%s.%N; }
rate() { echo "scale=3; $size_mib / 1024 / ($2 - $1)" | bc; }   # GiB/s from two timestamps

echo "== preparing a ${size_mib} MiB release"
mkdir -p "$work/in" "$work/models.d"
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/in/model.safetensors"
"$ctl" keygen --type ed25519 --out "$work/key" >/dev/null
"$ctl" release create --model m --channel stable --version 1 "$work/in" --repo "$work/repo" >/dev/null
"$ctl" release sign --key "$work/key" "$work/repo/models/m/stable.json" >/dev/null
rm -rf "$work/in"
hex=$(ls "$work/repo/blobs/sha256/")

sh "$src/tests/tools/make-test-pki.sh" "$work/pki" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<EOF
daemon on;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $work/tmp;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $work/pki/server.crt;
        ssl_certificate_key $work/pki/server.key;
        root $work/repo;
    }
}
EOF
nginx -c "$work/nginx.conf" -p "$work"
url=https://127.0.0.1:$port/blobs/sha256/$hex

cat >"$work/mk.yaml" <<EOF
daemon: {state_directory: $work/state, runtime_directory: $work/run}
trust: {keys: [$work/key.pub]}
EOF
cat >"$work/models.d/m.yaml" <<EOF
model: m
source: {url: "https://127.0.0.1:$port/", channel: stable, tls: {ca_file: $work/pki/ca.crt}}
storage: {min_free: 1MiB}
EOF

# Warm the page cache for the served file, so both sides read it from memory.
cat "$work/repo/blobs/sha256/$hex" >/dev/null

echo "== download + SHA-256 into a file (cached source, to disk)"
t0=$(now)
"$agent" update --config "$work/mk.yaml" --model m >/dev/null
t1=$(now)
curl -sS --cacert "$work/pki/ca.crt" -o "$work/curl.out" "$url" && sha256sum "$work/curl.out" >/dev/null
t2=$(now)
rm -f "$work/curl.out"
curl -sS --cacert "$work/pki/ca.crt" -o "$work/curl.out" "$url" && sync "$work/curl.out" && sha256sum "$work/curl.out" >/dev/null
t3=$(now)
ours=$(rate "$t0" "$t1"); peer=$(rate "$t1" "$t2"); peer_sync=$(rate "$t2" "$t3")
printf "modelkeeper-agent update (verify, fetch, hash, fsync, commit): %s GiB/s\n" "$ours"
printf "curl -o + sha256sum:                                          %s GiB/s  (ours/peer %.2f)\n" "$peer" \
        "$(echo "$ours / $peer" | bc -l)"
printf "curl -o + sync + sha256sum:                                   %s GiB/s  (ours/peer %.2f)\n" "$peer_sync" \
        "$(echo "$ours / $peer_sync" | bc -l)"

echo "== verification only (the stored version, cached)"
stored=$work/state/models/m/versions/1/files/model.safetensors
cat "$stored" >/dev/null
t0=$(now)
"$agent" verify --config "$work/mk.yaml" --model m -- 1 >/dev/null
t1=$(now)
openssl dgst -sha256 "$stored" >/dev/null
t2=$(now)
ours=$(rate "$t0" "$t1"); peer=$(rate "$t1" "$t2")
printf "modelkeeper-agent verify:  %s GiB/s\nopenssl dgst -sha256:      %s GiB/s  (ours/peer %.2f)\n" "$ours" "$peer" \
        "$(echo "$ours / $peer" | bc -l)"
