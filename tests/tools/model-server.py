#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in model server for integration tests: a real HTTP server on 127.0.0.1.

GET  /ready     200 when ready, else 503. Readiness is "loaded version not in NOT_READY".
POST /reload    (re)load: reads what serve/<model> points at, records it.
GET  /metrics   Prometheus text with the values set through POST /set?name=value.
POST /set       set metric values (query string), e.g. /set?accuracy_correct_total=5; with
                version=ID, values that apply only while that version is loaded (a version
                that regresses), e.g. /set?version=2&accuracy=0.8
GET  /state     JSON: reloads, loaded target, metric values.

Environment: PORT (0: pick one and print it), SERVE_LINK (the serve/<model> path),
NOT_READY (comma-separated version ids that never become ready), HANG (version ids with which
/ready never answers: a server that crashed or wedged loading them).
"""

import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"reloads": 0, "loaded": None, "metrics": {}, "version_metrics": {}, "requests": []}
not_ready = set(filter(None, os.environ.get("NOT_READY", "").split(",")))
hang = set(filter(None, os.environ.get("HANG", "").split(",")))
serve_link = os.environ.get("SERVE_LINK")


def loaded_version():
    target = state["loaded"] or ""
    parts = target.rstrip("/").split("/")
    # .../versions/<id>/files or .../plain/<model>/<id>
    if len(parts) >= 2 and parts[-1] == "files":
        return parts[-2]
    return parts[-1] if parts else None


def load():
    with lock:
        state["reloads"] += 1
        state["loaded"] = os.path.realpath(serve_link) if serve_link else None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        with lock:
            state["requests"].append("GET " + path)
        if path == "/ready" and loaded_version() in hang:
            time.sleep(3600)
        elif path == "/ready":
            ok = state["loaded"] is not None and loaded_version() not in not_ready
            self.reply(200 if ok else 503, "ready\n" if ok else "loading\n")
        elif path == "/metrics":
            with lock:
                metrics = dict(state["metrics"])
                metrics.update(state["version_metrics"].get(loaded_version(), {}))
                lines = [f"{k} {v}" for k, v in sorted(metrics.items())]
            self.reply(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
        elif path == "/state":
            with lock:
                body = json.dumps(dict(state, version=loaded_version()))
            self.reply(200, body, "application/json")
        else:
            self.reply(404, "not found\n")

    def do_POST(self):
        u = urllib.parse.urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with lock:
            state["requests"].append("POST " + u.path)
        if u.path in ("/reload", "/v2/repository/models/m/load"):
            load()
            self.reply(200, "{}", "application/json")
        elif u.path == "/set":
            with lock:
                q = dict(urllib.parse.parse_qsl(u.query))
                version = q.pop("version", None)
                target = state["metrics"] if version is None else state["version_metrics"].setdefault(version, {})
                for k, v in q.items():
                    target[k] = float(v)
            self.reply(200, "ok\n")
        else:
            self.reply(404, "not found\n")


def main():
    port = int(os.environ.get("PORT", "0"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if os.environ.get("LOAD_AT_START"):
        load()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
