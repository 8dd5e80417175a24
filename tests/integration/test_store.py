# SPDX-License-Identifier: Apache-2.0
"""The versioned store through the daemon: import, activation, rollback, hold, the model server
reload and readiness gate, quarantine, start-up reconciliation."""

import json
import os
import signal
import subprocess
import unittest

import mk


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.d = None
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.close()
        if self.d:
            self.d.close()

    def start(self, model_yaml, **kw):
        self.d = mk.Daemon("", {"m": "model: m\n" + model_yaml}, **kw)
        self.d.start()
        return self.d

    def versions(self):
        return {v["version"]: v for v in json.loads(self.d.ctl("--json", "versions", "m").stdout)}

    def src(self, name, content=b"weights"):
        return mk.make_source(os.path.join(self.d.dir, name), content)

    def serve_target(self):
        return os.readlink(os.path.join(self.d.runtime, "serve", "m"))

    def test_import_activate_rollback_hold(self):
        d = self.start("storage: {keep_versions: 3}\n")
        out = d.ctl("import", "m", self.src("v1", b"one"), "--activate").stdout
        self.assertIn("version 1 imported and active", out)
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        d.ctl("import", "m", self.src("v3", b"three"))
        v = self.versions()
        self.assertEqual(v["2"]["state"], ["active", "good"])
        self.assertEqual(v["1"]["state"], ["previous"])
        self.assertEqual(v["3"]["state"], [])
        self.assertTrue(self.serve_target().endswith("/versions/2/files"))
        with open(os.path.join(self.serve_target(), "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), b"twomodel.safetensors")

        # Default rollback: to the last good version if it is not active, else previous.
        out = d.ctl("rollback", "m").stdout
        self.assertIn("version 1 is active", out)
        self.assertTrue(self.serve_target().endswith("/versions/1/files"))
        d.wait_log("ACTION=rollback")
        self.assertIn("FROM_VERSION=2", d.logs())
        # To any version in the store, including one never activated.
        d.ctl("rollback", "m", "3")
        self.assertEqual(d.status()[0]["active"], "3")
        p = d.ctl("rollback", "m", "3", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("already active", p.stderr)
        p = d.ctl("rollback", "m", "9", check=False)
        self.assertIn("not (completely) in the store", p.stderr)

        d.ctl("hold", "m")
        self.assertEqual(d.status()[0]["state"], "held")
        self.assertTrue(json.load(open(os.path.join(d.state, "models", "m", "state.json")))["hold"])
        d.ctl("release", "m")
        self.assertEqual(d.status()[0]["state"], "ok")

    def test_gc_keeps_protected_versions(self):
        d = self.start("storage: {keep_versions: 2}\n")
        for i in range(1, 5):
            d.ctl("import", "m", self.src(f"v{i}", b"%d" % i), "--activate")
        mk.wait_for(lambda: set(self.versions()) == {"3", "4"}, what="gc")
        d.wait_log("ACTION=gc")

    def test_serve_exec_reload_and_ready(self):
        marker = "/tmp/mk-reload-marker-%d" % os.getpid()
        script = "/tmp/mk-reload-%d.sh" % os.getpid()
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\necho \"$MODEL $VERSION\" >> {marker}\n")
        os.chmod(script, 0o755)
        try:
            self.d = mk.Daemon("", {})
            self.server = mk.ModelServer(os.path.join(self.d.runtime, "serve", "m"), load_at_start=False)
            self.d.write_model("m", f"model: m\nserve:\n  reload: {{exec: [{script}]}}\n"
                                    f"  ready: {{http: \"{self.server.url}/ready\", timeout: 5s, interval: 100ms}}\n")
            self.d.start()
            # The stand-in server loads when told over HTTP; the exec hook only records. Load it first.
            self.d.ctl("import", "m", self.src("v1"), "--version", "7", "--activate", check=False)
            with open(marker) as f:
                self.assertEqual(f.read().split("\n")[0], "m 7")
        finally:
            for p in (marker, script):
                if os.path.exists(p):
                    os.unlink(p)

    def test_http_reload_and_not_ready_rolls_back_and_quarantines(self):
        self.d = d = mk.Daemon("", {})
        self.server = mk.ModelServer(os.path.join(d.runtime, "serve", "m"), not_ready=["2"])
        d.write_model("m", "model: m\nserve:\n"
                           f"  reload: {{http: \"POST {self.server.url}/v2/repository/models/m/load\"}}\n"
                           f"  ready: {{http: \"{self.server.url}/ready\", timeout: 2s, interval: 100ms}}\n")
        d.start()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        self.assertEqual(self.server.state()["version"], "1")
        p = d.ctl("import", "m", self.src("v2", b"two"), "--activate", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not ready", p.stderr)
        # Back on version 1, the server reloaded it, version 2 is quarantined.
        self.assertEqual(d.status()[0]["active"], "1")
        self.assertTrue(self.serve_target().endswith("/versions/1/files"))
        self.assertEqual(self.server.state()["version"], "1")
        v = self.versions()
        self.assertIn("quarantined", v["2"]["state"])
        self.assertIn("active", v["1"]["state"])
        logs = d.logs()
        self.assertIn("did not become ready", logs)
        self.assertIn("ACTION=quarantine", logs)
        self.assertIn("MODEL=m VERSION=1 FROM_VERSION=2 ACTION=rollback", logs)
        st = json.load(open(os.path.join(d.state, "models", "m", "state.json")))
        self.assertIsNone(st["in_progress"])
        self.assertEqual(st["quarantine"], ["2"])
        d.ctl("release", "m", "2")
        self.assertNotIn("quarantined", self.versions()["2"]["state"])

    def http_model(self, ready_timeout="2s"):
        return ("model: m\nserve:\n"
                f"  reload: {{http: \"POST {self.server.url}/v2/repository/models/m/load\"}}\n"
                f"  ready: {{http: \"{self.server.url}/ready\", timeout: {ready_timeout}, interval: 100ms}}\n")

    def test_server_unreachable_with_new_version_quarantines_it(self):
        # The server wedges loading version 2 (its /ready never answers): version 1 is restored and,
        # since the same server is ready again with it, version 2 is the cause and is quarantined.
        self.d = d = mk.Daemon("", {})
        self.server = mk.ModelServer(os.path.join(d.runtime, "serve", "m"), hang=["2"])
        d.write_model("m", self.http_model())
        d.start()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        p = d.ctl("import", "m", self.src("v2", b"two"), "--activate", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(d.status()[0]["active"], "1")
        self.assertIn("quarantined", self.versions()["2"]["state"])
        self.assertIn("the model server was unreachable with version 2 and is ready again with version 1",
                      d.logs())
        self.assertIn("MODEL=m VERSION=2 FROM_VERSION=1 ACTION=quarantine", d.logs())

    def test_server_down_is_not_the_versions_fault(self):
        # The server is down for everyone: version 2 is switched back, but nothing is quarantined.
        self.d = d = mk.Daemon("", {})
        self.server = mk.ModelServer(os.path.join(d.runtime, "serve", "m"))
        d.write_model("m", self.http_model(ready_timeout="1s"))
        d.start()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        self.server.close()
        self.server = None
        p = d.ctl("import", "m", self.src("v2", b"two"), "--activate", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn("quarantined", self.versions()["2"]["state"])
        self.assertTrue(self.serve_target().endswith("/versions/1/files"))
        self.assertNotIn("ACTION=quarantine", d.logs())

    def test_reconcile_at_start(self):
        d = self.start("")
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.ctl("import", "m", self.src("v2", b"two"), "--activate")
        self.assertEqual(d.stop(), 0)
        store = os.path.join(d.state, "models", "m")
        # A crash between the current flip and the serve flip, abandoned staging, a bad state.json.
        os.remove(os.path.join(store, "current"))
        os.symlink("versions/1", os.path.join(store, "current"))
        os.makedirs(os.path.join(store, "staging", "import-9", "files"))
        d.start()
        mk.wait_for(lambda: "store repaired at start-up" in d.logs(), what="reconcile")
        self.assertTrue(self.serve_target().endswith("/versions/1/files"))
        self.assertFalse(os.path.exists(os.path.join(store, "staging", "import-9")))
        self.assertEqual(d.status()[0]["active"], "1")
        self.assertIn("following the store", d.logs())
        d.stop()
        with open(os.path.join(store, "state.json"), "w") as f:
            f.write("{not json")
        d.start()
        mk.wait_for(lambda: "rebuilding it from the store" in d.logs(), what="rebuild")
        mk.wait_for(lambda: d.status()[0]["active"] == "1", what="state from links")

    def test_not_enough_space(self):
        d = self.start("storage: {min_free: 1GiB}\n", extra_env={"MODELKEEPER_TEST_FREE_BYTES": "100MiB"})
        p = d.ctl("import", "m", self.src("v1"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not enough free space", p.stderr)
        self.assertEqual(self.versions(), {})

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a client as another user")
    def test_non_admin_cannot_roll_back(self):
        self.d = d = mk.Daemon("daemon: {socket_group: nogroup}\n", {"m": "model: m\n"})
        d.start()
        d.ctl("import", "m", self.src("v1"), "--activate")
        d.ctl("import", "m", self.src("v2"), "--activate")
        os.chmod(d.dir, 0o755)
        os.chmod(d.runtime, 0o755)
        p = d.ctl("rollback", "m", user="nobody", check=False)
        self.assertIn("access denied", p.stderr)
        self.assertEqual(d.status()[0]["active"], "2")
        self.assertIn("1", d.ctl("versions", "m", user="nobody").stdout)


if __name__ == "__main__":
    unittest.main()
