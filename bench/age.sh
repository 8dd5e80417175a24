#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Seal/unseal throughput: our age implementation (mk-age) against the reference age tool, on the
# same random input in one run, interleaved, for 1 GiB and 4 GiB, writing to tmpfs (/dev/shm) and
# to disk (/var/tmp). The input always comes from tmpfs; the unseal input is the file the same
# tool sealed in that round (so every round trip is also verified with SHA-256).
#
# Usage: bench/age.sh [MK_AGE] (default build/bench/mk-age)
# Env:   SIZES="1 4" (GiB)  REPS=3  JOBS=0 (mk-age -j; 0 = number of CPUs)  DESTS="shm disk"
#
# Prints, per case, the best and the median of REPS runs in GB/s (10^9 bytes/s) and the ratio
# ours/age of the best runs. The machine may be shared: look at the spread, not only the best.
set -euo pipefail

MK_AGE=$(realpath "${1:-build/bench/mk-age}")
SIZES=${SIZES:-1 4}
REPS=${REPS:-3}
JOBS=${JOBS:-0}
DESTS=${DESTS:-shm disk}

command -v age >/dev/null || { echo "age is not installed (apt-get install age)"; exit 1; }
[ -x "$MK_AGE" ] || { echo "no mk-age at $MK_AGE (build first)"; exit 1; }

shm=$(mktemp -d /dev/shm/age-bench.XXXXXX)
disk=$(mktemp -d /var/tmp/age-bench.XXXXXX)
trap 'rm -rf "$shm" "$disk"' EXIT

age-keygen -o "$shm/key" 2>/dev/null
recipient=$(age-keygen -y "$shm/key")

now() { date +%s.%N; }
# seconds for a command
timed() {
        local t0 t1
        t0=$(now)
        "$@"
        t1=$(now)
        echo "$t1 - $t0" | bc -l
}
sha() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
gbps() { echo "scale=3; $1 / $2 / 1000000000" | bc -l; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

printf 'mk-age -j %s (0 = %s CPUs), %s runs each, %s\n' "$JOBS" "$(nproc)" "$REPS" "$(age --version 2>/dev/null | sed 's/^/age /')"
printf '%-5s %-5s %-7s %20s %20s %8s\n' size dest op "ours GB/s best/med" "age GB/s best/med" "ours/age"

for gib in $SIZES; do
        bytes=$((gib * 1024 * 1024 * 1024))
        plain="$shm/plain"
        # Random data (not compressible, not all zero): a ChaCha20 keystream is much faster than
        # /dev/urandom.
        openssl enc -chacha20 -K "$(printf '%064d' 0)" -iv "$(printf '%032d' 0)" -in /dev/zero 2>/dev/null |
                head -c "$bytes" > "$plain"
        want=$(sha "$plain")

        for dest in $DESTS; do
                [ "$dest" = shm ] && d=$shm || d=$disk
                declare -a os=() as=() oo=() ao=()
                for ((rep = 1; rep <= REPS; rep++)); do
                        os+=("$(timed "$MK_AGE" seal -j "$JOBS" -r "$recipient" "$plain" "$d/sealed")")
                        oo+=("$(timed "$MK_AGE" open -j "$JOBS" -i "$shm/key" "$d/sealed" "$d/out")")
                        if [ "$rep" = 1 ] && [ "$(sha "$d/out")" != "$want" ]; then
                                echo "round trip through mk-age differs ($gib GiB, $dest)"
                                exit 1
                        fi
                        rm -f "$d/sealed" "$d/out"

                        as+=("$(timed age -r "$recipient" -o "$d/sealed" "$plain")")
                        ao+=("$(timed age -d -i "$shm/key" -o "$d/out" "$d/sealed")")
                        if [ "$rep" = 1 ] && [ "$(sha "$d/out")" != "$want" ]; then
                                echo "round trip through age differs ($gib GiB, $dest)"
                                exit 1
                        fi
                        rm -f "$d/sealed" "$d/out"
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
        rm -f "$plain"
done
echo "round trips verified (SHA-256) for every size and destination"
