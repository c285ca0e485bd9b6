"""ServerlessService reconciler: the two Services in front of a revision's pods.

As upstream pkg/reconciler/serverlessservice: an SKS (made by the
PodAutoscaler reconciler, which also writes its spec.mode) gets a public
Service named like it and a private one `<name>-private` selecting the
pods of its objectRef (the revision's Deployment), both owned by the SKS
(resources.make_public_service, make_private_service; both target
queue-proxy's serving port). Status: serviceName and
privateServiceName, Ready (EndpointsPopulated) and the Info condition
ActivatorEndpointsPopulated, True while the activator is in the path (mode
Proxy, or Serve with no ready pod yet), whose lastTransitionTime the KPA
reads as "proxied since" for the scale-to-zero grace period. skiff's
activator is part of the data-plane process, so it is always there to be
put in the path. Neighbours: podautoscaler.py (owner; reads the status),
resources.py (the builders), core's EndpointSlice controller (the
private Service's endpoints).
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.core import conditions
from skiff.core.client import Client, Obj, Ref
from skiff.core.conditions import ConditionSet
from skiff.core.controller import Key, Mapper, owned_by
from skiff.core.reconcile import get_or_none, write_status
from skiff.serving import names, resources
from skiff.serving.autoscaler.decider import SKS_MODE_PROXY
from skiff.serving.reconcilers.base import DEPLOYMENT, K8S_SERVICE, SERVERLESS_SERVICE

ENDPOINTS_POPULATED = "EndpointsPopulated"
ACTIVATOR_ENDPOINTS_POPULATED = "ActivatorEndpointsPopulated"
SKS_CONDITIONS = ConditionSet((ENDPOINTS_POPULATED,))
ACTIVATOR_MESSAGE = "Revision is backed by Activator"


def _deployment_key(d: Obj) -> list[Key]:
    """A revision's Deployment -> the SKS named like the revision."""
    rev = (d["metadata"].get("labels") or {}).get(names.REVISION_LABEL)
    return [(d["metadata"].get("namespace", ""), rev)] if rev else []


def selector_and_port(deployment: Obj | None, sks: Obj) -> tuple[dict[str, str], int]:
    """The pods' selector (the Deployment's matchLabels) and the port the Services target:
    queue-proxy's serving port, 8012, or 8013 for h2c (networking.ServicePort)."""
    spec = (deployment or {}).get("spec") or {}
    sel = dict(((spec.get("selector") or {}).get("matchLabels")) or {}) or \
        {names.REVISION_LABEL: sks["metadata"]["name"]}
    h2c = (sks.get("spec") or {}).get("protocolType") == resources.PROTOCOL_H2C
    return sel, names.QUEUE_H2C_PORT if h2c else names.QUEUE_HTTP_PORT


def sks_status(sks: Obj, status: Obj, ready_pods: int) -> None:
    """The endpoints' story: who is in the path. Pure."""
    m = SKS_CONDITIONS.manage(status)
    name = sks["metadata"]["name"]
    status["serviceName"] = name
    status["privateServiceName"] = resources.private_service_name(name)
    proxy = (sks.get("spec") or {}).get("mode") == SKS_MODE_PROXY or ready_pods == 0
    if proxy:
        m.set(ACTIVATOR_ENDPOINTS_POPULATED, conditions.TRUE, ACTIVATOR_ENDPOINTS_POPULATED,
              ACTIVATOR_MESSAGE)
    else:
        m.set(ACTIVATOR_ENDPOINTS_POPULATED, conditions.FALSE, ACTIVATOR_ENDPOINTS_POPULATED,
              ACTIVATOR_MESSAGE)
    # Either the pods or the activator answer: the endpoints are there.
    m.mark_true(ENDPOINTS_POPULATED)


def _service_differs(have: Obj, want: Obj) -> bool:
    hs, ws = have.get("spec") or {}, want["spec"]
    if any(hs.get(f) != ws.get(f) for f in ("selector", "ports", "type")):
        return True
    hm, wm = have["metadata"], want["metadata"]
    return any((hm.get(k) or {}) != (wm.get(k) or {}) for k in ("labels", "annotations"))


class ServerlessServiceReconciler:
    name = "serving-serverlessservice"
    primary = SERVERLESS_SERVICE

    def __init__(self, client: Client) -> None:
        self.client = client

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(K8S_SERVICE, owned_by("ServerlessService", names.NETWORKING_GROUP)),
                (DEPLOYMENT, _deployment_key)]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        sks = await get_or_none(self.client, SERVERLESS_SERVICE, name, namespace)
        if sks is None or sks["metadata"].get("deletionTimestamp"):
            return None
        old_status = sks.get("status") or {}
        status = copy.deepcopy(old_status)
        gen = int(sks["metadata"].get("generation") or 1)
        conditions.pre_process(SKS_CONDITIONS, status, gen)
        try:
            await self._reconcile(sks, status)
        finally:
            status["observedGeneration"] = gen
            await write_status(self.client, sks, status, old_status)
        return None

    async def _reconcile(self, sks: Obj, status: Obj) -> None:
        ns = sks["metadata"]["namespace"]
        ref = (sks.get("spec") or {}).get("objectRef") or {}
        deployment = None
        if ref.get("kind") == "Deployment" and ref.get("name"):
            deployment = await get_or_none(self.client, DEPLOYMENT, ref["name"], ns)
        selector, port = selector_and_port(deployment, sks)
        for want in (resources.make_private_service(sks, selector, port),
                     resources.make_public_service(sks, selector, port)):
            if not await self._ensure_service(sks, status, want):
                return
        ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        sks_status(sks, status, ready)

    async def _ensure_service(self, sks: Obj, status: Obj, want: Obj) -> bool:
        ns, svc_name = want["metadata"]["namespace"], want["metadata"]["name"]
        have = await get_or_none(self.client, K8S_SERVICE, svc_name, ns)
        if have is None:
            await self.client.create(want)
            return True
        if not resources.is_controlled_by(have, sks):
            SKS_CONDITIONS.manage(status).mark_false(
                ENDPOINTS_POPULATED, "NotOwned",
                f"SKS: {sks['metadata']['name']} does not own Service: {svc_name}")
            return False
        if _service_differs(have, want):
            upd: dict[str, Any] = copy.deepcopy(have)
            upd["metadata"]["labels"] = want["metadata"]["labels"]
            upd["metadata"]["annotations"] = want["metadata"]["annotations"]
            upd["spec"].update({k: want["spec"][k] for k in ("selector", "ports", "type")})
            await self.client.update(upd)
        return True
