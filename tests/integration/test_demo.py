# SPDX-License-Identifier: Apache-2.0
"""The demo is also a test: run it (shorter intervals) and check the sequence of decisions."""

import json
import os
import subprocess
import tempfile
import unittest

import mk


class DemoTest(unittest.TestCase):
    def test_demo_lifecycle(self):
        with tempfile.TemporaryDirectory(prefix="mk-demo-test-") as tmp:
            out = os.path.join(tmp, "decisions.json")
            p = subprocess.run(["/usr/bin/python3", os.path.join(mk.SRC, "demo", "run.py"), mk.BUILD, "--fast",
                                "--quiet", "--decisions", out], capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
            decisions = [tuple(d[:3]) for d in json.load(open(out))]

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


if __name__ == "__main__":
    unittest.main()
