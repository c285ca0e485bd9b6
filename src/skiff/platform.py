"""The platform supervisor behind `skiff up`: one process, every part started in order.

Order matters and is fast (about a second): home + certificates + token ->
store -> kinds (built-ins, stored CRDs, the domains' CRDs bootstrapped) ->
registry + in-process client -> API server listening (TLS) -> kubeconfig
written -> controllers and the node runtime started -> ready. Stopping drains
the data plane first (in-flight requests finish on pods still running), then
runs the other steps backwards; pods get SIGTERM, then SIGKILL after their
grace period; every step has a bound. This module only assembles: the parts
live in core/ and the domains.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from aiohttp import web

from skiff.core import builtin_kinds
from skiff.core.admission import Admission
from skiff.core.apiserver import kubernetesservice
from skiff.core.apiserver.local_client import LocalClient
from skiff.core.apiserver.registry import Registry
from skiff.core.apiserver.server import ApiServer
from skiff.core.auth import kinds as access_kinds
from skiff.core.auth.controllers import (
    AggregationReconciler,
    DefaultServiceAccountReconciler,
    PolicyInformer,
    service_account_getter,
)
from skiff.core.auth.controllers import write_defaults as write_rbac_defaults
from skiff.core.auth.gate import Gate, load_signer
from skiff.core.auth.kinds import install_admission as install_rbac_admission
from skiff.core.client import ApiError, Obj
from skiff.core.clock import rfc3339, utcnow
from skiff.core.controller import Manager
from skiff.core.home import lock_home, tighten, write_private
from skiff.core.kinds import Kind, Kinds, crd_for, kinds_from_crd
from skiff.core.pki import ensure_api_pki
from skiff.core.reconcilers.crd import CLEANUP, CRDReconciler, crd_status, validate_crd
from skiff.core.reconcilers.cronjob import CronJobReconciler
from skiff.core.reconcilers.daemonset import DaemonSetReconciler
from skiff.core.reconcilers.deployment import DeploymentReconciler
from skiff.core.reconcilers.endpointslice import EndpointSliceReconciler
from skiff.core.reconcilers.gc import GarbageCollector, NamespaceReconciler
from skiff.core.reconcilers.job import BACKOFF_BASE, JobReconciler
from skiff.core.reconcilers.replicaset import ReplicaSetReconciler
from skiff.core.reconcilers.statefulset import StatefulSetReconciler
from skiff.core.store import key_for, prefix_for
from skiff.core.store.sqlite import open_store
from skiff.core.workloadadmission import install as install_workload_admission
from skiff.node.network.agent import NetworkAgent
from skiff.node.network.podnet import choose as choose_network
from skiff.node.network.podnet import first_host
from skiff.node.node import NodeRuntime
from skiff.node.nodeobject import gather_facts, register_node

log = logging.getLogger("skiff")

NODE_NAME = "skiff"
BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease",
                   "istio-system", "knative-serving", "knative-eventing")


@dataclass
class Settings:
    home: Path
    api_port: int = 6443
    http_port: int = 8080
    https_port: int = 8443
    local_gateway_port: int = 8081
    domain: str = "apps.127.0.0.1.sslip.io"
    host: str = "127.0.0.1"
    max_pods: int = 110        # kubelet's --max-pods: pods past it stay Pending (Unschedulable)
    container_log_max_size: int = 10 * 1024 * 1024    # bytes; the kubelet's containerLogMaxSize
    container_log_max_files: int = 5                  # the kubelet's containerLogMaxFiles
    dataplane_workers: int = 1     # data-plane processes sharing the ingress ports (SO_REUSEPORT)
    pod_network: str = "auto"      # namespaces (own netns and IP per pod), loopback, or auto
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"     # ClusterIPs; routed to the pod network's bridge

    def listen_ports(self) -> frozenset[int]:
        """The loopback ports the platform listens on, which no allocated port may take."""
        return frozenset((self.api_port, self.http_port, self.https_port,
                          self.local_gateway_port))


def domain_kinds() -> list[Kind]:
    """Every kind the domains declare as a CRD (the seeds' kinds)."""
    from skiff.eventing import crds as eventing
    from skiff.mesh import crds as mesh
    from skiff.operator import crds as operator
    from skiff.pipelines import crds as pipelines
    from skiff.serving import crds as serving
    return [*serving.KINDS, *mesh.KINDS, *operator.KINDS, *eventing.KINDS, *pipelines.KINDS]


class Component(Protocol):
    """A long-running part a domain adds (a gateway, a router): started after the controllers."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def domain_early_starts() -> list[Callable[[Platform], Awaitable[None]]]:
    """What a domain starts before the store opens, because it takes long and needs nothing
    of it (the data-plane process). Each registers its own stop with on_cleanup()."""
    from skiff.mesh import setup as mesh
    return [mesh.early]


def domain_installers() -> list[Callable[[Platform], None]]:
    """Each domain's install(platform): admission hooks, reconcilers (platform.manager.add),
    components (platform.components.append). Called once the store and client exist."""
    from skiff.mesh import setup as mesh
    from skiff.operator import setup as operator
    from skiff.serving import setup as serving
    return [serving.install, operator.install, mesh.install]   # operator reads serving's config


def write_kubeconfig(path: Path, server: str, ca: Path, token: str) -> None:
    cfg = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "skiff", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "skiff-admin", "user": {"token": token}}],
        "contexts": [{"name": "skiff", "context": {"cluster": "skiff", "user": "skiff-admin",
                                                    "namespace": "default"}}],
        "current-context": "skiff",
    }
    write_private(path, yaml.safe_dump(cfg, sort_keys=False).encode())


@dataclass
class Platform:
    settings: Settings
    on_step: Callable[[str], None] = lambda _msg: None
    on_note: Callable[[str], None] = lambda msg: log.warning("%s", msg)
    ready: bool = False
    kinds: Kinds = field(default_factory=Kinds)
    components: list[Component] = field(default_factory=list)
    _cleanup: list[Callable[[], Any]] = field(default_factory=list)
    _lock_fd: int | None = None

    async def start(self) -> None:
        s = self.settings
        home = s.home
        # Every file skiff makes is private from its creation (pods get 022 back: process.py).
        os.umask(0o077)
        # First, before anything is written: a second platform on this home stops here.
        self._lock_fd = lock_home(home)
        tighten(home)
        ca, crt, key = ensure_api_pki(home, utcnow(), extra_ips=(
            first_host(s.service_cidr), first_host(s.pod_cidr)))
        token_file = home / "token"
        if not token_file.exists():
            write_private(token_file, secrets.token_urlsafe(32).encode())
        token = token_file.read_text().strip()
        self.on_step("certificates and token")
        for early in domain_early_starts():
            await early(self)

        # The pod network before the node (pods get namespaces from their first start) and
        # before the kinds: whether policies can be enforced is part of what each kind says.
        self.network, note = await choose_network(s.pod_network, s.pod_cidr, s.service_cidr)
        self.on_cleanup(self.network.stop)
        if note:
            self.on_note(note)
        self._enforced = self.network.mode == "namespaces"
        self._enforcement_reason = (note.partition(": ")[2] or note or
                                    "pods share the host's loopback (--pod-network loopback)")

        self.store = open_store(home)
        # Built-ins, and the kinds of access control (rbac, authorization, authentication).
        for k in [*builtin_kinds.KINDS, *access_kinds.KINDS]:
            self.kinds.add(self._enforcement_note(k))
        self.admission = Admission()
        self.admission.validate("apiextensions.k8s.io", "CustomResourceDefinition", validate_crd)
        install_rbac_admission(self.admission)
        install_workload_admission(self.admission)
        self.registry = Registry(self.store, self.kinds, self.admission,
                                 service_cidr=s.service_cidr)
        self._bootstrap()
        kubernetesservice.ensure(self.registry, s.service_cidr, s.host, s.api_port)
        self.client = LocalClient(self.registry)
        self.manager = Manager(self.client)
        for install in domain_installers():
            install(self)
        self.on_step(f"store {home / 'skiff.db'} ({len(list(self.kinds))} kinds)")
        # RBAC: the default roles written and the whole policy listed before the API listens.
        write_rbac_defaults(self.registry)
        self.gate = Gate(token, load_signer(home), service_account_getter(self.registry))
        self.policy_informer = PolicyInformer(self.client, self.gate)
        await self.policy_informer.start()
        self._cleanup.append(self.policy_informer.stop)

        # Pods reach the API server as a cluster's do: the kubernetes Service's ClusterIP.
        api_host, api_port = ((first_host(s.service_cidr), 443) if self.network.bridge_ip
                              else (s.host, s.api_port))
        self.node = NodeRuntime(self.client, home, node_name=NODE_NAME, api_host=api_host, api_port=api_port,
                                max_pods=s.max_pods,
                                container_log_max_size=s.container_log_max_size,
                                container_log_max_files=s.container_log_max_files,
                                network=self.network, reserved_ports=s.listen_ports())
        api = ApiServer(self.registry, token, f"{s.host}:{s.api_port}", lambda: self.ready, self.node,
                        gate=self.gate)
        app = api.app()
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(crt), str(key))
        site = web.TCPSite(runner, s.host, s.api_port, ssl_context=tls, reuse_address=True)
        await site.start()
        self._cleanup.append(runner.cleanup)
        server = f"https://{s.host}:{s.api_port}"
        self.kubeconfig = home / "kubeconfig"
        write_kubeconfig(self.kubeconfig, server, ca, token)
        self.on_step(f"API server {server}")

        self.manager.add(CRDReconciler(self.client, self.kinds), workers=1)
        self.manager.add(NamespaceReconciler(self.client, self.kinds), workers=1)
        self.manager.add(DeploymentReconciler(self.client), workers=2)
        # Workload controllers; the Job pod-failure backoff base is settable for tests.
        backoff = float(os.environ.get("SKIFF_JOB_BACKOFF_BASE_SECONDS", BACKOFF_BASE))
        self.manager.add(JobReconciler(self.client, backoff_base=backoff), workers=2)
        self.manager.add(CronJobReconciler(self.client), workers=1)
        self.manager.add(DaemonSetReconciler(self.client), workers=1)
        self.manager.add(StatefulSetReconciler(self.client), workers=2)
        self.manager.add(ReplicaSetReconciler(self.client), workers=2)
        self.manager.add(EndpointSliceReconciler(self.client), workers=2)
        self.manager.add(DefaultServiceAccountReconciler(self.client), workers=1)
        self.manager.add(AggregationReconciler(self.client, self.gate.policy), workers=1)
        self.gc = GarbageCollector(self.client, self.kinds)
        await self.manager.start()
        await self.gc.start()
        # The kubelet registers its Node before it runs pods.
        await register_node(self.client, gather_facts(
            NODE_NAME, home, s.host, s.max_pods, "skiff://0.1.0"), rfc3339(utcnow()))
        if self.network.bridge_ip is not None:
            await self._start_network_agent()
        self._node_task = asyncio.create_task(self.node.run())
        for c in self.components:
            await c.start()
            self.on_cleanup(c.stop)
        self.ready = True
        self.on_step("controllers and node runtime")

    async def _start_network_agent(self) -> None:
        """kube-proxy, NetworkPolicy and cluster DNS for the pod network (node/network/agent.py);
        the rules are in place before the first pod starts."""
        s = self.settings
        assert self.network.bridge_ip is not None
        self.network_agent = NetworkAgent(
            self.client, bridge_ip=self.network.bridge_ip, pod_cidr=s.pod_cidr, domain=s.domain,
            host_ports={443: s.https_port, 80: s.http_port, s.api_port: s.api_port})
        await self.network_agent.start()
        self.on_cleanup(self.network_agent.stop)
        if not await self.network_agent.wait_synced(AGENT_SYNC_S):
            log.warning("pod network: the service and policy rules are not in place after "
                        "%.0f s; pods start anyway", AGENT_SYNC_S)
        self.on_step(f"pod network {s.pod_cidr} on {self.network.bridge_ip} (DNS, services, "
                     "NetworkPolicy)")

    _POLICY_NOTES = {
        ("networking.k8s.io", "NetworkPolicy"): "NetworkPolicy is not enforced",
        ("security.istio.io", "AuthorizationPolicy"):
            "AuthorizationPolicy is not enforced (sidecars need pod network namespaces)",
        ("security.istio.io", "PeerAuthentication"):
            "PeerAuthentication is not enforced (sidecars need pod network namespaces)",
        ("maistra.io", "ServiceMeshControlPlane"):
            "sidecars do not capture traffic (they need pod network namespaces)",
    }

    def _enforcement_note(self, k: Kind) -> Kind:
        """NetworkPolicy (in the kernel) and the mesh's policies (in the sidecars, which
        capture traffic inside each pod's namespace) are enforced with namespaces; on the
        shared loopback each says it is not."""
        what = self._POLICY_NOTES.get((k.group, k.kind))
        if what is None:
            return k
        return dataclasses.replace(k, not_implemented="" if self._enforced
                                   else f"{what}: {self._enforcement_reason}")

    def _bootstrap(self) -> None:
        """Register stored CRDs, then create or refresh the domains' CRDs and the system namespaces."""
        crd_kind = self.kinds.for_api_version("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        assert crd_kind is not None
        ours = [self._enforcement_note(k) for k in domain_kinds()]
        # The domains' own CRDs are served by their Kind objects (added below): a Kind decoded
        # from the stored copy would hold a second copy of each schema. One CRD decoded at a time.
        names = {crd_for(k)["metadata"]["name"] for k in ours}
        for key, crd in self.store.iter(prefix_for(crd_kind.group, crd_kind.plural)):
            if key.rpartition("/")[2] in names:
                continue
            try:
                self.kinds.add(kinds_from_crd(crd))
            except (KeyError, IndexError, TypeError) as e:
                log.warning("CRD %s cannot be served: %s", crd["metadata"]["name"], e)
        now = rfc3339(utcnow())
        for k in ours:
            want = crd_for(k)
            name = want["metadata"]["name"]
            have = self.store.get(key_for(crd_kind.group, crd_kind.plural, "", name))
            if have is None:
                # Born with the cleanup finalizer and Established, in one write: the CRD
                # reconciler has nothing to write for the built-in kinds, and the start-up's
                # peak of decoded CRD copies (which the idle heap keeps as free pools) is lower.
                want["metadata"]["finalizers"] = [CLEANUP]
                self.registry.create(crd_kind, "", want, status=crd_status(want, k, now))
            elif have.get("spec") != want["spec"] or _skiff_notes(have) != _skiff_notes(want):
                have["spec"] = want["spec"]
                notes = {k: v for k, v in (have["metadata"].get("annotations") or {}).items()
                         if not k.startswith("skiff.dev/")}
                have["metadata"]["annotations"] = {**notes, **_skiff_notes(want)}
                self.registry.update(crd_kind, "", have["metadata"]["name"], have)
            self.kinds.add(k)
        ns_kind = self.kinds.for_api_version("v1", "Namespace")
        assert ns_kind is not None
        for ns in BOOT_NAMESPACES:
            try:
                self.registry.create(ns_kind, "", {"metadata": {"name": ns}})
            except ApiError as e:
                if e.code != 409:
                    raise

    async def stop(self) -> None:
        """Backwards, bounded: the data plane first (listeners close, in-flight requests finish
        on pods still running), then the pods (SIGTERM, SIGKILL after their grace period), then
        controllers, the API server and the store. No step may hold the rest up past its bound:
        a step that overruns is cancelled and left behind (stop_bound() sums the bounds)."""
        self.ready = False
        for c in reversed(self.components):
            if c.stop in self._cleanup:            # started: stopped here, not with the rest
                self._cleanup.remove(c.stop)
                await _within(c.stop(), COMPONENT_STOP_S, f"stopping {type(c).__name__}")
        if hasattr(self, "node"):
            await _within(self.node.shutdown(), self._pod_grace() + POD_MARGIN_S, "stopping pods")
        task = getattr(self, "_node_task", None)
        if task is not None:
            task.cancel()
            await _within(asyncio.gather(task, return_exceptions=True), STOP_STEP_S, "node runtime")
        if hasattr(self, "manager"):
            await _within(self.manager.stop(), STOP_STEP_S, "stopping controllers")
        if hasattr(self, "gc"):
            await _within(self.gc.stop(), STOP_STEP_S, "stopping the garbage collector")
        for fn in reversed(self._cleanup):
            what = f"stopping {getattr(fn, '__qualname__', fn)}"
            t0 = time.monotonic()
            r = fn()
            if asyncio.iscoroutine(r):
                await _within(r, STOP_STEP_S, what, t0)
            else:
                _slow(what, t0)
        if hasattr(self, "store"):
            self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)   # the home is free for the next `skiff up`
            self._lock_fd = None

    def hurry(self) -> None:
        """Stop now: pods still running or stopping get SIGKILL instead of the rest of their
        grace period (the second Ctrl-C). The other steps keep their order and bounds."""
        node = getattr(self, "node", None)
        if node is not None:
            node.hurry()

    def on_cleanup(self, fn: Callable[[], Any]) -> None:
        """Run `fn` when the platform stops (once, however often it is registered)."""
        if fn not in self._cleanup:
            self._cleanup.append(fn)

    def _pod_grace(self) -> float:
        node = getattr(self, "node", None)
        if node is None:
            return 0.0
        graces = [w.deletion_grace() if w.terminating else w.spec_grace()
                  for w in list(node.workers.values())]
        g = max(graces, default=0.0)
        cap = node.shutdown_grace_cap
        return min(g, cap) if cap is not None else g

    def stop_bound(self) -> float:
        """The longest stop() can take (pods' grace periods plus the other steps' bounds)."""
        return (COMPONENT_STOP_S * len(self.components) + self._pod_grace() + POD_MARGIN_S
                + STOP_STEP_S * (3 + len(self._cleanup)))


COMPONENT_STOP_S = 15.0   # a component's stop: the gateway drains within 5 s of it
POD_MARGIN_S = 5.0        # past the longest pod grace period
STOP_STEP_S = 5.0         # any other step of stop()
SLOW_STOP_STEP_S = 2.0    # a step of stop() that takes this long is logged
AGENT_SYNC_S = 10.0       # the pod network's first rules, before pods start


async def _within(aw: Awaitable[Any], seconds: float, what: str,
                  t0: float | None = None) -> None:
    """Await `aw` for at most `seconds`; past that it is cancelled and not waited for (a task
    that ignores cancellation must not hang the stop). Failures are logged, not raised, and
    so is a step that took long (_slow), so a slow stop's log says where the time went."""
    t0 = time.monotonic() if t0 is None else t0
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.warning("%s: still running after %.0f s, left behind", what, seconds)
        return
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s failed: %s", what, task.exception())
    _slow(what, t0)


def _slow(what: str, t0: float) -> None:
    took = time.monotonic() - t0
    if took >= SLOW_STOP_STEP_S:
        log.warning("%s took %.1f s", what, took)


def _skiff_notes(crd: Obj) -> dict[str, str]:
    """The skiff.dev/ annotations of a CRD (what a release of skiff says about its own kinds)."""
    return {k: v for k, v in (crd["metadata"].get("annotations") or {}).items()
            if k.startswith("skiff.dev/")}


def default_home() -> Path:
    return Path(os.environ.get("SKIFF_HOME", str(Path.home() / ".skiff")))
