#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The modelkeeper demo: the whole lifecycle on a real model, narrated as it happens.

    run.py BUILD_DIR [--fast] [--keep DIR] [--quiet]

1. trains a small MLP on the 8×8 digits (v1, a better v2, a broken v3) → safetensors;
2. creates a signing key and an age identity, publishes signed releases into a local repository
   and serves it over HTTPS on 127.0.0.1 (nginx when installed, else Python) with a throwaway CA;
3. runs the demo model server (demo/server.py) that loads serve/digits-mlp, classifies held-out
   digits continuously and exposes Prometheus metrics;
4. starts modelkeeperd with a demo configuration and policy, and walks through: v1 installed,
   verified, sealed, activated, promoted; v2 → probation → promoted; v3 → accuracy falls →
   automatic rollback to v2, v3 quarantined; memory pressure → int8 re-compression of v2 →
   accuracy gate holds → promoted; then `modelkeeperctl status` and `versions`;
5. cleans up everything it started, also on Ctrl-C.

The accuracy figures are measured by the demo server from its own predictions. The decisions are
modelkeeperd's, printed from its log as they happen. The same script is the demo integration test
(tests/integration/test_demo.py runs it with --fast and checks the sequence of decisions).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
MODEL = "digits-mlp"


def memory_backed(path):
    p = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return p.returncode == 0 and p.stdout.strip() in ("tmpfs", "ramfs")


