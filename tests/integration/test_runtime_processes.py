"""NodeRuntime with real processes, real curl and real sockets (loopback only).

The Client is an in-memory fake defined here (list/watch/get/create/update/
patch/delete with graceful deletion), standing in until the in-process
registry client lands. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import uvloop

from skiff.core.client import ApiError, Obj, Ref, WatchEvent
from skiff.node import logformat
from skiff.node.backoff import BackoffPolicy
from skiff.node.node import NodeRuntime

T = TypeVar("T")
POD = Ref("v1", "Pod")
NS = "default"


def log_text(path: Path) -> str:
    """A small log file as `kubectl logs` prints it: the text of its CRI records."""
    return logformat.Renderer().render(path.read_bytes()).decode()


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class FakeClient:
    """An in-memory API: enough of the registry's semantics for the node runtime."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.watchers: list[tuple[str, asyncio.Queue[WatchEvent]]] = []
        self.rv = itertools.count(1)
        self.status_writes = 0

    def _key(self, kind: str, name: str, ns: str) -> tuple[str, str, str]:
        return (kind, ns, name)

    def _emit(self, type_: str, obj: Obj) -> None:
        for kind, q in self.watchers:
            if kind == obj["kind"]:
                q.put_nowait(WatchEvent(type_, copy.deepcopy(obj)))

    def _not_found(self, ref: Ref, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{ref.kind.lower()}s "{name}" not found')

    async def get(self, ref: Ref, name: str, namespace: str = "") -> Obj:
        obj = self.objects.get(self._key(ref.kind, name, namespace))
        if obj is None:
            raise self._not_found(ref, name)
        return copy.deepcopy(obj)

    async def list(self, ref: Ref, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> list[Obj]:
        return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items()
                if k == ref.kind and (not namespace or ns == namespace)]

    async def list_with_version(self, ref: Ref, namespace: str = "", label_selector: str = "",
                                field_selector: str = "") -> tuple[list[Obj], str]:
        return await self.list(ref, namespace), ""

    async def watch(self, ref: Ref, namespace: str = "", resource_version: str = "",
                    shared: bool = False) -> AsyncIterator[WatchEvent]:
        q: asyncio.Queue[WatchEvent] = asyncio.Queue()
        entry = (ref.kind, q)
        self.watchers.append(entry)
        try:
            for (k, _, _), o in list(self.objects.items()):
                if k == ref.kind:
                    yield WatchEvent("ADDED", copy.deepcopy(o))
            while True:
                yield await q.get()
        finally:
            self.watchers.remove(entry)

    async def create(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", NS)
        key = self._key(obj["kind"], meta["name"], meta["namespace"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'"{meta["name"]}" already exists')
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self.rv))
        meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if obj["kind"] == "Pod":
            obj.setdefault("status", {"phase": "Pending"})
        self.objects[key] = obj
        self._emit("ADDED", obj)
        return copy.deepcopy(obj)

    def _store(self, key: tuple[str, str, str], obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        self.objects[key] = obj
        self._emit("MODIFIED", obj)
        return copy.deepcopy(obj)

    async def update(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = self._key(obj["kind"], meta["name"], meta.get("namespace", ""))
        cur = self.objects.get(key)
        if cur is None:
            raise self._not_found(Ref(obj["apiVersion"], obj["kind"]), meta["name"])
        if meta.get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        new = copy.deepcopy(obj)
        new["status"] = cur.get("status", {})
        return self._store(key, new)

    async def update_status(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        return await self.patch(Ref(obj["apiVersion"], obj["kind"]), meta["name"],
                                {"status": obj.get("status")}, meta.get("namespace", ""), "status")

    async def patch(self, ref: Ref, name: str, patch: Obj, namespace: str = "",
                    subresource: str = "") -> Obj:
        key = self._key(ref.kind, name, namespace)
        cur = self.objects.get(key)
        if cur is None:
            raise self._not_found(ref, name)
        if subresource == "status":
            self.status_writes += 1
            patch = {"status": patch.get("status")}
        return self._store(key, merge_patch(cur, patch))

    async def delete(self, ref: Ref, name: str, namespace: str = "",
                     grace_period_seconds: int | None = None) -> None:
        key = self._key(ref.kind, name, namespace)
        cur = self.objects.get(key)
        if cur is None:
            raise self._not_found(ref, name)
        if ref.kind == "Pod" and grace_period_seconds != 0 and cur["spec"].get("nodeName"):
            if cur["metadata"].get("deletionTimestamp"):
                return
            grace = grace_period_seconds
            if grace is None:
                grace = cur["spec"].get("terminationGracePeriodSeconds", 30)
            new = copy.deepcopy(cur)
            new["metadata"]["deletionTimestamp"] = datetime.now(UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            self._store(key, new)
            return
        del self.objects[key]
        self._emit("DELETED", cur)

    # helpers for tests
    def pod(self, name: str) -> Obj | None:
        return self.objects.get(self._key("Pod", name, NS))


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return uvloop.run(bounded())


async def eventually(check: Callable[[], T | None], timeout: float = 10,
                     what: str = "condition") -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def pod_obj(name: str, containers: list[Obj], restart: str = "Always", grace: int = 2,
            **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": containers, "restartPolicy": restart,
                     "terminationGracePeriodSeconds": grace, **spec}}


def cstatus(client: FakeClient, name: str, idx: int = 0) -> Obj:
    p = client.pod(name) or {}
    statuses = (p.get("status") or {}).get("containerStatuses") or [{}]
    return statuses[idx] if idx < len(statuses) else {}


def condition(client: FakeClient, name: str, ctype: str) -> str:
    p = client.pod(name) or {}
    for c in (p.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return str(c["status"])
    return ""


def phase(client: FakeClient, name: str) -> str:
    return str(((client.pod(name) or {}).get("status") or {}).get("phase", ""))


async def curl(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "--max-time", "5", url, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def body_of(url: str) -> str:
    """curl the URL; readiness = running, so the server may need a moment to bind."""
    for _ in range(100):
        code, out = await curl(url)
        if code == 0:
            return out
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class Harness:
    def __init__(self, home: Path, **kw: Any) -> None:
        self.client = FakeClient()
        kw.setdefault("backoff", BackoffPolicy(initial=0.2, cap=1.0, reset_after=600))
        self.rt = NodeRuntime(self.client, home, api_host="127.0.0.1", api_port=6443, **kw)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.ensure_future(self.rt.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rt.shutdown()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    async def ready(self, name: str, timeout: float = 10) -> Obj:
        await eventually(lambda: condition(self.client, name, "Ready") == "True", timeout,
                         f"pod {name} Ready")
        return self.client.pod(name) or {}

    def pid(self, name: str, container: int = 0) -> int:
        w = self.rt.worker(NS, name)
        assert w is not None
        proc = w.containers[container].proc
        assert proc is not None
        return proc.pid


def hello(name: str = "hello", env: list[Obj] | None = None, **kw: Any) -> Obj:
    c: Obj = {"name": "user-container", "image": "docker.io/openshift/hello-openshift",
              "ports": [{"containerPort": 8080}]}
    if env:
        c["env"] = env
    c.update(kw)
    return pod_obj(name, [c])


def tool(name: str, command: list[str] | None = None, args: list[str] | None = None,
         image: str = "busybox", restart: str = "Always", grace: int = 2, **kw: Any) -> Obj:
    c: Obj = {"name": "main", "image": image, **kw}
    if command is not None:
        c["command"] = command
    if args is not None:
        c["args"] = args
    return pod_obj(name, [c], restart=restart, grace=grace)


# ---- tests -------------------------------------------------------------------------------


def test_hello_openshift_answers_curl_on_its_port(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            await h.client.create(hello())
            pod = await h.ready("hello")
            port = int(pod["metadata"]["annotations"]["skiff.dev/port"])
            assert pod["spec"]["nodeName"] == "skiff"
            assert pod["status"]["phase"] == "Running"
            assert pod["status"]["podIP"] == "127.0.0.1"
            assert pod["status"]["qosClass"] == "BestEffort"
            cs = pod["status"]["containerStatuses"][0]
            assert cs["ready"] and cs["started"] and "running" in cs["state"]
            assert await body_of(f"http://127.0.0.1:{port}/anything") == "Hello OpenShift!\n"
            writes = h.client.status_writes
            # a status sync now (the clock has moved on) finds nothing changed and writes
            # nothing: the decision itself, instead of waiting out a window for a write
            w = h.rt.worker(NS, "hello")
            assert w is not None
            for _ in range(2):
                assert await w.flush_status()
            assert h.client.status_writes == writes, "unchanged status must not be rewritten"
    run(body())


def test_response_env_from_configmap_and_missing_configmap(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path, config_retry_seconds=0.1) as h:
            env = [{"name": "RESPONSE", "valueFrom": {"configMapKeyRef": {
                "name": "greeting", "key": "text"}}}]
            await h.client.create(hello(env=env))
            await eventually(lambda: cstatus(h.client, "hello").get("state", {}).get(
                "waiting", {}).get("reason") == "CreateContainerConfigError", 5,
                "CreateContainerConfigError")
            assert cstatus(h.client, "hello")["state"]["waiting"]["message"] == \
                'configmap "greeting" not found'
            assert phase(h.client, "hello") == "Pending"
            await h.client.create({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "greeting", "namespace": NS},
                                   "data": {"text": "Hello Serverless!"}})
            pod = await h.ready("hello")
            port = pod["metadata"]["annotations"]["skiff.dev/port"]
            assert await body_of(f"http://127.0.0.1:{port}/") == "Hello Serverless!\n"
    run(body())


def test_exit_3_with_restart_never_fails(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            await h.client.create(tool("three", ["sh", "-c", "echo bye; exit 3"],
                                       restart="Never"))
            await eventually(lambda: phase(h.client, "three") == "Failed", 10, "Failed")
            term = cstatus(h.client, "three")["state"]["terminated"]
            assert term["exitCode"] == 3 and term["reason"] == "Error"
            assert cstatus(h.client, "three")["restartCount"] == 0
            assert condition(h.client, "three", "Ready") == "False"
            assert log_text(h.rt.log_path(NS, "three", "main")) == "bye\n"
    run(body())


def test_completed_pod_succeeds(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            await h.client.create(tool("ok", args=["sh", "-c", "echo $HOSTNAME $PORT"],
                                       restart="OnFailure"))
            await eventually(lambda: phase(h.client, "ok") == "Succeeded", 10, "Succeeded")
            assert cstatus(h.client, "ok")["state"]["terminated"]["reason"] == "Completed"
            port = h.client.pod("ok")["metadata"]["annotations"]["skiff.dev/port"]  # type: ignore[index]
            assert log_text(h.rt.log_path(NS, "ok")) == f"ok {port}\n"
    run(body())


def test_crash_loop_back_off(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            await h.client.create(tool("crash", ["sh", "-c", "echo boom $PORT; exit 1"]))
            await eventually(
                lambda: cstatus(h.client, "crash").get("restartCount", 0) >= 2 and
                cstatus(h.client, "crash")["state"].get("waiting", {}).get("reason")
                == "CrashLoopBackOff", 10, "CrashLoopBackOff")
            cs = cstatus(h.client, "crash")
            assert cs["lastState"]["terminated"]["exitCode"] == 1
            assert cs["lastState"]["terminated"]["reason"] == "Error"
            assert "back-off" in cs["state"]["waiting"]["message"]
            assert phase(h.client, "crash") == "Running"
            assert condition(h.client, "crash", "Ready") == "False"
            assert log_text(h.rt.log_path(NS, "crash", "main")).startswith("boom ")
            assert log_text(h.rt.log_path(NS, "crash", "main", previous=True)) \
                .startswith("boom ")
    run(body())


def test_unknown_image_err_image_pull_then_back_off(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path, image_backoff=BackoffPolicy(initial=1.0)) as h:
            await h.client.create(tool("nope", image="foo/bar:1"))
            await eventually(lambda: cstatus(h.client, "nope").get("state", {}).get(
                "waiting", {}).get("reason") == "ErrImagePull", 5, "ErrImagePull")
            await eventually(lambda: cstatus(h.client, "nope").get("state", {}).get(
                "waiting", {}).get("reason") == "ImagePullBackOff", 5, "ImagePullBackOff")
            msg = cstatus(h.client, "nope")["state"]["waiting"]["message"]
            assert msg.startswith('Back-off pulling image "foo/bar:1": image not found')
            assert phase(h.client, "nope") == "Pending"
            with pytest.raises(ApiError) as e:
                h.rt.log_path(NS, "nope", "main")
            assert e.value.code == 400 and "waiting to start" in e.value.message
    run(body())


def test_graceful_delete_stops_the_process_group(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            # a group with a child that ignores SIGTERM: SIGKILL after the grace period
            await h.client.create(tool("victim", ["sh", "-c", "sleep 1000 & wait"], grace=1))
            await h.ready("victim")
            pid = h.pid("victim")
            kids = await eventually(lambda: psutil.Process(pid).children(), 5, "child")
            await h.client.create(tool("stubborn", ["sh", "-c", "trap '' TERM; sleep 1000"],
                                       grace=1))
            await h.ready("stubborn")
            stubborn = h.pid("stubborn")
            await h.client.delete(POD, "victim", NS)
            await h.client.delete(POD, "stubborn", NS)
            await eventually(lambda: h.client.pod("victim") is None and
                             h.client.pod("stubborn") is None, 8, "pods finalized")
            for p in [pid, stubborn, *(k.pid for k in kids)]:
                await eventually(lambda p=p: not alive(p), 3, f"pid {p} gone")  # type: ignore[misc]
            assert h.rt.worker(NS, "victim") is None
    run(body())


def test_shutdown_leaves_nothing_running_and_restart_starts_pods_again(tmp_path: Path) -> None:
    async def body() -> None:
        h = Harness(tmp_path)
        async with h:
            await h.client.create(hello())
            await h.client.create(tool("sleeper", ["sleep", "1000"]))
            await h.ready("hello")
            await h.ready("sleeper")
            pids = [h.pid("hello"), h.pid("sleeper")]
            port = h.client.pod("hello")["metadata"]["annotations"]["skiff.dev/port"]  # type: ignore[index]
        for p in pids:
            assert not alive(p)
        assert phase(h.client, "sleeper") == "Running", "shutdown must not mark pods finished"
        # a new runtime over the same store starts every pod again
        rt2 = NodeRuntime(h.client, tmp_path, api_port=6443)
        task = asyncio.ensure_future(rt2.run())
        try:
            await eventually(lambda: cstatus(h.client, "hello").get("restartCount") == 1 and
                             condition(h.client, "hello", "Ready") == "True", 10, "restart")
            cs = cstatus(h.client, "hello")
            assert cs["lastState"]["terminated"]["reason"] == "Unknown"
            assert h.client.pod("hello")["metadata"]["annotations"]["skiff.dev/port"] == port  # type: ignore[index]
            assert await body_of(f"http://127.0.0.1:{port}/") == "Hello OpenShift!\n"
        finally:
            await rt2.shutdown()
            await asyncio.wait_for(task, 5)
    run(body())


def test_exec_exit_codes_stdout_stdin_and_errors(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            await h.client.create(tool("curl", image="curlimages/curl",
                                       env=[{"name": "GREETING", "value": "hi"}]))
            await h.ready("curl")
            s = await h.rt.exec(NS, "curl", "main", ["sh", "-c", "echo $GREETING $HOSTNAME; "
                                                      "echo err >&2; exit 4"], False, False)
            out, err = await s.stdout.read(), await s.stderr.read()  # type: ignore[union-attr]
            assert (out, err, await s.wait()) == (b"hi curl\n", b"err\n", 4)

            s = await h.rt.exec(NS, "curl", "", ["cat"], True, False)
            await s.write(b"through stdin")
            s.close_stdin()
            assert await s.stdout.read() == b"through stdin"
            assert await s.wait() == 0

            s = await h.rt.exec(NS, "curl", "main", ["no-such-command"], False, False)
            assert await s.wait() == 126
            assert b"executable file not found" in await s.stderr.read()  # type: ignore[union-attr]

            s = await h.rt.exec(NS, "curl", "main", ["sh", "-c", "tty >/dev/null && echo tty"],
                                False, True)
            assert await asyncio.wait_for(s.stdout.read(), 5) == b"tty\r\n"
            assert await s.wait() == 0

            with pytest.raises(ApiError) as e:
                await h.rt.exec(NS, "nothere", "main", ["true"], False, False)
            assert e.value.code == 404
            with pytest.raises(ApiError) as e:
                await h.rt.exec(NS, "curl", "other", ["true"], False, False)
            assert e.value.code == 400

            await h.client.create(tool("done", ["true"], restart="Never"))
            await eventually(lambda: phase(h.client, "done") == "Succeeded", 5, "Succeeded")
            with pytest.raises(ApiError) as e:
                await h.rt.exec(NS, "done", "main", ["true"], False, False)
            assert e.value.code == 400 and "container not found" in e.value.message
    run(body())


def test_curl_image_args_run_curl_and_logs_follow(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            await h.client.create(hello())
            pod = await h.ready("hello")
            port = pod["metadata"]["annotations"]["skiff.dev/port"]
            await h.client.create(tool("client", image="docker.io/curlimages/curl:8.5.0",
                                       args=["-s", "--retry", "20", "--retry-connrefused",
                                             "--retry-delay", "0", f"http://127.0.0.1:{port}/"],
                                       restart="Never"))
            await eventually(lambda: phase(h.client, "client") in ("Succeeded", "Failed"), 10,
                             "curl pod done")
            assert phase(h.client, "client") == "Succeeded"
            assert log_text(h.rt.log_path(NS, "client")) == "Hello OpenShift!\n"

            await h.client.create(tool("ticker", ["sh", "-c",
                                                  "for i in 1 2 3; do echo line$i; sleep 0.1; "
                                                  "done"], restart="Never"))
            await h.ready("ticker")
            chunks = [c async for c in h.rt.follow_log(NS, "ticker", "main", follow=True)]
            assert b"".join(chunks) == b"line1\nline2\nline3\n"
            tail = [c async for c in h.rt.follow_log(NS, "ticker", follow=False, tail_lines=1)]
            assert b"".join(tail) == b"line3\n"
    run(body())


def test_probes_http_tcp_exec_and_liveness_restart(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            await h.client.create(hello("http-probe", readinessProbe={
                "httpGet": {"port": 8080, "path": "/healthz"}, "periodSeconds": 0}))
            await h.client.create(hello("tcp-probe", readinessProbe={
                "tcpSocket": {"port": 0}, "periodSeconds": 0}))
            await h.client.create(tool("exec-probe", ["sleep", "1000"], readinessProbe={
                "exec": {"command": ["sh", "-c", "echo >> probed; test -f ready"]},
                "periodSeconds": 0, "failureThreshold": 1}))
            await h.client.create(tool("dead", ["sleep", "1000"], livenessProbe={
                "tcpSocket": {"port": 1}, "periodSeconds": 0, "failureThreshold": 2},
                grace=1))
            await h.ready("http-probe")
            await h.ready("tcp-probe")
            w = h.rt.worker(NS, "exec-probe")
            assert w is not None
            # the probe has run and failed twice (it counts its runs in a file): not ready,
            # shown by the probe's own runs rather than a waiting window
            probed = w.containers[0].cwd / "probed"
            await eventually(lambda: probed.exists() and probed.read_text().count("\n") >= 2,
                             10, "two readiness probes")
            # the status with its conditions may be written a moment after the probes ran
            ready = await eventually(lambda: condition(h.client, "exec-probe", "Ready"), 10,
                                     "exec-probe's Ready condition")
            assert ready == "False"
            await eventually(lambda: cstatus(h.client, "exec-probe").get("started") is True, 10,
                             "exec-probe started")
            (w.containers[0].cwd / "ready").touch()
            await h.ready("exec-probe")
            await eventually(lambda: cstatus(h.client, "dead").get("restartCount", 0) >= 1, 10,
                             "liveness restart")
            assert cstatus(h.client, "dead")["lastState"]["terminated"]["exitCode"] == 143
    run(body())



def test_fork_server_starts_hello_and_reports_exit_codes(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            forks = h.rt.forks
            assert forks is not None
            # the node has listed and watches pods (its start-up is done): still no fork server
            await eventually(lambda: any(k == "Pod" for k, _ in h.client.watchers), 10,
                             "the node's pod watch")
            assert forks.proc is None   # an idle node has no fork server
            await h.client.create(hello(name="first"))   # the first pod starts it
            await eventually(lambda: forks.ready, 30, "fork server ready")
            assert forks.proc is not None and h.rt.ctx.forker is forks
            await h.client.create(hello(env=[{"name": "RESPONSE", "value": "forked"}]))
            pod = await h.ready("hello")
            pid = h.pid("hello")
            assert psutil.Process(pid).ppid() == forks.proc.pid
            assert os.getpgid(pid) == pid
            port = pod["metadata"]["annotations"]["skiff.dev/port"]
            assert await body_of(f"http://127.0.0.1:{port}/") == "forked\n"
            os.kill(pid, signal.SIGKILL)
            await eventually(lambda: cstatus(h.client, "hello").get("restartCount") == 1, 5,
                             "restart after SIGKILL")
            assert cstatus(h.client, "hello")["lastState"]["terminated"]["exitCode"] == 137
            await h.ready("hello")
            # the template dies: its children die with it (their parent-death signal), the
            # exit is still noticed, new pods start afresh
            pid = h.pid("hello")
            forks.proc.kill()
            await eventually(lambda: not forks.ready, 5, "forks gone")
            await eventually(lambda: gone(pid), 5, "the child died with its template")
            await eventually(lambda: cstatus(h.client, "hello").get("restartCount") == 2, 5,
                             "restart after template death")
            await h.ready("hello")
            pid = h.pid("hello")
            assert psutil.Process(pid).ppid() == os.getpid()
            port = (h.client.pod("hello") or {})["metadata"]["annotations"]["skiff.dev/port"]
            assert await body_of(f"http://127.0.0.1:{port}/") == "forked\n"
    run(body())


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_hello_without_fork_server(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path, fork_server=False) as h:
            await h.client.create(hello())
            pod = await h.ready("hello")
            assert psutil.Process(h.pid("hello")).ppid() == os.getpid()
            port = pod["metadata"]["annotations"]["skiff.dev/port"]
            assert await body_of(f"http://127.0.0.1:{port}/") == "Hello OpenShift!\n"
    run(body())


def test_init_containers_and_sidecars(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            job = pod_obj("job", [{"name": "main", "image": "busybox",
                                   "command": ["sh", "-c", "echo main"]}], restart="Never",
                          initContainers=[
                              {"name": "setup", "image": "busybox", "command": ["true"]},
                              {"name": "proxy", "image": "busybox", "restartPolicy": "Always",
                               "command": ["sleep", "1000"]}])
            await h.client.create(job)
            await eventually(lambda: phase(h.client, "job") == "Succeeded", 10, "Succeeded")

            def inits() -> dict[str, Obj]:
                status = (h.client.pod("job") or {})["status"]
                return {s["name"]: s for s in status["initContainerStatuses"]}

            assert inits()["setup"]["state"]["terminated"]["reason"] == "Completed"
            await eventually(lambda: "terminated" in inits()["proxy"]["state"], 5,
                             "the sidecar stops once the pod is done")
            assert phase(h.client, "job") == "Succeeded"
            assert log_text(h.rt.log_path(NS, "job")) == "main\n"

            bad = pod_obj("bad", [{"name": "main", "image": "busybox", "command": ["true"]}],
                          restart="Never", initContainers=[
                              {"name": "setup", "image": "busybox",
                               "command": ["sh", "-c", "exit 2"]}])
            await h.client.create(bad)
            await eventually(lambda: phase(h.client, "bad") == "Failed", 10, "Failed")
            status = (h.client.pod("bad") or {})["status"]
            assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
            assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == \
                "PodInitializing"
    run(body())


def test_missing_command_is_a_start_error(tmp_path: Path) -> None:
    async def body() -> None:
        async with Harness(tmp_path) as h:
            await h.client.create(tool("typo", ["no-such-binary", "x"]))
            await eventually(lambda: cstatus(h.client, "typo").get("state", {}).get(
                "waiting", {}).get("reason") == "CrashLoopBackOff", 10, "CrashLoopBackOff")
            last = cstatus(h.client, "typo")["lastState"]["terminated"]
            assert (last["exitCode"], last["reason"]) == (128, "StartError")
            assert 'exec: "no-such-binary": executable file not found in $PATH' in last["message"]
            assert "no-such-binary" in log_text(h.rt.log_path(NS, "typo"))
    run(body())
