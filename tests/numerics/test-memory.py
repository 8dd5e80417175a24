#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""
Bounded memory: `mk-st convert` re-compresses a 640 MiB model, one of whose tensors alone is
256 MiB, under an address-space limit (RLIMIT_AS) of 128 MiB — with fp16, int8 and prune (which
reads the file three times). The outputs are checked for validity and spot-checked against the
numpy reference; the peak RSS is printed.

Usage: test-memory.py MK_ST [WORKDIR]
"""

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_reference as R  # noqa: E402

MKST = sys.argv[1]
WORK = tempfile.mkdtemp(prefix="mk-memory-", dir=sys.argv[2] if len(sys.argv) > 2 else None)
LIMIT = 128 << 20
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", flush=True)


def make_model(path):
    """Written tensor by tensor, so this process does not hold the model either."""
    shapes = [("big.weight", (16384, 4096))] + [(f"layers.{i}.weight", (2048, 4096)) for i in range(12)]
    shapes.append(("final_norm.weight", (4096,)))
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes:
        nb = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    rng = np.random.default_rng(7)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape in shapes:
            total = int(np.prod(shape))
            for start in range(0, total, 2 << 20):
                n = min(2 << 20, total - start)
                (rng.standard_normal(n, dtype=np.float32) * 0.02).tofile(f)
    return off + 8 + len(h)


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_limited(args):
    """Run under the limit; return (exit code, stdout, stderr, peak RSS in KiB or None). The peak is
    measured by /usr/bin/time (Debian package "time"): a child forked from this Python process would
    report Python's own RSS, which Linux carries across execve."""
    if TIME:
        args = [TIME, "-f", "MAXRSS %M"] + args
    p = subprocess.run(args, preexec_fn=limited, capture_output=True, text=True)
    err, rss = p.stderr, None
    if TIME:
        lines = err.rstrip("\n").split("\n")
        if lines and lines[-1].startswith("MAXRSS "):
            rss = int(lines[-1].split()[1])
            err = "\n".join(lines[:-1])
    return p.returncode, p.stdout, err, rss


def tensor(path, name, rows=None):
    """Some rows of a tensor, through a memmap."""
    n, _, header = R.read_header(path)
    e = header[name]
    arr = np.memmap(path, dtype=R.DTYPES[e["dtype"]], mode="r", offset=8 + n + e["data_offsets"][0],
                    shape=tuple(e["shape"]))
    return e["dtype"], (arr if rows is None else np.array(arr[rows]))


def main():
    src = os.path.join(WORK, "model.safetensors")
    size = make_model(src)
    check(size > 4 * LIMIT, f"the model ({size >> 20} MiB) is several times the limit ({LIMIT >> 20} MiB)")

    # The limit is real: numpy loading the big tensor under it fails.
    p = subprocess.run([sys.executable, "-c", "import numpy as np, sys; "
                        f"np.fromfile(sys.argv[1], dtype=np.float32, count={16384 * 4096})", src],
                       preexec_fn=limited, capture_output=True, text=True)
    check(p.returncode != 0 and "MemoryError" in p.stderr, "a whole-tensor load under the limit should fail")

    rows = slice(16000, 16384)
    for method, extra in (("fp16", []), ("int8", []), ("prune", ["--sparsity", "0.5"])):
        dst = os.path.join(WORK, f"out-{method}.safetensors")
        rc, out, err, rss = run_limited([MKST, "convert", "--method", method, *extra, src, dst])
        check(rc == 0, f"{method} under RLIMIT_AS={LIMIT >> 20} MiB: {err.strip()}")
        if rc != 0:
            continue
        if rss is not None:
            print(f"{method}: peak RSS {rss} KiB")
            check(rss < 32 << 10, f"{method}: peak RSS {rss} KiB")
        else:
            print(f"{method}: peak RSS not measured (no /usr/bin/time)")
        info = subprocess.run([MKST, "info", dst], capture_output=True, text=True)
        check(info.returncode == 0, f"{method}: output invalid: {info.stderr.strip()}")
        dt, x = tensor(src, "big.weight", rows)
        if method == "fp16":
            _, y = tensor(dst, "big.weight", rows)
            check(np.array_equal(y.view(np.uint16), R.f16_bits(x)), "fp16: big.weight differs from the reference")
        elif method == "int8":
            _, q = tensor(dst, "big.weight", rows)
            _, s = tensor(dst, "big.weight_scale", rows)
            rq, rs, _ = R.int8_rows("F32", x)
            check(np.array_equal(q, rq) and np.array_equal(s, rs), "int8: big.weight differs from the reference")
        else:
            stats = json.loads(out)["files"]["model.safetensors"]["tensors"]
            check(stats["big.weight"]["sparsity"] == 0.5, f"prune: sparsity {stats['big.weight']['sparsity']}")
        os.unlink(dst)
    print(f"model {size >> 20} MiB, RLIMIT_AS {LIMIT >> 20} MiB")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
