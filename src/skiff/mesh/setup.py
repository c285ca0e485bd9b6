"""Wires the mesh domain into the platform: admission hooks, reconcilers and components.

platform.py calls install(platform) once the store, registry and in-process
client exist; nothing here runs before that. The ingress component started
here is the whole external request path, in two processes:
- in the platform (the control plane): the controller that compiles
  Gateways, Secrets, KIngresses and pods (mesh/gateway/controller.py) and the
  snapshot channel's server (dataplane/channel.py, a Unix socket in the home);
- in the data-plane process (dataplane/main.py, supervised by
  dataplane/supervisor.py): the router (router/router.py, the OpenShift
  route layer on --http-port/--https-port) and the ingress gateway's proxy
  (mesh/gateway/proxy.py: its 443 listener on a loopback port the control
  plane picks here, and the knative-local-gateway on --local-gateway-port).
An HTTP/2 flood at the data plane so cannot take the API server's event loop.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from skiff.core.clock import utcnow
from skiff.dataplane.channel import SnapshotServer
from skiff.dataplane.model import GatewaySettings
from skiff.dataplane.supervisor import DataPlaneSupervisor
from skiff.mesh import membership
from skiff.mesh.authz.validate import admit as admit_authorization_policy
from skiff.mesh.ca import CAHolder, RootCertReconciler
from skiff.mesh.crds import SECURITY
from skiff.mesh.gateway.controller import GatewayController
from skiff.mesh.gateway.endpoints import GatewayEndpointsReconciler, ensure_services
from skiff.mesh.peerauth_validate import admit as admit_peer_authentication
from skiff.mesh.sidecar.controller import PROXY_CONTAINER, SidecarController, inbound_mtls
from skiff.mesh.sidecar.injectview import InjectionComponent
from skiff.node.process import PortAllocator

log = logging.getLogger("skiff.mesh")

SOCKET_PATH_MAX = 100       # sun_path is 108 bytes


def channel_path(home: Path) -> Path:
    """<home>/dataplane.sock, or a private temporary directory's when the home's path is too
    long for a Unix socket."""
    p = home / "dataplane.sock"
    if len(str(p).encode()) <= SOCKET_PATH_MAX:
        return p
    return Path(tempfile.mkdtemp(prefix="skiff-")) / "dataplane.sock"


class IngressComponent:
    """Control plane of the ingress + the data-plane process, started after the controllers,
    stopped first (the data plane drains before pods stop)."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.server: SnapshotServer | None = None
        self.supervisor: DataPlaneSupervisor | None = None
        self.controller: GatewayController | None = None
        self.pki: Any = None
        self.settings: GatewaySettings | None = None
        self.sidecars: SidecarController | None = None

    async def spawn(self) -> None:
        """The part that needs no store: the router's certificates, the internal port, the
        snapshot channel and the data-plane processes, started without waiting for them."""
        from skiff.router.router import ensure_router_pki
        s = self.platform.settings
        self.pki = ensure_router_pki(s.home / "pki", s.domain, utcnow())
        # The gateway's own 443 listener: a loopback port chosen here, because the compiled
        # snapshot names it (passthrough splices to it) and the data plane binds it.
        self.settings = GatewaySettings(
            host=s.host, http_port=s.http_port, https_port=s.https_port,
            local_gateway_port=s.local_gateway_port,
            internal_https_port=PortAllocator(s.host, reserved=s.listen_ports()).allocate(),
            domain=s.domain)
        try:
            self.server = SnapshotServer(channel_path(s.home))
            await self.server.start()
            self.supervisor = DataPlaneSupervisor(
                self.server, s.home, self.settings, workers=getattr(s, "dataplane_workers", 1),
                verbose=log.isEnabledFor(logging.DEBUG))
            await self.supervisor.spawn()
        except BaseException:
            await self.stop()
            raise

    async def start(self) -> None:
        if self.supervisor is None:
            await self.spawn()
        assert self.supervisor is not None and self.server is not None and self.settings is not None
        p = self.platform
        s = p.settings
        default_cert = (self.pki.ingress_cert.read_bytes(), self.pki.ingress_key.read_bytes())
        try:
            await self.supervisor.ready()
            stats = getattr(p, "revision_stats", None)
            if stats is not None:       # the autoscaler's inputs (serving/autoscaler/stats.py)
                self.server.on_stats = lambda clusters: stats.record(time.monotonic(), clusters)
                self.server.on_poke = stats.poke
            self.controller = GatewayController(p.client, self.server, self.settings, default_cert)
            await self.controller.start()
            if getattr(getattr(p, "network", None), "bridge_ip", None):
                await ensure_services(p.client)   # pods reach the gateways by their Services
                await self._start_sidecars()
        except BaseException:
            await self.stop()
            raise
        log.info("ingress: data plane pid %s: http %d, https %d (router CA %s), gateway 443 on "
                 "%d, local gateway %d", self.supervisor.pid, s.http_port, s.https_port,
                 self.pki.ca, self.settings.internal_https_port, s.local_gateway_port)
        p.on_step(f"ingress https://*.{s.domain}:{s.https_port} (router CA {self.pki.ca})")

    async def _start_sidecars(self) -> None:
        """The sidecars' control loop: meshed pods only exist where pods have namespaces."""
        p = self.platform
        node = p.node
        assert self.server is not None

        def log_path(ns: str, name: str) -> str:
            try:
                return str(node.log_path(ns, name, PROXY_CONTAINER))
            except Exception:
                return ""
        self.sidecars = SidecarController(p.client, self.server, p.mesh_ca, node.netns_of,
                                          log_path, inbound_mtls)
        await self.sidecars.start()

    async def stop(self) -> None:
        if self.sidecars is not None:
            await self.sidecars.stop()
            self.sidecars = None
        if self.supervisor is not None:
            await self.supervisor.stop()
            self.supervisor = None
        if self.controller is not None:
            await self.controller.stop()
            self.controller = None
        if self.server is not None:
            await self.server.stop()
            self.server = None


