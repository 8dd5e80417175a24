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
5. cleans up everything it started, also on Ctrl-C, SIGTERM or SIGHUP (a closed terminal).

The state directory (sealed weights) is a temporary directory; the runtime directory (the only
plaintext) is a separate one on tmpfs (under /run, else /dev/shm; the demo stops when there is neither).
With --keep DIR both are kept and DIR/run points at the runtime directory.

The accuracy figures are measured by the demo server from its own predictions. The decisions are
modelkeeperd's, printed from its log as they happen. The same script is the demo integration test
(tests/integration/test_demo.py runs it with --fast and checks the sequence of decisions).
"""

import argparse
import contextlib
import ctypes
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


TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def is_tmpfs(path):
    """Memory-backed (tmpfs or ramfs), by statfs(2) f_type (the first field, a long, on Linux): where
    modelkeeperd may write plaintext."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)   # struct statfs is 120 bytes on 64-bit Linux
    if libc.statfs(os.fsencode(path), buf) != 0:
        return False
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF in (TMPFS_MAGIC, RAMFS_MAGIC)


def make_runtime_directory():
    """A fresh directory on tmpfs for the plaintext: under /run (tmpfs on a normal Debian system,
    writable by root), else /dev/shm."""
    for parent in ("/run", "/dev/shm"):
        if os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK) and is_tmpfs(parent):
            return tempfile.mkdtemp(prefix="modelkeeper-demo.", dir=parent)
    raise RuntimeError("the demo needs a tmpfs for modelkeeperd's runtime directory (the plaintext): "
                       "neither /run nor /dev/shm is a writable one here")


