#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""
The peer of `mk-st convert` for bench/recompress.sh: the same methods written the usual numpy way
(memory-map the file, convert tensor by tensor with whole-array operations, write the result), with
or without the error statistics that mk-st always computes.

Usage: recompress-numpy.py fp16|int8 IN OUT [--no-stats]
"""

import json
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I8": np.int8, "U8": np.uint8}
FLT_MIN = np.float32(np.finfo(np.float32).tiny)


def stats(x, xh):
    """The statistics mk-st reports, written for speed: x - xh is exact in float32 for these
    methods; the sums of squares accumulate in float64 (einsum: fast and, unlike a float32 BLAS dot,
    which is off by percents on 10^8 elements, accurate)."""
    d = x - xh
    sse = float(np.einsum("i,i->", d, d, dtype=np.float64))
    ssr = float(np.einsum("i,i->", x, x, dtype=np.float64))
    return float(np.abs(d).max()), float(np.sqrt(sse) / np.sqrt(ssr)), int(np.count_nonzero(np.isinf(xh)))


def main():
    method, src, dst = sys.argv[1:4]
    with_stats = "--no-stats" not in sys.argv
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", None)
    mm = np.memmap(src, dtype=np.uint8, mode="r", offset=8 + n)
    order = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])

    # The output header first (sizes follow from the input header), then the data.
    out_header = {"__metadata__": meta} if meta else {}
    off = 0
    for name, e in order:
        shape = e["shape"]
        count = int(np.prod(shape))
        if e["dtype"] == "F32" and (method == "fp16" or (method == "int8" and len(shape) >= 2)):
            if method == "fp16":
                out_header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [off, off + 2 * count]}
                off += 2 * count
            else:
                out_header[name] = {"dtype": "I8", "shape": shape, "data_offsets": [off, off + count]}
                off += count
                out_header[name + "_scale"] = {"dtype": "F32", "shape": [shape[0], 1],
                                               "data_offsets": [off, off + 4 * shape[0]]}
                off += 4 * shape[0]
        else:
            b, end = e["data_offsets"]
            out_header[name] = {"dtype": e["dtype"], "shape": shape, "data_offsets": [off, off + end - b]}
            off += end - b
    h = json.dumps(out_header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)

    report = {}
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, e in order:
            b, end = e["data_offsets"]
            shape = e["shape"]
            raw = mm[b:end]
            if e["dtype"] == "F32" and method == "fp16":
                x = raw.view(np.float32)
                y = x.astype(np.float16)
                y.tofile(f)
                if with_stats:
                    report[name] = stats(x, y.astype(np.float32))
            elif e["dtype"] == "F32" and method == "int8" and len(shape) >= 2:
                x = raw.view(np.float32).reshape(shape[0], -1)
                scale = np.maximum(np.abs(x).max(axis=1) / np.float32(127), FLT_MIN)
                q = np.rint(x / scale[:, None])
                np.clip(q, -127, 127, out=q)
                q = q.astype(np.int8)
                q.tofile(f)
                scale.astype(np.float32).tofile(f)
                if with_stats:
                    report[name] = stats(x.reshape(-1), (q.astype(np.float32) * scale[:, None]).reshape(-1))
            else:
                raw.tofile(f)
    if with_stats:
        json.dump({k: list(v) for k, v in report.items()}, sys.stdout)


if __name__ == "__main__":
    main()
