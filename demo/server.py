#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The demo model server: loads the digits MLP from serve/<model> (whatever modelkeeper points it
at: F32, F16/BF16 or compressed-tensors int8 safetensors), classifies the held-out digits
continuously, and exposes Prometheus metrics.

    server.py --serve /run/.../serve/digits-mlp --port 8080 [--rate 100]

Endpoints: GET /metrics, GET /ready (200 once a model is loaded), POST /reload (load what the serve
link points at now; modelkeeper calls it after every switch).

The confusion-matrix counters treat every prediction as a claim "this digit is a <top class>": a
right claim is a true positive, a wrong one a false positive. The classifier always answers, so
there are no negatives (tn and fn stay 0, exported so that policies can use the usual
accuracy(tp, tn, fp, fn) = (tp + tn) / (tp + tn + fp + fn), which is then the share of right
answers). A server that may abstain would count those as negatives.
"""

import argparse
import json
import os
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import split  # noqa: E402  (the same held-out data the trainer kept aside)

DTYPES = {"F32": np.float32, "F16": np.float16, "I8": np.int8, "F64": np.float64}

lock = threading.Lock()
model = {"params": None, "version": None, "dtype": None, "bytes": 0, "loaded_from": None}
counters = {"tp": 0, "tn": 0, "fp": 0, "fn": 0, "predictions": 0, "reloads": 0}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        if t["dtype"] == "BF16":
            raw = np.frombuffer(data[b:e], dtype=np.uint16).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(data[b:e], dtype=DTYPES[t["dtype"]])
        tensors[name] = (t["dtype"], arr.reshape(t["shape"]))
    return tensors, meta, len(data)


def load(serve):
    target = os.path.realpath(serve)
    tensors, meta, nbytes = read_safetensors(os.path.join(target, "model.safetensors"))
    params, dtypes = {}, set()
    for name, (dt, arr) in tensors.items():
        if name.endswith("_scale"):
            continue
        dtypes.add(dt)
        if dt == "I8":
            # compressed-tensors int-quantized: weight (int8) × weight_scale (float32 [rows, 1]).
            scale = tensors[name + "_scale"][1].astype(np.float32)
            params[name] = arr.astype(np.float32) * scale
        else:
            params[name] = arr.astype(np.float32)
    parts = target.rstrip("/").split("/")
    version = parts[-2] if parts[-1] == "files" else parts[-1]
    with lock:
        model.update(params=params, version=version, dtype="+".join(sorted(dtypes)), bytes=nbytes,
                     loaded_from=target)
        counters["reloads"] += 1
    print(f"demo server: loaded version {version} ({model['dtype']}, {nbytes} bytes of weights)", flush=True)


def predict(p, x):
    h = np.maximum(x @ p["fc1.weight"].T + p["fc1.bias"], 0)
    h = np.maximum(h @ p["fc2.weight"].T + p["fc2.bias"], 0)
    logits = h @ p["fc3.weight"].T + p["fc3.bias"]
    e = np.exp(logits - logits.max())
    return e / e.sum()


def classify_forever(rate):
    _, _, xte, yte = split()
    i = 0
    while True:
        with lock:
            p = model["params"]
        if p is not None:
            prob = predict(p, xte[i])
            key = "tp" if int(prob.argmax()) == int(yte[i]) else "fp"
            with lock:
                counters[key] += 1
                counters["predictions"] += 1
            i = (i + 1) % len(xte)
        time.sleep(1.0 / rate)


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Handler(BaseHTTPRequestHandler):
    serve = None

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, ctype="text/plain; version=0.0.4"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/ready":
            self.reply(200 if model["params"] is not None else 503, "ready\n")
        elif self.path == "/metrics":
            with lock:
                c, m = dict(counters), dict(model)
            lines = [
                "# HELP digits_predictions_total Held-out digits classified.",
                "# TYPE digits_predictions_total counter",
                f"digits_predictions_total {c['predictions']}",
            ]
            for k in ("tp", "tn", "fp", "fn"):
                lines += [f"# TYPE digits_{k}_total counter", f"digits_{k}_total {c[k]}"]
            lines += [
                "# HELP model_weights_bytes Bytes of weights the loaded version occupies.",
                "# TYPE model_weights_bytes gauge",
                f"model_weights_bytes {m['bytes']}",
                "# TYPE process_resident_memory_bytes gauge",
                f"process_resident_memory_bytes {rss_bytes()}",
                "# TYPE digits_model_info gauge",
                f'digits_model_info{{version="{m["version"] or ""}",dtype="{m["dtype"] or ""}"}} 1',
                "# TYPE digits_reloads_total counter",
                f"digits_reloads_total {c['reloads']}",
            ]
            self.reply(200, "\n".join(lines) + "\n")
        else:
            self.reply(404, "not found\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if self.path == "/reload":
            try:
                load(self.serve)
                self.reply(200, "{}", "application/json")
            except (OSError, KeyError, ValueError) as e:
                self.reply(500, f"cannot load: {e}\n")
        else:
            self.reply(404, "not found\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--rate", type=float, default=100.0)
    a = ap.parse_args()
    Handler.serve = a.serve
    if os.path.exists(a.serve):
        try:
            load(a.serve)
        except (OSError, KeyError, ValueError) as e:
            print(f"demo server: nothing to load yet ({e})", flush=True)
    threading.Thread(target=classify_forever, args=(a.rate,), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"demo server: listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
