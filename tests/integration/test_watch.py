# SPDX-License-Identifier: Apache-2.0
"""The watch: scraping real exporters, rules acting, the rollout analysis (probation) promoting,
rolling back and quarantining, surviving a restart, hot reload of a bad policy, and the daemon's
own metrics textfile."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import mk

NODE_EXPORTER = shutil.which("prometheus-node-exporter")
PROMTOOL = shutil.which("promtool")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=10):
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.read()
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer")


def read(path):
    with open(path) as f:
        return f.read()


def state_json(d, model="m"):
    with open(os.path.join(d.state, "models", model, "state.json")) as f:
        return json.load(f)


class WatchTest(unittest.TestCase):
    def setUp(self):
        self.d = None
        self.server = None
        self.procs = []
        self.tmp = []

    def tearDown(self):
        for p in self.procs:
            p.kill()
            p.wait()
        if self.server:
            self.server.close()
        if self.d:
            self.d.close()
        for t in self.tmp:
            shutil.rmtree(t, ignore_errors=True)

    def src(self, name, content):
        return mk.make_source(os.path.join(self.d.dir, name), content)

    def wait_scraped(self):
        """Until the daemon has scraped the model server's current values (a whole scrape after now)."""
        def count():
            return sum(1 for r in self.server.state()["requests"] if r == "GET /metrics")
        start = count()
        mk.wait_for(lambda: count() >= start + 2, timeout=10, what="two scrapes")

    def versions(self):
        return {v["version"]: v for v in json.loads(self.d.ctl("--json", "versions", "m").stdout)}

    def active(self):
        return self.d.status()[0]["active"]

    # --- a real exporter ---------------------------------------------------------------------

    @unittest.skipUnless(NODE_EXPORTER, "prometheus-node-exporter is not installed")
    def test_node_exporter_rule_exec(self):
        port = free_port()
        ne = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                               "--collector.disable-defaults", "--collector.time", "--collector.loadavg",
                               "--collector.meminfo"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(ne)
        wait_http(f"http://127.0.0.1:{port}/metrics")

        self.d = d = mk.Daemon("", {})
        marker = os.path.join(d.dir, "marker")
        script = os.path.join(d.dir, "action.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\necho \"$MODEL ${{VERSION:-none}}\" >> {marker}\n")
        os.chmod(script, 0o755)
        d.write_model("m", f"""model: m
metrics:
  scrape: {{url: "http://127.0.0.1:{port}/metrics", every: 1s}}
rules:
  - {{name: clock-runs, when: node_time_seconds > 0, action: {{exec: [{script}]}}}}
  - {{name: memory-known, when: node_memory_MemTotal_bytes > 1MiB, for: 2s, action: log}}
  - {{name: no-such-metric, when: node_no_such_metric > 0, action: log}}
""")
        d.start()
        # (The shell creates the file before it writes the line: wait for the line.)
        mk.wait_for(lambda: os.path.exists(marker) and read(marker).endswith("\n"), timeout=15,
                    what="the exec action")
        self.assertEqual(read(marker).strip(), "m none")
        d.wait_log("rule clock-runs inactive -> firing: node_time_seconds > 0 = ", timeout=5)
        logs = d.logs()
        # The journal fields of a rule decision (console form in tests).
        self.assertIn("MODEL=m RULE=clock-runs ACTION=exec REASON=\"node_time_seconds > 0 = ", logs)
        d.wait_log("rule clock-runs acts: exec")
        d.wait_log("exec action of rule clock-runs finished.")
        # `for: 2s`: pending first, then firing.
        d.wait_log("rule memory-known inactive -> pending", timeout=5)
        d.wait_log("rule memory-known pending -> firing", timeout=10)
        self.assertNotIn("rule no-such-metric inactive", d.logs())
        # Fired once per episode: the exec ran once although the rule keeps firing.
        time.sleep(2.5)
        with open(marker) as f:
            self.assertEqual(len(f.read().strip().split("\n")), 1)
        self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(NODE_EXPORTER, "prometheus-node-exporter is not installed")
    def test_target_down_is_up_zero(self):
        port = free_port()
        self.d = d = mk.Daemon("", {"m": f"""model: m
metrics:
  scrape: {{url: "http://127.0.0.1:{port}/metrics", every: 1s, timeout: 500ms}}
rules:
  - {{name: target-down, when: up == 0, action: log}}
  - {{name: target-up, when: up == 1, action: log}}
"""})
        d.start()
        d.wait_log("rule target-down inactive -> firing: up == 0 = 0", timeout=10)
        self.assertIn(f"scraping http://127.0.0.1:{port}/metrics failed", d.logs())
        ne = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                               "--collector.disable-defaults", "--collector.time"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(ne)
        d.wait_log("is up again", timeout=10)
        d.wait_log("rule target-up inactive -> firing: up == 1 = 1", timeout=10)
        d.wait_log("rule target-down firing -> inactive", timeout=10)
        self.assertIsNone(d.proc.poll())

    def test_https_target_with_ca_file(self):
        self.d = d = mk.Daemon("", {})
        www = os.path.join(d.dir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "metrics"), "w") as f:
            f.write("# TYPE tls_ok gauge\ntls_ok 1\n")
        key, cert = os.path.join(d.dir, "key.pem"), os.path.join(d.dir, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        port = free_port()
        srv = subprocess.Popen(["openssl", "s_server", "-quiet", "-WWW", "-accept", f"127.0.0.1:{port}",
                                "-cert", cert, "-key", key], cwd=www,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(srv)
        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        mk.wait_for(listening, what="openssl s_server")
        d.write_model("m", f"""model: m
metrics:
  scrape:
    - {{url: "https://127.0.0.1:{port}/metrics", every: 1s, tls: {{ca_file: {cert}}}}}
    - {{url: "https://localhost:{port}/metrics", every: 1s}}
rules:
  - {{name: tls-ok, when: tls_ok == 1, action: log}}
  - {{name: untrusted-down, when: 'up{{instance="localhost:{port}"}} == 0', action: log}}
""")
        d.start()
        d.wait_log("rule tls-ok inactive -> firing: tls_ok == 1 = 1", timeout=10)
        # The same server without its CA: the certificate is not trusted, the target is down.
        d.wait_log("rule untrusted-down inactive -> firing", timeout=10)
        self.assertRegex(d.logs(), r"scraping https://localhost:\d+/metrics failed: .*certificate")

    def test_textfile_target(self):
        self.d = d = mk.Daemon("", {})
        prom = os.path.join(d.dir, "eval.prom")
        with open(prom, "w") as f:
            f.write("# TYPE eval_accuracy gauge\neval_accuracy{model=\"m\"} 0.5\n")
        d.write_model("m", f"""model: m
metrics:
  scrape: {{url: "file://{prom}", every: 1s}}
rules:
  - {{name: low, when: eval_accuracy < 0.9, action: log}}
""")
        d.start()
        d.wait_log("rule low inactive -> firing: eval_accuracy < 0.9 = 0.5", timeout=10)
        # A broken textfile is a failed scrape (up == 0, the series go stale), not a crash.
        with open(prom + ".tmp", "w") as f:
            f.write("eval_accuracy{model=\"m\" 0.5\n")
        os.rename(prom + ".tmp", prom)
        d.wait_log("rule low firing -> inactive", timeout=10)
        self.assertIn("line 1, column", d.logs())
        self.assertIsNone(d.proc.poll())

    # --- end to end with the stand-in model server ----------------------------------------------

    def start_with_server(self, model_tail, config=""):
        self.d = d = mk.Daemon(config, {}, extra_env={"MODELKEEPER_LOG_LEVEL": "info"})
        self.server = mk.ModelServer(os.path.join(d.runtime, "serve", "m"))
        d.write_model("m", f"""model: m
serve:
  reload: {{http: "POST {self.server.url}/reload"}}
  ready: {{http: "{self.server.url}/ready", timeout: 5s, interval: 100ms}}
metrics:
  scrape: {{url: "{self.server.url}/metrics", every: 1s}}
""" + model_tail)
        d.start()
        return d

    def test_rule_rolls_back_a_regressed_version(self):
        d = self.start_with_server("""rules:
  - {name: accuracy-floor, when: accuracy < 0.9, for: 2s, action: rollback}
""")
        self.server.set(accuracy=0.95)
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        self.assertEqual(self.active(), "2")
        # Version 2 regresses.
        self.server.set(version="2", accuracy=0.5)
        mk.wait_for(lambda: self.active() == "1" and self.server.state()["version"] == "1", timeout=20,
                    what="the automatic rollback")
        logs = d.logs()
        self.assertIn("rule accuracy-floor pending -> firing: accuracy < 0.9 = 0.5", logs)
        self.assertIn("rule accuracy-floor acts: rollback", logs)
        # The rollback's own journal entry names the rule and the value.
        self.assertRegex(logs, r"rolled back to version 1, previously 2 \(rule accuracy-floor: accuracy < 0.9 = 0.5\)"
                               r".*MODEL=m VERSION=1 FROM_VERSION=2 RULE=accuracy-floor ACTION=rollback")
        # Version 1 is fine: the rule goes quiet, and nothing flips back.
        time.sleep(3)
        self.assertEqual(self.active(), "1")
        self.assertEqual(d.stop(), 0)

    def test_held_model_logs_but_does_not_act(self):
        d = self.start_with_server("""rules:
  - {name: accuracy-floor, when: accuracy < 0.9, action: rollback}
""")
        self.server.set(accuracy=0.95)
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        d.ctl("hold", "m")
        self.server.set(version="2", accuracy=0.5)
        d.wait_log("would rollback, but the model is on hold", timeout=10)
        time.sleep(2)
        self.assertEqual(self.active(), "2")
        # Released while the rule still fires: it acts then.
        d.ctl("release", "m")
        mk.wait_for(lambda: self.active() == "1", timeout=10, what="the rollback after release")

    PROBATION = """rollout:
  interval: 1s
  iterations: 3
  threshold: 1
  on_no_data: inconclusive
  checks:
    - {name: accuracy, expr: accuracy, min: baseline(accuracy) - 0.01}
    - {name: errors, expr: errors_total, max: 10}
"""

    def test_probation_promotes(self):
        d = self.start_with_server(self.PROBATION)
        self.server.set(accuracy=0.95, errors_total=0)
        self.wait_scraped()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.wait_log("Model m: version 1 promoted", timeout=15)
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        self.assertEqual(self.versions()["2"]["state"], ["active", "probation"])
        self.assertEqual(state_json(d)["probation"]["version"], "2")
        self.assertEqual(state_json(d)["probation"]["from"], "1")
        # (The model may still be busy a moment after the activation: the server told, gc.)
        mk.wait_for(lambda: d.status()[0]["state"] == "probation", what="status: probation")
        d.wait_log("Model m: version 2 promoted", timeout=15)
        logs = d.logs()
        self.assertIn("baseline(accuracy) = 0.95, from version 1, for version 2", logs)
        self.assertIn("version 2 on probation: 3 rounds every 1s, threshold 1, on_no_data inconclusive", logs)
        self.assertRegex(logs, r"version 2 probation round 1: pass \(passed 1/3, failed 0/1, inconclusive 0\): "
                               r"accuracy: pass, value 0.95, min 0.94; errors: pass, value 0, max 10")
        self.assertIn("POLICY=rollout ACTION=promote", logs)
        # The journal entry comes just before state.json is written.
        mk.wait_for(lambda: state_json(d)["last_good"] == "2", what="state.json")
        st = state_json(d)
        self.assertEqual(st["last_good"], "2")
        self.assertIsNone(st["probation"])
        self.assertEqual(self.versions()["2"]["state"], ["active", "good"])

    def test_probation_fails_rolls_back_and_quarantines(self):
        d = self.start_with_server(self.PROBATION)
        self.server.set(accuracy=0.95, errors_total=0)
        self.wait_scraped()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.wait_log("Model m: version 1 promoted", timeout=15)
        self.server.set(version="2", accuracy=0.80)
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        mk.wait_for(lambda: self.active() == "1" and self.server.state()["version"] == "1", timeout=20,
                    what="the rollback after the failed analysis")
        v = self.versions()
        self.assertEqual(v["2"]["state"], ["previous", "quarantined"])
        self.assertEqual(v["1"]["state"], ["active", "good"])
        logs = d.logs()
        self.assertRegex(logs, r"version 2 probation round 1: fail .* → rollback: accuracy: fail, value 0.8, min 0.94 "
                               r"\(0.8 below min 0.94\)")
        self.assertIn("version 2 quarantined: rollout analysis failed (1 failed round (threshold 1))", logs)
        self.assertRegex(logs, r"MODEL=m VERSION=1 FROM_VERSION=2 RULE=rollout:accuracy ACTION=rollback")
        st = state_json(d)
        self.assertEqual(st["quarantine"], ["2"])
        self.assertIsNone(st["probation"])
        self.assertEqual(st["last_good"], "1")

    def test_recompressed_version_fails_probation(self):
        """A derived version is judged like any other: it fails its probation against its parent's
        baseline, the parent is restored, and the derived version is quarantined, so that a rule
        still firing cannot rebuild and reactivate it in a loop."""
        tmp = tempfile.mkdtemp(prefix="mk-compressor-")
        self.tmp.append(tmp)
        compressor = os.path.join(tmp, "halve.py")
        with open(compressor, "w") as f:
            f.write("#!/usr/bin/python3\nimport os, sys\n"
                    "for n in os.listdir(sys.argv[1]):\n"
                    "    data = open(os.path.join(sys.argv[1], n), 'rb').read()\n"
                    "    open(os.path.join(sys.argv[2], n), 'wb').write(data[::2])\n")
        os.chmod(compressor, 0o755)
        d = self.start_with_server(self.PROBATION + f"""recompress:
  profiles:
    small: {{method: exec, command: [{compressor}, "{{input}}", "{{output}}"]}}
""")
        self.server.set(accuracy=0.95, errors_total=0)
        self.wait_scraped()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.wait_log("Model m: version 1 promoted", timeout=15)
        self.server.set(version="1~small", accuracy=0.6)     # the smaller model is worse
        d.ctl("recompress", "m", "small", timeout=60)
        mk.wait_for(lambda: self.active() == "1" and self.server.state()["version"] == "1", timeout=20,
                    what="the rollback to the parent")
        v = self.versions()
        self.assertEqual(v["1~small"]["state"], ["previous", "quarantined"])
        self.assertEqual(v["1~small"]["origin"], "derived")
        self.assertEqual(v["1"]["state"], ["active", "good"])
        logs = d.logs()
        self.assertIn("baseline(accuracy) = 0.95, from version 1, for version 1~small", logs)
        self.assertRegex(logs, r"version 1~small probation round 1: fail .* accuracy: fail, value 0.6, min 0.94")
        self.assertIn("version 1~small quarantined: rollout analysis failed", logs)
        self.assertRegex(logs, r"MODEL=m VERSION=1 FROM_VERSION=1~small RULE=rollout:accuracy ACTION=rollback")
        st = state_json(d)
        self.assertEqual(st["quarantine"], ["1~small"])
        self.assertEqual(st["last_good"], "1")
        # Building it again is refused until an operator releases it.
        p = d.ctl("recompress", "m", "small", check=False, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("quarantined", p.stderr)
        self.assertEqual(self.active(), "1")
        d.ctl("release", "m", "1~small")
        self.assertNotIn("quarantined", self.versions()["1~small"]["state"])

    def test_probation_survives_restart(self):
        d = self.start_with_server(self.PROBATION.replace("interval: 1s", "interval: 2s")
                                   .replace("iterations: 3", "iterations: 4"))
        self.server.set(accuracy=0.95, errors_total=0)
        self.wait_scraped()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.wait_log("Model m: version 1 promoted", timeout=20)
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        d.wait_log("version 2 probation round 1: pass", timeout=10)
        self.assertEqual(d.stop(), 0)
        st = state_json(d)
        self.assertEqual(st["probation"]["version"], "2")
        self.assertEqual(st["probation"]["engine"]["rollout"]["passed"], 1)
        # The baseline survives with it.
        self.assertEqual(st["probation"]["engine"]["baselines"][0]["samples"][0]["value"], 0.95)
        d.start()
        d.wait_log("probation of version 2 resumed", timeout=10)
        d.wait_log("version 2 probation round 2: pass (passed 2/4", timeout=15)
        d.wait_log("Model m: version 2 promoted", timeout=20)
        self.assertNotIn("probation round 5", d.logs())
        mk.wait_for(lambda: state_json(d)["last_good"] == "2", what="state.json")

    def test_failed_probation_rolls_back_after_restart(self):
        d = self.start_with_server(self.PROBATION)
        self.server.set(accuracy=0.95, errors_total=0)
        self.wait_scraped()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.wait_log("Model m: version 1 promoted", timeout=15)
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        d.wait_log("version 2 probation round 1: pass", timeout=10)
        self.assertEqual(d.stop(), 0)
        # Recorded while it was down: the decision to roll back (as a crash right after it leaves it).
        path = os.path.join(d.state, "models", "m", "state.json")
        st = state_json(d)
        # (and before the quarantine was recorded)
        st["probation"]["rollback"] = {"reason": "rollout analysis failed (test)", "rule": "rollout:accuracy"}
        with open(path, "w") as f:
            json.dump(st, f)
        d.start()
        mk.wait_for(lambda: self.active() == "1", timeout=15, what="the rollback after the restart")
        self.assertIn("RULE=rollout:accuracy ACTION=rollback", d.logs())
        self.assertIn("version 2 quarantined: rollout analysis failed (test)", d.logs())
        self.assertIn("quarantined", self.versions()["2"]["state"])

    def test_probation_paused_while_held(self):
        d = self.start_with_server(self.PROBATION)
        self.server.set(accuracy=0.95, errors_total=0)
        self.wait_scraped()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.wait_log("Model m: version 1 promoted", timeout=15)
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        d.ctl("hold", "m")
        d.wait_log("probation of version 2 paused while the model is on hold", timeout=10)
        time.sleep(4)  # more than the 3 rounds it needs
        self.assertNotIn("version 2 promoted", d.logs())
        self.assertEqual(state_json(d)["probation"]["version"], "2")
        d.ctl("release", "m")
        d.wait_log("Model m: version 2 promoted", timeout=15)

    def test_operator_rollback_ends_probation(self):
        d = self.start_with_server(self.PROBATION.replace("iterations: 3", "iterations: 30"))
        self.server.set(accuracy=0.95, errors_total=0)
        self.wait_scraped()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        d.wait_log("version 2 probation round 1", timeout=10)
        d.ctl("rollback", "m", "1")
        d.wait_log("probation of version 2 ended without a verdict", timeout=5)
        mk.wait_for(lambda: state_json(d)["probation"] is None, what="state.json")
        self.assertNotIn("quarantined", self.versions()["2"]["state"])

    # --- configuration -------------------------------------------------------------------------

    def test_bad_expression_refused_on_reload(self):
        d = self.start_with_server("""rules:
  - {name: low, when: accuracy < 0.9, action: log}
""")
        self.server.set(accuracy=0.5)
        d.wait_log("rule low inactive -> firing", timeout=10)
        with open(os.path.join(d.models_dir, "m.yaml")) as f:
            text = f.read()
        d.write_model("m", text.replace("accuracy < 0.9", "accuracy < < 0.9"))
        d.wait_log("refused", timeout=10)
        self.assertRegex(d.logs(), r"models.d/m.yaml:\d+:\d+: in when: unexpected '<'")
        # The last good policy keeps running: the rule still sees the data.
        self.server.set(accuracy=0.95)
        d.wait_log("rule low firing -> inactive", timeout=10)

    def test_metrics_textfile(self):
        out_dir = tempfile.mkdtemp(prefix="mk-metrics-")
        self.tmp.append(out_dir)
        out = os.path.join(out_dir, "modelkeeper.prom")
        d = self.start_with_server("""rules:
  - {name: low, when: accuracy < 0.9, action: log}
""", config=f"daemon: {{metrics_textfile: {out}}}\n")
        self.server.set(accuracy=0.5)
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.wait_log("rule low inactive -> firing", timeout=10)
        mk.wait_for(lambda: os.path.exists(out) and "state=\"firing\"} 1" in read(out), timeout=30,
                    what="the metrics textfile")
        text = read(out)
        self.assertIn("modelkeeper_models{state=\"ok\"} 1\n", text)
        self.assertIn("modelkeeper_rule_alerts{model=\"m\",rule=\"low\",state=\"firing\"} 1\n", text)
        self.assertIn("modelkeeper_activations_total 1\n", text)
        self.assertIn("modelkeeper_scrape_targets{state=\"up\"} 1\n", text)
        self.assertIn("modelkeeper_scrape_targets{state=\"down\"} 0\n", text)
        self.assertIn("modelkeeper_rules{state=\"firing\"} 1\n", text)
        self.assertIn("modelkeeper_rules{state=\"inactive\"} 0\n", text)
        self.assertIn("modelkeeper_stored_series 2\n", text)  # accuracy and up
        self.assertRegex(text, r"modelkeeper_job_duration_seconds_count\{verb=\"import\"\} 1\n")
        self.assertRegex(text, r"modelkeeper_scrapes_total [1-9]")
        if PROMTOOL:
            p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # Written at a clean stop too, and never left half-written.
        self.assertEqual(d.stop(), 0)
        self.assertEqual(os.listdir(out_dir), ["modelkeeper.prom"])


if __name__ == "__main__":
    unittest.main()
