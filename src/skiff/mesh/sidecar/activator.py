"""The activator as a mesh workload: its identity upstream and its policies downstream.

On a cluster the activator is a pod in knative-serving with a sidecar: requests
the activator routes (a revision at zero, or one whose burst capacity keeps it in
the path) reach it first, its sidecar applies the AuthorizationPolicies that
select it (the guide's deny-all-by-default and allow-traffic-to-activator, the
tenants' allow-<tenant>-to-activator), and it forwards them to the revision's
pods with its own SVID, so the pods see knative-serving/activator as the source.
Here the activator lives in the data plane (serving/activator.py, a seam of the
gateway's dispatch, mesh/gateway/proxy.py); while knative-serving is a mesh
member the control plane issues it an SVID (controller.py, the part's
activator_cert), and this module gives the gateway and the sidecars' local
route (host.py) the two things its sidecar would do:
- admits(): the decision of the policies that select the activator (workload
  knative-serving with its Deployment's labels, port 8012) for a request from
  `source` (a caller's SPIFFE ID; the gateway's identity for requests that come
  through a gateway), 403 "RBAC: access denied" when they deny it;
- cluster(): how it reaches a meshed pod, mTLS with its own SVID.
Its sidecar's access log (the decisions a policy made, denials with the
reason) is <home>/activator-istio-proxy.log, in the container log format and
bounded as a pod's (host.AccessLog).
Without its SVID (knative-serving not a member) it is no mesh workload: nothing
is checked, and requests go on with the gateway's or the caller's identity.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from skiff.dataplane.proxy.cluster import Cluster
from skiff.dataplane.proxy.http1 import Reply, RequestHead
from skiff.mesh.authz import DENIED_BODY, PolicySet, Request, decide
from skiff.mesh.sidecar.config import (
    ACTIVATOR_IDENTITY,
    ACTIVATOR_PORT,
    ACTIVATOR_WORKLOAD,
    GATEWAY_IDENTITY,
)

if TYPE_CHECKING:
    from skiff.mesh.sidecar.host import AccessLog, SidecarHost

log = logging.getLogger("skiff.sidecar")

WORKLOAD = ACTIVATOR_WORKLOAD
_DENIED = Reply(403, DENIED_BODY.encode(), ((b"content-type", b"text/plain"),))
ACTIVATOR_LOG = "activator-istio-proxy.log"     # in the home


class ActivatorIdentity:
    """The activator's sidecar, for the host's current mesh part."""

    def __init__(self, host: SidecarHost) -> None:
        self.host = host
        self.clusters: dict[str, Cluster] = {}
        self._policies_of: PolicySet | None = None
        self._unguarded = True          # no policy selects the activator
        self.access_log: AccessLog | None = None     # set by the data plane (main.py)

    def reset(self) -> None:
        """A new mesh part (certificates, policies): decide everything again."""
        self.clusters = {}
        self._policies_of = None

    @property
    def meshed(self) -> bool:
        return bool(self.host.part.activator_cert)

    def admits(self, head: RequestHead, source: str | None) -> Reply | None:
        """None when the policies that select the activator let this request in (or none
        does, or it is no mesh workload); else the reply its sidecar would give."""
        part = self.host.part
        if not part.activator_cert:
            return None
        policies = self.host.policies
        if self._policies_of is not policies:
            self._policies_of = policies
            self._unguarded = policies.for_workload(WORKLOAD).none
        if self._unguarded:
            return None
        if source is None:
            ns, sa = GATEWAY_IDENTITY
            principal = f"{part.trust_domain}/ns/{ns}/sa/{sa}"
        else:
            principal = source.removeprefix("spiffe://")
        # imported here: host.py imports this module
        from skiff.mesh.sidecar.host import RequestHeaders
        req = Request(destination=WORKLOAD, port=ACTIVATOR_PORT,
                      host=head.host.decode("latin-1"), method=head.method.decode("latin-1"),
                      path=head.target.decode("latin-1"), headers=RequestHeaders(head),
                      source_principal=principal, source_ip=head.client.decode("latin-1"))
        d = decide(policies, req)
        if d.allowed:
            if d.policy:
                self._log(f'"{req.method} {req.path}" allowed source={principal} host={req.host}: '
                          f"{d.action} policy {d.policy} rule {d.rule}")
            return None
        self._log(f'"{req.method} {req.path}" {d.status or 403} rbac_access_denied '
                  f"source={principal} host={req.host}: {d.reason}")
        return _DENIED if not d.status or d.status == 403 else \
            Reply(d.status, _DENIED.body, _DENIED.headers)

    def _log(self, line: str) -> None:
        log.debug("activator %s/%s %s", *ACTIVATOR_IDENTITY, line)
        if self.access_log is not None:
            self.access_log.write(line)

    def cluster(self, ep: tuple[str, int]) -> Cluster | None:
        """mTLS to a meshed pod with the activator's SVID; None: no sidecar guards `ep`, or
        the activator has no SVID (the caller's way applies)."""
        part = self.host.part
        return self.host.svid_cluster(self.clusters, part.activator_cert, part.activator_key, ep)
