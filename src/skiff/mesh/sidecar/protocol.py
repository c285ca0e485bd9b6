"""Which protocol a sidecar speaks on a connection: Istio's ALPN inside the mesh. Pure.

Istio's client sidecars say what they carry in the mTLS ClientHello's ALPN:
`istio-http/1.0`, `istio-http/1.1` or `istio-h2` for HTTP, and
`istio-peer-exchange`, `istio` for TCP; the inbound listener's filter chains
match on them (pilot/pkg/networking/core/v1alpha3: mtlsHTTPALPNs and
mtlsTCPWithMxcALPNs). A TLS client with a mesh certificate that offers
neither (curl --cert, openssl s_client) is told apart by its first bytes
(dataplane/proxy/sniff.py), as Envoy's http_inspector does on plaintext.
A Service port's protocol (its appProtocol, or its name's prefix) spares the
sniffing: a port declared TCP is proxied as TCP at once, which is how Istio
wants server-first protocols declared (its protocolDetectionTimeout is off
by default: "Setting a timeout is not recommended nor safe", mesh config.proto).

Neighbours: host.py (the inbound listener's choice and the outbound TCP mTLS
ALPN), config.py (inbound_treatment: whether TLS is terminated at all).
"""

from __future__ import annotations

__all__ = ["ALPN_MESH_HTTP", "ALPN_MESH_TCP", "TCP_PROTOCOLS", "inbound_protocol",
           "service_port_protocol"]

ALPN_MESH_HTTP = ("istio-http/1.0", "istio-http/1.1", "istio-h2")
ALPN_MESH_TCP = ("istio-peer-exchange", "istio")


def inbound_protocol(alpn: tuple[str, ...]) -> str:
    """Which chain a terminated mesh connection takes, from the ALPN its client offered:
    "http" (an istio-http/istio-h2 client), "tcp" (an Istio TCP client: decided at once, so
    a server-first protocol is not kept waiting for the client's bytes), or "sniff" (any
    other TLS client: its first bytes tell)."""
    if any(p in ALPN_MESH_HTTP for p in alpn):
        return "http"
    if any(p in ALPN_MESH_TCP for p in alpn):
        return "tcp"
    return "sniff"


# Istio's protocols (pkg/config/protocol), and those it proxies as plain TCP: a port declared
# so is never sniffed (the client's first bytes are not awaited: server-first protocols such
# as MySQL work), as an HTTP one is never taken for TCP.
_KNOWN = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP",
          "http2": "HTTP2", "https": "HTTPS", "tls": "TLS", "mongo": "Mongo", "redis": "Redis",
          "mysql": "MySQL"}
TCP_PROTOCOLS = frozenset({"TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL"})
# Kubernetes' standard appProtocol names Istio understands
_APP_PROTOCOLS = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP",
                  "kubernetes.io/wss": "HTTPS"}


def _parse(text: str) -> str:
    return _KNOWN.get(text.lower(), "")


def service_port_protocol(name: str, app_protocol: str = "") -> str:
    """The protocol Istio gives a TCP Service port (kube.ConvertProtocol): appProtocol when it
    names one; else the port name's prefix before "-" ("tcp-db", "http", "grpc-web-x"); ""
    when none says (protocol detection: the first bytes tell). A UDP or SCTP port is never
    asked about: the sidecar proxies TCP only, so controller.service_vips leaves it out."""
    if app_protocol:
        known = _APP_PROTOCOLS.get(app_protocol) or _parse(app_protocol)
        if known:
            return known
    low = name.lower()
    if low.startswith("grpc-web"):
        return "GRPC-Web"
    return _parse(low.split("-", 1)[0])
