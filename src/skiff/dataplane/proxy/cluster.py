"""Upstream clusters and their TLS settings, and the pure decisions about peer identities.

Envoy's vocabulary: a Cluster says how to reach an upstream (connect_timeout, and an
UpstreamTlsContext when the upstream speaks TLS: SNI, a client certificate for mTLS, the CA
to trust, the SANs the peer must present, ALPN). http1.py's UpstreamPool keys its keep-alive
connections by (address, UpstreamTlsContext), so connections made with one identity or trust
are never handed to a request that asked for another; tls.py turns an UpstreamTlsContext into
an ssl context. The sidecar (mTLS origination with a SPIFFE identity) and the activator are the
users to come; the gateway's plain upstreams carry no Cluster and take the old path.

Everything here is pure (bytes in, answers out; `cryptography` parses certificates): SAN
matching as Envoy's match_typed_subject_alt_names does it (exact, any listed name), the SPIFFE
ID of a certificate (its URI SAN starting with spiffe://), and the words of Envoy's 503s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

SPIFFE_PREFIX = "spiffe://"


@dataclass(frozen=True)
class UpstreamTlsContext:
    """How to originate TLS to an upstream (Envoy's UpstreamTlsContext, PEM instead of files).

    Without `ca_pem` the peer's certificate is not verified (as Envoy without a
    validation_context); `match_san` then still applies to whatever certificate it shows.
    ALPN is offered as given: the upstream side speaks HTTP/1.1 only, so never offer h2."""
    sni: str | None = None
    cert_pem: bytes | None = None        # client certificate chain (mTLS)
    key_pem: bytes | None = None
    ca_pem: bytes | None = None          # trusted CA(s) for the peer's certificate
    match_san: tuple[str, ...] = ()      # any one of these must be a SAN of the peer (URI or DNS)
    alpn: tuple[str, ...] = ()


@dataclass(frozen=True)
class Origin:
    """Where an upstream connection's socket is made: inside a pod's network namespace (a
    sidecar speaks from its pod's address and its pod's localhost), with a socket mark the
    pod's capture rules let through (Istio's proxy runs as uid 1337 for the same purpose)."""
    netns: str                           # path of the namespace, /run/netns/skiff-...
    mark: int = 1337


@dataclass(frozen=True)
class Cluster:
    """An upstream cluster as a Forward names it: its TLS settings, connect timeout, and
    where its connections start from (None: this process's own namespace)."""
    name: str = ""
    tls: UpstreamTlsContext | None = None
    connect_timeout: float = 5.0         # Envoy's connect_timeout (its default is 5 s)
    origin: Origin | None = None
    # endpoint -> (pool, key, idle list) of this cluster's connections to it, found once
    # (http1.py's Exchange.forward): building and hashing (endpoint, tls, origin) anew calls
    # the frozen dataclasses' __hash__ in Python on every request. Not part of the identity.
    pool_keys: dict[tuple[str, int], Any] = field(default_factory=dict, compare=False,
                                                  hash=False, repr=False)


@dataclass(frozen=True)
class PeerNames:
    """The names a certificate presents (its SubjectAlternativeName entries)."""
    dns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()

    @property
    def spiffe_id(self) -> str | None:
        return spiffe_id(self.uris)


def peer_names(der: bytes) -> PeerNames:
    """The DNS and URI SANs of a DER certificate (none when it has no SAN extension or does
    not parse)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return PeerNames()
    return PeerNames(tuple(ext.value.get_values_for_type(x509.DNSName)),
                     tuple(ext.value.get_values_for_type(x509.UniformResourceIdentifier)))


def spiffe_id(uris: tuple[str, ...]) -> str | None:
    """The SPIFFE ID among a certificate's URI SANs (an SVID carries exactly one)."""
    return next((u for u in uris if u.startswith(SPIFFE_PREFIX)), None)


def san_matches(expected: tuple[str, ...], names: PeerNames) -> bool:
    """Whether the peer presents one of the `expected` SANs. Exact matches, as Envoy's
    `exact` matcher; DNS names compare case-insensitively. Nothing expected: any peer."""
    if not expected:
        return True
    dns = {d.lower() for d in names.dns}
    for want in expected:
        if want in names.uris or want.lower() in dns:
            return True
    return False


def san_mismatch_reason(expected: tuple[str, ...], names: PeerNames) -> str:
    got = ", ".join(names.uris + names.dns) or "no SAN"
    return f"peer SAN mismatch: expected {' or '.join(expected)}, got {got}"


_RESET = "upstream connect error or disconnect/reset before headers. reset reason: "


def connect_failure_body(reason: str, transport_failure: str = "") -> bytes:
    """Envoy's 503 body when an upstream connection fails before response headers, e.g.
    reason "connection timeout", or "connection failure" with a TLS transport failure."""
    body = _RESET + reason
    if transport_failure:
        body += ", transport failure reason: " + transport_failure
    return body.encode()
