#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""
Numerics of `mk-st convert` against the independent numpy reference in st_reference.py, on random
and adversarial tensors: zero rows, subnormals, NaN (quiet, signalling, with payloads), ±Inf, huge
values, values exactly at and next to the rounding half-way points of fp16 and bf16, F64 values
that a double rounding through F32 would get wrong, every F16 and BF16 bit pattern.

  fp16, bf16   bit-exact (a NaN must stay NaN, quiet, with its sign)
  int8         q and scale bit-exact, and |x - q*scale| <= scale/2 for every element
  prune        bit-exact, exactly round(s*n) elements zeroed (ties in row-major order)
  statistics   the reported max_abs_error / rel_rmse / overflow equal numpy's
  kernels      the portable kernels write the same bytes as the AVX2+F16C ones

Usage: test-numerics.py MK_ST [WORKDIR]
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_reference as R  # noqa: E402

try:
    import torch
except ImportError:  # the reference stands alone; torch is a second opinion
    torch = None

MKST = sys.argv[1]
WORK = tempfile.mkdtemp(prefix="mk-numerics-", dir=sys.argv[2] if len(sys.argv) > 2 else None)
passed = failed = 0
rng = np.random.default_rng(20261129)
np.seterr(all="ignore")


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", flush=True)


def path(name):
    return os.path.join(WORK, name)


def convert(method, src, dst, *extra, expect_ok=True, portable=False):
    args = [MKST, "convert", "--method", method, *extra]
    if portable:
        args.append("--portable")
    p = subprocess.run(args + [src, dst], capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        print(p.stderr, file=sys.stderr)
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0 else None), p.stderr