def tell(*args, **kw):
    """print() that never fails: after SIGHUP the terminal may be gone (EIO), and cleaning up
    matters more than saying so."""
    try:
        print(*args, **kw, flush=True)
    except (OSError, ValueError):
        pass


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP: stop the story, then clean up (like KeyboardInterrupt)."""

    def __init__(self, sig):
        super().__init__(sig)
        self.sig = sig


class Signals:
    """The first SIGINT/SIGTERM/SIGHUP interrupts the demo; from then on all three are ignored, so
    a second Ctrl-C (or the terminal closing) cannot interrupt the cleanup. Inside deferred() (a
    child being started and recorded) the interruption waits until the block ends, so no child can
    be started without being recorded for the cleanup."""

    def __init__(self):
        self.received = None
        self.deferring = 0
        self.pending = False
        for s in SIGNALS:
            signal.signal(s, self.handler)

    def handler(self, sig, frame):
        self.ignore()
        if self.received is not None:
            return
        self.received = sig
        if self.deferring:
            self.pending = True
        else:
            raise Interrupted(sig)

    @staticmethod
    def ignore():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)

    @contextlib.contextmanager
    def deferred(self):
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1
        if not self.deferring and self.pending:
            self.pending = False
            raise Interrupted(self.received)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, build, fast, workdir, rundir, quiet, signals):
        self.build = os.path.abspath(build)
        self.fast = fast
        self.quiet = quiet
        self.dir = workdir
        self.rundir = rundir      # the daemon's runtime directory: plaintext, serve/ links, control socket
        self.signals = signals
        self.procs = []           # long-running children, each in a session (process group) of its own
        self.helpers = set()      # short-lived commands (ctl, openssl, train.py), in our process group
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
        with self.signals.deferred():   # started ⇒ recorded for the cleanup
            out = open(log, "w") if log else subprocess.DEVNULL
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, **kw)
            self.procs.append(p)
            if log:
                out.close()
        return p

    def run(self, *argv, check=True):
        with self.signals.deferred():
            p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.helpers.add(p)
        try:
            out, err = p.communicate()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            self.helpers.discard(p)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{out}{err}")
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def ctl(self, *args, check=True):
        return self.run(self.ctl_bin, "--socket", os.path.join(self.rundir, "control"), *args, check=check)

    @staticmethod
    def group_alive(pgid):
        """Whether a process of group pgid still runs (zombies do not count: one whose parent died
        waits for whatever reaps orphans here)."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False

    def stop_groups(self, sig, timeout):
        """Send sig to every child's process group; wait until each child is reaped and its group
        is empty (nginx's workers, modelkeeperd's agents), at most timeout seconds. Returns the
        groups still alive."""
        for p in reversed(self.procs):       # the daemon first, then the model server, then nginx
            if p.returncode is None or self.group_alive(p.pid):
                try:
                    os.killpg(p.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + timeout
        left = list(self.procs)
        while left:
            for p in list(left):
                if p.poll() is not None and not self.group_alive(p.pid):
                    left.remove(p)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return left

    def cleanup(self):
        """Idempotent; the caller has made SIGINT/SIGTERM/SIGHUP ignored."""
        for p in list(self.helpers):
            if p.poll() is None:
                p.kill()
            p.wait()
        self.helpers.clear()
        left = self.stop_groups(signal.SIGTERM, 10)
        if left:
            tell(f"still running after SIGTERM: {', '.join(os.path.basename(p.args[0]) for p in left)}; SIGKILL",
                 file=sys.stderr)
            left = self.stop_groups(signal.SIGKILL, 5)
        for p in left:
            tell(f"could not stop process group {p.pid} ({p.args[0]})", file=sys.stderr)
        self.procs = left

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
            log = os.path.join(self.dir, "nginx.log")
            server = self.spawn([nginx, "-c", conf, "-p", self.dir], log=log)
            how = "nginx"
        else:
            # tests/tools/repo-server.py picks its own port and prints it once it listens.
            rules = os.path.join(self.dir, "rules.json")
            with open(rules, "w") as f:
                f.write("[]")
            log = os.path.join(self.dir, "repo-server.log")
            server = self.spawn([PY, os.path.join(HERE, "..", "tests", "tools", "repo-server.py"), "--root", self.repo,
                                 "--cert", f"{pki}/server.crt", "--key", f"{pki}/server.key", "--rules", rules], log=log)
            how = "Python's http.server: nginx is not installed"
            port = None
        deadline = time.monotonic() + 10
        while True:
            if port is None:
                with open(log) as f:
                    first = f.readline()
                if first.endswith("\n") and first.strip().isdigit():
                    port = int(first)
            if port is not None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the release repository's server did not start:\n" + open(log).read())
            time.sleep(0.05)
        self.repo_url = f"https://127.0.0.1:{port}/"
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
        self.serve_link = os.path.join(self.rundir, "serve", MODEL)
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
                state=os.path.join(self.dir, "state"), run=self.rundir,
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
        for var in ("NOTIFY_SOCKET", "STATE_DIRECTORY", "RUNTIME_DIRECTORY", "CREDENTIALS_DIRECTORY"):
            env.pop(var, None)   # systemd's, if the demo runs under it: they would win over the demo's paths
        self.daemon_proc = self.spawn([self.daemon_bin, "--config", self.config], log=log, env=env)
        threading.Thread(target=self.follow, args=(log,), daemon=True).start()
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(self.rundir, "control")):
            if time.monotonic() > deadline or self.daemon_proc.poll() is not None:
                raise RuntimeError("modelkeeperd did not start:\n" + open(log).read())
            time.sleep(0.05)

    # --- following the decisions -----------------------------------------------------------

    FIELDS = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')

    def follow(self, log):
        # A line can be read before the daemon has finished writing it (stderr is unbuffered, and a
        # long entry takes several write()s): keep the part and read on until its newline.
        with open(log, errors="replace") as f:
            part = ""
            while True:
                chunk = f.readline()
                if not chunk or not chunk.endswith("\n"):
                    part += chunk
                    if not chunk and self.daemon_proc.poll() is not None:
                        return
                    time.sleep(0.05)
                    continue
                line, part = part + chunk, ""
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
                    tell(f"   \u2192 {m.group(3)}")
                    keys = [k for k in ("MODEL", "VERSION", "FROM_VERSION", "RULE", "ACTION") if k in fields]
                    tell("     " + " ".join(f"{k}={fields[k]}" for k in keys))

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

    @staticmethod
    def sizes(d):
        def size(n):
            return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"
        return ", ".join(f"{n} {size(os.path.getsize(os.path.join(d, n)))}" for n in sorted(os.listdir(d)))

    def at_rest(self):
        """Where the weights are: sealed in the state directory, plaintext only on tmpfs."""
        plain = os.path.realpath(self.serve_link)     # serve/digits-mlp → plain/digits-mlp/VERSION
        version = os.path.basename(plain)
        sealed = os.path.join(self.dir, "state", "models", MODEL, "versions", version, "files")
        fs = "tmpfs" if is_tmpfs(plain) else "disk (not tmpfs!)"
        self.say(f"At rest the weights are sealed with age; the plaintext of the active version ({version}) is on {fs}")
        headers = set()
        for n in os.listdir(sealed):
            with open(os.path.join(sealed, n), "rb") as f:
                headers.add(f.readline().strip().decode(errors="replace"))
        self.note(f"sealed:    {sealed}/  {self.sizes(sealed)}  (each begins {' / '.join(sorted(headers))})", True)
        self.note(f"plaintext: {plain}/  {self.sizes(plain)}  ({fs}; {self.serve_link} points here)", True)

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
        self.at_rest()
        self.say("Every decision, as journal fields (under systemd: journalctl -u modelkeeperd MODEL=digits-mlp)")
        for action, version, frm, msg in self.decisions:
            print(f"  ACTION={action:<12} VERSION={version or '-':<8} FROM_VERSION={frm or '-':<8} {msg}")


