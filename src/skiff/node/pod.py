"""One pod's supervisor: kubelet's pod worker for a single pod.

PodWorker admits the pod (spec.nodeName, loopback ports recorded in the
skiff.dev/port(s) annotations; the write goes on while the containers start),
runs init containers in order (restartable "sidecar" init containers stay
up), then every container in its own loop: resolve the image (images/), build
the env (env.py, with the ConfigMaps and Secrets fetched through the Client),
spawn (process.py), probe (prober.py), wait, and restart by restartPolicy
with CrashLoopBackOff (backoff.py). Every change marks the pod dirty; a
single writer builds the status (status.py) and patches it only when it
differs from what it last wrote, never before the admission write, and the
first time only once the pod has settled (or START_COALESCE passed), so a
pod that is ready at once is written once. terminate()
stops all containers within a grace period. Every stop of a container (the
pod's termination, a failed liveness or startup probe, a failed postStart
hook, a finished pod's sidecars) goes through _stop_container(): its preStop
hook first (lifecycle.py, run by prober.check), then SIGTERM, SIGKILL when
the grace period they share is over. A postStart hook runs right after the
start, before the probes. NodeRuntime (node.py) owns the workers and feeds
them the pod objects it watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import parse_time, rfc3339
from skiff.core.lanes import LANES
from skiff.node import backoff, env, images, lifecycle, logs, ports, prober, probes, process
from skiff.node.execsession import ExecSession
from skiff.node.images.local import LocalImages
from skiff.node.network.podnet import LoopbackNetwork, NetworkError, PodNetwork
from skiff.node.network.sandbox import Sandbox
from skiff.node.status import (
    ContainerObs,
    PodObs,
    Running,
    State,
    Terminated,
    Waiting,
    build_status,
    exit_reason,
    settled,
)

log = logging.getLogger("skiff.runtime")

POD = Ref("v1", "Pod")
CONFIGMAP = Ref("v1", "ConfigMap")
SECRET = Ref("v1", "Secret")
DEFAULT_GRACE = 30.0
ERR_IMAGE_PULL_SHOWN = 1.0      # seconds ErrImagePull shows before ImagePullBackOff
# A starting pod's first status waits at most this long (seconds) for the pod to settle (every
# container ready, or one failed), so that a pod ready at once is written once, not
# Pending, ContainerCreating, Running and Ready in turn (as the kubelet's status manager
# batches them); each write wakes the ReplicaSet, EndpointSlice, Revision and gateway watches.
START_COALESCE = 0.25
# The most (seconds) the admission write waits for the pod's first start request to be
# answered (PodWorker._admission says why it waits, and why with a bound).
ADMIT_AFTER = 0.05


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class NodeContext:
    """What every pod worker shares: the node's identity, client and policies."""
    client: Client
    home: Path
    node_name: str
    api_host: str
    api_port: int
    crash_backoff: backoff.BackoffPolicy
    image_backoff: backoff.BackoffPolicy
    config_retry: float
    ports: process.PortAllocator
    local_images: LocalImages
    node_allocatable: dict[str, float] = field(default_factory=dict)
    forker: process.Forker | None = None
    network: PodNetwork = field(default_factory=LoopbackNetwork)
    log_max_size: int = logs.DEFAULT_MAX_SIZE       # containerLogMaxSize, bytes
    log_max_files: int = logs.DEFAULT_MAX_FILES     # containerLogMaxFiles
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic


class _Gone(Exception):
    """The pod left the store while we were working on it."""


