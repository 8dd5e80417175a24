# SPDX-License-Identifier: Apache-2.0
"""Encryption at rest through the daemon: sealed imports (standard age files), plaintext only in the
runtime directory, the identity's custody, tampering and truncation caught before anything serves,
scrubs quarantining what is damaged, and re-compression of a sealed model."""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

import mk

sys.path.insert(0, os.path.join(mk.SRC, "tests", "numerics"))


def keygen(path):
    out = subprocess.run([mk.CTL, "keygen", "--type", "age", "--out", path], capture_output=True, text=True, check=True)
    return out.stdout.split("recipient: ")[1].strip()


class SealTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mk-seal-")
        self.identity = os.path.join(self.tmp, "id.txt")
        self.recipient = keygen(self.identity)
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, model_extra="", identity=None, env=None, config_extra=""):
        ident = self.identity if identity is None else identity
        ident_line = f", identity_file: {ident}" if ident else ""
        self.d = mk.Daemon(f"encryption: {{recipient: {self.recipient}{ident_line}}}\n{config_extra}",
                           {"m": "model: m\nstorage: {encrypt: true, keep_versions: 5" + model_extra + "}\n"},
                           extra_env=env)
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="reconcile")
        return self.d

    def src(self, name, content):
        return mk.make_source(os.path.join(self.tmp, name), content)

    def store(self, version):
        return os.path.join(self.d.state, "models", "m", "versions", version, "files")

    def versions(self):
        return {v["version"]: v for v in json.loads(self.d.ctl("--json", "versions", "m").stdout)}

    def test_sealed_at_rest_plaintext_only_in_runtime(self):
        d = self.start()
        d.ctl("import", "m", self.src("v1", b"secret weights"), "--activate")
        stored = sorted(os.listdir(self.store("1")))
        self.assertEqual(stored, ["config.json.age", "model.safetensors.age"])
        raw = open(os.path.join(self.store("1"), "model.safetensors.age"), "rb").read()
        self.assertTrue(raw.startswith(b"age-encryption.org/v1\n"))
        self.assertNotIn(b"secret weights", raw)
        # No lock-in: the reference age tool recovers every file with the identity alone.
        if shutil.which("age"):
            out = subprocess.run(["age", "-d", "-i", self.identity, os.path.join(self.store("1"), "model.safetensors.age")],
                                 capture_output=True, check=True).stdout
            self.assertEqual(out, b"secret weightsmodel.safetensors")
        # The model server reads plaintext from the runtime directory, through serve/<model>.
        target = os.readlink(os.path.join(d.runtime, "serve", "m"))
        self.assertEqual(target, os.path.join(d.runtime, "plain", "m", "1"))
        with open(os.path.join(target, "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), b"secret weightsmodel.safetensors")
        mode = stat.S_IMODE(os.stat(os.path.join(target, "model.safetensors")).st_mode)
        self.assertEqual(mode & 0o007, 0, oct(mode))

    def test_plaintext_of_old_versions_is_removed(self):
        d = self.start()
        for i in (1, 2, 3):
            d.ctl("import", "m", self.src(f"v{i}", b"%d" % i), "--activate")
        mk.wait_for(lambda: sorted(os.listdir(os.path.join(d.runtime, "plain", "m"))) == ["3"], what="plaintext gc")

    def test_keep_previous_plain(self):
        d = self.start(", keep_previous_plain: true")
        for i in (1, 2):
            d.ctl("import", "m", self.src(f"v{i}", b"%d" % i), "--activate")
        mk.wait_for(lambda: sorted(os.listdir(os.path.join(d.runtime, "plain", "m"))) == ["1", "2"], what="kept")
        d.ctl("rollback", "m")
        self.assertTrue(os.readlink(os.path.join(d.runtime, "serve", "m")).endswith("/plain/m/1"))

    def tamper(self, version, offset_from_end=None, truncate=None):
        path = os.path.join(self.store(version), "model.safetensors.age")
        data = bytearray(open(path, "rb").read())
        if truncate is not None:
            data = data[:truncate]
        else:
            data[len(data) - offset_from_end] ^= 0x40
        with open(path, "wb") as f:
            f.write(data)

    def test_tampered_and_truncated_are_refused_and_scrubbed(self):
        d = self.start()
        d.ctl("import", "m", self.src("v1", b"one" * 5000), "--activate")
        d.ctl("import", "m", self.src("v2", b"two" * 5000))
        d.ctl("import", "m", self.src("v3", b"three" * 5000))
        self.tamper("2", offset_from_end=100)      # a byte of the last chunk
        self.tamper("3", truncate=200)             # cut inside the payload
        for v, why in (("2", "fails authentication"), ("3", "has 200 bytes")):
            p = d.ctl("rollback", "m", v, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(why, p.stderr)
            self.assertEqual(d.status()[0]["active"], "1")
            self.assertTrue(os.readlink(os.path.join(d.runtime, "serve", "m")).endswith("/plain/m/1"))
            self.assertFalse(os.path.exists(os.path.join(d.runtime, "plain", "m", v)))
        # The failed activations quarantined them (corrupt); a scrub finds the damage at rest too.
        out = d.ctl("scrub", "m").stdout
        self.assertIn("3 versions checked, 2 corrupt", out)
        d.wait_log("version 2 is corrupt or tampered at rest")
        v = self.versions()
        self.assertIn("quarantined", v["2"]["state"])
        self.assertIn("quarantined", v["3"]["state"])
        self.assertNotIn("quarantined", v["1"]["state"])
        # A quarantined version is not activated again until an operator releases it.
        p = d.ctl("rollback", "m", "2", check=False)
        self.assertIn("quarantined", p.stderr)

    def test_wrong_missing_and_exposed_identity(self):
        other = os.path.join(self.tmp, "other.txt")
        keygen(other)
        d = self.start()
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        d.ctl("import", "m", self.src("v2", b"two"))
        d.stop()
        # The wrong key: nothing activated, a clear reason.
        shutil.copy(other, self.identity)
        d.start()
        p = d.ctl("rollback", "m", "2", check=False)
        self.assertIn("does not match", p.stderr)
        self.assertEqual(d.status()[0]["active"], "1")
        d.stop()
        # A key others may read is refused (ssh's rule).
        os.chmod(self.identity, 0o644)
        d.start()
        p = d.ctl("rollback", "m", "2", check=False)
        self.assertIn("readable by nobody else", p.stderr)
        d.stop()
        os.unlink(self.identity)
        d.start()
        p = d.ctl("rollback", "m", "2", check=False)
        self.assertIn("cannot open the age identity", p.stderr)
        self.assertEqual(d.status()[0]["active"], "1")

    def test_update_seals_as_it_downloads(self):
        # A signed release from a file:// repository (the air-gapped path), sealed on the way in.
        key = os.path.join(self.tmp, "release-key")
        subprocess.run([mk.CTL, "keygen", "--type", "ed25519", "--out", key], check=True, capture_output=True)
        repo = os.path.join(self.tmp, "repo")
        src = self.src("rel", b"released weights")
        subprocess.run([mk.CTL, "release", "create", "--model", "m", "--channel", "stable", "--version", "7", src,
                        "--repo", repo], check=True, capture_output=True)
        subprocess.run([mk.CTL, "release", "sign", "--key", key, os.path.join(repo, "models", "m", "stable.json")],
                       check=True, capture_output=True)
        self.d = mk.Daemon(f"trust: {{keys: [{key}.pub]}}\n"
                           f"encryption: {{recipient: {self.recipient}, identity_file: {self.identity}}}\n",
                           {"m": f"model: m\nsource: {{url: \"file://{repo}\", channel: stable}}\n"
                                 "storage: {encrypt: true}\n"})
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="reconcile")
        self.d.ctl("update", "m")
        self.assertEqual(sorted(os.listdir(self.store("7"))), ["config.json.age", "model.safetensors.age"])
        with open(os.path.join(self.d.runtime, "plain", "m", "7", "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), b"released weightsmodel.safetensors")

    def test_identity_from_credentials_directory(self):
        creds = os.path.join(self.tmp, "credentials")
        os.makedirs(creds)
        shutil.copy(self.identity, os.path.join(creds, "modelkeeper-age"))
        d = self.start(identity="", env={"CREDENTIALS_DIRECTORY": creds})
        d.ctl("import", "m", self.src("v1", b"one"), "--activate")
        self.assertTrue(os.path.exists(os.path.join(d.runtime, "plain", "m", "1", "model.safetensors")))

    def test_recompress_a_sealed_model(self):
        import numpy as np
        import st_reference as st
        os.makedirs(os.path.join(self.tmp, "st"))
        rng = np.random.default_rng(1)
        st.write(os.path.join(self.tmp, "st", "model.safetensors"),
                 [("fc.weight", "F32", rng.standard_normal((64, 32)).astype(np.float32)),
                  ("fc.bias", "F32", rng.standard_normal(64).astype(np.float32))])
        self.d = mk.Daemon(f"encryption: {{recipient: {self.recipient}, identity_file: {self.identity}}}\n",
                           {"m": "model: m\nstorage: {encrypt: true}\nrecompress:\n  profiles:\n    int8: {method: int8}\n"})
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="reconcile")
        self.d.ctl("import", "m", os.path.join(self.tmp, "st"), "--activate")
        self.d.ctl("recompress", "m", "int8")
        self.assertEqual(os.listdir(self.store("1~int8")), ["model.safetensors.age"])
        served = os.path.join(self.d.runtime, "plain", "m", "1~int8", "model.safetensors")
        self.assertIn('"fc.weight_scale"', open(served, "rb").read(4096).decode(errors="replace"))
        self.assertIn("ACTION=recompress", self.d.logs())


if __name__ == "__main__":
    unittest.main()
