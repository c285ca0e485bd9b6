"""Container lifecycle hooks with the real node runtime, real processes and sockets (loopback).

The containers note what happens to them, in order, in one file ($MARK): a
small HTTP server (the test's own script, run by the host-tool image) notes
each hook request it gets and the SIGTERM it gets; shell containers note
their exec hook and their SIGTERM trap. The order in that file is what the
tests check: a preStop hook ends before its container's SIGTERM, a container
without one is not held up, a hook that hangs is cut at the grace period and
the container is killed all the same, a failing hook is an event and no
obstacle; a postStart hook runs before the container is ready, and a failing
one restarts it. The NodeRuntime harness and FakeClient come from
test_runtime_processes.py; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from test_runtime_processes import (
    NS,
    POD,
    FakeClient,
    Harness,
    alive,
    cstatus,
    eventually,
    pod_obj,
    run,
)

from skiff.core.client import Obj

SERVER = r'''
import http.server, os, signal, sys, time

MARK, NAME = os.environ["MARK"], os.environ["NAME"]


def note(what):
    with open(MARK, "a") as f:
        f.write(f"{NAME} {what}\n")


def on_term(*_):
    note("term")
    if os.environ.get("IGNORE_TERM") != "1":
        os._exit(0)


signal.signal(signal.SIGTERM, on_term)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/hook"):
            note(f"hook {self.path} {self.headers.get('User-Agent')}")
            time.sleep(float(os.environ.get("HOOK_SECONDS", "0")))
            note("hook-done")
        self.send_response(int(os.environ.get("HOOK_STATUS", "200")) if self.path.startswith("/hook") else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''

# a shell container that notes its SIGTERM and exits (the trap runs between short sleeps)
TRAP = 'trap \'echo "$NAME term" >> "$MARK"; exit 0\' TERM; while true; do sleep 0.05; done'


def server(tmp: Path, name: str, port: int, **env: str) -> Obj:
    script = tmp / "server.py"
    script.write_text(SERVER)
    return {"name": name, "image": "docker.io/library/fedora",
            "command": [sys.executable, str(script)],
            "ports": [{"containerPort": port, "name": "http"}],
            "env": [{"name": k, "value": v} for k, v in
                    {"MARK": str(tmp / "marks"), "NAME": name, **env}.items()],
            "readinessProbe": {"httpGet": {"port": port, "path": "/healthz"},
                               "periodSeconds": 0}}


def shell(tmp: Path, name: str, script: str = TRAP) -> Obj:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script],
            "env": [{"name": "MARK", "value": str(tmp / "marks")}, {"name": "NAME", "value": name}]}


def marks(tmp: Path) -> list[str]:
    path = tmp / "marks"
    return path.read_text().splitlines() if path.exists() else []


def before(lines: list[str], first: str, then: str) -> bool:
    """`first` is noted, and before `then` (a prefix of a line each)."""
    at = {p: next((i for i, line in enumerate(lines) if line.startswith(p)), None)
          for p in (first, then)}
    return at[first] is not None and at[then] is not None and at[first] < at[then]


def record_events(client: FakeClient) -> list[Obj]:
    """Keep the Events the runtime creates (the fake store has no generateName)."""
    events: list[Obj] = []
    create = client.create

    async def recording(obj: Obj) -> Obj:
        if obj.get("kind") == "Event":
            events.append(obj)
            return obj
        return await create(obj)

    client.create = recording  # type: ignore[method-assign]
    return events


def reasons(events: list[Obj]) -> list[tuple[str, str, str, str]]:
    return [(e["type"], e["reason"], e["message"], e["involvedObject"].get("fieldPath", ""))
            for e in events]


async def deleted(h: Harness, name: str, timeout: float) -> float:
    """Delete the pod gracefully; the seconds until the runtime finalized it."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await h.client.delete(POD, name, NS)
    await eventually(lambda: h.client.pod(name) is None, timeout, f"pod {name} finalized")
    return loop.time() - start


# ---- tests -------------------------------------------------------------------------------


def test_prestop_hooks_run_before_their_containers_sigterm(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path / "home") as h:
            pod = pod_obj("web", [
                # httpGet on the declared containerPort (a host port here, as probes get)
                {**server(tmp_path, "app", 8080, HOOK_SECONDS="1.5"),
                 "lifecycle": {"preStop": {"httpGet": {"port": "http", "path": "/hook/drain"}}}},
                # exec, inside the container as `kubectl exec`: its env, its cwd
                {**shell(tmp_path, "sh"), "lifecycle": {"preStop": {"exec": {"command": [
                    "sh", "-c", 'echo "$NAME hook" >> "$MARK"; sleep 1; '
                    'echo "$NAME hook-done" >> "$MARK"']}}}},
                shell(tmp_path, "plain"),      # no hook: SIGTERM at once
            ], grace=20)
            await h.client.create(pod)
            await h.ready("web", timeout=15)
            took = await deleted(h, "web", 25)
            lines = marks(tmp_path)
            assert "app hook /hook/drain kube-lifecycle/1.29" in lines, lines
            assert before(lines, "app hook-done", "app term"), lines
            assert before(lines, "sh hook-done", "sh term"), lines
            # stopped in parallel: the container without a hook did not wait for the others
            assert before(lines, "plain term", "app hook-done"), lines
            assert before(lines, "plain term", "sh hook-done"), lines
            assert took < 15, f"the containers exited at SIGTERM; no SIGKILL wait ({took:.1f}s)"
    run(body(), timeout=60)


