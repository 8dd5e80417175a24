# SPDX-License-Identifier: Apache-2.0
"""modelkeeperd as a process: the systemd notify protocol, reloads, signals, the control API."""

import os
import signal
import subprocess
import time
import unittest

import mk

MODEL_A = """model: a
source: {url: "https://models.example.com/", channel: stable}
"""
MODEL_A2 = """model: a
source: {url: "https://other.example.com/", channel: beta}
"""
MODEL_B = "model: b\n"
CONFIG = "trust: {keys: [/nonexistent/release.pub]}\n"


class DaemonTest(unittest.TestCase):
    def setUp(self):
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.close()

    def test_ready_status_watchdog_and_stop(self):
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A}, watchdog_usec=400000)
        d.start(wait_ready=False)
        ready = d.wait_notify("READY=1")
        # READY=1 promises the control socket exists.
        self.assertTrue(os.path.exists(d.socket))
        # STATUS= carries a one-line summary (in the same or a following message).
        status = [m["STATUS"] for m in d.messages if "STATUS" in m]
        self.assertTrue(any("1 model" in s for s in status), d.messages)
        # WATCHDOG=1 within the interval (sd-event pings at half of WATCHDOG_USEC).
        t0 = time.monotonic()
        d.wait_notify("WATCHDOG=1", timeout=1.0)
        self.assertLess(time.monotonic() - t0, 0.5)
        d.wait_notify("WATCHDOG=1", timeout=1.0)
        # SIGTERM: STOPPING=1 and a clean exit 0, quickly.
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1")
        self.assertEqual(d.proc.wait(5), 0)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertFalse(os.path.exists(d.socket))

    def test_sighup_with_broken_model_keeps_old_configuration(self):
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A}, extra_env={"MODELKEEPER_LOG_LEVEL": "info"})
        d.start()
        before = d.ctl("status").stdout
        self.assertIn("a ", before)
        d.write_model("a", "model: a\nsource: {url: https://x/, channel: [oops}\n")
        d.signal(signal.SIGHUP)
        d.wait_notify("RELOADING=1")
        msg = d.wait_notify("READY=1")
        self.assertIsNone(d.proc.poll())
        # The error names the file, line and column.
        self.assertIn("models.d/a.yaml:2:", d.logs())
        self.assertIn("refused", d.logs())
        # The old configuration is still what the daemon serves.
        props = d.ctl("status").stdout
        self.assertIn("a ", props)
        out = subprocess.run(["busctl", f"--address=unix:path={d.socket}", "call", "dev.modelkeeper.Manager1",
                              "/dev/modelkeeper/Manager1", "dev.modelkeeper.Manager1", "GetModel", "s", "a"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("https://models.example.com/", out.stdout)
        self.assertIn("stable", out.stdout)
        self.assertEqual(d.stop(), 0)

    def test_reload_applies_per_model_changes(self):
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A, "b": MODEL_B}, extra_env={"MODELKEEPER_LOG_LEVEL": "info"})
        d.start()
        self.assertEqual([m["model"] for m in d.status()], ["a", "b"])
        d.write_model("a", MODEL_A2)
        d.remove_model("b")
        d.write_model("c", "model: c\n")
        d.ctl("reload")
        self.assertEqual([m["model"] for m in d.status()], ["a", "c"])
        self.assertIn("Model a: configuration changed", d.logs())
        self.assertIn("Model b is no longer configured", d.logs())
        self.assertIn("Model c loaded", d.logs())

    def test_broken_main_file_on_reload_keeps_everything(self):
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A})
        d.start()
        with open(d.config_path, "w") as f:
            f.write("daemon:\n  max_jobs: lots\n")
        p = d.ctl("reload", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("refused", p.stderr)
        self.assertIn("modelkeeper.yaml:2:13: invalid number 'lots'", d.logs())
        self.assertEqual([m["model"] for m in d.status()], ["a"])
        self.assertIsNone(d.proc.poll())

    def test_models_directory_is_watched(self):
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A})
        d.start()
        d.write_model("b", MODEL_B)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if [m["model"] for m in d.status()] == ["a", "b"]:
                break
            time.sleep(0.1)
        self.assertEqual([m["model"] for m in d.status()], ["a", "b"])

    def test_broken_model_at_startup_is_left_out(self):
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A, "b": "model: b\nstorage: {keep_versions: 0}\n"})
        d.start()
        self.assertEqual([m["model"] for m in d.status()], ["a"])
        self.assertIn("b.yaml:2:26: 0 out of range [2, 1000]", d.logs())

    def test_broken_main_file_at_startup_fails(self):
        self.d = d = mk.Daemon("daemon: {max_jobs: x}\n")
        d.start(wait_ready=False)
        self.assertNotEqual(d.proc.wait(5), 0)
        self.assertIn("modelkeeper.yaml:1:20: invalid number 'x'", d.logs())

    def test_control_json_and_busctl_introspect(self):
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A})
        d.start()
        # Right after start each model reconciles its store (an agent job), then it is idle.
        mk.wait_for(lambda: d.status()[0]["state"] == "idle", what="reconcile to finish")
        self.assertEqual(d.status(), [{"model": "a", "state": "idle", "active": None, "previous": None, "job": None}])
        p = subprocess.run(["busctl", f"--address=unix:path={d.socket}", "introspect", "dev.modelkeeper.Manager1",
                            "/dev/modelkeeper/Manager1"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        for member in ("ListModels", "GetModel", "Reload", "JobProgress"):
            self.assertIn(member, p.stdout)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a client as another user")
    def test_non_admin_may_read_but_not_change(self):
        self.d = d = mk.Daemon("daemon: {socket_group: nogroup}\n" + CONFIG, {"a": MODEL_A})
        d.start()
        st = os.stat(d.socket)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        os.chmod(d.dir, 0o755)
        os.chmod(d.runtime, 0o755)
        p = d.ctl("status", user="nobody")
        self.assertIn("a ", p.stdout)
        p = d.ctl("reload", user="nobody", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("access denied", p.stderr)
        self.assertIn("Refused Reload from uid", d.logs())

    def test_ctl_without_daemon(self):
        p = subprocess.run([mk.CTL, "--socket", "/nonexistent/control", "status"], capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("modelkeeperd is not running", p.stderr)

    def real_key_config(self, d):
        subprocess.run([mk.CTL, "keygen", "--type", "ed25519", "--out", os.path.join(d.dir, "k")], check=True,
                       capture_output=True)
        with open(d.config_path, "w") as f:
            f.write("trust: {keys: [k.pub]}\n")

    def test_check_config(self):
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A})
        self.real_key_config(d)
        p = subprocess.run([mk.DAEMON, "--config", d.config_path, "--check-config"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("OK, 1 model", p.stdout)
        d.write_model("b", "model: b\nrules: [{name: r, when: up, action: explode}]\n")
        p = subprocess.run([mk.DAEMON, "--config", d.config_path, "--check-config"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("b.yaml:2:37: invalid action 'explode'", p.stderr)

    def test_check_config_references(self):
        # Valid YAML pointing at a world that is not there: --check-config says so and fails; the
        # daemon itself starts and warns (a file may appear later).
        self.d = d = mk.Daemon(CONFIG, {"a": MODEL_A})
        with open(os.path.join(d.dir, "garbage.pub"), "w") as f:
            f.write("not a key\n")
        with open(d.config_path, "w") as f:
            f.write("trust: {keys: [garbage.pub]}\n")
        d.write_model("b", "model: b\nserve: {reload: {exec: [/nonexistent/reload-b]}}\n")
        p = subprocess.run([mk.DAEMON, "--config", d.config_path, "--check-config"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("trust.keys: " + os.path.join(d.dir, "garbage.pub") + ": not a PEM file", p.stderr)
        self.assertIn("b.yaml: serve.reload.exec: /nonexistent/reload-b: No such file or directory", p.stderr)
        d.start()
        self.assertIn("serve.reload.exec: /nonexistent/reload-b", d.logs())

    def test_version_and_help(self):
        for binary in (mk.DAEMON, mk.CTL, mk.AGENT):
            p = subprocess.run([binary, "--version"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0)
            self.assertIn("0.", p.stdout)
            p = subprocess.run([binary, "--help"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0)


if __name__ == "__main__":
    unittest.main()
