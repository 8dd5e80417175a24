#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Download one file over loopback HTTPS from nginx (a real peer) three ways, in one run:
#   ours       mk-fetch: fetch_file() → SHA-256 → file, one pass, one thread
#   curl+sum   curl -o FILE, then sha256sum FILE (two passes, what a shell script would do)
#   ours>null  mk-fetch into /dev/null: download + SHA-256 only, no file
#   curl|sum   curl | sha256sum (no file; two processes, so two cores)
#   curl|dgst  curl | openssl dgst -sha256 (no file; the same SHA-256 code as ours, two cores)
# and print GB/s and time ratios. Compare rows that do the same work: the first two write the
# file, the last three do not. Usage: bench/fetch.sh [BUILDDIR] [SIZE_MIB] [RUNS]
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
MIB=${2:-2048}
RUNS=${3:-2}
MKFETCH=$BUILD/bench/mk-fetch
NGINX=${NGINX:-/usr/sbin/nginx}

[ -x "$MKFETCH" ] || { echo "build first: $MKFETCH missing" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx not found (apt-get install nginx-light)" >&2; exit 1; }

T=$(mktemp -d /tmp/mk-bench-fetch-XXXXXX)
NGINX_PID=
cleanup() {
        [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT

sh "$SRC/tests/tools/make-test-pki.sh" "$T/pki"
mkdir "$T/www" "$T/nginx"
echo "creating a ${MIB} MiB file..." >&2
head -c "$((MIB * 1024 * 1024))" /dev/urandom > "$T/www/blob"
BYTES=$(stat -c %s "$T/www/blob")
WANT=$(openssl dgst -sha256 -r "$T/www/blob" | cut -d' ' -f1)

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$T/nginx/nginx.conf" <<EOC
daemon off;
master_process off;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $T/nginx/body;
  proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fastcgi;
  uwsgi_temp_path $T/nginx/uwsgi;
  scgi_temp_path $T/nginx/scgi;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $T/pki/server.crt;
    ssl_certificate_key $T/pki/server.key;
    root $T/www;
  }
}
EOC
"$NGINX" -c "$T/nginx/nginx.conf" -p "$T/nginx" -e stderr &
NGINX_PID=$!
for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
        sleep 0.05
done
URL=https://127.0.0.1:$PORT/blob
CA=$T/pki/ca.crt

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
declare -A best
run() { # name command...
        local name=$1 t0 t1 sum secs
        shift
        rm -f "$T/out"
        sync
        t0=$(now)
        sum=$("$@")
        t1=$(now)
        sum=${sum%% *}
        if [ "$sum" != "$WANT" ]; then
                echo "$name: wrong digest '$sum'" >&2
                exit 1
        fi
        secs=$(calc "$t1 - $t0")
        printf '  %-10s %6.2f s  %5.2f GB/s\n' "$name" "$secs" "$(calc "$BYTES / $secs / 1e9")"
        if [ -z "${best[$name]:-}" ] || [ "$(calc "$secs < ${best[$name]}")" = 1 ]; then
                best[$name]=$secs
        fi
}

ours()      { "$MKFETCH" --cafile "$CA" "$URL" "$T/out" 2>/dev/null; }
ours_null() { "$MKFETCH" --cafile "$CA" "$URL" /dev/null 2>/dev/null; }
curl_sum()  { curl -sS --cacert "$CA" -o "$T/out" "$URL" && sha256sum "$T/out"; }
curl_pipe() { curl -sS --cacert "$CA" "$URL" | sha256sum; }
curl_dgst() { curl -sS --cacert "$CA" "$URL" | openssl dgst -sha256 -r; }

echo "$(curl --version | head -1)"
echo "file: $BYTES bytes, nginx $("$NGINX" -v 2>&1 | cut -d/ -f2) over TLS on 127.0.0.1:$PORT, $(nproc) cores, $RUNS runs each (best kept)"
for i in $(seq "$RUNS"); do
        echo "run $i:"
        run ours ours
        run curl+sum curl_sum
        run 'ours>null' ours_null
        run 'curl|sum' curl_pipe
        run 'curl|dgst' curl_dgst
done

echo "best of $RUNS (time ratio > 1: slower than ours):"
for n in ours curl+sum 'ours>null' 'curl|sum' 'curl|dgst'; do
        s=${best[$n]}
        case $n in
        ours | curl+sum) ref=ours ;;
        *) ref='ours>null' ;;
        esac
        printf '  %-10s %5.2f GB/s   time %4.2fx of %s\n' "$n" "$(calc "$BYTES / $s / 1e9")" \
                "$(calc "$s / ${best[$ref]}")" "$ref"
done
