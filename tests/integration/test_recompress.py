# SPDX-License-Identifier: Apache-2.0
"""External compressors (recompress method `exec`) through the daemon: the time and memory limits,
no sockets of any kind, and a good one whose output becomes "<release>~<profile>" with the
compressor recorded as its tool. The compressors are small Python scripts."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import unittest

import mk

PY = "/usr/bin/python3"

# Each compressor is called as: SCRIPT {input} {output} (the good one as --in={input} {output}).
SLOW = """
import time
time.sleep(120)
"""

HOG = """
import sys
try:
    hog = bytearray(1 << 30)          # 1 GiB, beyond the 256 MiB limit
except MemoryError:
    print("compressor: out of memory", file=sys.stderr)
    sys.exit(3)
open(sys.argv[2] + "/model.safetensors", "wb").write(b"should not be here")
"""

# Tries every way out it has, records what happened in its output (the only place it may write),
# and copies its input so that the result is a version the test can look at.
NET = """
import errno, json, os, shutil, socket, sys
inp, out, port, unix_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
report = {}
def attempt(name, family, kind, address):
    try:
        s = socket.socket(family, kind)
    except OSError as e:
        report[name] = "socket: " + errno.errorcode.get(e.errno, str(e.errno))
        return
    try:
        s.settimeout(2)
        s.connect(address)
        report[name] = "connected"
    except OSError as e:
        report[name] = "connect: " + errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
