# SPDX-License-Identifier: Apache-2.0
"""Signed updates over real HTTPS on 127.0.0.1: the attack and fault suite (issue: releases).

Every case goes through the daemon as a user's would (`modelkeeperctl update`), against a real
TLS server (tests/tools/repo-server.py) with a throwaway CA. A refused or failed update must
leave nothing kept or activated, the old version still serving, nothing in staging/, and a
precise REASON (naming the keys that signed, once the signatures verified)."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import mk

TOOLS = mk.TOOLS
RELEASE_TOOL = os.path.join(mk.BUILD, "tests", "release-tool")


def run(*cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError(f"{cmd} failed: {p.stdout}{p.stderr}")
    return p


def keyid(key):
    """The keyid of KEY (its .pub): hex SHA-256 of the DER SubjectPublicKeyInfo."""
    with open(key + ".pub") as f:
        der = base64.b64decode("".join(line for line in f.read().splitlines() if not line.startswith("-----")))
    return hashlib.sha256(der).hexdigest()


class Repo:
    """A repository directory served over HTTPS, and the publisher's tools."""

    def __init__(self, base, pki, client_ca=None):
        self.root = os.path.join(base, "repo")
        os.makedirs(self.root, exist_ok=True)
        self.rules_path = os.path.join(base, "rules.json")
        self.rules([])
        self.pki = pki
        self.client_ca = client_ca
        self.port = 0
        self.serve("server")
        self.url = f"https://127.0.0.1:{self.port}/"
        self.work = os.path.join(base, "publish")

    def serve(self, cert):
        """(Re)start the server with pki/CERT.crt on the same port (same URL for the daemon)."""
        cmd = ["/usr/bin/python3", os.path.join(TOOLS, "repo-server.py"), "--root", self.root,
               "--cert", os.path.join(self.pki, cert + ".crt"), "--key", os.path.join(self.pki, cert + ".key"),
               "--rules", self.rules_path, "--port", self.port]
        if self.client_ca:
            cmd += ["--client-ca", self.client_ca]
        self.proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def restart(self, cert):
        self.close()
        self.serve(cert)

    def blob_path(self, data):
        return os.path.join(self.root, "blobs", "sha256", hashlib.sha256(data).hexdigest())

    def rules(self, rules):
        with open(self.rules_path + ".tmp", "w") as f:
            json.dump(rules, f)
        os.rename(self.rules_path + ".tmp", self.rules_path)

    def doc_path(self, model="m", channel="stable"):
        return os.path.join(self.root, "models", model, channel + ".json")

    def publish(self, version, files, keys, model="m", channel="stable", expires="30d", percent=100, path_model=None):
        src = os.path.join(self.work, f"v{version}-{time.monotonic_ns()}")
        os.makedirs(src)
        for name, data in files.items():
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
        run(mk.CTL, "release", "create", "--model", model, "--channel", channel, "--version", version,
            "--expires", expires, "--rollout-percent", percent, src, "--repo", self.root)
        doc = self.doc_path(model, channel)
        for k in keys:
            run(mk.CTL, "release", "sign", "--key", k, doc)
        if path_model and path_model != model:
            os.makedirs(os.path.dirname(self.doc_path(path_model, channel)), exist_ok=True)
            os.replace(doc, self.doc_path(path_model, channel))
        return doc

    def envelope(self, model="m", channel="stable"):
        with open(self.doc_path(model, channel)) as f:
            return json.load(f)

    def write_envelope(self, env, model="m", channel="stable"):
        with open(self.doc_path(model, channel), "w") as f:
            json.dump(env, f)

    def requests(self, path):
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=os.path.join(os.path.dirname(self.rules_path), "..", "pki", "ca.crt"))
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(f"{self.url}_count?path={path}", context=ctx, timeout=5) as r:
            return int(r.read())

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class UpdateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="mk-update-")
        cls.pki = os.path.join(cls.base, "pki")
        run("sh", os.path.join(TOOLS, "make-test-pki.sh"), cls.pki)
        cls.keys = {}
        for name, kind in (("k1", "ed25519"), ("k2", "p256"), ("evil", "ed25519")):
            path = os.path.join(cls.base, name)
            run(mk.CTL, "keygen", "--type", kind, "--out", path)
            cls.keys[name] = path

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="case-", dir=self.base)
        self.repo = None
        self.d = None

    def tearDown(self):
        if self.d:
            self.d.close()
        if self.repo:
            self.repo.close()

    def model_file(self, tls=None, source_extra="", model_extra=""):
        tls = tls if tls is not None else f"{{ca_file: {self.pki}/ca.crt}}"
        return (f"model: m\nsource:\n  url: \"{self.repo.url}\"\n  channel: stable\n"
                f"  tls: {tls}\n  retries: 2\n  retry_backoff: 100ms\n  retry_backoff_max: 300ms\n"
                f"{source_extra}{model_extra}")

    def start(self, trust=("k1",), threshold=1, source_extra="", client_ca=None, tls=None, model_extra="", env=None):
        self.repo = Repo(self.tmp, self.pki, client_ca=client_ca)
        keys = ", ".join(self.keys[k] + ".pub" for k in trust)
        self.d = mk.Daemon(f"trust: {{keys: [{keys}], threshold: {threshold}}}\n",
                           {"m": self.model_file(tls, source_extra, model_extra)}, extra_env=env)
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="start-up reconcile")
        return self.d

    def reconfigure(self, **kw):
        """Change the model file (e.g. its TLS options) and reload the daemon."""
        self.d.write_model("m", self.model_file(**kw))
        self.d.ctl("reload")
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="reload")

    def update(self, check=True):
        return self.d.ctl("update", "m", check=check)

    def versions(self):
        return {v["version"]: v for v in json.loads(self.d.ctl("--json", "versions", "m").stdout)}

    def install_v1(self):
        self.repo.publish(1, {"model.bin": b"one" * 1000}, [self.keys["k1"]])
        out = self.update().stdout
        self.assertIn("version 1 installed and active", out)

    def staging(self):
        path = os.path.join(self.d.state, "models", "m", "staging")
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def assert_staging_empty(self):
        # A refusal is permanent: nothing of the refused release stays behind (only transient
        # failures keep a partial download, to resume).
        self.assertEqual(self.staging(), [])

    def assert_refused(self, *needles, logged="release refused", active="1", versions=None, signed_by=None,
                       version=None):
        """One update that must fail: each needle in its reason; nothing kept or activated (active
        still serves, the store holds versions (default: only active)), staging empty. signed_by
        (key names): the reason names exactly these keys as the signers; version: the journal's
        refusal entry carries VERSION=version."""
        p = self.update(check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        for n in needles:
            self.assertIn(n, p.stderr)
        self.assert_unchanged(active, versions)
        if logged:
            self.d.wait_log(logged)
        if signed_by is not None:
            ids = ", ".join(keyid(self.keys[k]) for k in signed_by)
            self.assertIn(f"(signed by keyid{'s' if len(signed_by) > 1 else ''} {ids}, {len(signed_by)} of ", p.stderr)
        if version is not None:
            self.d.wait_log(f"VERSION={version} ACTION=refuse")
        return p.stderr

    def assert_unchanged(self, active="1", versions=None):
        # Nothing kept or activated: the active version serves, no new version, empty staging.
        self.assertEqual(self.d.status()[0]["active"], active)
        self.assertEqual(sorted(self.versions()), versions or [active])
        target = os.readlink(os.path.join(self.d.runtime, "serve", "m"))
        self.assertTrue(target.endswith(f"/versions/{active}/files"), target)
        self.assert_staging_empty()

    # --- the good path and resumption ------------------------------------------------------

    def test_update_installs_verifies_and_records(self):
        self.start()
        self.install_v1()
        self.d.wait_log("ACTION=verify")
        self.assertIn("release 1 verified and installed", self.d.logs())
        st = json.load(open(os.path.join(self.d.state, "models", "m", "state.json")))
        self.assertEqual(st["high_water"], {"stable": 1})
        self.assertEqual(len(st["high_water_content"]["stable"]), 64)
        self.assertIn("up to date: version 1", self.update().stdout)
        # The verified release is kept as provenance.
        with open(os.path.join(self.d.state, "models", "m", "versions", "1", "release.json")) as f:
            self.assertEqual(json.load(f)["payloadType"], "application/vnd.in-toto+json")

    def test_scheduled_checks_and_hold(self):
        # No operator: the timer finds version 1 soon after start. On hold, the timer finds
        # nothing (a held model takes no automatic action); released, the next check installs 2.
        self.start(source_extra="  check_every: 10s\n  jitter: 0s\n")
        self.repo.publish(1, {"model.bin": b"one" * 1000}, [self.keys["k1"]])
        mk.wait_for(lambda: self.d.status()[0]["active"] == "1", timeout=15, what="scheduled update to 1")
        self.d.ctl("hold", "m")
        self.repo.publish(2, {"model.bin": b"two" * 1000}, [self.keys["k1"]])
        time.sleep(12)
        self.assertEqual(self.d.status()[0]["active"], "1")
        self.assertEqual(sorted(self.versions()), ["1"])
        self.d.ctl("release", "m")
        mk.wait_for(lambda: self.d.status()[0]["active"] == "2", timeout=15, what="scheduled update to 2")

    def test_resume_after_cut(self):
        self.start()
        self.repo.rules([{"match": "^/blobs/", "drop": [1, 100000]}])
        self.repo.publish(1, {"model.bin": os.urandom(3 * 1024 * 1024)}, [self.keys["k1"]])
        self.update()
        self.assertEqual(sorted(self.versions()), ["1"])

    def test_server_ignores_range_after_cut(self):
        self.start()
        self.repo.rules([{"match": "^/blobs/", "drop": [1, 50000], "norange": True}])
        self.repo.publish(1, {"model.bin": os.urandom(1024 * 1024)}, [self.keys["k1"]])
        self.update()

    def test_wrong_content_range_then_resume(self):
        self.start()
        self.repo.rules([{"match": "^/blobs/", "drop": [1, 50000], "badrange": [2, "start"]}])
        self.repo.publish(1, {"model.bin": os.urandom(1024 * 1024)}, [self.keys["k1"]])
        self.update()

    def test_resume_after_agent_crash(self):
        # The agent is killed mid-download (the daemon stops); the next start resumes from staging.
        self.start()
        data = os.urandom(4 * 1024 * 1024)
        self.repo.rules([{"match": "^/blobs/", "mode": "slow", "bps": 2 * 1024 * 1024}])
        self.repo.publish(1, {"model.bin": data}, [self.keys["k1"]])
        p = subprocess.Popen([mk.CTL, "--socket", self.d.socket, "update", "m"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        staging = os.path.join(self.d.state, "models", "m", "staging", "fetch-1", "files", "model.bin")
        mk.wait_for(lambda: os.path.exists(staging) and os.path.getsize(staging) > 256 * 1024, what="partial download")
        self.assertEqual(self.d.stop(), 0)
        p.wait()
        partial = os.path.getsize(staging)
        self.assertGreater(partial, 0)
        self.repo.rules([])
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="reconcile")
        self.update()
        self.assertIn("ACTION=download-resume", self.d.logs())
        with open(os.path.join(self.d.state, "models", "m", "versions", "1", "files", "model.bin"), "rb") as f:
            self.assertEqual(f.read(), data)

    def test_sealed_resume_keeps_finished_files(self):
        # Sealing as it downloads: the file being sealed when the agent is stopped starts over
        # (its key was only in the agent's memory), the files sealed before are not fetched again.
        identity = os.path.join(self.tmp, "identity")
        out = run(mk.CTL, "keygen", "--type", "age", "--out", identity).stdout
        recipient = out.split("recipient: ")[1].strip()
        self.repo = Repo(self.tmp, self.pki)
        self.d = mk.Daemon(f"trust: {{keys: [{self.keys['k1']}.pub]}}\n"
                           f"encryption: {{recipient: {recipient}, identity_file: {identity}}}\n",
                           {"m": self.model_file(model_extra="storage: {encrypt: true}\n")})
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="start-up reconcile")
        first, second = os.urandom(256 * 1024), os.urandom(4 * 1024 * 1024)
        second_path = "/blobs/sha256/" + hashlib.sha256(second).hexdigest()
        first_path = "/blobs/sha256/" + hashlib.sha256(first).hexdigest()
        self.repo.rules([{"match": "^" + second_path, "mode": "slow", "bps": 1024 * 1024}])
        self.repo.publish(1, {"a.bin": first, "b.bin": second}, [self.keys["k1"]])
        p = subprocess.Popen([mk.CTL, "--socket", self.d.socket, "update", "m"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        staging = os.path.join(self.d.state, "models", "m", "staging", "fetch-1")
        partial = os.path.join(staging, "files", "b.bin.age")
        mk.wait_for(lambda: os.path.exists(partial) and os.path.getsize(partial) > 256 * 1024, what="b.bin under way")
        self.assertTrue(os.path.exists(os.path.join(staging, "sealed-a.bin")))
        self.assertEqual(self.d.stop(), 0)
        p.communicate()
        self.assertEqual(self.repo.requests(first_path), 1)
        self.repo.rules([])
        self.d.start()
        mk.wait_for(lambda: self.d.status()[0]["state"] != "busy", what="reconcile")
        self.update()
        self.assertIn("'a.bin' was sealed and checked before the cut; not fetched again", self.d.logs())
        self.assertEqual(self.repo.requests(first_path), 1)
        version = os.path.join(self.d.state, "models", "m", "versions", "1")
        self.assertEqual(sorted(os.listdir(version)), ["files", "meta.json", "release.json"])
        self.assertEqual(sorted(os.listdir(os.path.join(version, "files"))), ["a.bin.age", "b.bin.age"])
        with open(os.path.join(version, "meta.json")) as f:
            meta = json.load(f)
        sizes = {f["name"]: (f["size"], f["sha256"]) for f in meta["files"]}
        self.assertEqual(sizes["a.bin"], (len(first), hashlib.sha256(first).hexdigest()))
        plain = os.path.join(self.d.runtime, "plain", "m", "1")
        for name, data in (("a.bin", first), ("b.bin", second)):
            with open(os.path.join(plain, name), "rb") as f:
                self.assertEqual(f.read(), data)

    # --- the signed document ---------------------------------------------------------------

    def test_payload_byte_flipped(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        env = self.repo.envelope()
        payload = bytearray(base64.b64decode(env["payload"]))
        payload[payload.index(b'"version"') + 11] ^= 0x01
        env["payload"] = base64.b64encode(bytes(payload)).decode()
        self.repo.write_envelope(env)
        self.assert_refused("signature", f"trusted key {keyid(self.keys['k1'])} does not verify")

    def test_envelope_tampered(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        env = self.repo.envelope()
        env["payloadType"] = "application/json"
        self.repo.write_envelope(env)
        self.assert_refused("changed after signing")

    def test_unsigned(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [])
        self.assert_refused("not signed")

    def test_untrusted_key(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["evil"]])
        self.assert_refused("0 of 1")

    def test_threshold_not_met_same_key_twice(self):
        self.start(trust=("k1", "k2"), threshold=2)
        self.repo.publish(1, {"model.bin": b"one"}, [self.keys["k1"], self.keys["k2"]])
        self.update()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        env = self.repo.envelope()
        env["signatures"] = env["signatures"] * 2  # duplicate signatures count once
        self.repo.write_envelope(env)
        self.assert_refused("1 of 2")

    def test_unknown_payload_type(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [])
        env = self.repo.envelope()
        payload = os.path.join(self.tmp, "payload")
        with open(payload, "wb") as f:
            f.write(base64.b64decode(env["payload"]))
        out = run(RELEASE_TOOL, "envelope", "application/x-other", payload).stdout
        with open(self.repo.doc_path(), "w") as f:
            f.write(out)
        run(RELEASE_TOOL, "dsse-sign", self.keys["k1"], self.repo.doc_path())
        self.assert_refused("payloadType", signed_by=["k1"])

    def test_unknown_key_type_in_trust(self):
        rsa = os.path.join(self.tmp, "rsa.pem")
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa)
        run("openssl", "pkey", "-in", rsa, "-pubout", "-out", rsa + ".pub")
        self.keys["rsa"] = rsa
        try:
            self.start(trust=("rsa",))
        finally:
            del self.keys["rsa"]
        self.repo.publish(1, {"model.bin": b"one"}, [])
        p = self.update(check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("RSA", p.stderr)
        self.assertEqual(self.versions(), {})
        self.assert_staging_empty()

    def test_expired(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]], expires="1s")
        time.sleep(2.1)
        self.assert_refused("expired", signed_by=["k1"], version=2)

    def test_downgrade_and_same_version_other_content(self):
        self.start()
        self.repo.publish(3, {"model.bin": b"three"}, [self.keys["k1"]])
        self.update()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        self.assert_refused("version 2 is lower than version 3", "downgrade refused", active="3", signed_by=["k1"],
                            version=2)
        self.repo.publish(3, {"model.bin": b"three, but other"}, [self.keys["k1"]])
        self.assert_refused("version 3 was already accepted with other files", active="3", signed_by=["k1"],
                            version=3)
        with open(os.path.join(self.d.runtime, "serve", "m", "model.bin"), "rb") as f:
            self.assertEqual(f.read(), b"three")

    def test_model_or_channel_mismatch(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]], model="other", path_model="m")
        self.assert_refused("model 'other'", signed_by=["k1"], version=2)
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]], channel="beta")
        os.replace(self.repo.doc_path(channel="beta"), self.repo.doc_path())
        self.assert_refused("channel 'beta'", signed_by=["k1"])

    def test_refusal_names_every_signer(self):
        # Threshold 2 of 2: a signed release refused by a later check names both keys.
        self.start(trust=("k1", "k2"), threshold=2)
        self.repo.publish(1, {"model.bin": b"one"}, [self.keys["k1"], self.keys["k2"]])
        self.update()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k2"], self.keys["k1"]], model="other",
                          path_model="m")
        reason = self.assert_refused("model 'other'", signed_by=["k2", "k1"], version=2)
        self.assertIn("2 of 2 needed", reason)

    def test_file_larger_than_signed(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two" * 100}, [self.keys["k1"]])
        self.repo.rules([{"match": "^/blobs/", "mode": "extra", "bytes": 100000}])
        self.assert_refused("more data than its signed size of 300 bytes", signed_by=["k1"], version=2)
        self.repo.rules([{"match": "^/blobs/", "mode": "endless"}])
        self.assert_refused("more data than its signed size", signed_by=["k1"])

    def test_blob_flipped_after_signing(self):
        # Substituted content of the signed size: the SHA-256 after the download catches it.
        self.start()
        self.install_v1()
        data = os.urandom(256 * 1024)
        self.repo.publish(2, {"model.bin": data}, [self.keys["k1"]])
        blob = self.repo.blob_path(data)
        with open(blob, "r+b") as f:
            f.seek(len(data) // 2)
            f.write(bytes([data[len(data) // 2] ^ 0x01]))
        self.assertEqual(os.path.getsize(blob), len(data))
        self.assert_refused("SHA-256", "does not match the signed " + hashlib.sha256(data).hexdigest(),
                            signed_by=["k1"], version=2)
        with open(os.path.join(self.d.runtime, "serve", "m", "model.bin"), "rb") as f:
            self.assertEqual(f.read(), b"one" * 1000)
        self.assertNotIn("release 2 verified", self.d.logs())

    def test_document_over_cap(self):
        self.start(source_extra="  max_release_size: 2KiB\n")
        self.install_v1()
        self.repo.publish(2, {f"f{i}.bin": b"x" for i in range(12)}, [self.keys["k1"]])
        self.assertGreater(os.path.getsize(self.repo.doc_path()), 2048)
        self.assert_refused("larger than source.max_release_size")

    def test_hostile_file_names(self):
        self.start()
        self.install_v1()
        for bad in ("../evil", "/etc/passwd", "a\u0000b", "a\nb", "dup"):
            self.repo.publish(2, {"model.bin": b"two", "dup": b"d"}, [])
            env = self.repo.envelope()
            st = json.loads(base64.b64decode(env["payload"]))
            if bad == "dup":
                st["predicate"]["files"].append(dict(st["predicate"]["files"][0]))
                st["subject"].append(dict(st["subject"][0]))
            else:
                st["predicate"]["files"][0]["name"] = bad
                st["subject"][0]["name"] = bad
            payload = os.path.join(self.tmp, "payload")
            with open(payload, "w") as f:
                json.dump(st, f)
            with open(self.repo.doc_path(), "w") as f:
                f.write(run(RELEASE_TOOL, "envelope", "application/vnd.in-toto+json", payload).stdout)
            run(RELEASE_TOOL, "dsse-sign", self.keys["k1"], self.repo.doc_path())
            self.assert_refused(signed_by=["k1"])

    # --- the transport ---------------------------------------------------------------------

    def test_slow_retrieval(self):
        self.start(source_extra="  low_speed_limit: 100KiB\n  low_speed_time: 1s\n")
        self.install_v1()
        self.repo.rules([{"match": "^/blobs/", "mode": "slow", "bps": 1000}])
        self.repo.publish(2, {"model.bin": os.urandom(1024 * 1024)}, [self.keys["k1"]])
        p = self.update(check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("slow", p.stderr.lower())
        self.d.wait_log("update check failed")
        # A transport failure, not a refusal: the partial download stays to resume later.
        self.assertEqual(self.d.status()[0]["active"], "1")
        self.assertEqual(sorted(self.versions()), ["1"])
        self.assertEqual(self.staging(), ["fetch-2"])

    def test_redirect_loop_and_redirect_to_http(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        self.repo.rules([{"match": "^/models/", "mode": "redirect_loop"}])
        self.assert_refused("redirect", logged="update check failed")
        self.repo.rules([{"match": "^/models/", "mode": "redirect_http"}])
        self.assert_refused("http", logged="update check failed")

    def test_http_statuses(self):
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        self.repo.rules([{"match": "^/models/", "mode": "status", "code": 404}])
        self.assert_refused("404", logged="update check failed")
        self.repo.rules([{"match": "^/models/", "mode": "status", "code": 401}])
        self.assert_refused("401", logged="update check failed")
        # Retry-After is honoured, then it works; sporadic 5xx are retried.
        self.repo.rules([{"match": "^/models/", "mode": "retry_after", "times": 1, "seconds": 1},
                         {"match": "^/blobs/", "mode": "flaky", "times": 2, "code": 503}])
        t0 = time.monotonic()
        self.assertIn("version 2 installed", self.update().stdout)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)

    def test_wrong_server_certificate_and_bad_ca(self):
        # The host trusts another CA than the one that signed the server's certificate.
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        self.reconfigure(tls=f"{{ca_file: {self.pki}/otherca.crt}}")
        self.assert_refused("server certificate verification failed", logged="update check failed")

    def test_server_certificate_wrong_name_and_self_signed(self):
        # The server (same URL) presents a certificate under the CA but for another host name,
        # then a self-signed one for 127.0.0.1: both refused before any byte of the release.
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        self.repo.restart("wrongname")
        self.assert_refused("server certificate verification failed", "127.0.0.1", logged="update check failed")
        self.repo.restart("selfsigned")
        self.assert_refused("server certificate verification failed", "self-signed", logged="update check failed")
        self.assertEqual(self.repo.requests("/models/m/stable.json"), 0)
        # The right certificate again: the same release installs.
        self.repo.restart("server")
        self.assertIn("version 2 installed", self.update().stdout)

    def test_pinned_key_mismatch(self):
        with open(os.path.join(self.pki, "other.pin")) as f:
            pin = f.read().strip()
        self.start()
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        self.reconfigure(tls=f"{{ca_file: {self.pki}/ca.crt, pinned_pubkey: \"{pin}\"}}")
        self.assert_refused("does not match the pinned key", logged="update check failed")

    def test_client_certificate_required(self):
        ca = os.path.join(self.pki, "ca.crt")
        good = f"{{ca_file: {ca}, client_cert: {self.pki}/client.crt, client_key: {self.pki}/client.key}}"
        self.start(client_ca=ca, tls=good)
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        # No client certificate, then one the server's CA did not sign. With TLS 1.3 the server's
        # alert can arrive after the client has sent its request: then the failure reads as a
        # broken connection rather than a rejected session.
        self.reconfigure(tls=f"{{ca_file: {ca}}}")
        self.assertRegex(self.assert_refused(logged="update check failed"),
                         "server rejected the TLS session|connection failed")
        self.reconfigure(tls=f"{{ca_file: {ca}, client_cert: {self.pki}/rogue-client.crt, "
                             f"client_key: {self.pki}/rogue-client.key}}")
        self.assertRegex(self.assert_refused(logged="update check failed"),
                         "server rejected the TLS session|connection failed")
        self.reconfigure(tls=good)
        self.assertIn("version 2 installed", self.update().stdout)

    def test_not_enough_disk(self):
        # Room for version 1 (3000 bytes) above the reserve, not for version 2 (1 MiB).
        self.start(model_extra="storage: {min_free: 1GiB}\n",
                   env={"MODELKEEPER_TEST_FREE_BYTES": str(1024 ** 3 + 64 * 1024)})
        self.install_v1()
        self.repo.publish(2, {"model.bin": os.urandom(1024 * 1024)}, [self.keys["k1"]])
        self.assert_refused("not enough free space", signed_by=["k1"], version=2)

    def test_no_machine_id(self):
        # A host whose machine id cannot be read is in no partial rollout (and says why), but
        # still takes releases for everybody.
        self.start(env={"MODELKEEPER_TEST_MACHINE_ID_FILE": os.path.join(self.tmp, "no-such-machine-id")})
        self.install_v1()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]], percent=99)
        out = self.update().stdout
        self.assertIn("version 2 not taken: cannot place this host in a partial rollout", out)
        self.assertIn("no-such-machine-id unreadable: No such file or directory", out)
        self.d.wait_log("WARN   Model m: version 2 not taken: cannot place this host in a partial rollout")
        self.assert_unchanged("1")
        # Not a machine id at all (as early on a first boot).
        with open(os.path.join(self.tmp, "no-such-machine-id"), "w") as f:
            f.write("uninitialized\n")
        self.assertIn("is not a machine id", self.update().stdout)
        self.assert_unchanged("1")
        # A release for everybody reaches it.
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]], percent=100)
        self.assertIn("version 2 installed", self.update().stdout)

    def test_pinned_release_while_repository_changes(self):
        # The document seen at check time is what gets installed, even if the repository moves on
        # meanwhile (blobs are fetched by the verified digests).
        self.start()
        self.repo.publish(2, {"model.bin": b"two"}, [self.keys["k1"]])
        shutil.copy(self.repo.doc_path(), os.path.join(self.repo.root, "v2.json"))
        self.repo.publish(3, {"model.bin": b"three"}, [self.keys["k1"]])
        shutil.copy(self.repo.doc_path(), os.path.join(self.repo.root, "v3.json"))
        self.repo.rules([{"match": "^/models/m/stable.json$", "mode": "swap", "after": 1, "file": "v3.json"},
                         {"match": "^/models/m/stable.json$", "mode": "normal"}])
        shutil.copy(os.path.join(self.repo.root, "v2.json"), self.repo.doc_path())
        self.assertIn("version 2", self.update().stdout)
        self.assertEqual(self.repo.requests("/models/m/stable.json"), 1)
        with open(os.path.join(self.d.runtime, "serve", "m", "model.bin"), "rb") as f:
            self.assertEqual(f.read(), b"two")
        self.assertIn("version 3", self.update().stdout)

    # --- trust root rotation ---------------------------------------------------------------

    def root(self, version, keys, signers, name=None):
        path = os.path.join(self.repo.root, "root", f"{name or version}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400 * 30))
        run(RELEASE_TOOL, "root-create", version, expires, 1, path, *[k + ".pub" for k in keys])
        for s in signers:
            run(RELEASE_TOOL, "root-sign", s, path)
        return path

    def test_root_rotation(self):
        k1, k2, evil = self.keys["k1"], self.keys["k2"], self.keys["evil"]
        self.start(trust=("k1",))
        self.install_v1()
        # Missing the old root's signature: refused, and releases by the new key are not trusted.
        self.root(2, [k2], [k2])
        self.repo.publish(2, {"model.bin": b"two"}, [k2])
        self.assert_refused("root")
        # Missing the new root's own signature: refused.
        self.root(2, [k2], [k1])
        self.assert_refused("root")
        # A version skip (only root/3.json): no rotation, the new key is not trusted.
        os.remove(os.path.join(self.repo.root, "root", "2.json"))
        self.root(3, [k2], [k1, k2])
        self.assert_refused("0 of 1")
        # A valid chain 1 → 2 (signed by both): accepted and persisted; k2's release installs.
        self.root(2, [k2], [k1, k2])
        os.remove(os.path.join(self.repo.root, "root", "3.json"))
        self.assertIn("version 2 installed", self.update().stdout)
        self.assertIn("Trust root rotated to version 2", self.d.logs())
        self.assertTrue(os.path.exists(os.path.join(self.d.state, "models", "m", "root.json")))
        # k1 alone no longer counts.
        self.repo.publish(3, {"model.bin": b"three"}, [k1])
        self.assert_refused("0 of 1", active="2", versions=["1", "2"])
        _ = evil


if __name__ == "__main__":
    unittest.main()
