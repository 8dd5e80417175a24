# SPDX-License-Identifier: Apache-2.0
"""
An independent reference for agent/'s re-compression, in numpy: a small safetensors reader and
writer, and the methods written the obvious numpy way (whole tensors, vectorised). The numerics
test compares mk-st's output with it bit for bit; bench/recompress.sh times it against mk-st.

Rounding references:
  fp16  numpy's own float32/float64 -> float16 cast (IEEE round-to-nearest-even), and torch's when
        installed.
  bf16  the nearest bf16 by exact distance (ties to the even pattern), computed in float64; torch's
        cast is a second opinion when installed.
  int8  scale = float32(max|row|) / float32(127) clamped below at FLT_MIN, q = rint(x / scale)
        clipped to [-127, 127], the quotient in float64 (long double for F64 inputs).
  prune the k = floor(s * n + 0.5) smallest |x| by a stable sort of the |x| bit patterns, so ties go
        in row-major order.
"""

import json
import struct

import numpy as np

DTYPES = {
    "BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"), "U16": np.dtype("<u2"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "U64": np.dtype("<u8"),
}
FLOATS = ("F16", "BF16", "F32", "F64")
FLT_MIN = np.float32(np.finfo(np.float32).tiny)


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
    meta = header.pop("__metadata__", None)
    return n, meta, header


