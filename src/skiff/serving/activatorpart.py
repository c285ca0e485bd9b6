"""What the activator fronts, and with what capacity: the control plane's side of the activator.

A pure function of the ServerlessServices and PodAutoscalers (both names are the
revision's): the revisions whose SKS is in Proxy mode have the activator in their
path (upstream: the SKS points the public endpoints at the activator), and each
one's containerConcurrency, from its PodAutoscaler's spec as upstream's throttler
reads it from the Revision, is the capacity per pod the activator throttles to.
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
                   cluster_name: Callable[[str, str], str]) -> dict[str, Any]:
    """{"proxy": [clusters in Proxy mode, sorted], "capacity": {cluster: cc > 0}}; a revision
    with cc 0 (unlimited) has no capacity entry, and only fronted revisions have one."""
    proxied = {_key(o) for o in sks if (o.get("spec") or {}).get("mode") == "Proxy"}
    capacity: dict[str, int] = {}
    for pa in pas:
        key = _key(pa)
        if key not in proxied:
            continue
        cc = (pa.get("spec") or {}).get("containerConcurrency")
        if isinstance(cc, int) and not isinstance(cc, bool) and cc > 0:
            capacity[cluster_name(*key)] = cc
    return {"proxy": sorted(cluster_name(*k) for k in proxied),
            "capacity": dict(sorted(capacity.items()))}
