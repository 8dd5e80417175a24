#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Train the demo model: a multilayer perceptron on the 8×8 digits data set that python3-sklearn
ships, with numpy alone, and write it as safetensors (+ config.json).

    train.py OUT_DIR        writes OUT_DIR/v1, v2 and v3

v1: one epoch (decent), v2: more epochs (better), v3: v2 with its hidden weights shuffled
(deliberately broken: what a bad release looks like). The held-out split (the last 30 % in a
fixed shuffle) is what the demo server classifies; training never sees it.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
from sklearn.datasets import load_digits

HIDDEN = 256  # big enough that int8 re-compression visibly shrinks it (≈ 350 KB → ≈ 100 KB)


def split():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(0).permutation(len(x))
    cut = int(len(x) * 0.7)
    return x[idx[:cut]], y[idx[:cut]], x[idx[cut:]], y[idx[cut:]]


def forward(p, x):
    h1 = np.maximum(x @ p["fc1.weight"].T + p["fc1.bias"], 0)
    h2 = np.maximum(h1 @ p["fc2.weight"].T + p["fc2.bias"], 0)
    return h1, h2, h2 @ p["fc3.weight"].T + p["fc3.bias"]


def train(epochs, seed=1):
    xtr, ytr, xte, yte = split()
    rng = np.random.default_rng(seed)

    def init(o, i):
        return (rng.standard_normal((o, i)) * np.sqrt(2.0 / i)).astype(np.float32)

    p = {"fc1.weight": init(HIDDEN, 64), "fc1.bias": np.zeros(HIDDEN, np.float32),
         "fc2.weight": init(HIDDEN, HIDDEN), "fc2.bias": np.zeros(HIDDEN, np.float32),
         "fc3.weight": init(10, HIDDEN), "fc3.bias": np.zeros(10, np.float32)}
    lr = 0.05
    for epoch in range(epochs):
        order = rng.permutation(len(xtr))
        for b in range(0, len(xtr), 32):
            i = order[b:b + 32]
            x, y = xtr[i], ytr[i]
            h1, h2, logits = forward(p, x)
            e = np.exp(logits - logits.max(1, keepdims=True))
            prob = e / e.sum(1, keepdims=True)
            g3 = prob
            g3[np.arange(len(y)), y] -= 1
            g3 /= len(y)
            g2 = (g3 @ p["fc3.weight"]) * (h2 > 0)
            g1 = (g2 @ p["fc2.weight"]) * (h1 > 0)
            grads = {"fc3.weight": g3.T @ h2, "fc3.bias": g3.sum(0),
                     "fc2.weight": g2.T @ h1, "fc2.bias": g2.sum(0),
                     "fc1.weight": g1.T @ x, "fc1.bias": g1.sum(0)}
            for k in p:
                p[k] -= (lr * grads[k]).astype(np.float32)
    acc = float((forward(p, xte)[2].argmax(1) == yte).mean())
    return p, acc


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    off = 0
    for name, arr in tensors:
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        off += arr.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, arr in tensors:
            f.write(np.ascontiguousarray(arr, dtype=np.float32).tobytes())


def save(out, p, version, acc):
    os.makedirs(out, exist_ok=True)
    names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    write_safetensors(os.path.join(out, "model.safetensors"), [(n, p[n]) for n in names],
                      {"format": "pt", "trained_version": str(version)})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"architectures": ["DigitsMLP"], "hidden_size": HIDDEN, "num_labels": 10}, f, indent=2)
    print(f"v{version}: held-out accuracy {acc:.3f}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    a = ap.parse_args()
    _, _, xte, yte = split()
    p1, acc1 = train(epochs=1)
    save(os.path.join(a.out, "v1"), p1, 1, acc1)
    p2, acc2 = train(epochs=8)
    save(os.path.join(a.out, "v2"), p2, 2, acc2)
    # A broken release: v2 with the hidden layer's weights shuffled. Same shapes, same size,
    # signed like any other release — only its metrics can tell.
    p3 = dict(p2)
    w = p2["fc2.weight"].copy().ravel()
    np.random.default_rng(3).shuffle(w)
    p3["fc2.weight"] = w.reshape(p2["fc2.weight"].shape)
    save(os.path.join(a.out, "v3"), p3, 3, float((forward(p3, xte)[2].argmax(1) == yte).mean()))


if __name__ == "__main__":
    main()
