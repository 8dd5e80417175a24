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

    def test_kept_plaintext_is_checked_before_reuse(self):
        # Kept plaintext that is no longer the version's (same size, other bytes; or an extra file
        # beside it) is not served: the rollback decrypts again, from the sealed files.
        d = self.start(", keep_previous_plain: true")
        for i in (1, 2):
            d.ctl("import", "m", self.src(f"v{i}", b"%d" % i * 1000), "--activate")
        kept = os.path.join(d.runtime, "plain", "m", "1")
        mk.wait_for(lambda: os.path.isdir(kept), what="kept plaintext")
        with open(os.path.join(kept, "model.safetensors"), "r+b") as f:
            f.write(b"X")
        d.ctl("rollback", "m")
        self.assertEqual(os.readlink(os.path.join(d.runtime, "serve", "m")), kept)
        with open(os.path.join(kept, "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), b"1" * 1000 + b"model.safetensors")
        d.wait_log("'model.safetensors' does not match its recorded SHA-256); decrypting it again")
        # An extra file in the kept directory would be served too.
        mk.wait_for(lambda: os.path.isdir(os.path.join(d.runtime, "plain", "m", "2")), what="kept plaintext")
        with open(os.path.join(d.runtime, "plain", "m", "2", "extra.safetensors"), "wb") as f:
            f.write(b"planted")
        d.ctl("rollback", "m", "2")
        self.assertEqual(sorted(os.listdir(os.path.join(d.runtime, "plain", "m", "2"))),
                         ["config.json", "model.safetensors"])
        d.wait_log("it holds 'extra.safetensors', which is not a file of the version")
        # Intact kept plaintext is reused as it is (same inode: not decrypted again).
        ino = os.stat(os.path.join(kept, "model.safetensors")).st_ino
        d.ctl("rollback", "m", "1")
        self.assertEqual(os.stat(os.path.join(kept, "model.safetensors")).st_ino, ino)

    def test_plaintext_only_on_memory_backed_file_systems(self):
        # A runtime directory on a disk: sealed versions are not decrypted there, with a reason
        # that names the file system; nothing is activated and no plaintext written.
        disk = tempfile.mkdtemp(prefix="mk-seal-disk-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, disk, True)
        if mk.fs_type(disk) in ("tmpfs", "ramfs"):
            self.skipTest(f"{disk} is memory-backed here")
        ident = self.identity
        self.d = mk.Daemon(f"encryption: {{recipient: {self.recipient}, identity_file: {ident}}}\n",
                           {"m": "model: m\nstorage: {encrypt: true}\n"}, runtime_base=disk)
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="reconcile")
        p = self.d.ctl("import", "m", self.src("v1", b"secret weights"), "--activate", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("refusing to write the plaintext of version 1 to " + os.path.join(disk, "run", "plain"), p.stderr)
        self.assertIn(f"it is on {mk.fs_type(disk).split('/')[0]}", p.stderr)
        self.assertIn("not on a memory-backed file system (tmpfs or ramfs)", p.stderr)
        self.assertEqual(os.listdir(os.path.join(disk, "run", "plain", "m")), [])
        self.assertFalse(os.path.lexists(os.path.join(disk, "run", "serve", "m")))
        self.assertNotIn("quarantined", self.versions()["1"]["state"])

    def test_not_enough_memory_backed_space(self):
        # The plaintext must fit in the runtime directory's tmpfs (here an injected 20 MiB one,
        # 16 MiB of which is the margin): refused before the first byte, the active version untouched.
        d = self.start(env={"MODELKEEPER_TEST_PLAIN_FREE_BYTES": "20MiB"})
        d.ctl("import", "m", self.src("v1", b"small"), "--activate")
        p = d.ctl("import", "m", self.src("v2", b"x" * (4 << 20)), "--activate", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"not enough memory-backed space in {d.runtime} for the plaintext of version 2: "
                      "need 24.1MiB (8.0MiB plus a margin of 16.1MiB), have 20.0MiB", p.stderr)
        self.assertEqual(d.status()[0]["active"], "1")
        self.assertTrue(os.readlink(os.path.join(d.runtime, "serve", "m")).endswith("/plain/m/1"))
        self.assertEqual(sorted(os.listdir(os.path.join(d.runtime, "plain", "m"))), ["1"])
        # A host problem, not the version's: it is not quarantined.
        self.assertNotIn("quarantined", self.versions()["2"]["state"])

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
