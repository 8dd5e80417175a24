# SPDX-License-Identifier: Apache-2.0
"""Crash safety of the versioned store, through the daemon as a user drives it (STYLE.md §18).

For each of import, activate, rollback and gc: enumerate the fault points the agent's verb passes
through (MODELKEEPER_FAULT_TRACE), then for every point N make it fail (N:error) or SIGKILL the
agent there (N:kill), SIGKILL the daemon afterwards (a crash), restart it without faults and check
that the store is the old state or the new one, that nothing partial or temporary is left, that
state.json agrees with the links, and that the next operation works. Then the daemon itself is
SIGKILLed while its agent stands still at point N (N:pause; the agent dies with the daemon through
PR_SET_PDEATHSIG) — a crash of the whole service at that step: an activation or rollback, whose
decision the daemon recorded in state.json first, must be completed after the restart (roll
forward); an import or gc must leave the old or the new state.

Every case starts from the same pristine store, built once and restored by copying into the same
place (serve/<model> links are absolute paths).
"""

import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import time
import unittest

import mk

MODEL = "m"
# gc removes nothing while the pristine store is built and in the cases of the other verbs.
MODEL_YAML = "model: m\nstorage: {keep_versions: 10}\n"
# The gc case: an activation of version 6 keeps 6 (current, last good), 5 (the second newest), 3
# (previous) and removes 4, 2, 1 (keep_versions counts the protected ones; 2 is its minimum).
MODEL_YAML_GC = "model: m\nstorage: {keep_versions: 2}\n"

# The pristine store: 1, 2, 3 imported and activated in turn (current 3, previous 2), 4 and 5
# imported only.
PRISTINE_VERSIONS = {"1", "2", "3", "4", "5"}

# Each verb: how a user makes the daemon run it (modelkeeperctl arguments), and which outcomes
# count as the old and the new state — (current, previous, versions that must exist completely,
# versions that must be absent). "recorded": the daemon writes its decision to state.json before the
# agent starts, so a crash of the daemon mid-way must end in the new state (roll forward).
SCENARIOS = {
    # A new version 6; nothing else changes.
    "import": dict(
        yaml=MODEL_YAML,
        args=lambda t: ["import", MODEL, t.source("v6", b"six"), "--version", "6"],
        old=("3", "2", PRISTINE_VERSIONS, {"6"}),
        new=("3", "2", PRISTINE_VERSIONS | {"6"}, set()),
    ),
    # Import of 6 (not faulted: only the activate verb takes part), then its activation.
    "activate": dict(
        yaml=MODEL_YAML,
        args=lambda t: ["import", MODEL, t.source("v6", b"six"), "--version", "6", "--activate"],
        old=("3", "2", PRISTINE_VERSIONS | {"6"}, set()),
        new=("6", "3", PRISTINE_VERSIONS | {"6"}, set()),
        recorded="6",
    ),
    # The operator's default rollback: to the previous version, 2.
    "rollback": dict(
        yaml=MODEL_YAML,
        args=lambda t: ["rollback", MODEL],
        old=("3", "2", PRISTINE_VERSIONS, set()),
        new=("2", "3", PRISTINE_VERSIONS, set()),
        recorded="2",
    ),
    # gc runs after every activation; here after importing and activating 6 with keep_versions 2.
    "gc": dict(
        yaml=MODEL_YAML_GC,
        args=lambda t: ["import", MODEL, t.source("v6", b"six"), "--version", "6", "--activate"],
        old=("6", "3", PRISTINE_VERSIONS | {"6"}, set()),
        new=("6", "3", {"3", "5", "6"}, {"1", "2", "4"}),
        # Each of the removed versions either still complete or gone, whatever the point.
        partial=("6", "3", {"3", "5", "6"}, set()),
        # After the next activation (of 7), its gc finishes what the interrupted one started.
        after_next={"6", "7"},
    ),
}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children(pid):
    out = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.update(int(c) for c in f.read().split())
    except FileNotFoundError:
        pass
    return out


