#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# The versioned store, in one run:
#  1. rollback time does not grow with the model's size: a model with a 10 MiB version and a big one
#     (2 GiB of real, non-sparse data by default); `modelkeeperctl rollback` to each (the whole
#     operation through the daemon) and the agent's `rollback` verb run by hand; medians and the
#     ratio big/small (expect ≈ 1). An `activate` (which re-hashes every byte) for contrast.
#  2. import throughput of the big version against `cp` + `sha256sum` of the same file, `cp` +
#     `sync` + `sha256sum` (we fsync), and `cp` + `sync` + `openssl dgst -sha256` (the same SHA-256
#     code we use): `modelkeeper-agent import` by hand and `modelkeeperctl import` through the daemon.
#
#   bench/store.sh BUILD_DIR [BIG_MIB [REPS]]      (IMPORT_REPS=3 in the environment: imports)
#
# Uses /tmp, about 3 × BIG_MIB of disk at its peak, and removes everything; about 3.5 minutes with
# the defaults on 2 shared cores. The page cache cannot be dropped here: the source of the imports
# is in it (the figure printed says how much), so import = hashing + copying + writing to disk.
set -eu
B=$(cd "${1:?usage: bench/store.sh BUILD_DIR [BIG_MIB [REPS]]}" && pwd)
BIG=${2:-2048}
REPS=${3:-5}
IMPORT_REPS=${IMPORT_REPS:-3}
DAEMON=$B/daemon/modelkeeperd
AGENT=$B/agent/modelkeeper-agent
CTL=$B/ctl/modelkeeperctl
T=$(mktemp -d /tmp/mk-bench-store-XXXXXX)
DPID=
cleanup() {
        [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT INT TERM

STATE=$T/state
RUN=$T/run
STORE=$STATE/models/m
mkdir -p "$T/models.d" "$T/small" "$T/big" "$T/peer"
: >"$T/modelkeeper.yaml"
# No gc in the way (keep_versions), room for the big version, a small free-space reserve.
printf 'model: m\nstorage: {keep_versions: 100, min_free: 1MiB, max_version_size: 64GiB}\n' >"$T/models.d/m.yaml"

now_us() { echo $(($(date +%s%N) / 1000)); }
# time_us FILE CMD…: run CMD (output discarded), append its wall time in µs to FILE and the CPU
# seconds (user + system, of CMD and its children) to FILE.cpu. On 2 shared cores the wall time
# depends on the neighbours; the CPU time much less.
time_us() {
        f=$1
        shift
        t0=$(now_us)
        /usr/bin/time -f '%U %S' -o "$f.tmp" "$@" >/dev/null 2>&1 || {
                echo "failed: $*" >&2
                exit 1
        }
        echo $(($(now_us) - t0)) >>"$f"
        awk '{ print $1 + $2 }' "$f.tmp" >>"$f.cpu"
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { awk -v us="$(median "$1")" 'BEGIN { printf "%.1f ms", us / 1000 }'; }
ratio() { awk -v a="$(median "$1")" -v b="$(median "$2")" 'BEGIN { printf "%.2f", a / b }'; }
# The samples in the order taken (to see the spread): in seconds, or with ms, in milliseconds.
samples() { awk -v d="${2:-1e6}" '{ printf "%s%.1f", (NR > 1 ? " " : ""), $1 / d }' "$1"; }
cpu() { printf '%s s' "$(median "$1.cpu")"; }
gbps() { awk -v us="$(median "$1")" -v mib="$2" 'BEGIN { printf "%.2f GB/s", mib * 1048576 / us / 1000 }'; }
cached() { fincore --bytes --noheadings --output RES "$1" 2>/dev/null | awk -v n="$BIG" '{ printf "%d%%", $1 * 100 / (n * 1048576) }'; }

# Commands, not shell functions: /usr/bin/time runs them.
cat >"$T/ctl" <<EOF
#!/bin/sh
exec "$CTL" --socket "$RUN/control" "\$@"
EOF
cat >"$T/agent" <<EOF
#!/bin/sh
verb=\$1
shift
exec "$AGENT" "\$verb" --config "$T/modelkeeper.yaml" --model m --state-directory "$STATE" --runtime-directory "$RUN" -- "\$@"
EOF
chmod +x "$T/ctl" "$T/agent"
ctl() { "$T/ctl" "$@"; }
# POSIX sh has no local variables: every helper has counters of its own.
wait_idle() {
        w=0
        until ctl --json status m 2>/dev/null | grep -q '"job": null'; do
                w=$((w + 1))
                [ $w -lt 3000 ] || {
                        echo "the daemon is not idle after a minute:" >&2
                        cat "$T/daemon.log" >&2
                        exit 1
                }
                sleep 0.02
        done
}

# Real data, not sparse: AES-CTR keystream (much faster than /dev/urandom, as incompressible).
gen() { head -c "$(($2 * 1048576))" /dev/zero | openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff \
        -iv "$3"000000000000000000000000000000 >"$1"; }
echo "== generating a 10 MiB and a ${BIG} MiB version (random data)"
gen "$T/small/model.safetensors" 10 01
gen "$T/big/model.safetensors" "$BIG" 02
echo '{"layers": 2}' >"$T/small/config.json"
echo '{"layers": 2}' >"$T/big/config.json"
sync

MODELKEEPER_AGENT=$AGENT MODELKEEPER_LOG_TARGET=console "$DAEMON" --config "$T/modelkeeper.yaml" \
        --state-directory "$STATE" --runtime-directory "$RUN" >"$T/daemon.log" 2>&1 &
DPID=$!
k=0
until [ -S "$RUN/control" ]; do
        k=$((k + 1))
        [ $k -lt 500 ] || {
                cat "$T/daemon.log"
                exit 1
        }
        sleep 0.02
done
wait_idle
ctl import m "$T/small" --version 1 --activate >/dev/null
ctl import m "$T/big" --version 2 --activate >/dev/null
wait_idle

echo "== 1. rollback, $REPS times each way (current alternates between the two)"
n=0
while [ $n -lt "$REPS" ]; do
        time_us "$T/d-small" "$T/ctl" rollback m 1
        wait_idle
        time_us "$T/d-big" "$T/ctl" rollback m 2
        wait_idle
        n=$((n + 1))
done
printf 'modelkeeperctl rollback (daemon + agent): to 10 MiB %s, to %s MiB %s, ratio big/small %s\n' \
        "$(ms "$T/d-small")" "$BIG" "$(ms "$T/d-big")" "$(ratio "$T/d-big" "$T/d-small")"
printf '  samples (ms): to 10 MiB %s; to %s MiB %s\n' "$(samples "$T/d-small" 1e3)" "$BIG" "$(samples "$T/d-big" 1e3)"

echo "== 2. import of ${BIG} MiB, $IMPORT_REPS times each, interleaved (source in page cache: $(cached "$T/big/model.safetensors"))"
n=0
while [ $n -lt "$IMPORT_REPS" ]; do
        time_us "$T/i-cp-sha" sh -c "cp '$T/big/model.safetensors' '$T/peer/' && sha256sum '$T/peer/model.safetensors'"
        rm -f "$T/peer/model.safetensors"
        sync
        time_us "$T/i-cp-sync-sha" sh -c "cp '$T/big/model.safetensors' '$T/peer/' && sync && sha256sum '$T/peer/model.safetensors'"
        rm -f "$T/peer/model.safetensors"
        sync
        time_us "$T/i-cp-sync-ossl" sh -c "cp '$T/big/model.safetensors' '$T/peer/' && sync && openssl dgst -sha256 '$T/peer/model.safetensors'"
        rm -f "$T/peer/model.safetensors"
        sync
        time_us "$T/i-agent" "$T/agent" import "$T/big" --id $((100 + n))
        rm -rf "$STORE/versions/$((100 + n))"
        sync
        time_us "$T/i-daemon" "$T/ctl" import m "$T/big" --version $((200 + n))
        wait_idle
        rm -rf "$STORE/versions/$((200 + n))"
        sync
        n=$((n + 1))
done
row() { printf '%-31s %9s  %-10s CPU %-7s samples %s s\n' "$1:" "$(ms "$2")" "($(gbps "$2" "$BIG"))" "$3" "$(samples "$2")"; }
row 'cp + sha256sum' "$T/i-cp-sha" "$(cpu "$T/i-cp-sha")"
row 'cp + sync + sha256sum' "$T/i-cp-sync-sha" "$(cpu "$T/i-cp-sync-sha")"
row 'cp + sync + openssl dgst' "$T/i-cp-sync-ossl" "$(cpu "$T/i-cp-sync-ossl")"
row 'modelkeeper-agent import' "$T/i-agent" "$(cpu "$T/i-agent")"
row 'modelkeeperctl import (daemon)' "$T/i-daemon" "(agent)"
printf 'ratios (time, ours/peer): agent/cp+sha256sum %s, agent/cp+sync+sha256sum %s, agent/cp+sync+openssl %s, daemon/agent %s\n' \
        "$(ratio "$T/i-agent" "$T/i-cp-sha")" "$(ratio "$T/i-agent" "$T/i-cp-sync-sha")" \
        "$(ratio "$T/i-agent" "$T/i-cp-sync-ossl")" "$(ratio "$T/i-daemon" "$T/i-agent")"

# The links change behind the daemon's back from here on: stop it first.
kill "$DPID"
wait "$DPID" || true
DPID=

echo "== 3. the agent's rollback verb by hand, $REPS times each way"
n=0
while [ $n -lt "$REPS" ]; do
        time_us "$T/a-small" "$T/agent" rollback 1 --from 2
        time_us "$T/a-big" "$T/agent" rollback 2 --from 1
        n=$((n + 1))
done
printf 'modelkeeper-agent rollback: to 10 MiB %s, to %s MiB %s, ratio big/small %s\n' \
        "$(ms "$T/a-small")" "$BIG" "$(ms "$T/a-big")" "$(ratio "$T/a-big" "$T/a-small")"
printf '  samples (ms): to 10 MiB %s; to %s MiB %s\n' "$(samples "$T/a-small" 1e3)" "$BIG" "$(samples "$T/a-big" 1e3)"
time_us "$T/v-small" "$T/agent" activate 1 --from 2
time_us "$T/v-big" "$T/agent" activate 2 --from 1
printf 'for contrast, modelkeeper-agent activate (re-hashes every byte): to 10 MiB %s, to %s MiB %s\n' \
        "$(ms "$T/v-small")" "$BIG" "$(ms "$T/v-big")"
echo "(2 shared cores, page cache not dropped (cannot here); figures are noisy — compare the ratios)"
