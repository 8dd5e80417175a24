#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Seal/unseal throughput of our age implementation (mk-age) against the reference age tool, on
# the same random input in one run, interleaved, for 1 GiB and 4 GiB, written to tmpfs (/dev/shm)
# and to disk (/var/tmp). Inputs are read from tmpfs: the plaintext, and for the unseal the file
# the same tool sealed in that round; every round trip is checked with SHA-256.
#
# Usage: bench/age.sh [MK_AGE] (default build/bench/mk-age)
# Env:   SIZES="1 4" (GiB)  REPS=3  JOBS=0 (mk-age -j; 0 = number of CPUs)  DESTS="shm disk"
#        QUIET=60 (before each timed run, wait up to 30 s for >= QUIET % idle CPU; 0 = don't)
#
# Prints per case the best and the median of REPS runs in GB/s (10^9 bytes/s) and the ratio
# ours/age of the best runs. On a shared machine look at the spread, not only the best. At most
# two copies of the data exist at a time (the plaintext is regenerated for each run), so 4 GiB
# needs 8 GiB of tmpfs. Before each run to disk, dirty data is synced so that no run pays for the
# previous one's writeback, and a run to disk is timed until its output is on disk (sync).
set -euo pipefail

MK_AGE=$(realpath "${1:-build/bench/mk-age}")
SIZES=${SIZES:-1 4}
REPS=${REPS:-3}
JOBS=${JOBS:-0}
DESTS=${DESTS:-shm disk}
QUIET=${QUIET:-60}

command -v age >/dev/null || { echo "age is not installed (apt-get install age)"; exit 1; }
[ -x "$MK_AGE" ] || { echo "no mk-age at $MK_AGE (build first)"; exit 1; }

shm=$(mktemp -d /dev/shm/age-bench.XXXXXX)
disk=$(mktemp -d /var/tmp/age-bench.XXXXXX)
trap 'rm -rf "$shm" "$disk"' EXIT

age-keygen -o "$shm/key" 2>/dev/null
recipient=$(age-keygen -y "$shm/key")

now() { date +%s.%N; }
sha() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
gbps() { echo "scale=3; $1 / $2 / 1000000000" | bc -l; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# Random, incompressible data: a ChaCha20 keystream, much faster than /dev/urandom. (openssl dies
# of SIGPIPE when head is done: expected.)
generate() {
        { openssl enc -chacha20 -K "$(printf '%064d' 0)" -iv "$(printf '%032d' 0)" -in /dev/zero 2>/dev/null || true; } |
                head -c "$1" > "$2"
}

cpu_idle_percent() {
        local a b
        read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ < /proc/stat
        sleep 1
        read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ < /proc/stat
        a=$((a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8))
        b=$((b1 + b2 + b3 + b4 + b5 + b6 + b7 + b8))
        echo $(( (b4 - a4) * 100 / (b - a + 1) ))
}

wait_quiet() {
        [ "$QUIET" -gt 0 ] || return 0
        for _ in $(seq 30); do
                [ "$(cpu_idle_percent)" -ge "$QUIET" ] && return 0
        done
        echo "(machine busy, measuring anyway)" >&2
}

# The unseal reads the file the same tool sealed in that round from tmpfs: to disk it is moved
# there first (untimed). Both operations go from tmpfs to tmpfs, or from tmpfs to disk.
from_shm() {
        if [ "$dest" = disk ]; then
                cp "$d/sealed" "$shm/sealed"
                rm -f "$d/sealed"
        fi
        echo "$shm/sealed"
}

# time a command in seconds, after letting the machine settle
timed() {
        local t0 t1
        [ "$dest" = disk ] && sync
        wait_quiet
        t0=$(now)
        "$@"
        # On disk the figure is the time until the output is on disk: without the sync, a tool that
        # leaves gigabytes dirty in the page cache would be timed for part of its work only.
        [ "$dest" = disk ] && sync
        t1=$(now)
        echo "$t1 - $t0" | bc -l
}

printf 'mk-age -j %s (0 = %s CPUs), %s runs each, age %s, load average %s\n' "$JOBS" "$(nproc)" "$REPS" \
        "$(age --version 2>/dev/null)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %-5s %-7s %20s %20s %8s\n' size dest op "ours GB/s best/med" "age GB/s best/med" "ours/age"

for gib in $SIZES; do
        bytes=$((gib * 1024 * 1024 * 1024))
        plain="$shm/plain"
        generate "$bytes" "$plain"
        [ "$(stat -c %s "$plain")" = "$bytes" ]
        want=$(sha "$plain")
        # Touch the tmpfs memory the runs will use (two copies) once before timing anything: on a
        # VM the first use of guest memory can cost several times the copy itself (cp of 4 GiB
        # between tmpfs files: 13.9 s the first time, 3.3 s after), and whichever tool ran first
        # would pay for it.
        head -c "$bytes" /dev/zero > "$shm/warm"
        rm -f "$plain" "$shm/warm"

        for dest in $DESTS; do
                [ "$dest" = shm ] && d=$shm || d=$disk
                declare -a os=() as=() oo=() ao=()
                for ((rep = 1; rep <= REPS; rep++)); do
                        for tool in ours age; do
                                generate "$bytes" "$plain"
                                if [ $tool = ours ]; then
                                        t=$(timed "$MK_AGE" seal -j "$JOBS" -r "$recipient" "$plain" "$d/sealed")
                                        os+=("$t")
                                        rm -f "$plain"
                                        src=$(from_shm)
                                        t=$(timed "$MK_AGE" open -j "$JOBS" -i "$shm/key" "$src" "$d/out")
                                        oo+=("$t")
                                else
                                        t=$(timed age -r "$recipient" -o "$d/sealed" "$plain")
                                        as+=("$t")
                                        rm -f "$plain"
                                        src=$(from_shm)
                                        t=$(timed age -d -i "$shm/key" -o "$d/out" "$src")
                                        ao+=("$t")
                                fi
                                rm -f "$d/sealed" "$shm/sealed"
                                if [ "$(sha "$d/out")" != "$want" ]; then
                                        echo "round trip through $tool differs ($gib GiB, $dest)"
                                        exit 1
                                fi
                                rm -f "$d/out"
                        done
                done
                for op in seal open; do
                        if [ $op = seal ]; then o=("${os[@]}"); a=("${as[@]}"); else o=("${oo[@]}"); a=("${ao[@]}"); fi
                        ob=$(best "${o[@]}"); om=$(median "${o[@]}")
                        ab=$(best "${a[@]}"); am=$(median "${a[@]}")
                        printf '%-5s %-5s %-7s %9s / %-8s %9s / %-8s %7.2fx\n' "${gib}G" "$dest" \
                                "$([ $op = seal ] && echo seal || echo unseal)" \
                                "$(gbps $bytes "$ob")" "$(gbps $bytes "$om")" \
                                "$(gbps $bytes "$ab")" "$(gbps $bytes "$am")" \
                                "$(echo "$ab / $ob" | bc -l)"
                done
                unset os as oo ao
        done
done
echo "every round trip verified (SHA-256)"