def f32(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def adversarial_f32():
    """Special values for the F32 -> half conversions."""
    v = []
    v += [0.0, -0.0, 1.0, -1.0, 65504.0, -65504.0, 65519.996, 65520.0, -65520.0, 65536.0, 1e10, -1e30]
    v += [np.finfo(np.float32).max, -np.finfo(np.float32).max, np.inf, -np.inf]
    v += list(f32([0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fa12345, 0xffffffff,  # NaNs
                   0x00000001, 0x80000001, 0x007fffff, 0x00800000, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff,
                   0x33000000, 0x33000001, 0x32ffffff, 0x33800000, 0x33c00000, 0x38800000, 0x387fe000,
                   0x387ff000, 0x477fe000, 0x477fefff, 0x477ff000, 0x477fffff]))
    # fp16 half-way points 1 + (2k+1) 2^-11 and their neighbours, across exponents
    for e in (-24, -20, -15, -14, -10, 0, 5, 15):
        for k in rng.integers(0, 1024, size=8):
            h = np.float32((1 + (2 * int(k) + 1) * 2.0**-11) * 2.0**e)
            v += [h, np.nextafter(h, np.float32(0)), np.nextafter(h, np.float32(np.inf)), -h]
    # bf16 half-way points 1 + (2k+1) 2^-8
    for e in (-133, -127, -126, -60, 0, 60, 127):
        for k in rng.integers(0, 128, size=8):
            h = np.float32((1 + (2 * int(k) + 1) * 2.0**-8) * 2.0**e)
            v += [h, np.nextafter(h, np.float32(0)), np.nextafter(h, np.float32(np.inf)), -h]
    # fp16 subnormal range
    v += list((rng.integers(0, 2048, size=64) * 2.0**-25).astype(np.float32))
    return np.array(v, dtype=np.float32)


def adversarial_f64():
    v = [0.0, -0.0, 1.0, 65504.0, 65520.0, 65519.99999999999, 1e300, -1e300, 5e-324, np.inf, -np.inf, np.nan]
    # Just above a fp16/bf16 half-way point by less than F32 can hold: F32 would round to the tie.
    for e in (-20, -14, 0, 7):
        for k in range(4):
            v.append((1 + (2 * k + 1) * 2.0**-11 + 2.0**-40) * 2.0**e)
            v.append((1 + (2 * k + 1) * 2.0**-11 - 2.0**-40) * 2.0**e)
            v.append((1 + (2 * k + 1) * 2.0**-8 + 2.0**-40) * 2.0**e)
            v.append((1 + (2 * k + 1) * 2.0**-8 - 2.0**-40) * 2.0**e)
            v.append((1 + (2 * k + 1) * 2.0**-11) * 2.0**e)
    v += list(rng.standard_normal(200) * 10.0 ** rng.integers(-40, 40, size=200))
    v += list(np.array([0x7ff8000000000001, 0xfff0000000000abc], dtype=np.uint64).view(np.float64))
    return np.array(v, dtype=np.float64)


def half_matches(out_bits, ref_bits, x, target, what):
    """Bit equality, except that NaN outputs are checked for NaN-ness, quietness and sign."""
    out_bits = out_bits.reshape(-1)
    ref_bits = ref_bits.reshape(-1)
    x = np.asarray(x).reshape(-1)
    nan = np.isnan(x.astype(np.float64))
    bad = np.nonzero((out_bits != ref_bits) & ~nan)[0]
    check(bad.size == 0, f"{what}: {bad.size} values differ from the reference, first at {bad[:5]}: "
                         f"in {x[bad[:5]]!r} out {[hex(b) for b in out_bits[bad[:5]]]} "
                         f"ref {[hex(b) for b in ref_bits[bad[:5]]]}")
    if nan.any():
        exp = 0x7c00 if target == "F16" else 0x7f80
        quiet = 0x0200 if target == "F16" else 0x0040
        o = out_bits[nan]
        sign_in = np.signbit(x[nan].astype(np.float64))
        ok = ((o & exp) == exp) & ((o & quiet) != 0) & (((o & 0x8000) != 0) == sign_in)
        check(ok.all(), f"{what}: a NaN input did not give a quiet NaN of the same sign")


def check_stats(got, ref, what):
    for key in ("elements", "overflow", "nonfinite"):
        check(got[key] == ref[key], f"{what}: stats {key} {got[key]} != {ref[key]}")
    check(got["max_abs_error"] == ref["max_abs_error"],
          f"{what}: max_abs_error {got['max_abs_error']!r} != {ref['max_abs_error']!r}")
    r1, r2 = got["rel_rmse"], ref["rel_rmse"]
    check((r1 is None and not np.isfinite(r2)) or (r1 is not None and abs(r1 - r2) <= 1e-9 * max(abs(r2), 1e-300)),
          f"{what}: rel_rmse {r1!r} != {r2!r}")


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def test_half(target):
    method = "fp16" if target == "F16" else "bf16"
    adv = adversarial_f32()
    rand_bits = rng.integers(0, 2**32, size=64 * 4096 - adv.size, dtype=np.uint64).astype(np.uint32)
    t_f32 = np.concatenate([adv, rand_bits.view(np.float32)]).reshape(64, 4096)
    t_norm = (rng.standard_normal((33, 517)) * 0.05).astype(np.float32)
    t_f64 = adversarial_f64().reshape(1, -1)
    all16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).reshape(256, 256)
    tensors = [("a.weight", "F32", t_f32), ("norm.weight", "F32", t_norm[0]), ("b.weight", "F32", t_norm),
               ("c.weight", "F64", t_f64), ("h.weight", "F16", all16.view(np.float16)),
               ("g.weight", "BF16", all16), ("ids", "I64", np.arange(7, dtype=np.int64)),
               ("skipme.weight", "F32", t_norm)]
    src = path(f"half-{method}.safetensors")
    R.write(src, tensors, {"format": "pt"})
    dst = path(f"half-{method}.out.safetensors")
    rc, stats, err = convert(method, src, dst, "--skip", "skip*")
    check(rc == 0, f"{method}: convert failed: {err}")
    if rc != 0:
        return
    out, meta = R.read(dst)
    check(meta == {"format": "pt"}, f"{method}: metadata not kept: {meta}")
    st = stats["files"][os.path.basename(src)]["tensors"]
    for name, dt, arr in tensors:
        odt, oshape, oarr = out[name]
        check(oshape == list(arr.shape), f"{method} {name}: shape {oshape}")
        if name == "skipme.weight" or dt not in R.FLOATS or dt == target:
            check(odt == dt and oarr.tobytes() == arr.tobytes(), f"{method} {name}: should be copied unchanged")
            check(st[name]["action"] == "copy", f"{method} {name}: action {st[name]['action']}")
            continue
        check(odt == target, f"{method} {name}: dtype {odt}")
        bits, ref = R.convert_half(dt, arr, target)
        half_matches(oarr.view(np.uint16), bits, R.to_float(dt, arr), target, f"{method} {name} ({dt})")
        check_stats(st[name], ref, f"{method} {name}")
        if torch is not None and dt in ("F32", "F16", "BF16"):
            x = torch.from_numpy(np.ascontiguousarray(R.to_float(dt, arr)).copy())
            tb = x.to(torch.float16 if target == "F16" else torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
            nan = np.isnan(R.to_float(dt, arr)).reshape(-1)
            diff = (tb.reshape(-1) != oarr.view(np.uint16).reshape(-1)) & ~nan
            check(not diff.any(), f"{method} {name}: {diff.sum()} values differ from torch")

    # The same bytes from the portable kernels.
    dst2 = path(f"half-{method}.portable.safetensors")
    rc, stats2, err = convert(method, src, dst2, "--skip", "skip*", portable=True)
    check(rc == 0 and same_bytes(dst, dst2), f"{method}: portable kernels wrote different bytes")
    if rc == 0:
        a = stats["files"][os.path.basename(src)]["tensors"]
        b = stats2["files"][os.path.basename(src)]["tensors"]
        check(a == b, f"{method}: portable kernels report different statistics")


def bound_holds(x, q, scale):
    x = x.astype(np.float64)
    s = scale.astype(np.float64)
    return np.all(np.abs(x - q.astype(np.float64) * s) <= s / 2)


def test_int8():
    rows, cols = 96, 1000
    w = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    w[3] = 0.0                                                     # a zero row
    w[4] = f32(rng.integers(1, 0x00800000, size=cols))             # subnormals only
    w[5, :] = 1e-3
    w[5, 17] = 3e30                                                # one huge value
    w[6] = (np.arange(cols) % 255 - 127).astype(np.float32) + 0.5  # exact half-way points, scale 1
    w[6, 0] = 127.0
    w[7] = -w[6]
    w[8] = np.float32(1.17549435e-38) * 3                           # max/127 below FLT_MIN
    w[9, :] = 127 * 2.0**-20
    w[9, ::3] = 37.5 * 2.0**-20                                    # half-way again
    # Next to half-way points: the float quotient x / scale rounds onto k + 0.5 although the exact
    # one is not there (max 1.0, scale fl(1/127)).
    s10 = np.float32(1.0) / np.float32(127)
    near = []
    for k in range(-120, 120):
        t = np.float32((k + 0.5) * np.float64(s10))
        for c in (np.nextafter(t, np.float32(-1e9)), t, np.nextafter(t, np.float32(1e9))):
            if np.float32(c) / s10 == np.float32(k + 0.5):
                near.append(c)
    check(len(near) > 100, f"int8: found only {len(near)} values next to half-way points")
    w[10] = 0.0
    w[10, 0] = 1.0
    w[10, 1:1 + len(near)] = near[:cols - 1]
    conv = (rng.standard_normal((16, 3, 3, 5))).astype(np.float32)  # a 4-D weight
    f16w = (rng.standard_normal((40, 64)) * 4).astype(np.float16)
    bf16w = R.bf16_bits((rng.standard_normal((40, 64)) * 0.1).astype(np.float32))
    f64w = rng.standard_normal((20, 33)) * 1e-3
    tensors = [("l.weight", "F32", w), ("l.bias", "F32", w[0]), ("c.weight", "F32", conv),
               ("h.weight", "F16", f16w), ("g.weight", "BF16", bf16w), ("d.weight", "F64", f64w),
               ("emb.weight", "F32", w[:10]), ("pos_embed", "F32", w[:2]), ("n.weight", "F32", w[0]),
               ("ids", "I32", np.arange(5, dtype=np.int32))]
    src = path("int8.safetensors")
    R.write(src, tensors, {"format": "pt"})
    dst = path("int8.out.safetensors")
    rc, stats, err = convert("int8", src, dst, "--skip", "emb.*")
    check(rc == 0, f"int8: convert failed: {err}")
    if rc != 0:
        return
    out, meta = R.read(dst)
    st = stats["files"]["int8.safetensors"]["tensors"]
    quantised = {"l.weight", "c.weight", "h.weight", "g.weight", "d.weight"}
    for name, dt, arr in tensors:
        if name not in quantised:
            odt, _, oarr = out[name]
            check(odt == dt and oarr.tobytes() == arr.tobytes(), f"int8 {name}: should be copied unchanged")
            check(name + "_scale" not in out, f"int8 {name}: has a scale")
            continue
        q, scale, ref = R.int8_rows(dt, arr)
        odt, oshape, oarr = out[name]
        sdt, sshape, sarr = out[name + "_scale"]
        check(odt == "I8" and oshape == list(arr.shape), f"int8 {name}: {odt} {oshape}")
        check(sdt == "F32" and sshape == [arr.shape[0], 1], f"int8 {name}_scale: {sdt} {sshape}")
        check(np.array_equal(oarr, q), f"int8 {name}: q differs from the reference in "
                                       f"{int((oarr != q).sum())} elements")
        check(sarr.tobytes() == scale.tobytes(), f"int8 {name}: scales differ from the reference")
        x = R.to_float(dt, arr).reshape(arr.shape[0], -1)
        check(bound_holds(x, oarr.reshape(arr.shape[0], -1), sarr), f"int8 {name}: |x - q*s| > s/2")
        check(np.all(np.abs(oarr.astype(np.int32)) <= 127), f"int8 {name}: q outside [-127, 127]")
        check(np.all(np.isfinite(sarr)) and np.all(sarr > 0), f"int8 {name}: a scale is not finite and positive")
        check_stats(st[name], ref, f"int8 {name}")
    # the zero row dequantises to zeros
    check(np.all(out["l.weight"][2][3] == 0) and np.isfinite(out["l.weight_scale"][2][3, 0]), "int8: zero row")
    # output order: every scale right after its weight
    names = list(out)
    check(all(names[names.index(n) + 1] == n + "_scale" for n in quantised), f"int8: output order {names}")
    qc = json.loads(meta.get("quantization_config", "null"))
    check(qc is not None and qc["format"] == "int-quantized" and qc["quant_method"] == "compressed-tensors",
          f"int8: quantization_config {qc}")
    if qc:
        g = qc["config_groups"]["group_0"]
        check(sorted(g["targets"]) == sorted(n[:-len(".weight")] for n in quantised), f"int8: targets {g['targets']}")
        check(g["weights"]["num_bits"] == 8 and g["weights"]["strategy"] == "channel" and g["weights"]["symmetric"],
              f"int8: weights {g['weights']}")
        check(stats.get("quantization_config") == qc, "int8: stats carry the quantization_config")
    dst2 = path("int8.portable.safetensors")
    rc, _, _ = convert("int8", src, dst2, "--skip", "emb.*", portable=True)
    check(rc == 0 and same_bytes(dst, dst2), "int8: portable kernels wrote different bytes")

    # NaN or Inf in a weight: refused, with the reason.
    for bad in (np.nan, np.inf):
        w2 = w.copy()
        w2[50, 3] = bad
        src2 = path("int8-bad.safetensors")
        R.write(src2, [("l.weight", "F32", w2)])
        rc, _, err = convert("int8", src2, path("int8-bad.out.safetensors"), expect_ok=False)
        check(rc != 0 and "NaN or Inf" in err and "row 50" in err, f"int8 with {bad}: rc {rc}, {err!r}")
        check(not os.path.exists(path("int8-bad.out.safetensors")), f"int8 with {bad}: left an output file")

    # A model that already has a scale tensor is refused.
    src3 = path("int8-twice.safetensors")
    R.write(src3, [("l.weight", "F32", w), ("l.weight_scale", "F32", w[:, :1])])
    rc, _, err = convert("int8", src3, path("int8-twice.out.safetensors"), expect_ok=False)
    check(rc != 0 and "already exists" in err, f"int8 twice: rc {rc}, {err!r}")


def test_prune():
    a = rng.standard_normal((300, 257)).astype(np.float32)
    a[:, ::5] = np.float32(0.25)                  # many ties
    a[7] = 0.0
    a[8, :10] = -0.0
    b = rng.choice(np.array([0.5, -0.5, 1.0, 2.0, -0.0], dtype=np.float32), size=(64, 64))
    f16 = (rng.standard_normal((50, 50)) * 3).astype(np.float16)
    bf16 = R.bf16_bits(rng.standard_normal((50, 50)).astype(np.float32))
    f64 = rng.standard_normal((30, 70))
    f64[3, :5] = 1.25
    specials = a[:4].copy()
    specials[0, :4] = [np.inf, -np.inf, np.nan, 1e-45]
    tensors = [("a.weight", "F32", a), ("b.weight", "F32", b), ("h.weight", "F16", f16), ("g.weight", "BF16", bf16),
               ("d.weight", "F64", f64), ("s.weight", "F32", specials), ("bias", "F32", a[0]),
               ("ids", "I64", np.arange(9, dtype=np.int64))]
    src = path("prune.safetensors")
    R.write(src, tensors)
    for s in (0.0, 0.3, 0.5, 0.9, 0.999, 1.0):
        dst = path(f"prune-{s}.safetensors")
        rc, stats, err = convert("prune", src, dst, "--sparsity", str(s))
        check(rc == 0, f"prune {s}: convert failed: {err}")
        if rc != 0:
            continue
        out, _ = R.read(dst)
        st = stats["files"]["prune.safetensors"]["tensors"]
        for name, dt, arr in tensors:
            odt, _, oarr = out[name]
            if dt not in R.FLOATS or arr.ndim < 2:
                check(oarr.tobytes() == arr.tobytes(), f"prune {s} {name}: should be copied")
                continue
            ref, ref_stats, k = R.prune(dt, arr, s)
            check(odt == dt and oarr.tobytes() == ref.tobytes(),
                  f"prune {s} {name}: differs from the reference in {int((oarr != ref).sum())} elements")
            zeros_in = int((R.to_float(dt, arr) == 0).sum())
            zeros_out = int((R.to_float(dt, oarr) == 0).sum())
            check(zeros_out == max(k, zeros_in), f"prune {s} {name}: {zeros_out} zeros, expected {max(k, zeros_in)}")
            check(abs(st[name]["sparsity"] - zeros_out / arr.size) < 1e-12, f"prune {s} {name}: reported sparsity")
            check_stats(st[name], ref_stats, f"prune {s} {name}")
        if s == 0.5:
            dst2 = path("prune-portable.safetensors")
            rc, _, _ = convert("prune", src, dst2, "--sparsity", str(s), portable=True)
            check(rc == 0 and same_bytes(dst, dst2), "prune: portable kernels wrote different bytes")


def test_sharded():
    d = path("sharded")
    os.makedirs(d)
    w = {f"layers.{i}.weight": (rng.standard_normal((32, 48)) * 0.1).astype(np.float32) for i in range(5)}
    shards = {"model-00001-of-00002.safetensors": ["layers.0.weight", "layers.1.weight", "layers.2.weight"],
              "model-00002-of-00002.safetensors": ["layers.3.weight", "layers.4.weight"]}
    for shard, names in shards.items():
        R.write(os.path.join(d, shard), [(n, "F32", w[n]) for n in names], {"format": "pt"})
    index = {"metadata": {"total_size": sum(a.nbytes for a in w.values()), "note": "kept"},
             "weight_map": {n: s for s, names in shards.items() for n in names}}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "test", "hidden_size": 48}, f)
    o = path("sharded.out")
    rc, stats, err = convert("int8", d, o)
    check(rc == 0, f"sharded: convert failed: {err}")
    if rc != 0:
        return
    with open(os.path.join(o, "model.safetensors.index.json")) as f:
        idx = json.load(f)
    total = 0
    for shard, names in shards.items():
        out, _ = R.read(os.path.join(o, shard))
        check(sorted(out) == sorted(names + [n + "_scale" for n in names]), f"sharded {shard}: tensors {list(out)}")
        for n in names:
            check(idx["weight_map"][n] == shard and idx["weight_map"][n + "_scale"] == shard,
                  f"sharded: index maps {n} wrongly")
            q, scale, _ = R.int8_rows("F32", w[n])
            check(np.array_equal(out[n][2], q) and out[n + "_scale"][2].tobytes() == scale.tobytes(),
                  f"sharded: {n} differs from the reference")
        total += sum(a.nbytes for _, _, a in out.values())
    check(idx["metadata"]["total_size"] == total and idx["metadata"]["note"] == "kept",
          f"sharded: index metadata {idx['metadata']}")
    with open(os.path.join(o, "config.json")) as f:
        cfg = json.load(f)
    check(cfg.get("quantization_config", {}).get("format") == "int-quantized" and cfg["hidden_size"] == 48,
          f"sharded: config.json {cfg}")
    check(sorted(cfg["quantization_config"]["config_groups"]["group_0"]["targets"]) ==
          sorted(n[:-len(".weight")] for n in w), "sharded: targets of all shards")

    # A shard the index does not describe is refused before anything is written.
    bad = path("sharded-bad")
    shutil.copytree(d, bad)
    index["weight_map"]["layers.4.weight"] = "model-00001-of-00002.safetensors"
    with open(os.path.join(bad, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)
    rc, _, err = convert("fp16", bad, path("sharded-bad.out"), expect_ok=False)
    check(rc != 0 and "layers.4.weight" in err, f"sharded, wrong index: rc {rc}, {err!r}")
    check(not any(n.endswith(".safetensors") for n in os.listdir(path("sharded-bad.out"))),
          "sharded, wrong index: shards were written")


def main():
    try:
        test_half("F16")
        test_half("BF16")
        test_int8()
        test_prune()
        test_sharded()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"torch cross-check: {'yes, torch ' + torch.__version__ if torch else 'no (torch not installed)'}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
