"""The OpenShift route layer: the one external entry point, in front of the ingress gateway.

On OpenShift, Knative services are reached through the cluster router
(HAProxy): an OpenShift Route per Knative route, edge-terminated with the
router's wildcard certificate, or - when the ksvc carries
`serving.knative.openshift.io/enablePassthrough: "true"` - a passthrough
route that hands the TLS stream unopened to the ingress gateway, so clients
see the certificate of the gateway's credentialName Secret. skiff keeps
that shape with one small, simple design:

- settings.http_port: plain HTTP, served in-process by the gateway's HTTP
  handling for every external host (an edge route with insecure "Allow").
  (The router and the gateway share one process: the data-plane process,
  dataplane/main.py, apart from the API server and controllers.)
- settings.https_port: each connection's ClientHello is peeked (not read:
  dataplane/proxy/listener.py). If its SNI names a passthrough host (the
  gateway's snapshot knows, from the KIngress annotation), the raw TCP
  stream is spliced to the gateway's own 443 listener on a loopback port;
  otherwise TLS is terminated here with the router certificate (ALPN h2 or
  http/1.1) and requests go to the same in-process HTTP handling as above,
  with x-forwarded-proto https. No extra hop on the edge path.
- The router's certificates live in <home>/pki: a router CA
  (router-ca.crt: give it to curl --cacert to trust edge routes), the
  router's wildcard certificate for *.<domain> (router.crt) and the default
  ingress certificate Kourier mode serves (ingress.crt), both issued by
  that CA with core/pki.py and reissued when the domain changes.

Stopping: stop() closes the router's listening sockets and nothing else.
The connections it terminated are served by the gateway's HTTP handling and
drained with the gateway's own (GatewayProxy.stop); a passthrough splice ends
with its gateway-side connection, which that drain finishes too.

Neighbours: mesh/gateway/proxy.py implements RouterBackend; mesh/setup.py
wires the two together; dataplane/proxy/ (listeners, HTTP protocols).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509

from skiff.core.pki import ensure_ca, issue, write_pair
from skiff.dataplane.proxy.listener import (
    Action,
    PeekingListener,
    ProtocolFactory,
    Reject,
    Splice,
    Terminate,
    server_on,
)
from skiff.dataplane.proxy.tls import ClientHello, server_context

log = logging.getLogger("skiff.router")


class RouterBackend(Protocol):
    """What the router needs from the ingress gateway."""

    def edge_factory(self, scheme: bytes, tls: bool) -> ProtocolFactory: ...

    def is_passthrough(self, host: str) -> bool: ...

    @property
    def passthrough_address(self) -> tuple[str, int]: ...


@dataclass(frozen=True)
class RouterPKI:
    ca: Path           # router-ca.crt, the CA users trust for edge routes
    cert: Path         # router.crt: *.<domain>, served on edge-terminated routes
    key: Path
    ingress_cert: Path  # ingress.crt: *.<domain>, Kourier mode's default HTTPS certificate
    ingress_key: Path


def wildcard_names(domain: str) -> list[str]:
    return [f"*.{domain}", domain]


def _sans(path: Path) -> list[str]:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return sorted(ext.value.get_values_for_type(x509.DNSName))
    except (OSError, ValueError, x509.ExtensionNotFound):
        return []


def _issued_by(path: Path, ca: bytes) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        return cert.issuer == x509.load_pem_x509_certificate(ca).subject
    except (OSError, ValueError):
        return False


def router_pki_paths(pki: Path) -> RouterPKI:
    """Where ensure_router_pki() keeps them (the data-plane process only reads them)."""
    return RouterPKI(pki / "router-ca.crt", pki / "router.crt", pki / "router.key",
                     pki / "ingress.crt", pki / "ingress.key")


def ensure_router_pki(pki: Path, domain: str, now: dt.datetime) -> RouterPKI:
    """The router CA and the certificates it issues, made on first use or when the domain changes."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key = pki / "router-ca.crt", pki / "router-ca.key"
    ensure_ca(ca_crt, ca_key, "skiff-router-ca", now)
    ca = ca_crt.read_bytes()
    names = wildcard_names(domain)
    out = {}
    for stem, cn in (("router", "skiff-router"), ("ingress", "skiff-ingress")):
        crt, key = pki / f"{stem}.crt", pki / f"{stem}.key"
        if not key.exists() or _sans(crt) != sorted(names) or not _issued_by(crt, ca):
            write_pair(crt, key, issue(ca, ca_key.read_bytes(), cn, names, [], now))
        out[stem] = (crt, key)
    return RouterPKI(ca_crt, out["router"][0], out["router"][1], out["ingress"][0],
                     out["ingress"][1])


class Router:
    """The external listeners: plain HTTP, and HTTPS with edge termination or SNI passthrough."""

    def __init__(self, host: str, http_port: int, https_port: int, backend: RouterBackend,
                 pki: RouterPKI, reuse_port: bool = False) -> None:
        self.host = host
        self.reuse_port = reuse_port     # several data-plane workers bind the same ports
        self.http_port = http_port
        self.https_port = https_port
        self.backend = backend
        self.pki = pki
        self.ctx = server_context(pki.cert.read_bytes(), pki.key.read_bytes())
        self._http: asyncio.AbstractServer | None = None
        self._https: PeekingListener | None = None
        self._edge = backend.edge_factory(b"https", tls=True)

    def decide(self, hello: ClientHello | None) -> Action:
        if hello is None:
            return Reject("plain bytes on the HTTPS port")
        if hello.sni and self.backend.is_passthrough(hello.sni):
            return Splice(self.backend.passthrough_address)
        return Terminate(self.ctx, self._edge)

    async def start(self, accept: bool = True) -> None:
        """Bind and listen on both ports; accept now, or from accept() on."""
        self._http = await server_on(self.backend.edge_factory(b"http", tls=False), self.host,
                                     self.http_port, self.reuse_port)
        self._https = PeekingListener(self.host, self.https_port, self.decide, name="router",
                                      reuse_port=self.reuse_port)
        try:
            await self._https.start(accept=False)
        except OSError:
            self._http.close()
            raise
        if accept:
            await self.accept()

    async def accept(self) -> None:
        if self._http is not None:
            await self._http.start_serving()
        if self._https is not None:
            self._https.accept()

    async def stop(self) -> None:
        """Stop accepting; established connections drain with the gateway (module docstring)."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._https is not None:
            await self._https.close()
            self._https = None
