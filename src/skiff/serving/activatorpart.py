"""What the activator fronts, and with what capacity: the control plane's side of the activator.

A pure function of the ServerlessServices, PodAutoscalers and Revisions (all
named as the revision): the revisions whose SKS is in Proxy mode have the
activator in their path (upstream: the SKS points the public endpoints at the
activator); each one's containerConcurrency, from its PodAutoscaler's spec as
upstream's throttler reads it from the Revision, is the capacity per pod the
activator throttles to; and its timeoutSeconds bounds how long the activator
holds a request for it (upstream's activator proxies within the revision's
timeout: a pod that never becomes ready gets the request a 503 then).
The gateway controller (mesh/gateway/controller.py) watches both kinds and
publishes the result as the data plane's "activator" part; serving/activator.py
applies it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Obj = dict[str, Any]


def _key(o: Obj) -> tuple[str, str]:
    m = o.get("metadata") or {}
    return str(m.get("namespace")), str(m.get("name"))


def activator_part(sks: Iterable[Obj], pas: Iterable[Obj],
                   cluster_name: Callable[[str, str], str],
                   revisions: Iterable[Obj] = ()) -> dict[str, Any]:
    """{"proxy": [clusters in Proxy mode, sorted], "capacity": {cluster: cc > 0}, "timeout":
    {cluster: timeoutSeconds}}; a revision with cc 0 (unlimited) has no capacity entry, and
    only fronted revisions have entries."""
    proxied = {_key(o) for o in sks if (o.get("spec") or {}).get("mode") == "Proxy"}
    capacity: dict[str, int] = {}
    for pa in pas:
        key = _key(pa)
        if key not in proxied:
            continue
        cc = (pa.get("spec") or {}).get("containerConcurrency")
        if isinstance(cc, int) and not isinstance(cc, bool) and cc > 0:
            capacity[cluster_name(*key)] = cc
    timeout: dict[str, int] = {}
    for rev in revisions:
        key = _key(rev)
        t = (rev.get("spec") or {}).get("timeoutSeconds")
        if key in proxied and isinstance(t, int) and not isinstance(t, bool) and t > 0:
            timeout[cluster_name(*key)] = t
    return {"proxy": sorted(cluster_name(*k) for k in proxied),
            "capacity": dict(sorted(capacity.items())),
            "timeout": dict(sorted(timeout.items()))}