class ContainerRun:
    """What the runtime knows about one container of the pod."""

    def __init__(self, spec: Obj, init: bool, waiting: str = "ContainerCreating") -> None:
        self.spec = spec
        self.name: str = spec.get("name", "")
        self.init = init
        self.sidecar = init and spec.get("restartPolicy") == "Always"
        self.state: State = Waiting(waiting)
        self.last_state: Terminated | None = None
        self.restart_count = 0
        self.ready = False
        self.started = False
        self.image_id = ""
        self.container_id = ""
        self.proc: process.ContainerProcess | None = None
        self.image: images.Image | None = None
        self.env: dict[str, str] = {}
        self.cwd: Path = Path("/")
        self.crash_backoff: backoff.BackoffEntry | None = None
        self.pull_backoff: backoff.BackoffEntry | None = None
        self.execs: set[ExecSession] = set()
        self.pre_stop: asyncio.Task[None] | None = None   # the current process's preStop hook

    @property
    def field_path(self) -> str:
        """The container in an event's involvedObject, as the kubelet names it."""
        return f"spec.{'initContainers' if self.init else 'containers'}{{{self.name}}}"

    def obs(self) -> ContainerObs:
        return ContainerObs(name=self.name, image=self.spec.get("image", ""), state=self.state,
                            last_state=self.last_state, restart_count=self.restart_count,
                            ready=self.ready, started=self.started, image_id=self.image_id,
                            container_id=self.container_id)

    @property
    def running(self) -> bool:
        return self.proc is not None and not self.proc.exited

    def kill_execs(self) -> None:
        for s in list(self.execs):
            s.kill()
        self.execs.clear()


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: Obj) -> None:
        self.ctx = ctx
        self.pod: Obj = pod          # the watch's own copy (never changed in place here)
        meta = pod.get("metadata") or {}
        self.uid: str = meta.get("uid", "")
        self.namespace: str = meta.get("namespace", "")
        self.name: str = meta.get("name", "")
        spec = pod.get("spec") or {}
        self.inits = [ContainerRun(c, init=True) for c in spec.get("initContainers") or []]
        first_wait = "PodInitializing" if self.inits else "ContainerCreating"
        self.containers = [ContainerRun(c, init=False, waiting=first_wait)
                           for c in spec.get("containers") or []]
        self.dir = logs.pod_dir(ctx.home, self.namespace, self.name, self.uid)
        self.keys = ports.planned_keys(pod)
        self.mapping: dict[str, int] = {}
        self.sandbox: Sandbox | None = None
        self.host_network = bool(spec.get("hostNetwork"))
        status: Obj = pod.get("status") or {}
        self.start_time = parse_time(status.get("startTime"))
        self.terminating = False
        self._done = False           # every regular container finished for good
        self.gone = False
        self.grace = self.spec_grace()
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()
        self._written: Obj | None = copy.deepcopy(status) if status else None
        self._wrote = False                    # this worker has written a status
        self._admitted = asyncio.Event()       # the admission write is done (or failed)
        self._asked = asyncio.Event()          # a container's start request has been answered
        self._admission_task: asyncio.Task[None] | None = None
        self._settle_by: float | None = None   # (loop time) the first status waits until then
        self._main: asyncio.Task[None] | None = None
        self._status: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self._recover(status)

    # ---- bookkeeping -------------------------------------------------------------------

    @property
    def runs(self) -> list[ContainerRun]:
        return [*self.inits, *self.containers]

    def spec_grace(self) -> float:
        g = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(g) if g is not None else DEFAULT_GRACE

    def deletion_grace(self) -> float:
        g = (self.pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
        return float(g) if g is not None else self.spec_grace()

    def container(self, name: str) -> ContainerRun | None:
        return next((r for r in self.runs if r.name == name), None)

    def observation(self) -> PodObs:
        return PodObs(containers=[r.obs() for r in self.containers],
                      init_containers=[r.obs() for r in self.inits], start_time=self.start_time,
                      pod_ip=self.pod_ip)

    @property
    def pod_ip(self) -> str:
        return self.sandbox.ip if self.sandbox is not None else "127.0.0.1"

    @property
    def isolated(self) -> bool:
        """The pod has a network namespace of its own (its ports are its own)."""
        return self.sandbox is not None

    def _recover(self, status: Obj) -> None:
        """After a restart of skiff, carry restart counts on: this is a new run of each."""
        now = self.ctx.clock()
        seen = {s.get("name"): s for s in [*(status.get("initContainerStatuses") or []),
                                           *(status.get("containerStatuses") or [])]}
        for run in self.runs:
            s = seen.get(run.name)
            if not s:
                continue
            state, last = s.get("state") or {}, (s.get("lastState") or {}).get("terminated")
            if "running" in state:
                run.last_state = Terminated(255, "Unknown",
                                            parse_time(state["running"].get("startedAt")), now)
            elif "terminated" in state:
                run.last_state = _terminated_from(state["terminated"], now)
            elif last:
                run.last_state = _terminated_from(last, now)
            else:
                continue
            run.restart_count = int(s.get("restartCount") or 0) + 1

    def changed(self) -> None:
        self._dirty.set()

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless terminating; False when the pod is being stopped."""
        if self._stop.is_set():
            return False
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=max(seconds, 0.0))
            return False
        except TimeoutError:
            return not self._stop.is_set()

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._status = asyncio.ensure_future(self._status_loop())
        self._main = asyncio.ensure_future(self._run())

    def update(self, pod: Obj) -> None:
        """The latest object from the watch (metadata, spec; status is ours): the watch's own
        copy (each watcher gets one), kept as it is, not copied again."""
        self.pod = pod

    async def _run(self) -> None:
        LANES.touch()
        LANES.pod_starting(self.uid)   # until it settles (flush_status)
        if not await self._make_sandbox():
            LANES.pod_settled(self.uid)
            return
        self._choose_ports()
        # The admission write (nodeName, the port annotations) goes on beside the containers'
        # start: their ports are chosen already, and no status (so no Ready) is written
        # before it is done (_status_loop waits for it).
        self._admission_task = asyncio.ensure_future(self._admission())
        if self.start_time is None:
            self.start_time = self.ctx.clock()
        self._settle_by = asyncio.get_running_loop().time() + START_COALESCE
        self.changed()
        try:
            if await self._run_inits():
                for run in self.containers:
                    if isinstance(run.state, Waiting) and run.state.reason == "PodInitializing":
                        run.state = Waiting("ContainerCreating")
                await asyncio.gather(*(self._container_loop(r) for r in self.containers))
        except Exception:
            log.exception("pod %s/%s: runtime error", self.namespace, self.name)
        if not self.terminating:     # the pod is done for good: sidecars stop, ports go back
            self._done = True
            await asyncio.gather(*(self._stop_container(r, r.proc, self.grace)
                                   for r in self.inits if r.sidecar and r.proc is not None))
            await self._release_network()

    async def _admission(self) -> None:
        # The write waits until the first start request (the first container's spawn, init or
        # regular) has been answered: on the one event loop it would otherwise run between the
        # pod's worker and its fork requests, 1-2 ms of a cold start. That answer (_asked) is
        # the signal on the usual path; ADMIT_AFTER bounds the wait for a pod whose start
        # request does not come soon (an image to pull, a ConfigMap or Secret missing, a pod
        # stopped first), rather than each of those paths setting the event too: the wait
        # only orders work, nothing depends on it (a container's env reads the ports from
        # _as_admitted), and what it costs such a pod is its first status held up to ADMIT_AFTER
        # (no status is written before the admission).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._asked.wait(), ADMIT_AFTER)
        try:
            await self._admit()
        except _Gone:
            # The pod left the store before it was admitted: what started stops at once (the
            # runtime's watch sees it go too and disposes of this worker).
            self.gone = True
            await self.terminate(0.0, write_status=False)
        except Exception:
            log.exception("pod %s/%s: admitting failed; running it anyway", self.namespace,
                          self.name)
        finally:
            self._admitted.set()

    async def _make_sandbox(self) -> bool:
        """The pod's network namespace and IP (the kubelet's RunPodSandbox through the CNI).
        Retried while it fails, as the kubelet does, with a FailedCreatePodSandBox event;
        False when the pod is stopped first."""
        if self.host_network or self.ctx.network.mode != "namespaces":
            return True
        told = False
        while not self._stop.is_set():
            try:
                self.sandbox = await self.ctx.network.setup(
                    self.namespace, self.name, self._hostname())
                return True
            except NetworkError as e:
                log.warning("pod %s/%s: %s", self.namespace, self.name, e)
                if not told:
                    told = True
                    self._background(self._event("Warning", "FailedCreatePodSandBox",
                                                 f"Failed to create pod sandbox: {e}"))
                if not await self._pause(2.0):
                    break
        return False

    def _hostname(self) -> str:
        spec = self.pod.get("spec") or {}
        return str(spec.get("hostname") or self.name)[:63]

    async def _event(self, type_: str, reason: str, message: str, field_path: str = "") -> None:
        now = rfc3339(self.ctx.clock())
        involved: Obj = {"kind": "Pod", "namespace": self.namespace, "name": self.name,
                         "uid": self.uid, "apiVersion": "v1"}
        if field_path:
            involved["fieldPath"] = field_path
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
                 "involvedObject": involved,
                 "type": type_, "reason": reason, "message": message[:1024],
                 "source": {"component": "kubelet", "host": self.ctx.node_name},
                 "firstTimestamp": now, "lastTimestamp": now, "count": 1}
        with contextlib.suppress(Exception):
            await self.ctx.client.create(event)

    async def _release_network(self) -> None:
        self._release_ports()
        sb, self.sandbox = self.sandbox, None
        if sb is not None:
            try:
                await self.ctx.network.teardown(sb)
            except Exception:
                log.exception("pod %s/%s: removing its network failed", self.namespace, self.name)

    async def _run_inits(self) -> bool:
        """Init containers in order; restartable ones (sidecars) only need to have started."""
        for run in self.inits:
            if run.sidecar:
                self._background(self._container_loop(run))
                while not run.started and await self._pause(0.02):
                    pass
                continue
            result = await self._container_loop(run)
            if result is None or result.exit_code != 0:
                return False
        return not self.terminating

    def _choose_ports(self) -> None:
        """The pod's port mapping: its own ports in a namespace of its own; else host ports on
        the shared loopback (a previous run's when they are free)."""
        recorded = ports.recorded(self.pod)
        if not self.mapping and self.isolated:
            self.mapping = ports.own_ports(self.keys)
        elif not self.mapping:
            self.mapping = {k: self.ctx.ports.allocate(prefer=recorded.get(k)) for k in self.keys}

    def _as_admitted(self) -> Obj:
        """The pod with its port annotations, which the admission write may not have stored
        yet when a container's env (a fieldRef) reads them."""
        want = ports.port_annotations(self.mapping, self.keys)
        meta = self.pod.get("metadata") or {}
        ann = meta.get("annotations") or {}
        if all(ann.get(k) == v for k, v in want.items()):
            return self.pod
        return {**self.pod, "metadata": {**meta, "annotations": {**ann, **want}}}

    async def _admit(self) -> None:
        """Write spec.nodeName and the port annotations (_choose_ports chose them)."""
        want = ports.port_annotations(self.mapping, self.keys)
        set_node = True
        for _ in range(10):
            meta, spec = self.pod.get("metadata") or {}, self.pod.get("spec") or {}
            ann = meta.get("annotations") or {}
            need_node = set_node and not spec.get("nodeName")
            if not need_node and all(ann.get(k) == v for k, v in want.items()):
                return
            obj = {**self.pod, "metadata": {**meta, "annotations": {**ann, **want}}}
            if need_node:
                obj["spec"] = {**spec, "nodeName": self.ctx.node_name}
            try:
                self.pod = await self.ctx.client.update(obj)
            except ApiError as e:
                if e.code == 404:
                    raise _Gone() from e
                if e.code == 409:
                    self.pod = await self.ctx.client.get(POD, self.name, self.namespace)
                elif e.code in (400, 403, 422) and need_node:
                    log.warning("pod %s/%s: cannot set spec.nodeName (%s); leaving it empty",
                                self.namespace, self.name, e.message)
                    set_node = False
                else:
                    raise
        raise ApiError(409, "Conflict", "too many conflicts admitting the pod")

    def _release_ports(self) -> None:
        if not self.isolated:     # an isolated pod's ports are its own, not the host's
            for port in self.mapping.values():
                self.ctx.ports.release(port)
        self.mapping = {}

    # ---- one container -----------------------------------------------------------------

    def _should_restart(self, run: ContainerRun, code: int) -> bool:
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if run.sidecar:
            return True
        if run.init:
            return policy != "Never" and code != 0
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    async def _container_loop(self, run: ContainerRun) -> Terminated | None:
        """Run one container until it is done for good (its last state) or the pod stops."""
        while not self.terminating and not (run.sidecar and self._done):
            img = await self._image(run)
            if img is None:
                continue
            container_env = await self._env(run, img)
            if container_env is None:
                continue
            term = await self._start_and_wait(run, img, container_env)
            finished = self.ctx.monotonic()
            if self.terminating or (run.sidecar and self._done):
                run.state = term
                self.changed()
                return None
            if not self._should_restart(run, term.exit_code):
                run.state = term
                self.changed()
                return term
            delay = backoff.restart_delay(self.ctx.crash_backoff, run.crash_backoff, finished,
                                          self.ctx.monotonic())
            run.last_state = term
            if delay > 0 and run.crash_backoff is not None:
                run.state = Waiting("CrashLoopBackOff", backoff.crash_loop_message(
                    run.crash_backoff.delay, run.name, self.name, self.namespace, self.uid))
            else:
                run.state = term
            self.changed()
            if not await self._pause(delay):
                return None
            run.crash_backoff = backoff.advance(self.ctx.crash_backoff, run.crash_backoff,
                                                self.ctx.monotonic())
            run.restart_count += 1
        return None

    async def _image(self, run: ContainerRun) -> images.Image | None:
        res = images.resolve(run.spec.get("image", ""), self.ctx.local_images.lookup)
        if isinstance(res, images.Image):
            run.pull_backoff = None
            return res
        run.pull_backoff = backoff.advance(self.ctx.image_backoff, run.pull_backoff,
                                           self.ctx.monotonic())
        delay = run.pull_backoff.delay
        run.state = Waiting("ErrImagePull", res.pull_message)
        self.changed()
        shown = min(ERR_IMAGE_PULL_SHOWN, delay / 2)
        if await self._pause(shown):
            run.state = Waiting("ImagePullBackOff", res.message)
            self.changed()
            await self._pause(delay - shown)
        return None

    async def _env(self, run: ContainerRun, img: images.Image) -> dict[str, str] | None:
        refs = env.references(run.spec)
        found: dict[str, dict[str, Obj]] = {"ConfigMap": {}, "Secret": {}}
        problem = ""
        for ref, names in ((CONFIGMAP, refs.configmaps), (SECRET, refs.secrets)):
            for name in names:
                try:
                    found[ref.kind][name] = await self.ctx.client.get(ref, name, self.namespace)
                except ApiError as e:
                    if e.code != 404:
                        problem = e.message
        cwd = self._cwd(run, img)
        base = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(cwd)}
        if img.own_python:
            base["PYTHONUNBUFFERED"] = "1"
        base.update(img.env)
        if img.kind == "builtin" and not self.isolated:
            # skiff's own programs with several ports (queue-proxy) learn where each declared
            # port went on the shared loopback; $PORT only names the first
            base[ports.PORTS_ENV] = json.dumps({k: v for k, v in self.mapping.items()},
                                               separators=(",", ":"))
        ctx = env.EnvContext(
            port=ports.container_port(run.spec, self.mapping, self.keys, self.isolated),
            api_host=self.ctx.api_host, api_port=self.ctx.api_port, pod_ip=self.pod_ip,
            node_name=self.ctx.node_name, configmaps=found["ConfigMap"],
            secrets=found["Secret"], image_env=base, node_allocatable=self.ctx.node_allocatable)
        built = env.build_env(self._as_admitted(), run.spec, ctx)
        if isinstance(built, env.EnvError) or problem:
            message = problem or (built.message if isinstance(built, env.EnvError) else "")
            run.state = Waiting("CreateContainerConfigError", message)
            self.changed()
            await self._pause(self.ctx.config_retry)
            return None
        run.cwd = cwd
        return built

    def _cwd(self, run: ContainerRun, img: images.Image) -> Path:
        for candidate in (run.spec.get("workingDir"), img.workdir):
            if candidate and os.path.isdir(candidate):
                return Path(candidate)
        return self.dir / run.name / "root"

    async def _start_and_wait(self, run: ContainerRun, img: images.Image,
                              container_env: dict[str, str]) -> Terminated:
        argv = env.expand_argv(images.argv(img, run.spec.get("command"), run.spec.get("args")),
                               container_env)
        cdir = self.dir / run.name
        started_at = self.ctx.clock()
        run.image, run.image_id, run.env = img, img.image_id, container_env
        # The child writes into a pipe that the writer frames and rotates (logs.py).
        writer = logs.LogWriter(cdir, run.restart_count, self.ctx.log_max_size,
                                self.ctx.log_max_files)
        LANES.touch()
        try:
            proc = await process.spawn(argv, container_env, run.cwd, writer.start(),
                                       cdir / "pid", own_python=img.own_python,
                                       forker=self.ctx.forker,
                                       sandbox=self.sandbox.wire() if self.sandbox else None)
        except process.SpawnError as e:
            message = f"failed to start container process: {e}: unknown"
            writer.note(message)
            await writer.close()
            return Terminated(128, "StartError", started_at, self.ctx.clock(), message=message)
        except BaseException:
            await asyncio.shield(writer.close(0))
            raise
        finally:
            self._asked.set()
        try:
            run.proc, run.pre_stop = proc, None
            run.container_id = f"skiff://{self.uid}/{run.name}/{run.restart_count}"
            run.state = Running(started_at)
            probe_tasks: list[asyncio.Task[None]] = []
            try:
                self.changed()
                if self.terminating:
                    await self._stop_container(run, proc, self.grace)
                elif await self._post_start(run, proc):
                    probe_tasks = self._start_probes(run, proc)
                    self.changed()
                code = await proc.wait()
            finally:
                for t in probe_tasks:
                    t.cancel()
                if run.pre_stop is not None:      # a hook that outlived its container
                    run.pre_stop.cancel()
                run.kill_execs()
        finally:
            # the run's last lines are in the file before its status says it ended
            await asyncio.shield(writer.close())
        run.ready = run.started = False
        return Terminated(code, exit_reason(code), started_at, self.ctx.clock())

    def _start_probes(self, run: ContainerRun,
                      proc: process.ContainerProcess) -> list[asyncio.Task[None]]:
        tasks: list[asyncio.Task[None]] = []
        if run.init and not run.sidecar:
            run.started = True
            return tasks

        def spec_of(key: str) -> probes.ProbeSpec | None:
            return probes.parse(run.spec.get(key), self.pod, run.spec, self.mapping, self.keys,
                                host=self.pod_ip, isolated=self.isolated)

        startup, readiness, liveness = (spec_of("startupProbe"), spec_of("readinessProbe"),
                                        spec_of("livenessProbe"))

        def loop(spec: probes.ProbeSpec, on_change: Callable[[bool], None],
                 readiness: bool = False) -> asyncio.Task[None]:
            async def run_check() -> bool:
                img = run.image
                return await prober.check(spec, run.env, run.cwd, bool(img and img.own_python))
            task = asyncio.ensure_future(prober.probe_loop(spec, run_check, on_change,
                                                           readiness=readiness))
            tasks.append(task)
            return task

        def kill(spec: probes.ProbeSpec) -> None:
            grace = spec.termination_grace if spec.termination_grace is not None else self.grace
            self._background(self._stop_container(run, proc, grace))

        def on_ready(ok: bool) -> None:
            if ok != run.ready:
                run.ready = ok
                self.changed()

        def on_live(ok: bool) -> None:
            if not ok and liveness is not None:
                log.info("pod %s/%s container %s: liveness probe failed, restarting",
                         self.namespace, self.name, run.name)
                kill(liveness)

        def after_startup() -> None:
            run.started = True
            if readiness is None:
                run.ready = True
            else:
                loop(readiness, on_ready, readiness=True)
            if liveness is not None:
                loop(liveness, on_live)
            self.changed()

        if startup is None:
            after_startup()
            return tasks
        startup_task: asyncio.Task[None] | None = None

        def on_startup(ok: bool) -> None:
            if ok:
                after_startup()
                if startup_task is not None:
                    startup_task.cancel()
            elif startup is not None:
                kill(startup)

        startup_task = loop(startup, on_startup)
        return tasks

    # ---- lifecycle hooks ---------------------------------------------------------------

    def _hook(self, run: ContainerRun, which: str) -> lifecycle.Hook | None:
        """The container's postStart or preStop hook; its port translated as probes' are."""
        post, pre = lifecycle.hooks_of(run.spec)
        return lifecycle.parse(post if which == "PostStart" else pre, self.pod, run.spec,
                               self.mapping, self.keys, host=self.pod_ip, isolated=self.isolated)

    async def _run_hook(self, run: ContainerRun, hook: lifecycle.Hook, deadline: float) -> bool:
        """One handler, run as prober.check runs a probe (an exec inside the pod's sandbox,
        as `kubectl exec`); True when it succeeded. Never raises but CancelledError."""
        try:
            if hook.kind == "sleep":
                await asyncio.sleep(hook.seconds)
                return True
            spec = hook.for_deadline(deadline)
            if spec is None:      # tcpSocket or no action: the kubelet cannot run it either
                return False
            img = run.image
            return await prober.check(spec, run.env, run.cwd, bool(img and img.own_python),
                                      sandbox=self.sandbox.wire() if self.sandbox else None)
        except Exception:
            log.exception("pod %s/%s container %s: %s", self.namespace, self.name, run.name,
                          hook.what)
            return False

    async def _hook_failed(self, run: ContainerRun, hook: lifecycle.Hook, which: str) -> None:
        """The log line says which hook; the event, like the kubelet's, does not carry its
        output (it may hold secrets)."""
        log.warning("pod %s/%s container %s: %s hook failed: %s", self.namespace, self.name,
                    run.name, which, hook.what)
        await self._event("Warning", f"Failed{which}Hook", f"{which}Hook failed",
                          field_path=run.field_path)

    async def _post_start(self, run: ContainerRun, proc: process.ContainerProcess) -> bool:
        """Run the postStart hook while the container runs; the kubelet's startContainer
        waits for it, so probes (and so readiness, and a sidecar's start) wait too. When it
        fails: the event, and the container is killed as the kubelet kills it (preStop,
        grace). True when the container may go on; False when it failed, or exited first."""
        hook = self._hook(run, "PostStart")
        if hook is None:
            return True
        task = asyncio.ensure_future(self._run_hook(run, hook, lifecycle.UNBOUNDED))
        try:
            await _until_exit(task, proc, lifecycle.UNBOUNDED)
        finally:
            task.cancel()          # no-op once done; a container that is gone ends its hook
        if proc.exited or not task.done() or task.cancelled():
            return False
        if task.result():
            return True
        await self._hook_failed(run, hook, "PostStart")
        self._background(self._stop_container(run, proc, self.grace))
        return False

    def _pre_stop(self, run: ContainerRun, grace: float) -> asyncio.Task[None] | None:
        """The preStop hook of the container's current process, started by its first stop
        (deadline: that stop's grace); a later stop waits on the same run of it."""
        if run.pre_stop is None:
            hook = self._hook(run, "PreStop")
            if hook is None:
                return None
            run.pre_stop = asyncio.ensure_future(self._pre_stop_hook(run, hook, grace))
        return run.pre_stop

    async def _pre_stop_hook(self, run: ContainerRun, hook: lifecycle.Hook,
                             deadline: float) -> None:
        if not await self._run_hook(run, hook, deadline):
            await self._hook_failed(run, hook, "PreStop")

    async def _stop_container(self, run: ContainerRun, proc: process.ContainerProcess,
                              grace: float) -> int:
        """The kubelet's killContainer: the preStop hook, then SIGTERM; the hook and the wait
        for the exit share `grace`, SIGKILL when it is over, though a container always gets
        lifecycle.MIN_GRACE after its hook. A grace of 0 (a forced stop) skips the hook, as
        upstream does. Stops may repeat (a shorter grace cuts in); the hook runs once."""
        if grace > 0 and not proc.exited:
            hook = self._pre_stop(run, grace)
            if hook is not None:
                loop = asyncio.get_running_loop()
                started = loop.time()
                await _until_exit(hook, proc, grace)
                grace = lifecycle.grace_after_hook(grace, loop.time() - started)
        return await proc.stop(grace)

    # ---- status ------------------------------------------------------------------------

    async def _status_loop(self) -> None:
        await self._admitted.wait()     # nodeName and the port annotations come first
        while not self.gone:
            await self._dirty.wait()
            await self._settle()
            self._dirty.clear()
            if not await self.flush_status():
                await asyncio.sleep(0.5)
                self._dirty.set()

    async def _settle(self) -> None:
        """Hold this worker's first status while the pod is still starting, until it settles
        or START_COALESCE after its start (see there)."""
        if self._wrote or self._settle_by is None:
            return
        loop = asyncio.get_running_loop()
        while not self._settled():
            left = self._settle_by - loop.time()
            if left <= 0:
                return
            self._dirty.clear()
            try:
                async with asyncio.timeout(left):
                    await self._dirty.wait()
            except TimeoutError:
                return

    def _settled(self) -> bool:
        return self.terminating or self.gone or settled(self.observation())

    async def flush_status(self) -> bool:
        """Write the status if it changed; False when the write failed (retry later)."""
        base = self.pod if self._written is None else {**self.pod, "status": self._written}
        new = build_status(base, self.observation(), self.ctx.clock())
        if new == self._written:
            if self._settled():
                LANES.pod_settled(self.uid)
            return True
        LANES.touch()
        patch: Obj = dict(new)
        for key in self._written or {}:
            patch.setdefault(key, None)
        try:
            await self.ctx.client.patch(POD, self.name, {"status": patch}, self.namespace,
                                        subresource="status")
        except ApiError as e:
            if e.code == 404:
                self.gone = True
                return True
            log.warning("pod %s/%s: status write failed: %s", self.namespace, self.name,
                        e.message)
            return False
        except Exception:
            log.exception("pod %s/%s: status write failed", self.namespace, self.name)
            return False
        self._written = new
        self._wrote = True
        if self._settled():
            LANES.pod_settled(self.uid)
        return True

    # ---- stopping ----------------------------------------------------------------------

    async def terminate(self, grace: float, write_status: bool = True) -> None:
        """Stop every container: SIGTERM, SIGKILL after `grace`; idempotent, may shorten."""
        LANES.pod_settled(self.uid)
        if not write_status and self._status is not None:
            self._status.cancel()
        self.grace = min(self.grace, grace) if self.terminating else grace
        self.terminating = True
        self._stop.set()
        for run in self.runs:
            run.kill_execs()
        await asyncio.gather(*(self._stop_container(r, r.proc, grace) for r in self.runs
                               if r.proc is not None))
        if self._main is not None and not self._main.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._main), timeout=grace + 5)
            except TimeoutError:
                self._main.cancel()
        for t in list(self._bg):
            t.cancel()
        admission = self._admission_task
        if admission is not None and admission is not asyncio.current_task():
            admission.cancel()      # (done already, but with a remote API server)
        await self._release_network()

    async def delete_gracefully(self) -> None:
        """metadata.deletionTimestamp is set: stop within its grace, then finalize."""
        await self.terminate(self.deletion_grace())
        await self.flush_status()
        try:
            current = await self.ctx.client.get(POD, self.name, self.namespace)
            if (current.get("metadata") or {}).get("uid") == self.uid:
                await self.ctx.client.delete(POD, self.name, self.namespace,
                                             grace_period_seconds=0)
        except ApiError as e:
            if e.code != 404:
                log.warning("pod %s/%s: finalizing delete failed: %s", self.namespace,
                            self.name, e.message)

    async def dispose(self) -> None:
        """The pod is gone from the store: stop everything, forget its files."""
        self.gone = True
        await self.terminate(self.deletion_grace(), write_status=False)
        if self._status is not None:
            self._status.cancel()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)


async def _until_exit(task: asyncio.Future[Any], proc: process.ContainerProcess,
                      timeout: float) -> None:
    """Wait for `task` for at most `timeout` seconds and no longer than the container lives (a
    hook has nothing left to act on once it is gone); `task` itself is left running."""
    exited = asyncio.ensure_future(proc.wait())
    try:
        await asyncio.wait({task, exited}, timeout=max(timeout, 0.0),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()


def _terminated_from(t: Obj, now: datetime) -> Terminated:
    code = int(t.get("exitCode") or 0)
    return Terminated(code, t.get("reason") or exit_reason(code), parse_time(t.get("startedAt")),
                      parse_time(t.get("finishedAt")) or now, t.get("message") or "")
