"""Wires the mesh domain into the platform: admission hooks, reconcilers and components.

platform.py calls install(platform) once the store, registry and in-process
client exist; nothing here runs before that. The ingress component started
here is the whole external request path: the router (serving/router.py,
the OpenShift route layer on --http-port/--https-port), the ingress gateway's
data plane (mesh/gateway/proxy.py: its 443 listener on a loopback port and
the knative-local-gateway on --local-gateway-port) and the controller that
compiles Gateways, Secrets and KIngresses into it (mesh/gateway/controller.py).
The router lives with serving but needs the gateway, so it is wired here.
"""

from __future__ import annotations

import logging
from typing import Any

from skiff.core.clock import utcnow
from skiff.mesh.gateway.controller import GatewayController
from skiff.mesh.gateway.proxy import GatewayProxy
from skiff.mesh.gateway.snapshot import GatewaySettings

log = logging.getLogger("skiff.mesh")


class IngressComponent:
    """Router + ingress gateway + its controller, started after the controllers, stopped first."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.proxy: GatewayProxy | None = None
        self.controller: GatewayController | None = None
        self.router: Any = None

    async def start(self) -> None:
        from skiff.serving.router import Router, ensure_router_pki
        p = self.platform
        s = p.settings
        pki = ensure_router_pki(s.home / "pki", s.domain, utcnow())
        settings = GatewaySettings(host=s.host, http_port=s.http_port, https_port=s.https_port,
                                   local_gateway_port=s.local_gateway_port, domain=s.domain)
        default_cert = (pki.ingress_cert.read_bytes(), pki.ingress_key.read_bytes())
        try:
            self.proxy = GatewayProxy(settings, default_cert)
            await self.proxy.start()
            self.controller = GatewayController(p.client, self.proxy, settings, default_cert)
            await self.controller.start()
            self.router = Router(s.host, s.http_port, s.https_port, self.proxy, pki)
            await self.router.start()
        except BaseException:
            await self.stop()
            raise
        log.info("ingress: http %d, https %d (router CA %s), gateway 443 on %d, local gateway %d",
                 s.http_port, s.https_port, pki.ca, self.proxy.internal_https_port,
                 s.local_gateway_port)
        p.on_step(f"ingress https://*.{s.domain}:{s.https_port} (router CA {pki.ca})")

    async def stop(self) -> None:
        if self.router is not None:
            await self.router.stop()
            self.router = None
        if self.controller is not None:
            await self.controller.stop()
            self.controller = None
        if self.proxy is not None:
            await self.proxy.stop()
            self.proxy = None


def install(platform: Any) -> None:
    """Register the mesh domain's admission hooks, reconcilers and components on `platform`."""
    platform.components.append(IngressComponent(platform))
