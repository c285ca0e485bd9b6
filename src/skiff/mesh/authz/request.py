"""The attributes an authorization decision reads: the destination workload and one request.

Istio's RBAC filter sees a connection (peer certificate, addresses, SNI) and,
on HTTP listeners, the request (:authority, :method, :path, headers, the JWT
that request authentication verified). `Request` carries exactly those, as
plain data the data plane fills in; `Workload` is the destination the policy
scope is matched against (namespace + pod labels). Pure data, no I/O.

Neighbours: model.py compiles policies into matchers that read these fields;
evaluate.py (decide) takes a Request; normalize.py turns the raw path into the
one the matchers see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import ip_address
from typing import Any

__all__ = ["SPIFFE_PREFIX", "Request", "Workload", "ip_int", "principal_for"]

SPIFFE_PREFIX = "spiffe://"
_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Workload:
    """A destination workload: its namespace and labels (sorted pairs, so it can key a cache)."""

    namespace: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, namespace: str, labels: Mapping[str, str] | None = None) -> Workload:
        return cls(namespace, tuple(sorted((labels or {}).items())))

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def principal_for(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    """The SPIFFE identity of a service account, as AuthorizationPolicy spells principals
    (`cluster.local/ns/NS/sa/SA`, without `spiffe://`)."""
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True, slots=True)
class Request:
    """One connection or HTTP request arriving at `destination`'s sidecar.

    `http=False` is a TCP connection: no host, method, path, headers or JWT, as on
    Istio's TCP filter chains. `source_principal` is the peer certificate's SPIFFE
    ID without `spiffe://` (None: no mTLS peer). `remote_ip` is the original client
    address (X-Forwarded-For / proxy protocol); it defaults to `source_ip`.
    `headers` keys are matched lower-cased. `path` is the raw request-target;
    decide() normalizes it. `auth_claims` are a verified JWT's claims;
    `request_principal` is its `iss/sub` (derived from the claims when omitted).
    `filter_metadata` is Envoy dynamic metadata by filter name, read by
    `experimental.envoy.filters.*` conditions.
    """

    destination: Workload
    port: int
    http: bool = True
    host: str = ""
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    source_principal: str | None = None
    source_ip: str = ""
    remote_ip: str | None = None
    destination_ip: str = ""
    sni: str = ""
    request_principal: str | None = None
    auth_claims: Mapping[str, Any] | None = None
    filter_metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    uri: str | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # The peer's URI SAN, once: principal, namespace and service account matchers read it.
        p = self.source_principal
        if p:
            object.__setattr__(self, "uri", p if p.startswith(SPIFFE_PREFIX) else SPIFFE_PREFIX + p)
        # Matchers look headers up by lower-case name (HTTP/2 and Envoy lower-case them). A
        # mapping that says its names are lower-case already is not read here (the sidecar's
        # RequestHeaders makes its dict only if a policy asks for a header).
        if not getattr(self.headers, "lower_case", False) and \
                any(k != k.lower() for k in self.headers):
            object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})

    @property
    def effective_remote_ip(self) -> str:
        return self.source_ip if self.remote_ip is None else self.remote_ip

    @property
    def claims(self) -> Mapping[str, Any]:
        return self.auth_claims if self.auth_claims is not None else _EMPTY

    def issuer_subject(self) -> tuple[str, str] | None:
        """The verified JWT's (iss, sub), or None without one."""
        c = self.auth_claims
        if c is not None and isinstance(c.get("iss"), str) and isinstance(c.get("sub"), str):
            return c["iss"], c["sub"]
        rp = self.request_principal
        if rp is None:
            return None
        # Istio splits a request principal at its last "/": the issuer may be a URL.
        iss, _, sub = rp.rpartition("/")
        return iss, sub

    def principal_uri(self) -> str | None:
        """The peer's identity as Envoy's `Authenticated` principal sees it (the URI SAN)."""
        return self.uri


@lru_cache(maxsize=8192)
def ip_int(text: str) -> tuple[int, int] | None:
    """(version, address as int) of an IP string, None if it is not one. Cached: the
    same few peer addresses recur on every request."""
    try:
        a = ip_address(text.strip("[]"))
    except ValueError:
        return None
    return a.version, int(a)
