# SPDX-License-Identifier: Apache-2.0
"""modelkeeperctl policy check|test: offline validation of model files and timelines of decisions."""

import glob
import os
import shutil
import subprocess
import tempfile
import unittest

import mk

MODEL = """model: m
metrics:
  scrape: {url: "http://127.0.0.1:9/metrics", every: 1m}
  define:
    acc: accuracy_ratio
rollout:
  interval: 1m
  iterations: 3
  threshold: 1
  checks:
    - {name: accuracy, expr: acc, min: baseline(acc) - 0.01}
rules:
  - {name: floor, when: acc < 0.9, for: 3m, action: rollback}
"""

SERIES = """interval: 1m
duration: 20m
activations:
  - {at: 5m, version: "43"}
input_series:
  - series: accuracy_ratio
    values: '0.95x5 0.94x3 0.85x10'
"""


class PolicyCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mk-policy-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def ctl(self, *args):
        return subprocess.run([mk.CTL, "policy", *args], capture_output=True, text=True)

    def test_check_examples(self):
        files = sorted(glob.glob(os.path.join(mk.SRC, "policies", "examples", "*.yaml")))
        self.assertGreaterEqual(len(files), 3)
        p = self.ctl("check", *files)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.count(": OK: model "), len(files))
        self.assertIn("digits-mlp.yaml: OK: model digits-mlp, 1 scrape target, 3 rules, rollout analysis", p.stdout)

    def test_check_reports_file_line_column(self):
        good = self.write("m.yaml", MODEL)
        os.makedirs(os.path.join(self.dir, "bad"))
        bad = self.write("bad/m.yaml", MODEL.replace("acc < 0.9", "acc < < 0.9"))
        p = self.ctl("check", good, bad)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{good}: OK", p.stdout)
        # Line 13, column 31: the second '<' of the `when` on the rules line.
        self.assertIn(f"{bad}:13:31: in when: unexpected '<'", p.stderr)
        self.assertIn("1 of 2 files refused.", p.stderr)

    def test_check_errors_of_every_kind(self):
        cases = {
            # An unknown function in a definition, found where it is written.
            "acc: accuracy_ratio": ("acc: nosuch(accuracy_ratio)", ":5:10: in define"),
            # A vector where a bound needs one number is fine; a range vector is not.
            "min: baseline(acc) - 0.01": ('min: "accuracy_ratio[5m]"', ":11:41: in min: a range like x[5m] has no value"),
            # Schema errors keep their file:line:col too.
            "for: 3m": ("for: 3 minutes", ":13:"),
            "action: rollback": ("action: explode", ":13:"),
        }
        for old, (new, where) in cases.items():
            with self.subTest(new=new):
                path = self.write("m.yaml", MODEL.replace(old, new))
                p = self.ctl("check", path)
                self.assertEqual(p.returncode, 1, p.stdout)
                self.assertIn(path + where, p.stderr)
                self.assertNotIn("OK", p.stdout)

    def test_check_with_main_config(self):
        path = self.write("m.yaml", MODEL + "source: {url: \"https://models.example.com/\", channel: stable}\n")
        self.assertEqual(self.ctl("check", path).returncode, 0)
        main = self.write("modelkeeper.yaml", "")
        p = self.ctl("check", "--config", main, path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("a source needs trust.keys", p.stderr)

    def test_check_unreadable(self):
        p = self.ctl("check", os.path.join(self.dir, "missing.yaml"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.yaml: No such file or directory", p.stderr)

    def test_test_prints_the_timeline(self):
        model = self.write("m.yaml", MODEL)
        series = self.write("series.yaml", SERIES)
        p = self.ctl("test", model, "--series", series)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.splitlines(), [
            "5m activate 43: baseline accuracy_ratio = 0.95",
            "5m activate 43: probation, 3 rounds every 1m, threshold 1, on_no_data inconclusive",
            "6m rollout 43 round 1: pass (passed 1/3, failed 0/1, inconclusive 0)",
            "6m   check accuracy: pass, value 0.94, min 0.94",
            "7m rollout 43 round 2: pass (passed 2/3, failed 0/1, inconclusive 0)",
            "7m   check accuracy: pass, value 0.94, min 0.94",
            "8m rollout 43 round 3: pass (passed 3/3, failed 0/1, inconclusive 0)",
            "8m   check accuracy: pass, value 0.94, min 0.94",
            "8m rollout 43: promote (3 good rounds)",
            "10m rule floor: inactive -> pending (value 0.85)",
            "13m rule floor: pending -> firing (value 0.85)",
            "13m rule floor: action rollback",
        ])

    def test_test_errors(self):
        model = self.write("m.yaml", MODEL)
        series = self.write("series.yaml", SERIES.replace("0.95x5", "0.95y5"))
        p = self.ctl("test", model, "--series", series)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, series.replace(".", r"\.") + r":7:\d+: ")
        self.assertEqual(p.stdout, "")
        # Usage errors: no series file, a bad model file.
        self.assertEqual(self.ctl("test", model).returncode, 1)
        bad = self.write("bad.yaml", MODEL)
        p = self.ctl("test", bad, "--series", series)
        self.assertEqual(p.returncode, 1)
        self.assertIn("must be defined in a file named bad.yaml", p.stderr)
        p = self.ctl("nosuch")
        self.assertEqual(p.returncode, 1)
        self.assertIn("Unknown verb 'policy nosuch'", p.stderr)


if __name__ == "__main__":
    unittest.main()
