# SPDX-License-Identifier: Apache-2.0
"""The demo is also a test: run it (shorter intervals) and check the sequence of decisions."""

import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import mk


class DemoTest(unittest.TestCase):
    def test_demo_lifecycle(self):
        with tempfile.TemporaryDirectory(prefix="mk-demo-test-") as tmp:
            out = os.path.join(tmp, "decisions.json")
            p = subprocess.run(["/usr/bin/python3", os.path.join(mk.SRC, "demo", "run.py"), mk.BUILD, "--fast",
                                "--quiet", "--decisions", out], capture_output=True, text=True, timeout=600)
            why = [line for line in p.stderr.splitlines() if line.startswith("demo failed")]
            self.assertEqual(p.returncode, 0, "\n".join(why) + "\n" + p.stdout[-3000:] + p.stderr[-3000:])
            with open(out) as f:
                decisions = [tuple(d[:3]) for d in json.load(f)]

        def index(action, version, start=0):
            for i in range(start, len(decisions)):
                if decisions[i][0] == action and decisions[i][1] == version:
                    return i
            self.fail(f"no {action} of {version} after #{start} in {decisions}")

        # v1: verified, installed, activated, promoted after its probation.
        i = index("verify", "1")
        i = index("activate", "1", i)
        i = index("promote", "1", i)
        # v2: the same, judged against v1's baseline.
        i = index("activate", "2", i)
        i = index("promote", "2", i)
        # v3: activated, fails probation, quarantined, v2 serves again.
        i = index("activate", "3", i)
        q = index("quarantine", "3", i)
        r = index("rollback", "2", i)
        self.assertEqual(decisions[r][2], "3")
        # Memory pressure: v2 re-compressed to int8, gate passed, promoted.
        i = index("recompress", "2~int8", max(q, r))
        i = index("activate", "2~int8", i)
        index("promote", "2~int8", i)
        # And the measured accuracy is printed by the demo (from the server, not scripted).
        self.assertIn("measured by the model server: accuracy", p.stdout)

    @staticmethod
    def processes():
        """pid → (state, ppid, session) of every process."""
        out = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                out[int(pid)] = (fields[0], int(fields[1]), int(fields[3]))
        return out

    def test_demo_cleanup_on_signals(self):
        """SIGTERM once modelkeeperd is up, then SIGINT and SIGHUP while the demo cleans up (a
        second Ctrl-C, the terminal closing): everything it started is stopped, its directories
        are removed, and the runtime directory was on tmpfs."""
        p = subprocess.Popen(["/usr/bin/python3", os.path.join(mk.SRC, "demo", "run.py"), mk.BUILD, "--fast", "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in p.stdout] + [lines.put(None)], daemon=True)
        reader.start()
        out, dirs = [], None
        try:
            deadline = time.monotonic() + 120
            while not out or "Step 1" not in out[-1]:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                self.assertIsNotNone(line, "the demo ended early:\n" + "".join(out))
                out.append(line)
                m = re.search(r"Files in (\S+); the runtime directory .* is (\S+) on tmpfs", line)
                if m:
                    dirs = m.groups()
            self.assertIsNotNone(dirs, "no directories (or not on tmpfs) in:\n" + "".join(out))
            time.sleep(0.3)   # modelkeeperd is up, its agent probably at work on the update
            procs = self.processes()
            children = {pid for pid, (_, ppid, _) in procs.items() if ppid == p.pid}
            sessions = {pid for pid in children if procs[pid][2] == pid}   # nginx, the model server, modelkeeperd
            self.assertGreaterEqual(len(sessions), 2, procs)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                p.send_signal(sig)
                time.sleep(0.01)
            rc = p.wait(timeout=60)
        finally:
            if p.poll() is None:   # the test failed before: let the demo clean up all the same
                p.terminate()
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            reader.join(timeout=10)
            p.stdout.close()
        self.assertEqual(rc, 128 + signal.SIGTERM)
        time.sleep(0.2)
        left = {pid: v for pid, v in self.processes().items() if v[0] != "Z" and (pid in children or v[2] in sessions)}
        self.assertEqual(left, {}, "processes the demo started are still running")
        for d in dirs:
            self.assertFalse(os.path.lexists(d), f"{d} is still there")


if __name__ == "__main__":
    unittest.main()
