#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Re-compression throughput and peak memory: `mk-st convert` (agent/'s library) against the same
# methods written in numpy (bench/recompress-numpy.py), on the same generated F32 model, in one
# run, interleaved so that both see the same machine load.
#
#   bench/recompress.sh [MK_ST] [SIZE_GIB] [WORKDIR]
#
# MK_ST defaults to build/bench/mk-st, SIZE_GIB to 1, WORKDIR to /dev/shm (tmpfs: the figures are
# then about CPU work, not about the disk; give a disk directory to include it). REPEAT=3 runs of
# each. The numpy peer runs twice: with the error statistics mk-st always computes (the same work),
# and without (conversion only). Figures: input GB/s (10^9 bytes of the input model per second of
# wall-clock time), CPU seconds (user + sys), peak RSS (/usr/bin/time). The model and outputs are
# deleted at the end (KEEP=1 keeps the model).

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
MK_ST=${1:-$here/../build/bench/mk-st}
SIZE=${2:-1}
WORK=${3:-/dev/shm}
REPEAT=${REPEAT:-3}
PY=/usr/bin/python3
TIME=/usr/bin/time

[ -x "$MK_ST" ] || { echo "mk-st not found at $MK_ST (build first: ninja -C build)" >&2; exit 1; }
[ -x "$TIME" ] || { echo "$TIME missing (Debian package 'time')" >&2; exit 1; }

dir=$(mktemp -d "$WORK/mk-bench-XXXXXX")
cleanup() {
        if [ "${KEEP:-0}" = 1 ]; then
                rm -f "$dir"/out-* && echo "model kept in $dir"
        else
                rm -rf "$dir"
        fi
}
trap cleanup EXIT

model=$dir/model.safetensors
echo "generating a ${SIZE} GiB F32 model in $dir ..."
"$PY" - "$model" "$SIZE" <<'EOF'
import json, struct, sys
import numpy as np
path, gib = sys.argv[1], float(sys.argv[2])
# Transformer-like: per layer q/k/v/o 2048x2048, up/gate 5632x2048, down 2048x5632, two norms.
H, F = 2048, 5632
layer = [("attn.q_proj.weight", (H, H)), ("attn.k_proj.weight", (H, H)), ("attn.v_proj.weight", (H, H)),
         ("attn.o_proj.weight", (H, H)), ("mlp.gate_proj.weight", (F, H)), ("mlp.up_proj.weight", (F, H)),
         ("mlp.down_proj.weight", (H, F)), ("input_layernorm.weight", (H,)), ("post_attention_layernorm.weight", (H,))]
per_layer = sum(int(np.prod(s)) * 4 for _, s in layer)
n_layers = max(1, -(-int(gib * (1 << 30)) // per_layer))  # at least the size asked for
shapes = [(f"model.layers.{i}.{n}", s) for i in range(n_layers) for n, s in layer] + [("model.norm.weight", (H,))]
header, off = {"__metadata__": {"format": "pt"}}, 0
for name, s in shapes:
    nb = int(np.prod(s)) * 4
    header[name] = {"dtype": "F32", "shape": list(s), "data_offsets": [off, off + nb]}
    off += nb
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
rng = np.random.default_rng(1)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for name, s in shapes:
        total = int(np.prod(s))
        for start in range(0, total, 4 << 20):
            n = min(4 << 20, total - start)
            (rng.standard_normal(n, dtype=np.float32) * 0.02).tofile(f)
print(f"{len(shapes)} tensors, {(off + 8 + len(h)) / 2**30:.2f} GiB")
EOF
bytes=$(stat -c %s "$model")

# One timed run: prints "wall cpu rss_kib".
run() {
        local log
        log=$(mktemp "$dir/time-XXXXXX")
        "$TIME" -f "%e %U %S %M" -o "$log" "$@" > /dev/null
        awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$log"
        rm -f "$log" "$dir"/out-*
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; kernels: $("$MK_ST" convert --method fp16 "$model" "$dir/out-probe" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["kernels"])'); numpy $("$PY" -c 'import numpy; print(numpy.__version__)')"
rm -f "$dir"/out-*

results=$dir/results
: > "$results"
for method in int8 fp16; do
        for i in $(seq "$REPEAT"); do
                echo "$method mk-st $(run "$MK_ST" convert --method "$method" "$model" "$dir/out-mk")" >> "$results"
                echo "$method numpy $(run "$PY" "$here/recompress-numpy.py" "$method" "$model" "$dir/out-np")" >> "$results"
                echo "$method numpy-nostats $(run "$PY" "$here/recompress-numpy.py" "$method" "$model" "$dir/out-np" --no-stats)" >> "$results"
        done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$results" "$bytes" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
size = int(sys.argv[2])
data = {}
for method, tool, wall, cpu, rss in rows:
    data.setdefault((method, tool), []).append((float(wall), float(cpu), int(rss)))
print(f"\ninput {size / 1e9:.2f} GB; best of {len(next(iter(data.values())))} runs (median in brackets)")
print(f"{'method':6} {'tool':14} {'wall s':>14} {'GB/s':>6} {'CPU s':>6} {'peak RSS':>10}")
best = {}
for (method, tool), runs in data.items():
    w = min(r[0] for r in runs)
    med = statistics.median(r[0] for r in runs)
    cpu = min(r[1] for r in runs)
    rss = max(r[2] for r in runs)
    best[(method, tool)] = (w, cpu)
    print(f"{method:6} {tool:14} {w:6.2f} [{med:5.2f}] {size / 1e9 / w:6.2f} {cpu:6.2f} {rss / 1024:7.1f} MiB")
print()
for method in ("int8", "fp16"):
    mk = best[(method, "mk-st")]
    for peer in ("numpy", "numpy-nostats"):
        p = best[(method, peer)]
        print(f"{method}: mk-st vs {peer:14} wall {p[0] / mk[0]:5.1f}x   CPU {p[1] / mk[1]:5.1f}x")
EOF
