"""NodeRuntime: skiff's kubelet. Runs the pods of one node as local processes.

It lists and watches every Pod through the Client (core/client.py), keeps one
PodWorker (pod.py) per pod uid that belongs here (spec.nodeName empty or this
node, no schedulingGates), and starts each pod that is not terminal; after a
restart of skiff every stored pod is started again. A pod whose
metadata.deletionTimestamp is set is stopped within its grace period and then
finalized with a delete at grace 0; a DELETED pod's processes are stopped.
shutdown() stops everything. It also owns the fork server (forkserver.py)
that starts the containers (built-in Python images warm) and holds them, so
that they die with skiff; a new start first sweeps what a crash left (the
pods' pid files, the fork server's). At most max_pods pods run at a time
(kubelet's --max-pods); the rest wait Pending as unschedulable, and a freed
slot goes to the next one (capacity.py decides). The API server calls exec(), log_path() and
follow_log() for pods/exec and pods/log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import rfc3339
from skiff.core.lanes import LANES
from skiff.node import capacity, logread, logs, process
from skiff.node.backoff import BackoffPolicy
from skiff.node.execsession import ExecSession
from skiff.node.forkserver import ForkServer
from skiff.node.images import HELLO_OPENSHIFT_MODULE, PROXYV2_MODULE, QUEUE_MODULE
from skiff.node.images.local import LocalImages
from skiff.node.network import sandbox
from skiff.node.network.podnet import LoopbackNetwork, PodNetwork
from skiff.node.pod import POD, ContainerRun, NodeContext, PodWorker
from skiff.node.status import Waiting, terminal

log = logging.getLogger("skiff.runtime")
# What Python web apps commonly import, loaded once into the fork server's template so that a
# local image's `python3 app.py` starts as a fork of a warm interpreter (forkserver.script_for).
SCRIPT_PRELOAD = ("http.server", "socketserver", "json", "urllib.parse", "logging",
                  "wsgiref.simple_server", "email.utils", "argparse")

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
EVENT = Ref("v1", "Event")
FORK_SERVER_PID = "forkserver.pid"


class NodeRuntime:
    def __init__(self, client: Client, home: Path, node_name: str = "skiff",
                 api_host: str = "127.0.0.1", api_port: int = 6443, *,
                 backoff: BackoffPolicy | None = None,
                 image_backoff: BackoffPolicy | None = None,
                 config_retry_seconds: float = 1.0,
                 shutdown_grace_cap: float | None = None,
                 fork_server: bool = True,
                 max_pods: int = capacity.DEFAULT_MAX_PODS,
                 container_log_max_size: int = logs.DEFAULT_MAX_SIZE,
                 container_log_max_files: int = logs.DEFAULT_MAX_FILES,
                 network: PodNetwork | None = None,
                 reserved_ports: frozenset[int] = frozenset()) -> None:
        self.client = client
        self.home = Path(home)
        self.node_name = node_name
        self.shutdown_grace_cap = shutdown_grace_cap
        self.ctx = NodeContext(
            client=client, home=self.home, node_name=node_name, api_host=api_host,
            api_port=api_port, crash_backoff=backoff or BackoffPolicy(),
            image_backoff=image_backoff or backoff or BackoffPolicy(),
            config_retry=config_retry_seconds,
            ports=process.PortAllocator(reserved=reserved_ports),
            local_images=LocalImages(self.home),
            node_allocatable={"cpu": float(os.cpu_count() or 1),
                              "memory": float(psutil.virtual_memory().total)},
            log_max_size=container_log_max_size, log_max_files=container_log_max_files,
            network=network or LoopbackNetwork())
        self.forks = (ForkServer([HELLO_OPENSHIFT_MODULE, PROXYV2_MODULE, QUEUE_MODULE],
                                 pid_file=self.home / FORK_SERVER_PID,
                                 preload=SCRIPT_PRELOAD)
                      if fork_server else None)
        self.max_pods = max_pods
        self.workers: dict[str, PodWorker] = {}           # by uid
        self.waiting: dict[str, Obj] = {}                 # by uid: Pending, no free slot
        self._marked: set[str] = set()                    # waiting uids told they wait
        self._draining: dict[str, PodWorker] = {}         # gone pods still being stopped
        self._stopping = False
        self._forks_started = False
        self._watch: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()

    # ---- the control loop --------------------------------------------------------------

    async def run(self) -> None:
        """List and watch pods until shutdown(); restarts the watch when it ends or fails."""
        pods_dir = self.home / "pods"
        pods_dir.mkdir(parents=True, exist_ok=True)
        process.sweep_supervisor(self.home / FORK_SERVER_PID)
        process.sweep_orphans(pods_dir)
        self._watch = asyncio.ensure_future(self._watch_loop())
        try:
            await self._watch
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping and not (task is not None and task.cancelling()):
                return
            self._watch.cancel()
            raise

    async def _watch_loop(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                pods = await self.client.list(POD)
                present = {(p.get("metadata") or {}).get("uid") for p in pods}
                for uid in [u for u in [*self.workers, *self.waiting] if u not in present]:
                    self._forget(uid)
                # pods that ran here before a restart get their slots back first
                for p in sorted(pods, key=lambda p: capacity.admission_order(p, self.node_name)):
                    self._handle("ADDED", p)
                stream = self.client.watch(POD)
                try:
                    async for ev in stream:
                        delay = 0.2
                        self._handle(ev.type, ev.object)
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        with contextlib.suppress(Exception):
                            await aclose()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node runtime: pod watch failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                await asyncio.sleep(0.05)

    def _handle(self, kind: str, pod: Obj) -> None:
        LANES.touch()   # starting and stopping pods goes before background work (core/lanes.py)
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        uid = meta.get("uid", "")
        if kind == "DELETED":
            self._forget(uid)
            return
        if kind not in ("ADDED", "MODIFIED") or self._stopping:
            return
        if spec.get("nodeName") not in (None, "", self.node_name) or spec.get("schedulingGates"):
            return
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            if meta.get("deletionTimestamp") and not worker.terminating:
                self._background(worker.delete_gracefully())
            if not capacity.occupies_slot(pod):
                self._admit_waiting()      # it finished: its slot is free
            return
        if meta.get("deletionTimestamp"):
            self.waiting.pop(uid, None)
            if spec.get("nodeName") == self.node_name:
                self._background(self._finalize(meta.get("name", ""), meta.get("namespace", "")))
            return
        if terminal((pod.get("status") or {}).get("phase", "")):
            self.waiting.pop(uid, None)
            return
        if uid not in self.waiting and not self.waiting and self._used() < self.max_pods:
            self._start_worker(pod)
            return
        self.waiting[uid] = pod
        if self._used() < self.max_pods:
            self._admit_waiting()
        else:
            self._mark_unschedulable(pod)

    def _used(self) -> int:
        """Slots taken: pods not yet terminal, and deleted ones whose processes still stop."""
        return (sum(1 for w in self.workers.values() if capacity.occupies_slot(w.pod))
                + len(self._draining))

    def _start_worker(self, pod: Obj) -> None:
        if self.forks is not None and not self._forks_started:
            # Started with the first pod, not at boot: an idle platform does not pay its memory.
            # Pods spawn through it once it is up (process.spawn waits for the start).
            self._forks_started = True
            self.ctx.forker = self.forks
            self._background(self._start_forks(self.forks))
        worker = PodWorker(self.ctx, pod)
        self.workers[worker.uid] = worker
        worker.start()

    def _admit_waiting(self) -> None:
        """Give free slots to waiting pods (capacity.admit's order); tell the rest they wait."""
        if not self.waiting or self._stopping:
            return
        start, stay = capacity.admit(list(self.waiting.values()), self._used(), self.max_pods,
                                     self.node_name)
        for pod in start:
            uid = (pod.get("metadata") or {}).get("uid", "")
            self.waiting.pop(uid, None)
            self._marked.discard(uid)
            self._start_worker(pod)
        for pod in stay:
            self._mark_unschedulable(pod)

    def _mark_unschedulable(self, pod: Obj) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        if uid in self._marked:
            return
        self._marked.add(uid)
        if not capacity.is_marked_unschedulable(pod):   # not already, before a restart
            self._background(self._report_unschedulable(pod))

    async def _report_unschedulable(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        name, namespace = meta.get("name", ""), meta.get("namespace", "")
        now = rfc3339(self.ctx.clock())
        try:
            await self.client.patch(POD, name, {"status": capacity.unschedulable_status(pod, now)},
                                    namespace, subresource="status")
            await self.client.create(capacity.failed_scheduling_event(
                pod, now, secrets.token_hex(8)))
        except ApiError as e:
            if e.code != 404:
                log.warning("pod %s/%s: cannot report it unschedulable: %s", namespace, name,
                            e.message)

    def _forget(self, uid: str) -> None:
        self.waiting.pop(uid, None)
        self._marked.discard(uid)
        worker = self.workers.pop(uid, None)
        if worker is not None:
            self._draining[uid] = worker
            self._background(self._dispose(uid, worker))

    async def _dispose(self, uid: str, worker: PodWorker) -> None:
        try:
            await worker.dispose()
        finally:
            self._draining.pop(uid, None)
            self._admit_waiting()      # its processes are gone: the slot is free

    async def _start_forks(self, forks: ForkServer) -> None:
        try:
            await forks.start()
        except (OSError, RuntimeError, TimeoutError) as e:
            log.warning("node runtime: no fork server (%s); pods start with fork/exec", e)
            self.ctx.forker = None
            return
        if self._stopping:
            await forks.close()

    async def _finalize(self, name: str, namespace: str) -> None:
        with contextlib.suppress(ApiError):
            await self.client.delete(POD, name, namespace, grace_period_seconds=0)

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def hurry(self) -> None:
        """A second stop signal: every pod still running or stopping is killed now (grace 0,
        as `kubectl delete --grace-period=0 --force`), including those a shutdown already
        gave a grace period to (a shorter stop cuts in) and deleted pods still stopping
        (their disposal holds their deletion's grace otherwise)."""
        self.shutdown_grace_cap = 0.0
        for w in [*self.workers.values(), *self._draining.values()]:
            self._background(w.terminate(0.0, write_status=False))

    async def shutdown(self) -> None:
        """SIGTERM every pod, SIGKILL after its grace period; nothing is left running."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch

        def grace(w: PodWorker) -> float:
            g = w.deletion_grace() if w.terminating else w.spec_grace()
            return min(g, self.shutdown_grace_cap) if self.shutdown_grace_cap is not None else g

        workers = list(self.workers.values())
        await asyncio.gather(*(w.terminate(grace(w), write_status=False) for w in workers),
                             return_exceptions=True)
        # a hurry() during this wait adds tasks of its own: they are waited for too, in a
        # bounded number of passes (a stop must not be held by a stream of new tasks)
        waited: set[asyncio.Task[Any]] = set()
        for _ in range(3):
            pending = [t for t in self._bg if not t.done() and t not in waited]
            if not pending:
                break
            for task in pending:
                waited.add(task)
                with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=1.0)
        self.workers.clear()
        self.ctx.forker = None
        if self.forks is not None:
            await self.forks.close()

    # ---- lookups for exec and logs -----------------------------------------------------

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        """The live worker for a pod (the newest one, should a name have been reused)."""
        found = [w for w in self.workers.values()
                 if w.namespace == namespace and w.name == name]
        return found[-1] if found else None

    def _container(self, w: PodWorker, container: str) -> ContainerRun:
        if not container:
            ann = (w.pod.get("metadata") or {}).get("annotations") or {}
            default = ann.get(DEFAULT_CONTAINER_ANNOTATION, "")
            if default and w.container(default) is not None:
                container = default
            elif len(w.containers) == 1:
                container = w.containers[0].name
            else:
                names = " ".join(r.name for r in w.containers)
                raise ApiError(400, "BadRequest", f"a container name must be specified for pod "
                                                  f"{w.name}, choose one of: [{names}]")
        run = w.container(container)
        if run is None:
            raise ApiError(400, "BadRequest",
                           f"container {container} is not valid for pod {w.name}")
        return run

    async def exec(self, namespace: str, name: str, container: str, command: list[str],
                   stdin: bool = False, tty: bool = False) -> ExecSession:
        """Start `command` in a running container (host command, the container's env and cwd)."""
        w = self.worker(namespace, name)
        if w is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found',
                           {"name": name, "kind": "pods"})
        run = self._container(w, container)
        if not run.running or w.terminating:
            raise ApiError(400, "BadRequest",
                           f'unable to upgrade connection: container not found ("{run.name}")')
        session = await ExecSession.start(command, run.env, run.cwd, stdin=stdin, tty=tty,
                                          own_python=bool(run.image and run.image.own_python),
                                          sandbox=w.sandbox.wire() if w.sandbox else None)
        run.execs.add(session)
        return session

    def dialer(self, namespace: str, name: str) -> Callable[[int], Awaitable[Any]] | None:
        """How port-forward reaches the pod's ports: from inside its network namespace, or
        None for a pod on the shared loopback (its recorded port mapping tells)."""
        w = self.worker(namespace, name)
        if w is None or w.sandbox is None:
            return None
        netns = w.sandbox.netns
        return lambda port: sandbox.dial(netns, port)

    def netns_of(self, namespace: str, name: str) -> str | None:
        """The path of the pod's network namespace (the mesh's node proxy opens the pod's
        sidecar listeners in it), or None for a pod without one (yet)."""
        w = self.worker(namespace, name)
        return w.sandbox.netns if w is not None and w.sandbox is not None else None

    def log_path(self, namespace: str, name: str, container: str = "",
                 previous: bool = False) -> Path:
        """The log file `kubectl logs` reads: the current run's, or the one before."""
        w = self.worker(namespace, name)
        if w is None:
            return self._log_path_on_disk(namespace, name, container, previous)
        run = self._container(w, container)
        cdir = w.dir / run.name
        if previous:
            path = logs.log_file(cdir, run.restart_count - 1)
            if run.restart_count == 0 or not path.exists():
                raise ApiError(400, "BadRequest", f'previous terminated container "{run.name}" '
                                                  f'in pod "{name}" not found')
            return path
        path = logs.log_file(cdir, run.restart_count)
        if not path.exists():
            raise ApiError(400, "BadRequest", f'container "{run.name}" in pod "{name}" is '
                                              f"waiting to start: {_waiting_why(run)}")
        return path

    def _log_path_on_disk(self, namespace: str, name: str, container: str,
                          previous: bool) -> Path:
        dirs = sorted((self.home / "pods").glob(f"{namespace}_{name}_*"),
                      key=lambda p: p.stat().st_mtime)
        if not dirs:
            raise ApiError(404, "NotFound", f'pods "{name}" not found',
                           {"name": name, "kind": "pods"})
        pdir = dirs[-1]
        if not container:
            names = sorted(p.name for p in pdir.iterdir() if p.is_dir())
            if len(names) != 1:
                raise ApiError(400, "BadRequest", f"a container name must be specified for pod "
                                                  f"{name}, choose one of: [{' '.join(names)}]")
            container = names[0]
        found = logs.runs(pdir / container)
        if len(found) < (2 if previous else 1):
            what = "previous terminated container" if previous else "container"
            raise ApiError(400, "BadRequest", f'{what} "{container}" in pod "{name}" not found')
        return logs.log_file(pdir / container, found[-2] if previous else found[-1])

    def follow_log(self, namespace: str, name: str, container: str = "",
                   previous: bool = False, follow: bool = True, tail_lines: int | None = None,
                   limit_bytes: int | None = None) -> AsyncIterator[bytes]:
        """The log's bytes; with follow, until the run ends. Errors raise here, not later."""
        path = self.log_path(namespace, name, container, previous)
        w = self.worker(namespace, name)
        run = self._container(w, container) if w is not None else None
        number = int(path.stem)

        def live() -> bool:
            return (run is not None and not previous and run.running
                    and run.restart_count == number and not (w is not None and w.gone))

        opts = logread.Options(tail_lines=tail_lines, limit_bytes=limit_bytes,
                               follow=follow and not previous)
        return logread.stream(path, opts, live)


def _waiting_why(run: ContainerRun) -> str:
    if isinstance(run.state, Waiting):
        if run.state.reason in ("ErrImagePull", "ImagePullBackOff"):
            return "trying and failing to pull image"
        return run.state.reason
    return "ContainerCreating"