attempt("tcp", socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", port))
attempt("tcp6", socket.AF_INET6, socket.SOCK_STREAM, ("::1", port))
attempt("udp", socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", port))
attempt("unix", socket.AF_UNIX, socket.SOCK_STREAM, unix_path)
try:
    a, b = socket.socketpair()
    a.send(b"x")
    report["socketpair"] = "ok" if b.recv(1) == b"x" else "broken"
except OSError as e:
    report["socketpair"] = "error: " + errno.errorcode.get(e.errno, str(e.errno))
for name in os.listdir(inp):
    shutil.copy(os.path.join(inp, name), os.path.join(out, name))
json.dump(report, open(os.path.join(out, "net-report.json"), "w"))
"""

GOOD = """
import os, sys
inp = sys.argv[1][len("--in="):]
out = sys.argv[2]
for name in sorted(os.listdir(inp)):
    data = open(os.path.join(inp, name), "rb").read()
    # "Compression": every other byte, tagged with the model it was made for.
    open(os.path.join(out, name), "wb").write(b"small " + os.environ["MODEL"].encode() + b" " + data[::2])
"""


class RecompressExecTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mk-recompress-")
        self.d = None
        self.listeners = []

    def tearDown(self):
        for s in self.listeners:
            s.close()
        if self.d:
            self.d.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def script(self, name, body):
        path = os.path.join(self.tmp, name + ".py")
        with open(path, "w") as f:
            f.write("#!" + PY + "\n" + textwrap.dedent(body))
        os.chmod(path, 0o755)
        return path

    def start(self, profiles, config="", storage=""):
        lines = "".join(f"    {name}: {{{spec}}}\n" for name, spec in profiles.items())
        self.d = mk.Daemon(config, {"m": f"model: m\n{storage}recompress:\n  profiles:\n{lines}"})
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="reconcile")
        self.d.ctl("import", "m", mk.make_source(os.path.join(self.tmp, "v1"), b"weights " * 4096), "--activate")
        return self.d

    def versions(self):
        return {v["version"]: v for v in json.loads(self.d.ctl("--json", "versions", "m").stdout)}

    def meta(self, version):
        with open(os.path.join(self.d.state, "models", "m", "versions", version, "meta.json")) as f:
            return json.load(f)

    def files(self, version):
        return os.path.join(self.d.state, "models", "m", "versions", version, "files")

    def assert_failed_cleanly(self, profile, needle):
        p = self.d.ctl("recompress", "m", profile, check=False, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn(needle, p.stderr)
        st = self.d.status()[0]
        self.assertEqual(st["active"], "1")
        self.assertNotIn(f"1~{profile}", self.versions())
        self.assertTrue(os.readlink(os.path.join(self.d.runtime, "serve", "m")).endswith("/versions/1/files"))
        # Nothing left behind: no staging, no plaintext copies for the compressor.
        self.assertEqual(os.listdir(os.path.join(self.d.state, "models", "m", "staging")), [])
        self.assertEqual(os.listdir(os.path.join(self.d.runtime, "plain", "m")), [])
        self.d.wait_log("ACTION=recompress")
        return p

    def test_timeout_kills_the_compressor(self):
        slow = self.script("slow", SLOW)
        self.start({"slow": f"method: exec, command: [{slow}, '{{input}}', '{{output}}'], timeout: 1s"})
        self.assert_failed_cleanly("slow", f"{slow} exceeded the profile's timeout (1s) and was killed")
        # Really gone, not orphaned.
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    self.assertNotIn(slow.encode(), f.read(), f"compressor still running as {pid}")
            except OSError:
                pass

    def test_memory_limit(self):
        hog = self.script("hog", HOG)
        self.start({"hog": f"method: exec, command: [{hog}, '{{input}}', '{{output}}'], memory_max: 256MiB"})
        self.assert_failed_cleanly("hog", f"{hog} exited with status 3")

    def test_no_sockets(self):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        tcp.settimeout(0)
        unix_path = os.path.join(self.tmp, "listener.sock")
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(unix_path)
        unix.listen()
        unix.settimeout(0)
        self.listeners += [tcp, unix]
        net = self.script("net", NET)
        port = tcp.getsockname()[1]
        self.start({"net": f"method: exec, command: [{net}, '{{input}}', '{{output}}', '{port}', '{unix_path}']"})
        self.d.ctl("recompress", "m", "net", timeout=60)
        with open(os.path.join(self.files("1~net"), "net-report.json")) as f:
            report = json.load(f)
        self.assertEqual(report, {"tcp": "socket: EACCES", "tcp6": "socket: EACCES", "udp": "socket: EACCES",
                                  "unix": "socket: EACCES", "socketpair": "ok"})
        for s in (tcp, unix):
            with self.assertRaises(BlockingIOError):
                s.accept()

    def test_good_compressor(self):
        good = self.script("good", GOOD)
        d = self.start({"good": f"method: exec, command: [{good}, '--in={{input}}', '{{output}}']"})
        d.ctl("recompress", "m", "good", timeout=60)
        self.assertEqual(d.status()[0]["active"], "1~good")
        self.assertEqual(self.versions()["1~good"]["origin"], "derived")
        served = os.readlink(os.path.join(d.runtime, "serve", "m"))
        self.assertTrue(served.endswith("/versions/1~good/files"), served)
        with open(os.path.join(served, "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), b"small m " + (b"weights " * 4096 + b"model.safetensors")[::2])
        meta = self.meta("1~good")
        self.assertEqual((meta["origin"], meta["parent"], meta["profile"]), ("derived", "1", "good"))
        extra = meta["extra"]
        self.assertEqual(extra["tool"], good)
        self.assertEqual(extra["method"], "exec")
        self.assertEqual(extra["command"], [good, "--in={input}", "{output}"])
        self.assertNotIn("statistics", extra)
        # The journal's summary says who built it and claims no numerics.
        d.wait_log(f"built version 1~good from 1 (profile good: built by external compressor {good}: ")
        line = next(ln for ln in d.logs().splitlines() if "built version 1~good" in ln)
        self.assertNotIn("tensors", line)
        self.assertNotIn("max abs error", line)

    def test_good_compressor_on_a_sealed_model(self):
        identity = os.path.join(self.tmp, "id.txt")
        out = subprocess.run([mk.CTL, "keygen", "--type", "age", "--out", identity], capture_output=True, text=True,
                             check=True).stdout
        recipient = out.split("recipient: ")[1].strip()
        good = self.script("good", GOOD)
        d = self.start({"good": f"method: exec, command: [{good}, '--in={{input}}', '{{output}}']"},
                       config=f"encryption: {{recipient: {recipient}, identity_file: {identity}}}\n",
                       storage="storage: {encrypt: true}\n")
        d.ctl("recompress", "m", "good", timeout=60)
        # Its input was plaintext on tmpfs, gone now; its output is sealed at rest like any version.
        self.assertEqual(sorted(os.listdir(self.files("1~good"))), ["config.json.age", "model.safetensors.age"])
        mk.wait_for(lambda: sorted(os.listdir(os.path.join(d.runtime, "plain", "m"))) == ["1~good"],
                    what="only the active version's plaintext")
        with open(os.path.join(d.runtime, "plain", "m", "1~good", "model.safetensors"), "rb") as f:
            self.assertTrue(f.read().startswith(b"small m "))
        self.assertEqual(self.meta("1~good")["extra"]["tool"], good)


if __name__ == "__main__":
    unittest.main()