def finish(rc):
    """Exit with rc, also when the terminal is gone (a failed flush at exit would turn rc into 120)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, stream.fileno())
            os.close(null)
    sys.exit(rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--fast", action="store_true", help="shorter intervals (the integration test)")
    ap.add_argument("--keep", help="keep the demo's files in this directory (DIR/run → the runtime directory on tmpfs)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--decisions", help="write the decisions as JSON here at the end")
    a = ap.parse_args()
    signals = Signals()
    workdir = rundir = demo = None
    rc = 1
    try:
        try:
            with signals.deferred():     # made ⇒ known to the cleanup below
                workdir = os.path.abspath(a.keep) if a.keep else tempfile.mkdtemp(prefix="modelkeeper-demo.")
                rundir = make_runtime_directory()
            os.makedirs(workdir, exist_ok=True)
            os.chmod(workdir, 0o755)  # nginx's workers (another user) serve the repository inside
            os.chmod(rundir, 0o755)   # traversable for a model server's user, as /run/modelkeeper is
            if a.keep:
                link = os.path.join(workdir, "run")
                if os.path.islink(link):
                    os.unlink(link)
                if not os.path.lexists(link):
                    os.symlink(rundir, link)
            demo = Demo(a.build, a.fast, workdir, rundir, a.quiet, signals)
            demo.say(f"Files in {workdir}; the runtime directory (plaintext, serve/ links, control socket) is {rundir}"
                     " on tmpfs")
            demo.story()
            demo.say(f"Done in {time.monotonic() - demo.t0:.0f} s.")
            rc = 0
        except Interrupted:
            pass
        except Exception as e:  # noqa: BLE001 — report anything, then clean up
            tell(f"\ndemo failed: {e}", file=sys.stderr)
            log = os.path.join(workdir, "modelkeeperd.log") if workdir else None
            if log and os.path.exists(log):
                tell("--- modelkeeperd log (last 40 lines) ---", file=sys.stderr)
                tell("".join(open(log, errors="replace").readlines()[-40:]), file=sys.stderr)
    except Interrupted:   # while reporting a failure
        pass
    finally:
        # From here on nothing interrupts: the first signal already made the others ignored.
        try:
            signals.ignore()
        except Interrupted:
            pass
        if signals.received is not None:
            rc = 128 + signals.received
            tell(f"\nInterrupted ({signal.Signals(signals.received).name}): stopping everything the demo started.",
                 file=sys.stderr)
        if a.decisions and demo:
            try:
                with open(a.decisions, "w") as f:
                    json.dump([list(d) for d in demo.decisions], f)
            except OSError as e:
                tell(f"cannot write {a.decisions}: {e}", file=sys.stderr)
        if demo:
            demo.cleanup()
        if a.keep:
            if workdir and rundir:
                tell(f"Kept {workdir}, and {rundir} (the plaintext; {workdir}/run points there).")
        else:
            for d in (rundir, workdir):
                if d and os.path.lexists(d):
                    shutil.rmtree(d, onerror=lambda f, path, e: tell(f"cannot remove {path}: {e[1]}", file=sys.stderr))
    finish(rc)


if __name__ == "__main__":
    main()