class CrashDaemon(mk.Daemon):
    """One daemon directory for the whole suite: the store is restored into the same place."""

    def start(self, wait_ready=True, env=None):
        # Old READY=1 messages from an earlier run must not satisfy this one.
        while True:
            try:
                self.notify_queue.get_nowait()
            except queue.Empty:
                break
        self.extra_env = env or {}
        if getattr(self, "log", None):
            self.log.close()
        return super().start(wait_ready)

    def crash(self):
        """SIGKILL the daemon and wait until its agents are gone too (PR_SET_PDEATHSIG)."""
        if not self.proc or self.proc.poll() is not None:
            return
        kids = children(self.proc.pid)
        self.proc.kill()
        self.proc.wait()
        mk.wait_for(lambda: not any(alive(k) for k in kids), timeout=10, what="the agents to die with the daemon")


def fault_injection_built():
    with open(os.path.join(mk.BUILD, "build-config.h")) as f:
        return "#define ENABLE_FAULT_INJECTION 1" in f.read()


@unittest.skipUnless(fault_injection_built(), "built with -Dfault_injection=false")
class CrashTest(unittest.TestCase):
    counts = {}      # verb (and how) -> fault points
    outcomes = {}    # (verb, mode) -> {"old": n, "new": n, "partial": n}

    @classmethod
    def setUpClass(cls):
        cls.t0 = time.monotonic()
        cls.d = CrashDaemon("", {MODEL: MODEL_YAML})
        cls.store = os.path.join(cls.d.state, "models", MODEL)
        cls.pristine = os.path.join(cls.d.dir, "pristine")
        cls.sources = os.path.join(cls.d.dir, "src")
        d = cls.d
        try:
            d.start()
            cls.wait_idle_of(d)
            for v in ("1", "2", "3"):
                d.ctl("import", MODEL, cls.source_of(f"v{v}", f"version {v}".encode()), "--version", v,
                      "--activate")
            for v in ("4", "5"):
                d.ctl("import", MODEL, cls.source_of(f"v{v}", f"version {v}".encode()), "--version", v)
            cls.wait_idle_of(d)
            d.stop()
            os.makedirs(cls.pristine)
            shutil.copytree(d.state, os.path.join(cls.pristine, "state"), symlinks=True)
            shutil.copytree(d.runtime, os.path.join(cls.pristine, "run"), symlinks=True,
                            ignore=lambda _dir, names: [n for n in names if n == "control"])
        except BaseException:
            d.close()  # tearDownClass does not run when setUpClass fails
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.close()
        points = {verb: n for verb, n in cls.counts.items() if " " not in verb}
        cases = sum(sum(o.values()) for o in cls.outcomes.values())
        print("\nfault points covered: " + ", ".join(f"{verb} {n}" for verb, n in sorted(points.items())) +
              f"; total {sum(points.values())}; {cases} crash cases in {time.monotonic() - cls.t0:.1f} s",
              file=sys.stderr)
        for (verb, mode), o in sorted(cls.outcomes.items()):
            print(f"  {verb} {mode}: " + ", ".join(f"{k} state {v}" for k, v in sorted(o.items())), file=sys.stderr)

    # --- helpers --------------------------------------------------------------------------------

    @classmethod
    def source_of(cls, name, content):
        return mk.make_source(os.path.join(cls.sources, name), content)

    def source(self, name, content):
        return self.source_of(name, content)

    @staticmethod
    def wait_idle_of(d, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = d.status()
            if st and not st[0]["job"] and st[0]["state"] != "busy":
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for the model to be idle: {st}\n{d.logs()}")

    def wait_idle(self):
        self.wait_idle_of(self.d)

    def ctl_op(self, *args):
        return self.d.ctl(*args, check=False, timeout=30)

    def restore(self, yaml):
        d = self.d
        for name, where in (("state", d.state), ("run", d.runtime)):
            shutil.rmtree(where, ignore_errors=True)
            shutil.copytree(os.path.join(self.pristine, name), where, symlinks=True)
        d.write_model(MODEL, yaml)

    def trace(self, verb):
        """The fault points the verb passes through, in order."""
        scenario = SCENARIOS[verb]
        path = self.trace_path()
        self.restore(scenario["yaml"])
        self.d.start(env={"MODELKEEPER_FAULT_TRACE": path, "MODELKEEPER_FAULT_VERB": verb})
        try:
            self.wait_idle()
            p = self.ctl_op(*scenario["args"](self))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.wait_idle()
        finally:
            self.d.crash()
        with open(path) as f:
            points = [line.split()[1] for line in f]
        os.unlink(path)
        return points

    def trace_path(self):
        # Inside the model's directory: the agent's Landlock sandbox lets it write nowhere else.
        return os.path.join(self.store, "fault-trace")

    def link(self, name):
        path = os.path.join(self.store, name)
        if not os.path.lexists(path):
            return None
        target = os.readlink(path)
        self.assertTrue(target.startswith("versions/"), f"{name} -> {target}")
        return target[len("versions/"):]

    def check_invariants(self, ctx):
        store, runtime = self.store, self.d.runtime
        vdir = os.path.join(store, "versions")
        complete = set()
        for name in os.listdir(vdir):
            self.assertFalse(name.startswith("."), f"{ctx}: leftover {name} in versions/")
            with open(os.path.join(vdir, name, "meta.json")) as f:
                meta = json.load(f)
            self.assertEqual(meta["id"], name, ctx)
            files = os.path.join(vdir, name, "files")
            self.assertEqual(sorted(os.listdir(files)), sorted(f["name"] for f in meta["files"]),
                             f"{ctx}: version {name} has other files than its meta.json lists")
            for entry in meta["files"]:
                self.assertEqual(sha256_file(os.path.join(files, entry["name"])), entry["sha256"],
                                 f"{ctx}: version {name}: {entry['name']} does not match meta.json")
            complete.add(name)

        current, previous = self.link("current"), self.link("previous")
        self.assertIn(current, complete, f"{ctx}: current -> {current}")
        if previous is not None:
            self.assertIn(previous, complete, f"{ctx}: previous -> {previous}")
        serve = os.readlink(os.path.join(runtime, "serve", MODEL))
        self.assertEqual(serve, os.path.join(vdir, current, "files"), f"{ctx}: serve/{MODEL} is not current")

        for top in (store, runtime):
            for root, dirs, names in os.walk(top):
                for n in dirs + names:
                    self.assertFalse(n.startswith(".#") or n.startswith(".gc-"),
                                     f"{ctx}: leftover {os.path.join(root, n)}")
        self.assertEqual([n for n in os.listdir(os.path.join(store, "staging")) if not n.startswith("fetch-")], [],
                         f"{ctx}: abandoned staging")

        with open(os.path.join(store, "state.json")) as f:
            state = json.load(f)
        self.assertEqual(state["active"], current, f"{ctx}: state.json active")
        if previous is not None:
            self.assertEqual(state["previous"], previous, f"{ctx}: state.json previous")
        self.assertIsNone(state["in_progress"], f"{ctx}: state.json in_progress")
        if state.get("last_good"):
            self.assertIn(state["last_good"], complete, f"{ctx}: state.json last_good")
        st = self.d.status()[0]
        self.assertEqual(st["active"], current, f"{ctx}: the daemon's view")
        return current, previous, complete

    def matches(self, outcome, current, previous, complete):
        cur, prev, present, absent = outcome
        return (cur == current and prev == previous and present <= complete and not (absent & complete))

    def check_outcome(self, ctx, scenario, current, previous, complete):
        """Which of the allowed states the store is in: "old", "new" or (gc) "partial"."""
        # A version is there completely (checked before) or not at all: nothing else may appear.
        self.assertLessEqual(complete, PRISTINE_VERSIONS | {"6"}, ctx)
        for label in ("old", "new", "partial"):
            if label in scenario and self.matches(scenario[label], current, previous, complete):
                return label
        self.fail(f"{ctx}: neither the old nor the new state: current {current}, previous {previous}, "
                  f"versions {sorted(complete)}")

    def next_operation(self, ctx):
        """The store works after the crash: import and activate another version."""
        p = self.d.ctl("import", MODEL, self.source("v7", b"seven"), "--version", "7", "--activate", check=False)
        self.assertEqual(p.returncode, 0, f"{ctx}: next operation: {p.stderr}\n{self.d.logs()}")
        self.wait_idle()
        current, _, complete = self.check_invariants(ctx + ", after the next operation")
        self.assertEqual(current, "7", ctx)
        with open(os.path.join(self.d.runtime, "serve", MODEL, "model.safetensors"), "rb") as f:
            self.assertEqual(f.read(), b"sevenmodel.safetensors", ctx)
        return complete

    def after_crash(self, ctx, verb, mode):
        """Restart without faults and check the store, the outcome and the next operation."""
        scenario = SCENARIOS[verb]
        self.d.start()
        self.wait_idle()
        current, previous, complete = self.check_invariants(ctx)
        label = self.check_outcome(ctx, scenario, current, previous, complete)
        tally = type(self).outcomes.setdefault((verb, mode), {})
        tally[label] = tally.get(label, 0) + 1
        after = self.next_operation(ctx)
        if "after_next" in scenario:
            self.assertEqual(after, scenario["after_next"], ctx)
        return current, previous

    def run_case(self, verb, n, mode, point):
        scenario = SCENARIOS[verb]
        ctx = f"{verb} {n}:{mode} ({point})"
        self.restore(scenario["yaml"])
        self.d.start(env={"MODELKEEPER_FAULT": f"{n}:{mode}", "MODELKEEPER_FAULT_VERB": verb})
        self.wait_idle()
        self.ctl_op(*scenario["args"](self))  # may fail
        # Let the daemon react (e.g. restore what served before), then crash it.
        self.wait_idle()
        self.d.crash()
        self.after_crash(ctx, verb, mode)

    def run_pause_case(self, verb, n, point):
        """The daemon dies while its agent stands at point n (a crash of the whole service there)."""
        scenario = SCENARIOS[verb]
        ctx = f"{verb} {n}:pause ({point}), daemon killed"
        trace = self.trace_path()
        self.restore(scenario["yaml"])
        self.d.start(env={"MODELKEEPER_FAULT": f"{n}:pause", "MODELKEEPER_FAULT_VERB": verb,
                          "MODELKEEPER_FAULT_TRACE": trace})
        self.wait_idle()
        client = subprocess.Popen([mk.CTL, "--socket", self.d.socket, *scenario["args"](self)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def reached():
                if not os.path.exists(trace):
                    return False
                with open(trace) as f:
                    return sum(1 for _ in f) >= n  # the line is written before the agent sleeps
            mk.wait_for(reached, timeout=20, what=f"{ctx}: fault point {n}")
            if "recorded" in scenario:
                with open(os.path.join(self.store, "state.json")) as f:
                    self.assertEqual(json.load(f)["in_progress"]["to"], scenario["recorded"], ctx)
            self.d.crash()
        finally:
            client.wait(10)
        os.unlink(trace)
        current, previous = self.after_crash(ctx, verb, "pause+daemon killed")
        if "recorded" in scenario:
            self.assertEqual((current, previous), scenario["new"][:2],
                             f"{ctx}: the recorded activation was not completed\n{self.d.logs()}")
            self.assertIn("completing an activation interrupted", self.d.logs(), ctx)

    def run_verb(self, verb, modes):
        points = self.trace(verb)
        self.assertGreater(len(points), 0, f"{verb}: no fault points reached")
        for n, point in enumerate(points, 1):
            for mode in modes:
                with self.subTest(verb=verb, n=n, mode=mode, point=point):
                    try:
                        if mode == "pause":
                            self.run_pause_case(verb, n, point)
                        else:
                            self.run_case(verb, n, mode, point)
                    finally:
                        self.d.crash()
        key = verb if modes != ("pause",) else f"{verb} (daemon killed)"
        type(self).counts[key] = len(points)
        print(f"\n{key}: {len(points)} fault points x {modes}: {' '.join(points)}", file=sys.stderr)

    # --- the cases ------------------------------------------------------------------------------

    def test_import(self):
        self.run_verb("import", ("error", "kill"))

    def test_activate(self):
        self.run_verb("activate", ("error", "kill"))

    def test_rollback(self):
        self.run_verb("rollback", ("error", "kill"))

    def test_gc(self):
        self.run_verb("gc", ("error", "kill"))

    # The daemon SIGKILLed while the agent sleeps at each point (it dies with the daemon through
    # PR_SET_PDEATHSIG): an interrupted activation or rollback is completed after the restart.

    def test_daemon_killed_mid_activate(self):
        self.run_verb("activate", ("pause",))

    def test_daemon_killed_mid_rollback(self):
        self.run_verb("rollback", ("pause",))

    def test_daemon_killed_mid_import(self):
        self.run_verb("import", ("pause",))

    def test_daemon_killed_mid_gc(self):
        self.run_verb("gc", ("pause",))


if __name__ == "__main__":
    unittest.main()
