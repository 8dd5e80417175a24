# SPDX-License-Identifier: Apache-2.0
"""Helpers for integration tests: run the real binaries from the build tree.

A Daemon runs modelkeeperd with NOTIFY_SOCKET pointing at a datagram socket the test reads, so
the tests see the same sd_notify protocol systemd would.
"""

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

BUILD = os.environ.get("TOP_BUILDDIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SRC = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DAEMON = os.path.join(BUILD, "daemon", "modelkeeperd")
AGENT = os.path.join(BUILD, "agent", "modelkeeper-agent")
CTL = os.path.join(BUILD, "ctl", "modelkeeperctl")


def fs_type(path):
    """The file system type of path as stat(1) names it ("tmpfs", "ext2/ext3", …)."""
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def tmpfs_dir(prefix):
    """A new directory on a memory-backed file system, or None where there is none to write to.

    The daemon writes the plaintext of sealed versions only to a runtime directory on tmpfs or
    ramfs (like /run/modelkeeper under systemd), so the tests put theirs on one too:
    $MODELKEEPER_TEST_TMPFS, else /dev/shm."""
    for base in (os.environ.get("MODELKEEPER_TEST_TMPFS"), "/dev/shm"):
        if base and os.path.isdir(base) and os.access(base, os.W_OK) and fs_type(base) in ("tmpfs", "ramfs"):
            d = tempfile.mkdtemp(prefix=prefix, dir=base)
            os.chmod(d, 0o755)  # traversable like /run: the runtime directory's own mode decides
            return d
    return None


class Daemon:
    def __init__(self, config="", models=None, watchdog_usec=None, extra_env=None, runtime_base=None):
        self.dir = tempfile.mkdtemp(prefix="mk-it-")
        self.config_path = os.path.join(self.dir, "modelkeeper.yaml")
        self.models_dir = os.path.join(self.dir, "models.d")
        self.state = os.path.join(self.dir, "state")
        # The runtime directory on tmpfs where the host has one (as under systemd); runtime_base
        # chooses another place (a test of the refusal to write plaintext to a disk).
        self.runtime_dir = None if runtime_base else tmpfs_dir("mk-it-run-")
        self.runtime = os.path.join(runtime_base or self.runtime_dir or self.dir, "run")
        self.socket = os.path.join(self.runtime, "control")
        os.makedirs(self.models_dir)
        with open(self.config_path, "w") as f:
            f.write(config)
        for name, text in (models or {}).items():
            self.write_model(name, text)
        self.notify_path = os.path.join(self.dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.messages = []
        # Drain the socket all the time, as systemd does: sd_notify() blocks on a full queue.
        self.notify_queue = queue.Queue()
        self.notify.settimeout(0.2)
        self.notify_thread = threading.Thread(target=self._drain_notify, daemon=True)
        self.closing = False
        self.notify_thread.start()
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.watchdog_usec = watchdog_usec
        self.extra_env = extra_env or {}
        self.proc = None

    def write_model(self, name, text, atomic=True):
        path = os.path.join(self.models_dir, name + ".yaml")
        tmp = path + ".tmp~"
        with open(tmp if atomic else path, "w") as f:
            f.write(text)
        if atomic:
            os.rename(tmp, path)

    def remove_model(self, name):
        os.unlink(os.path.join(self.models_dir, name + ".yaml"))

    def start(self, wait_ready=True):
        env = dict(os.environ)
        env.update({
            "NOTIFY_SOCKET": self.notify_path,
            "MODELKEEPER_AGENT": AGENT,
            "MODELKEEPER_LOG_TARGET": "console",
        })
        env.pop("JOURNAL_STREAM", None)
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
            env.pop("WATCHDOG_PID", None)
        env.update(self.extra_env)
        if getattr(self, "log", None):
            self.log.close()  # a restart
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [DAEMON, "--config", self.config_path, "--state-directory", self.state,
             "--runtime-directory", self.runtime],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        if wait_ready:
            self.wait_notify("READY=1")
        return self

    def _drain_notify(self):
        while not self.closing:
            try:
                data = self.notify.recv(65536).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            self.notify_queue.put(dict(line.split("=", 1) for line in data.strip().split("\n") if "=" in line))

    def read_notify(self, timeout):
        try:
            msg = self.notify_queue.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None
        self.messages.append(msg)
        return msg

    def wait_notify(self, what, timeout=10):
        """Wait for a notify message containing KEY=VALUE."""
        key, value = what.split("=", 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.read_notify(deadline - time.monotonic())
            if msg and msg.get(key) == value:
                return msg
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) waiting for {what}:\n{self.logs()}")
        raise AssertionError(f"timed out waiting for {what}:\n{self.logs()}")

    def logs(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.logs():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for log line {needle!r}:\n{self.logs()}")

    def ctl(self, *args, check=True, user=None, **kw):
        cmd = [CTL if user is None else ctl_for_other_users(), "--socket", self.socket, *args]
        preexec = None
        if user is not None:
            import pwd
            pw = pwd.getpwnam(user)

            def preexec():
                os.setgroups([pw.pw_gid])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        p = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=preexec, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n{self.logs()}")
        return p

    def status(self):
        return json.loads(self.ctl("--json", "status").stdout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def close(self):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        finally:
            self.closing = True
            self.notify_thread.join()
            self.notify.close()
            if getattr(self, "log", None):
                self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.runtime_dir:
                shutil.rmtree(self.runtime_dir, ignore_errors=True)


TOOLS = os.path.join(SRC, "tests", "tools")


class ModelServer:
    """The stand-in model server (tests/tools/model-server.py) on 127.0.0.1."""

    def __init__(self, serve_link, not_ready=(), load_at_start=False, hang=()):
        env = dict(os.environ, SERVE_LINK=serve_link, NOT_READY=",".join(not_ready), HANG=",".join(hang), PORT="0")
        if load_at_start:
            env["LOAD_AT_START"] = "1"
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(TOOLS, "model-server.py")], env=env,
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def state(self):
        import urllib.request
        with urllib.request.urlopen(self.url + "/state", timeout=5) as r:
            return json.loads(r.read())

    def set(self, version=None, **metrics):
        """Set metric values; with version, only while that version is loaded."""
        import urllib.parse
        import urllib.request
        if version is not None:
            metrics["version"] = version
        q = urllib.parse.urlencode(metrics)
        urllib.request.urlopen(urllib.request.Request(self.url + "/set?" + q, method="POST"), timeout=5).read()

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


_CTL_COPY = None


def ctl_for_other_users():
    """modelkeeperctl where any user can run it: the build tree may lie below a directory only
    root can enter (a clone in `mktemp -d`, mode 0700), which a test running it as nobody must not
    depend on. A copy in a directory of mode 0755, removed at exit."""
    global _CTL_COPY
    if _CTL_COPY is None:
        import atexit
        d = tempfile.mkdtemp(prefix="mk-ctl-")
        os.chmod(d, 0o755)
        _CTL_COPY = os.path.join(d, "modelkeeperctl")
        shutil.copy2(CTL, _CTL_COPY)
        os.chmod(_CTL_COPY, 0o755)
        atexit.register(shutil.rmtree, d, True)
    return _CTL_COPY


def make_source(directory, content=b"weights", files=("model.safetensors", "config.json")):
    os.makedirs(directory, exist_ok=True)
    for name in files:
        with open(os.path.join(directory, name), "wb") as f:
            f.write(content + name.encode())
    return directory


def wait_for(predicate, timeout=10, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