def test_a_hanging_prestop_hook_is_cut_at_the_grace_period(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path / "home") as h:
            hook_pid = tmp_path / "hook.pid"
            pod = pod_obj("stuck", [
                # the hook never answers and the server ignores SIGTERM: SIGKILL ends it
                {**server(tmp_path, "app", 8080, HOOK_SECONDS="600", IGNORE_TERM="1"),
                 "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/hook/hang"}}}},
                {**shell(tmp_path, "sh"), "lifecycle": {"preStop": {"exec": {"command": [
                    "sh", "-c", f'echo $$ > {hook_pid}; exec sleep 600']}}}},
                # sleep has no timeout of its own: only the grace period cuts it
                {**shell(tmp_path, "nap"), "lifecycle": {"preStop": {"sleep": {"seconds": 600}}}},
            ], grace=2)
            await h.client.create(pod)
            await h.ready("stuck", timeout=15)
            pid = h.pid("stuck")
            took = await deleted(h, "stuck", 20)
            lines = marks(tmp_path)
            assert before(lines, "app hook /hook/hang", "app term"), lines
            assert "app hook-done" not in lines
            assert {"sh term", "nap term"} <= set(lines), lines
            # the hook had its grace period; then SIGTERM, and SIGKILL 2 s (the floor) later
            assert 1.5 < took < 12, took
            await eventually(lambda: not alive(pid), 3, "the container is gone")
            exec_hook = int(hook_pid.read_text())
            await eventually(lambda: not alive(exec_hook), 3, "the exec hook's process is gone")
    run(body(), timeout=60)


def test_a_failing_prestop_hook_is_an_event_and_termination_goes_on(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path / "home") as h:
            events = record_events(h.client)
            pod = pod_obj("failing", [
                {**server(tmp_path, "app", 8080, HOOK_STATUS="500"),
                 "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/hook/500"}}}},
                {**shell(tmp_path, "sh"),
                 "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "exit 3"]}}}},
                # kept in the API for old manifests, but no kubelet can run it
                {**shell(tmp_path, "tcp"), "lifecycle": {"preStop": {"tcpSocket": {"port": 1}}}},
            ], grace=20)
            await h.client.create(pod)
            await h.ready("failing", timeout=15)
            took = await deleted(h, "failing", 25)
            lines = marks(tmp_path)
            assert before(lines, "app hook-done", "app term"), lines
            assert {"sh term", "tcp term"} <= set(lines), lines
            assert took < 15, took
            assert sorted(reasons(events)) == [
                ("Warning", "FailedPreStopHook", "PreStopHook failed", f"spec.containers{{{c}}}")
                for c in ("app", "sh", "tcp")]
    run(body(), timeout=60)


def test_post_start_runs_before_ready_and_a_failing_one_restarts(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path / "home") as h:
            events = record_events(h.client)
            started = tmp_path / "started"
            await h.client.create(pod_obj("warm", [{**shell(tmp_path, "sh"), "lifecycle": {
                "postStart": {"exec": {"command": [
                    "sh", "-c", f"sleep 0.5; touch {started}"]}}}}]))
            await h.ready("warm", timeout=15)
            assert started.exists(), "Ready before the postStart hook was done"
            assert cstatus(h.client, "warm")["restartCount"] == 0

            await h.client.create(pod_obj("cold", [{**shell(tmp_path, "cold"), "lifecycle": {
                "postStart": {"exec": {"command": ["false"]}},
                "preStop": {"exec": {"command": ["sh", "-c", 'echo "cold hook" >> "$MARK"']}}}}],
                grace=5))
            await eventually(lambda: cstatus(h.client, "cold").get("restartCount", 0) >= 1, 15,
                             "the container killed and started again")
            assert ("Warning", "FailedPostStartHook", "PostStartHook failed",
                    "spec.containers{cold}") in reasons(events)
            # killed as the kubelet kills: its preStop hook, then SIGTERM
            assert before(marks(tmp_path), "cold hook", "cold term"), marks(tmp_path)
    run(body(), timeout=60)
