#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A model repository over real HTTPS on 127.0.0.1, that misbehaves on request (attack tests).

    repo-server.py --root DIR --cert CRT --key KEY [--client-ca CA] [--port N] --rules RULES.json

Serves DIR as a static repository (root/N.json, models/M/C.json, blobs/sha256/H), with single-range
support. RULES.json is re-read on every request: a list of {"match": REGEX, "mode": ..., ...}; the
first rule whose regex matches the request path applies (counters are per path):

  {"mode": "status", "code": 404}                     always that status
  {"mode": "flaky", "times": K, "code": 503}          the first K requests get code, then normal
  {"mode": "retry_after", "times": K, "seconds": S}   the first K: 429 with Retry-After: S
  {"mode": "normal", "drop": [K, N], "norange": true, "badrange": [K, "start"|"total"]}
                                                      the first K requests are cut after N body bytes;
                                                      Range ignored (200 with the whole file); the
                                                      first K ranged answers carry a wrong Content-Range
  {"mode": "slow", "bps": B}                          B bytes per second
  {"mode": "redirect_loop"} | {"mode": "redirect_http"}
  {"mode": "extra", "bytes": N}                       the file plus N more bytes (Content-Length too)
  {"mode": "endless"}                                 no Content-Length, data forever
  {"mode": "swap", "after": K, "file": PATH}          after K requests serve PATH (under DIR) instead

Prints the port on stdout once listening (--port: that one, e.g. to come back with another
certificate at the same URL; default: any free port). GET /_count?path=P answers the requests
seen for P.
"""

import argparse
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {}
lock = threading.Lock()
args = None


def rules():
    try:
        with open(args.rules) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if os.environ.get("REPO_SERVER_VERBOSE"):
            sys.stderr.write("repo-server: " + (fmt % a) + "\n")

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def cut(self):
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        path = u.path
        if path == "/_count":
            p = urllib.parse.parse_qs(u.query).get("path", [""])[0]
            with lock:
                self.send(200, str(counts.get(p, 0)).encode())
            return
        rule = next((r for r in rules() if re.search(r["match"], path)), {"mode": "normal"})
        # Counters per rule and path: a new rule starts counting afresh.
        key = json.dumps(rule, sort_keys=True) + path
        with lock:
            n = counts.get(key, 0)
            counts[key] = n + 1
            counts[path] = counts.get(path, 0) + 1
        mode = rule.get("mode", "normal")

        if mode == "status":
            self.send(rule["code"], b"no\n")
            return
        if mode == "flaky" and n < rule["times"]:
            self.send(rule["code"], b"try again\n")
            return
        if mode == "retry_after" and n < rule["times"]:
            self.send(429, b"slow down\n", [("Retry-After", str(rule["seconds"]))])
            return
        if mode == "redirect_loop":
            self.send(302, headers=[("Location", path)])
            return
        if mode == "redirect_http":
            self.send(302, headers=[("Location", "http://127.0.0.1:%d%s" % (self.server.server_address[1], path))])
            return

        rel = path.lstrip("/")
        if mode == "swap" and n >= rule["after"]:
            rel = rule["file"]
        full = os.path.realpath(os.path.join(args.root, rel))
        if not full.startswith(os.path.realpath(args.root) + os.sep) or not os.path.isfile(full):
            self.send(404, b"not found\n")
            return
        with open(full, "rb") as f:
            data = f.read()
        size = len(data)

        if mode == "extra":
            data += b"\0" * rule["bytes"]
            self.send(200, data)
            return
        if mode == "endless":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(data)
                for _ in range(100000):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
            return

        start = 0
        rng = self.headers.get("Range")
        if rng and not rule.get("norange"):
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            if m:
                start = int(m.group(1))
        if start > 0 and start < size:
            body = data[start:]
            cr = "bytes %d-%d/%d" % (start, size - 1, size)
            bad = rule.get("badrange")
            if bad and n < bad[0]:
                cr = {"start": "bytes %d-%d/%d" % (start + 1, size - 1, size),
                      "total": "bytes %d-%d/%d" % (start, size - 1, size + 7)}[bad[1]]
            self.send_response(206)
            self.send_header("Content-Range", cr)
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        drop = rule.get("drop")
        if drop and n < drop[0]:
            self.wfile.write(body[:drop[1]])
            self.cut()
            return
        if mode == "slow":
            try:
                for i in range(0, len(body), max(1, rule["bps"] // 10)):
                    self.wfile.write(body[i:i + max(1, rule["bps"] // 10)])
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            self.close_connection = True
            return
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # Clients that hang up mid-body (what several tests provoke) are not errors here.
        if os.environ.get("REPO_SERVER_VERBOSE"):
            super().handle_error(request, client_address)


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca")
    p.add_argument("--rules", required=True)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
