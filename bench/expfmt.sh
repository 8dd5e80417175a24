#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Parse throughput of our Prometheus text parser (policies/expfmt.c) against
# `promtool check metrics` (Debian package: prometheus) on the same input, in one run.
#
# Input: Prometheus's own parser benchmark file, alltypes.237mfs.prom.txt (190 KB, 237 metric
# families), repeated COPIES times with every metric renamed per copy (c<i>_…) so that the
# result is one valid exposition (promtool refuses a repeated family). Our parser reads that
# file REPEAT times in memory; promtool reads it once per run (process start-up is included,
# and is negligible at this size). promtool also lints; ours validates but does not lint.
#
#   bench/expfmt.sh [BUILDDIR] [COPIES] [REPEAT]
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
copies=${2:-100}
repeat=${3:-10}
data=${SHARED_TESTDATA:-$here/../shared/testdata}
src=$data/prometheus/alltypes.237mfs.prom.txt

[ -f "$src" ] || { echo "SKIP: $src not found (set SHARED_TESTDATA)"; exit 77; }
command -v promtool >/dev/null || { echo "SKIP: promtool not found (apt-get install prometheus)"; exit 77; }
[ -x "$build/bench/expfmt-bench" ] || { echo "build first: ninja -C $build bench/expfmt-bench"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
input=$tmp/input.prom
files=
i=0
while [ "$i" -lt "$copies" ]; do files="$files $src"; i=$((i + 1)); done
# shellcheck disable=SC2086
awk 'FNR == 1 { n++ }
     /^# (HELP|TYPE) / { sub(/^# (HELP|TYPE) /, "&c" n "_"); print; next }
     /^#/ || /^$/ { print; next }
     { print "c" n "_" $0 }' $files > "$input"
size=$(stat -c %s "$input")
echo "input: $copies renamed copies of $(basename "$src"), $size bytes; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"

now() { date +%s.%N; }

echo "ours (full parse, every sample to a callback), $repeat passes:"
ours=$("$build/bench/expfmt-bench" "$input" "$repeat")
echo "  $ours"
echo "ours (daemon case: one referenced name, the rest skipped), $repeat passes:"
skip=$("$build/bench/expfmt-bench" "$input" "$repeat" --want c1_go_gc_duration_seconds)
echo "  $skip"

best=
for run in 1 2 3; do
        t0=$(now)
        promtool check metrics < "$input" > /dev/null 2>&1 || true
        t1=$(now)
        t=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
done
prom=$(echo "$size / $best / 1000000" | bc -l)
printf 'promtool check metrics: %.1f MB/s (best of 3 runs, %.3f s each at best)\n' "$prom" "$best"

ours_mbs=${ours%% MB/s*}
skip_mbs=${skip%% MB/s*}
printf 'ratio ours/promtool: full parse %.1fx, daemon case %.1fx\n' \
        "$(echo "$ours_mbs / $prom" | bc -l)" "$(echo "$skip_mbs / $prom" | bc -l)"