def runtime_directory(workdir):
    """Where modelkeeperd's runtime directory goes: the decrypted plaintext of sealed versions lives
    there, and modelkeeperd writes it only to a memory-backed file system (under systemd,
    /run/modelkeeper). WORKDIR/run when the work directory is on tmpfs; otherwise a directory on
    /dev/shm, with WORKDIR/run a symbolic link to it (so --keep still shows it as WORKDIR/run)."""
    run = os.path.join(workdir, "run")
    if memory_backed(workdir):
        return run, None
    if not memory_backed("/dev/shm"):
        raise RuntimeError("the demo needs a tmpfs for modelkeeperd's runtime directory: neither "
                           f"{workdir} nor /dev/shm is one")
    tmp = tempfile.mkdtemp(prefix="modelkeeper-demo-run.", dir="/dev/shm")
    os.chmod(tmp, 0o755)
    if os.path.lexists(run):
        os.unlink(run)
    os.symlink(tmp, run)
    return tmp, tmp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, build, fast, workdir, quiet):
        self.build = os.path.abspath(build)
        self.fast = fast
        self.quiet = quiet
        self.dir = workdir
        self.run_dir, self.run_tmpfs = runtime_directory(workdir)
        self.procs = []
        self.decisions = []       # (ACTION, VERSION, FROM_VERSION, message)
        self.decision_event = threading.Condition()
        self.ctl_bin = os.path.join(self.build, "ctl", "modelkeeperctl")
        self.daemon_bin = os.path.join(self.build, "daemon", "modelkeeperd")
        self.agent_bin = os.path.join(self.build, "agent", "modelkeeper-agent")
        self.t0 = time.monotonic()

    # --- output ----------------------------------------------------------------------------

    def say(self, text):
        print(f"\n\033[1m[{time.monotonic() - self.t0:5.1f}s] {text}\033[0m" if sys.stdout.isatty()
              else f"\n[{time.monotonic() - self.t0:5.1f}s] {text}", flush=True)

    def note(self, text, always=False):
        if always or not self.quiet:
            print(f"         {text}", flush=True)

    # --- processes -------------------------------------------------------------------------

    def spawn(self, argv, log=None, env=None, **kw):
        out = open(log, "w") if log else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def run(self, *argv, check=True, capture=True):
        p = subprocess.run([str(a) for a in argv], capture_output=capture, text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{p.stdout}{p.stderr}")
        return p

    def ctl(self, *args, check=True):
        return self.run(self.ctl_bin, "--socket", os.path.join(self.run_dir, "control"), *args, check=check)

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    # --- the pieces ------------------------------------------------------------------------

    def train(self):
        self.say("Training the digits MLP with numpy (v1: 1 epoch, v2: 8 epochs, v3: v2 with shuffled weights)")
        p = self.run(PY, os.path.join(HERE, "train.py"), os.path.join(self.dir, "trained"))
        for line in p.stderr.strip().splitlines():
            self.note(line)

    def keys(self):
        self.say("Creating a release signing key and an age identity")
        self.key = os.path.join(self.dir, "keys", "release")
        os.makedirs(os.path.dirname(self.key))
        self.run(self.ctl_bin, "keygen", "--type", "ed25519", "--out", self.key)
        self.identity = os.path.join(self.dir, "keys", "age-identity.txt")
        out = self.run(self.ctl_bin, "keygen", "--type", "age", "--out", self.identity).stdout
        m = re.search(r"(age1[0-9a-z]{58})", out)
        if not m:
            raise RuntimeError("no age recipient in: " + out)
        self.recipient = m.group(1)
        self.note(f"signing key {self.key}.pub, age recipient {self.recipient}")

    def pki(self):
        d = os.path.join(self.dir, "pki")
        os.makedirs(d)
        self.run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt", "-subj", "/CN=modelkeeper demo CA", "-days", "1",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        self.run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=127.0.0.1")
        ext = f"{d}/ext.cnf"
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        self.run("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
                 "-CAcreateserial", "-out", f"{d}/server.crt", "-days", "1", "-extfile", ext)
        self.ca = f"{d}/ca.crt"
        return d

    def repository(self):
        self.say("Serving a signed release repository over HTTPS on 127.0.0.1 (throwaway CA)")
        self.repo = os.path.join(self.dir, "repo")
        os.makedirs(self.repo)
        pki = self.pki()
        port = free_port()
        nginx = shutil.which("nginx")
        if nginx:
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(f"""daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki}/server.crt;
        ssl_certificate_key {pki}/server.key;
        root {self.repo};
        default_type application/octet-stream;
    }}
}}
""")
            self.spawn([nginx, "-c", conf, "-p", self.dir], log=os.path.join(self.dir, "nginx.log"))
            how = "nginx"
        else:
            rules = os.path.join(self.dir, "rules.json")
            with open(rules, "w") as f:
                f.write("[]")
            self.spawn([PY, os.path.join(HERE, "..", "tests", "tools", "repo-server.py"), "--root", self.repo, "--cert",
                        f"{pki}/server.crt", "--key", f"{pki}/server.key", "--rules", rules])
            how = "Python's http.server"
        self.repo_url = f"https://127.0.0.1:{port}/"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.note(f"{self.repo_url} ({how})")

    def publish(self, version, label):
        src = os.path.join(self.dir, "trained", f"v{version}")
        self.run(self.ctl_bin, "release", "create", "--model", MODEL, "--channel", "stable", "--version", version,
                 "--label", label, "--expires", "1d", src, "--repo", self.repo)
        doc = os.path.join(self.repo, "models", MODEL, "stable.json")
        self.run(self.ctl_bin, "release", "sign", "--key", self.key, doc)
        self.note(f"published version {version} ({label}), signed by {os.path.basename(self.key)}")

    def model_server(self):
        self.say("Starting the demo model server (Python + numpy)")
        self.server_port = free_port()
        self.serve_link = os.path.join(self.run_dir, "serve", MODEL)
        self.spawn([PY, os.path.join(HERE, "server.py"), "--serve", self.serve_link, "--port", str(self.server_port)],
                   log=os.path.join(self.dir, "model-server.log"))
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.server_port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the demo model server did not start")
                time.sleep(0.05)
        self.note(f"{self.server_url}/metrics — loads {self.serve_link}")

    def configure(self):
        cfg = os.path.join(self.dir, "etc")
        os.makedirs(os.path.join(cfg, "models.d"))
        os.chmod(self.identity, 0o600)
        self.pressure = os.path.join(self.dir, "host-memory.prom")
        with open(self.pressure, "w") as f:
            f.write("host_memory_available_bytes 8589934592\n")
        with open(os.path.join(cfg, "modelkeeper.yaml"), "w") as f:
            f.write(open(os.path.join(HERE, "modelkeeper.yaml")).read().format(
                state=os.path.join(self.dir, "state"), run=self.run_dir,
                key=self.key + ".pub", recipient=self.recipient, identity=self.identity))
        interval = "1s" if self.fast else "2s"
        with open(os.path.join(cfg, "models.d", MODEL + ".yaml"), "w") as f:
            f.write(open(os.path.join(HERE, "digits-mlp.yaml")).read().format(
                repo=self.repo_url, ca=self.ca, server=self.server_url, pressure=self.pressure, interval=interval))
        self.config = os.path.join(cfg, "modelkeeper.yaml")

    def daemon(self):
        self.say("Starting modelkeeperd with the demo configuration")
        log = os.path.join(self.dir, "modelkeeperd.log")
        env = dict(os.environ, MODELKEEPER_AGENT=self.agent_bin, MODELKEEPER_LOG_TARGET="console")
        env.pop("NOTIFY_SOCKET", None)
        self.daemon_proc = self.spawn([self.daemon_bin, "--config", self.config], log=log, env=env)
        threading.Thread(target=self.follow, args=(log,), daemon=True).start()
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(self.run_dir, "control")):
            if time.monotonic() > deadline or self.daemon_proc.poll() is not None:
                raise RuntimeError("modelkeeperd did not start:\n" + open(log).read())
            time.sleep(0.05)

    # --- following the decisions -----------------------------------------------------------

    FIELDS = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')

    def follow(self, log):
        with open(log) as f:
            while True:
                line = f.readline()
                if not line:
                    if self.daemon_proc.poll() is not None:
                        return
                    time.sleep(0.05)
                    continue
                m = re.search(r"^(\S+)\[\d+\]: (\S+)\s+(.*?)(?:  \[(.*)\])?$", line.rstrip("\n"))
                if not m or not m.group(4):
                    continue
                fields = {k: v.strip('"') for k, v in self.FIELDS.findall(m.group(4))}
                action = fields.get("ACTION")
                if not action or action in ("start", "stop", "reload", "download-start", "download-finish"):
                    continue
                with self.decision_event:
                    self.decisions.append((action, fields.get("VERSION"), fields.get("FROM_VERSION"), m.group(3)))
                    self.decision_event.notify_all()
                if not self.quiet:
                    print(f"   \u2192 {m.group(3)}", flush=True)
                    keys = [k for k in ("MODEL", "VERSION", "FROM_VERSION", "RULE", "ACTION") if k in fields]
                    print("     " + " ".join(f"{k}={fields[k]}" for k in keys), flush=True)

    def wait_for(self, action, version=None, timeout=90):
        deadline = time.monotonic() + timeout
        with self.decision_event:
            while True:
                for a, v, _, _ in self.decisions:
                    if a == action and (version is None or v == version):
                        return
                left = deadline - time.monotonic()
                if left <= 0 or self.daemon_proc.poll() is not None:
                    raise RuntimeError(f"timed out waiting for {action} {version or ''}")
                self.decision_event.wait(left)

    def accuracy(self):
        import urllib.request
        with urllib.request.urlopen(self.server_url + "/metrics", timeout=5) as r:
            m = dict(re.findall(r"^(digits_\w+_total) (\S+)$", r.read().decode(), re.M))
        return {k: float(v) for k, v in m.items()}

    def measured_accuracy(self, seconds=3.0):
        a = self.accuracy()
        time.sleep(seconds)
        b = self.accuracy()
        right = b["digits_tp_total"] - a["digits_tp_total"]
        wrong = b["digits_fp_total"] - a["digits_fp_total"]
        return right / max(1.0, right + wrong)

    # --- the story -------------------------------------------------------------------------

    def story(self):
        self.train()
        self.keys()
        self.repository()
        self.publish(1, "first training")
        self.model_server()
        self.configure()
        self.daemon()

        self.say("Step 1 — v1 is published: check, verify, download, seal, activate, probation")
        self.ctl("update", MODEL)
        self.wait_for("promote", "1")
        self.note(f"measured by the model server: accuracy {self.measured_accuracy():.1%} on held-out digits", True)

        self.say("Step 2 — v2 (better) is published: update, probation against v1's baseline, promotion")
        self.publish(2, "more epochs")
        self.ctl("update", MODEL)
        self.wait_for("promote", "2")
        self.note(f"measured by the model server: accuracy {self.measured_accuracy():.1%}", True)

        self.say("Step 3 — v3 (broken: shuffled weights, validly signed) is published")
        self.publish(3, "a bad training run")
        self.ctl("update", MODEL, check=False)
        self.wait_for("quarantine", "3")
        self.wait_for("rollback")
        self.note(f"after the rollback the server measures accuracy {self.measured_accuracy():.1%}", True)

        self.say("Step 4 — the host runs short of memory: the memory rule fires → int8 re-compression of v2")
        with open(self.pressure + ".tmp", "w") as f:
            f.write("host_memory_available_bytes 268435456\n")
        os.rename(self.pressure + ".tmp", self.pressure)
        self.wait_for("promote", "2~int8", timeout=120)
        self.note(f"int8 version measured by the model server: accuracy {self.measured_accuracy():.1%}", True)

        self.say("modelkeeperctl status")
        print(self.ctl("status").stdout, end="")
        self.say(f"modelkeeperctl versions {MODEL}")
        print(self.ctl("versions", MODEL).stdout, end="")
        self.say("Every decision, as journal fields (under systemd: journalctl -u modelkeeperd MODEL=digits-mlp)")
        for action, version, frm, msg in self.decisions:
            print(f"  ACTION={action:<12} VERSION={version or '-':<8} FROM_VERSION={frm or '-':<8} {msg}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--fast", action="store_true", help="shorter intervals (the integration test)")
    ap.add_argument("--keep", help="keep the demo's files in this directory")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--decisions", help="write the decisions as JSON here at the end")
    a = ap.parse_args()
    workdir = a.keep or tempfile.mkdtemp(prefix="modelkeeper-demo.")
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)  # nginx's workers (another user) serve the repository inside
    demo = Demo(a.build, a.fast, workdir, a.quiet)

    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    rc = 0
    try:
        demo.story()
        demo.say(f"Done in {time.monotonic() - demo.t0:.0f} s.")
    except KeyboardInterrupt:
        print("\nInterrupted: cleaning up.", file=sys.stderr)
        rc = 130
    except Exception as e:  # noqa: BLE001 — report anything, then clean up
        print(f"\ndemo failed: {e}", file=sys.stderr)
        log = os.path.join(workdir, "modelkeeperd.log")
        if os.path.exists(log):
            print("--- modelkeeperd log (last 40 lines) ---", file=sys.stderr)
            print("".join(open(log).readlines()[-40:]), file=sys.stderr)
        rc = 1
    finally:
        if a.decisions:
            with open(a.decisions, "w") as f:
                json.dump([list(d) for d in demo.decisions], f)
        demo.cleanup()
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            if demo.run_tmpfs:
                shutil.rmtree(demo.run_tmpfs, ignore_errors=True)
        elif demo.run_tmpfs:
            print(f"The runtime directory (plaintext on tmpfs) is kept in {demo.run_tmpfs} ({workdir}/run links "
                  "to it); remove both when done.", file=sys.stderr)
    sys.exit(rc)


if __name__ == "__main__":
    main()