def read(path):
    """{name: (dtype, shape, numpy array of the raw elements)} in offset order, and the metadata."""
    n, meta, header = read_header(path)
    out = {}
    with open(path, "rb") as f:
        for name, e in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
            b, end = e["data_offsets"]
            f.seek(8 + n + b)
            raw = f.read(end - b)
            arr = np.frombuffer(raw, dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
            out[name] = (e["dtype"], list(e["shape"]), arr)
    return out, meta


def write(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, numpy array)."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    for name, dt, arr in tensors:
        nb = arr.nbytes
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, arr in tensors:
            f.write(np.ascontiguousarray(arr).tobytes())


def to_float(dtype, arr):
    """The values of a float tensor as float32 (float64 for F64), exactly."""
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if dtype == "F16":
        return arr.astype(np.float32)
    return arr


def f16_bits(x):
    """x (float32 or float64 array) -> float16 bit patterns (numpy's IEEE RNE cast)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float16).view(np.uint16)


def bf16_bits(x):
    """x -> bf16 patterns: the nearest bf16 by exact distance, ties to even; NaN -> quiet NaN."""
    x = np.asarray(x)
    x64 = x.astype(np.float64)
    sign = np.signbit(x64)
    a = np.abs(x64)
    # The bf16 below |x|: truncate the float32 pattern, or for float64 take the float32 pattern
    # truncated towards zero (float32 of |x| rounded down).
    with np.errstate(over="ignore", invalid="ignore"):
        f = a.astype(np.float32)
        f = np.where(f.astype(np.float64) > a, np.nextafter(f, np.float32(0)), f)
    lo = (f.view(np.uint32) >> 16).astype(np.uint32)
    hi = lo + 1
    lo_v = (lo << 16).view(np.float32).astype(np.float64)
    hi_v = np.where(hi >= 0x7f80, np.inf, ((hi << 16) & 0xffffffff).astype(np.uint32).view(np.float32).astype(np.float64))
    # Beyond the largest bf16, the rounding point to Inf is max + half an ulp = 2^128 - 2^119.
    overflow_at = float(2**128 - 2**119)
    with np.errstate(invalid="ignore"):
        d_lo = a - lo_v
        d_hi = np.where(np.isinf(hi_v), np.inf, hi_v - a)
        pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & ((lo & 1) == 1))
        mag = np.where(pick_hi, hi, lo)
        mag = np.where(a >= overflow_at, 0x7f80, mag)
        mag = np.where(np.isinf(a), 0x7f80, mag)
    out = (mag | np.where(sign, 0x8000, 0)).astype(np.uint16)
    nan = np.isnan(x64)
    if nan.any():
        if x.dtype == np.float32:
            u = x.view(np.uint32)
            q = ((u >> 16) | 0x40).astype(np.uint16)
        else:
            u = x.view(np.uint64)
            q = (((u >> 48) & 0x8000) | 0x7fc0 | ((u >> 45) & 0x7f)).astype(np.uint16)
        out = np.where(nan, q, out)
    return out


def half_bits_to_f32(bits, dtype):
    if dtype == "BF16":
        return (bits.astype(np.uint32) << 16).view(np.float32)
    return bits.view(np.float16).astype(np.float32)


def convert_half(dtype, arr, target):
    """A float tensor -> (target bit patterns, stats dict)."""
    x = to_float(dtype, arr)
    bits = f16_bits(x) if target == "F16" else bf16_bits(x)
    xh = half_bits_to_f32(bits, target)
    return bits, stats(x, xh)


def int8_rows(dtype, arr):
    """A float tensor of shape [rows, ...] -> (int8 q of the same shape, float32 scales [rows, 1], stats)."""
    x = to_float(dtype, arr).reshape(arr.shape[0], -1)
    wide = x.dtype == np.float64
    amax = np.abs(x).max(axis=1)
    if wide:
        scale = (amax / 127.0).astype(np.float32)
    else:
        scale = amax.astype(np.float32) / np.float32(127)
    scale = np.maximum(scale, FLT_MIN).astype(np.float32)
    # The exact quotient's rounding: a float32 quotient may land on a half-way point the exact one
    # misses, so divide in float64 (long double for F64 inputs).
    if wide:
        q = np.rint((x.astype(np.longdouble) / scale[:, None].astype(np.longdouble))).astype(np.float64)
    else:
        q = np.rint(x.astype(np.float64) / scale[:, None].astype(np.float64))
    np.clip(q, -127, 127, out=q)
    q = q.astype(np.int8)
    xh = q.astype(np.float32) * scale[:, None]
    return q.reshape(arr.shape), scale.reshape(-1, 1), stats(x, xh)


def abs_patterns(dtype, arr):
    if dtype in ("F16", "BF16"):
        return arr.view(np.uint16).reshape(-1) & 0x7fff
    if dtype == "F32":
        return arr.view(np.uint32).reshape(-1) & 0x7fffffff
    return arr.view(np.uint64).reshape(-1) & np.uint64(0x7fffffffffffffff)


def prune(dtype, arr, sparsity):
    n = arr.size
    k = int(np.floor(np.longdouble(sparsity) * np.longdouble(n) + np.longdouble(0.5)))
    k = max(0, min(n, k))
    flat = arr.reshape(-1).copy()
    order = np.argsort(abs_patterns(dtype, arr), kind="stable")
    flat[order[:k]] = 0
    out = flat.reshape(arr.shape)
    return out, stats(to_float(dtype, arr), to_float(dtype, out)), k


def stats(x, xh):
    x = np.asarray(x).reshape(-1)
    xh = np.asarray(xh).reshape(-1)
    ok = np.isfinite(x) & np.isfinite(xh)
    d = x[ok].astype(np.float64) - xh[ok].astype(np.float64)
    r = x[ok].astype(np.float64)
    sse = float(np.dot(d, d))
    ssr = float(np.dot(r, r))
    return {
        "elements": int(x.size),
        "max_abs_error": float(np.abs(d).max()) if d.size else 0.0,
        "sum_sq_err": sse,
        "sum_sq_ref": ssr,
        "rel_rmse": (np.sqrt(sse) / np.sqrt(ssr)) if ssr > 0 else (0.0 if sse == 0 else float("inf")),
        "overflow": int((np.isfinite(x) & ~np.isfinite(xh)).sum()),
        "nonfinite": int((~np.isfinite(x)).sum()),
    }