async def early(platform: Any) -> None:
    """First thing at start-up, before the store: spawn the data plane, whose own start-up
    (an interpreter, its imports, TLS contexts, binding) then overlaps the control plane's."""
    ingress = IngressComponent(platform)
    platform.early_ingress = ingress
    platform.on_cleanup(ingress.stop)
    await ingress.spawn()


def install(platform: Any) -> None:
    """Register the mesh domain's admission hooks, reconcilers and components on `platform`."""
    # Istio's webhook checks (ValidateAuthorizationPolicy); enforcement is not wired yet.
    platform.admission.validate(SECURITY, "AuthorizationPolicy", admit_authorization_policy)
    # Istio's PeerAuthentication CRD rules and webhook checks (peerauth_validate.py).
    platform.admission.validate(SECURITY, "PeerAuthentication", admit_peer_authentication)
    ingress = getattr(platform, "early_ingress", None) or IngressComponent(platform)
    platform.components.append(ingress)
    platform.manager.add(GatewayEndpointsReconciler(platform.client, lambda: ingress.settings),
                         workers=1)
    # Membership (SMCP/SMMR/SMM) and the mesh CA (istio-ca-secret, istio-ca-root-cert);
    # platform.mesh_ca is the CA the sidecars are issued from.
    for r in membership.reconcilers(platform.client, lambda: {
            "istiod": True, "istio-ingressgateway": ingress.controller is not None}):
        platform.manager.add(r, workers=1)
    platform.mesh_ca = CAHolder()
    platform.manager.add(RootCertReconciler(platform.client, platform.mesh_ca), workers=1)
    # Sidecar injection (Istio's webhook, Maistra's rules): a Pod defaulter on create, over a
    # MeshConfig the component's watches keep current. Its watch begins now, before the
    # ReplicaSet controller makes pods, so restarted Deployments get their sidecars too.
    injection = InjectionComponent(platform.client)
    platform.admission.default("", "Pod", injection.view.defaulter)
    injection.begin()
    platform.on_cleanup(injection.stop)
    platform.components.append(injection)
