#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A misbehaving HTTPS server on 127.0.0.1 for tests/unit/test-fetch.c.

    https-server.py --root DIR --server NAME,CERT,KEY[,CLIENT_CA] [--server ...]

Each --server listens on its own free port (CLIENT_CA: a client certificate is required). When
all listen, one line "READY NAME=PORT ..." goes to stdout. Behaviour is chosen by the path,
"/<mode>/<args...>/<file>", <file> being served from --root. Extra path segments after the args
are ignored, so a test makes its counters unique with a tag ("/drop/2/100000/t7/blob").

  files/F                   normal GET with single-range support ("bytes=a-", "bytes=a-b")
  norange/F                 ignores Range: always 200 with the whole file
  badrange/K/KIND/F         the first K Range requests get a wrong 206; KIND: start, total, end,
                            garbage, missing, length, noreq (206 even without Range)
  drop/K/N/F                the first K requests send their headers and N body bytes, then cut
  dropnr/K/N/F              the same, but Range is ignored (always 200 from byte 0)
  slow/F                    headers, then 8 bytes per second
  redir/N/F                 N redirects (302) before the file
  redirloop/F               302 to itself, forever
  tohttp/F                  302 to http://127.0.0.1:PORT/files/F
  status/CODE/F             always CODE
  retryafter/K/FORM/S/F     the first K requests: 429 with Retry-After S seconds (FORM "s") or
                            an HTTP-date S seconds ahead (FORM "d")
  flaky/K/CODE/F            the first K requests: CODE, then normal
  endless/F                 200, no Content-Length, data until the client goes away
  biglen/F                  Content-Length = size + 1000, and that many bytes
  shortlen/F                Content-Length = size - 1000, and that many bytes
  gzip/F                    normal, but labelled Content-Encoding: gzip
  _count/PATH               the number of requests seen so far for /PATH (text)
"""

import argparse
import email.utils
import http.server
import os
import socket
import ssl
import sys
import threading
import time

counts = {}
counts_lock = threading.Lock()
ROOT = "."


def count(path):
    with counts_lock:
        n = counts.get(path, 0)
        counts[path] = n + 1
        return n


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mk-test"

    def log_message(self, fmt, *args):
        if os.environ.get("HTTPS_SERVER_VERBOSE"):
            sys.stderr.write("https-server: " + (fmt % args) + "\n")

    def setup(self):
        # Handshake here, so that a refused client (no or a wrong client certificate) gets the TLS
        # alert: drain what it already sent before closing, or the kernel answers its unread
        # request with a RST that can overtake the alert.
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            try:
                self.request.shutdown(socket.SHUT_WR)
                self.request.settimeout(2)
                while self.request.recv(65536):
                    pass
            except OSError:
                pass
            raise
        super().setup()

    # -- helpers ---------------------------------------------------------------------------------

    def simple(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def cut(self):
        # An abrupt end: no TLS close_notify, no remaining bytes.
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def load(self, name):
        p = os.path.join(ROOT, os.path.basename(name))
        with open(p, "rb") as f:
            return f.read()

    def parse_range(self, size):
        h = self.headers.get("Range")
        if not h or not h.startswith("bytes=") or "," in h:
            return None
        a, _, b = h[6:].partition("-")
        a = int(a)
        b = int(b) if b else size - 1
        return a, min(b, size - 1)

    def serve(self, data, cut_after=None, headers=()):
        size = len(data)
        rng = self.parse_range(size)
        if rng is not None:
            a, b = rng
            if a >= size:
                self.simple(416, headers=[("Content-Range", "bytes */%d" % size)])
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (a, b, size))
            body = data[a:b + 1]
        else:
            self.send_response(200)
            body = data
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut_after is not None:
            self.wfile.write(body[:cut_after])
            self.cut()
            return
        self.wfile.write(body)

    # -- modes -----------------------------------------------------------------------------------

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if not parts:
            self.simple(404)
            return
        mode, args, name = parts[0], parts[1:-1], parts[-1]

        if mode == "_count":
            with counts_lock:
                n = counts.get("/" + "/".join(parts[1:]), 0)
            self.simple(200, str(n).encode())
            return

        n = count(path)
        try:
            data = self.load(name)
        except OSError:
            data = None

        if mode == "status":
            self.simple(int(args[0]), b"status body\n")
            return
        if mode == "redirloop":
            self.simple(302, headers=[("Location", path)])
            return
        if mode == "redir":
            k = int(args[0])
            if k > 0:
                rest = "/".join(args[1:] + [name])
                self.simple(302, headers=[("Location", "/redir/%d/%s" % (k - 1, rest))])
                return
        if mode == "tohttp":
            port = self.server.server_address[1]
            self.simple(302, headers=[("Location", "http://127.0.0.1:%d/files/%s" % (port, name))])
            return
        if mode == "retryafter" and n < int(args[0]):
            secs = int(args[2])
            value = str(secs) if args[1] == "s" else email.utils.formatdate(time.time() + secs, usegmt=True)
            self.simple(429, b"slow down\n", headers=[("Retry-After", value)])
            return
        if mode == "flaky" and n < int(args[0]):
            self.simple(int(args[1]), b"try again\n")
            return

        if data is None:
            self.simple(404, b"no such file\n")
            return
        size = len(data)

        if mode == "norange":
            self.simple(200, data)
        elif mode == "badrange":
            kind = args[1]
            rng = self.parse_range(size)
            if n >= int(args[0]) or (rng is None and kind != "noreq"):
                self.serve(data)
                return
            a, b = rng if rng else (0, size - 1)
            cr = {
                "start": "bytes %d-%d/%d" % (a + 1, b, size),
                "total": "bytes %d-%d/%d" % (a, b, size + 1),
                "end": "bytes %d-%d/%d" % (a, b - 1, size),
                "garbage": "bytes=%d-%d/%d" % (a, b, size),
                "length": "bytes %d-%d/%d" % (a, b, size),
                "noreq": "bytes %d-%d/%d" % (a, b, size),
            }.get(kind)
            body = data[a:b + 1]
            self.send_response(206)
            if cr:
                self.send_header("Content-Range", cr)
            self.send_header("Content-Length", str(len(body) + (1 if kind == "length" else 0)))
            self.end_headers()
            self.wfile.write(body)
            if kind == "length":
                self.cut()
        elif mode == "drop":
            self.serve(data, cut_after=int(args[1]) if n < int(args[0]) else None)
        elif mode == "dropnr":
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if n < int(args[0]):
                self.wfile.write(data[:int(args[1])])
                self.cut()
            else:
                self.wfile.write(data)
        elif mode == "slow":
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                for i in range(0, size, 8):
                    self.wfile.write(data[i:i + 8])
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass
            self.close_connection = True
        elif mode == "endless":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chunk = b"\0" * 65536
            try:
                for _ in range(100000):
                    self.wfile.write(chunk)
            except OSError:
                pass
        elif mode == "biglen":
            self.simple(200, data + b"\0" * 1000)
        elif mode == "shortlen":
            self.simple(200, data[:-1000])
        elif mode == "gzip":
            self.serve(data, headers=[("Content-Encoding", "gzip")])
        elif mode in ("files", "redir", "flaky", "retryafter"):
            self.serve(data)
        else:
            self.simple(404, b"unknown mode\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that hang up, fail the handshake or get cut are the point of these tests.
        if os.environ.get("HTTPS_SERVER_VERBOSE"):
            super().handle_error(request, client_address)


def main():
    global ROOT
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--server", action="append", required=True)
    a = ap.parse_args()
    ROOT = a.root

    ready = []
    for spec in a.server:
        f = spec.split(",")
        name, cert, key = f[0], f[1], f[2]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if len(f) > 3:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(f[3])
        srv = Server(("127.0.0.1", 0), Handler)
        # The handshake happens in the handler's thread, on the first read: a client that fails
        # it never blocks the accept loop.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        ready.append("%s=%d" % (name, srv.server_address[1]))

    print("READY " + " ".join(ready), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
