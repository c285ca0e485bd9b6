"""Route reconciler: traffic to ready Revisions, the URL, and the KIngress that serves it.

As upstream pkg/reconciler/route: traffic.build() flattens spec.traffic to
ready Revisions (latestRevision -> the Configuration's
latestReadyRevisionName); a missing or unready target sets
AllTrafficAssigned with upstream's RevisionMissing messages and programs
nothing. Otherwise status.traffic (tag URLs too), status.url (the domain
template, https on OpenShift; http://<name>.<ns>.svc.cluster.local when
cluster-local), status.address, CertificateProvisioned (TLSNotEnabled:
skiff has no auto-TLS) and the KIngress (resources.make_ingress), whose
status the data plane (mesh/gateway) writes: IngressReady mirrors its Ready
once it has observed the Ingress's generation, else "IngressNotConfigured".
The labeler part of upstream's route controller is here too: the
Configurations and Revisions the route uses get serving.knative.dev/routes
and routingState (active; reserve when no route uses a Revision any more).
route_status() is the pure part, table-tested. Neighbours: traffic.py,
resources.py, domains.py, mesh/gateway (serves the Ingress).
"""

from __future__ import annotations

import contextlib
import copy

from skiff.core import conditions
from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.conditions import ConditionSet
from skiff.core.controller import Mapper, owned_by
from skiff.core.reconcile import KeySet, Tracker, desired, differs, get_or_none, now, write_status
from skiff.serving import domains, names, resources, traffic
from skiff.serving.config import ConfigHolder, ServingConfig
from skiff.serving.names import CONFIGURATION_LABEL, ROUTES_ANNOTATION
from skiff.serving.reconcilers.base import (
    CONFIGURATION,
    INGRESS,
    KNATIVE_SERVING,
    REVISION,
    ROUTE,
    load_config,
)

ALL_TRAFFIC_ASSIGNED = "AllTrafficAssigned"
INGRESS_READY = "IngressReady"
K8S_SERVICE = Ref("v1", "Service")
CERTIFICATE_PROVISIONED = "CertificateProvisioned"
ROUTE_CONDITIONS = ConditionSet((ALL_TRAFFIC_ASSIGNED, INGRESS_READY, CERTIFICATE_PROVISIONED))


def route_url(route: Obj, cfg: ServingConfig, visibility: dict[str, str]) -> str:
    """updateRouteStatusURL: the default target's host; http when cluster-local."""
    cluster_local = visibility.get(traffic.DEFAULT_TARGET) == names.VISIBILITY_CLUSTER_LOCAL_RULE
    meta = domains.with_visibility(route["metadata"], cluster_local)
    host = domains.domain_name_from_template(cfg, meta, route["metadata"]["name"])
    return domains.url("http" if cluster_local else cfg.default_external_scheme, host)


def configure_traffic(route: Obj, status: Obj, cfg: ServingConfig, configurations: dict[str, Obj],
                      revisions: dict[str, Obj]) -> traffic.TrafficConfig | None:
    """configureTraffic: the TrafficConfig to program, or None (status says why)."""
    m = ROUTE_CONDITIONS.manage(status)
    try:
        tc, err = traffic.build(route, configurations, revisions)
        tc.visibility = traffic.visibility(route, cfg)
        status["url"] = route_url(route, cfg, tc.visibility)
        if err is not None:
            st, reason, message = err.condition()
            if st == conditions.FALSE:
                m.mark_false(ALL_TRAFFIC_ASSIGNED, reason, message)
            else:
                m.mark_unknown(ALL_TRAFFIC_ASSIGNED, reason, message)
            return None
        status["traffic"] = traffic.status_traffic(tc, route, cfg)
    except domains.TemplateError as e:
        m.mark_unknown(ALL_TRAFFIC_ASSIGNED, "Unknown", str(e))
        return None
    m.mark_true(ALL_TRAFFIC_ASSIGNED)
    return tc


def propagate_ingress(status: Obj, ingress: Obj) -> None:
    """IngressReady from the Ingress's Ready, once its generation has been observed."""
    m = ROUTE_CONDITIONS.manage(status)
    ist = ingress.get("status") or {}
    c = conditions.get(ist, conditions.READY)
    if int(ist.get("observedGeneration") or 0) != int(ingress["metadata"].get("generation") or 1) \
            or c is None:
        m.mark_unknown(INGRESS_READY, "IngressNotConfigured", "Ingress has not yet been reconciled.")
    elif c.get("status") == conditions.TRUE:
        m.mark_true(INGRESS_READY)
    elif c.get("status") == conditions.FALSE:
        m.mark_false(INGRESS_READY, c.get("reason", ""), c.get("message", ""))
    else:
        m.mark_unknown(INGRESS_READY, c.get("reason", ""), c.get("message", ""))


def route_status(route: Obj, status: Obj, cfg: ServingConfig, configurations: dict[str, Obj],
                 revisions: dict[str, Obj]) -> traffic.TrafficConfig | None:
    """Everything up to the Ingress (the shell creates it, then propagate_ingress). Pure."""
    tc = configure_traffic(route, status, cfg, configurations, revisions)
    if tc is None:
        return None
    m = route["metadata"]
    status["address"] = {"url": "http://" + names.k8s_service_fullname(
        m["name"], m["namespace"], cfg.cluster_domain)}
    cm = ROUTE_CONDITIONS.manage(status)
    if cfg.auto_tls:
        # No certificate controller yet: say so rather than pretend.
        cm.mark_unknown(CERTIFICATE_PROVISIONED, "CertificateNotReady",
                        f"Certificate {m['name']} is not ready.")
    else:
        cm.mark_true_with_reason(CERTIFICATE_PROVISIONED, "TLSNotEnabled", "autoTLS is not enabled")
    return tc


def routing_meta_patches(route: Obj, configurations: dict[str, Obj], revisions: dict[str, Obj],
                         now_: str) -> list[tuple[str, str, Obj]]:
    """The labeler (labelerv2 syncRoutingMeta): (kind, name, merge patch) for every
    Configuration and Revision whose routes annotation / routingState must change."""
    rname = route["metadata"]["name"]
    want_revs: set[str] = set()
    want_cfgs: set[str] = set()
    targets = ((route.get("status") or {}).get("traffic") or []) + \
        ((route.get("spec") or {}).get("traffic") or [])
    for tt in targets:
        cfg_name = tt.get("configurationName") or ""
        if (rev_name := tt.get("revisionName")) and (rev := revisions.get(rev_name)) is not None:
            want_revs.add(rev_name)
            for ref in rev["metadata"].get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "Configuration":
                    cfg_name = ref.get("name", "")
        if cfg_name and (c := configurations.get(cfg_name)) is not None:
            want_cfgs.add(cfg_name)
            lcr = (c.get("status") or {}).get("latestCreatedRevisionName")
            if lcr and tt.get("latestRevision") and lcr in revisions:
                # The next revision is labelled early, for a smooth hand-over.
                want_revs.add(lcr)
    out: list[tuple[str, str, Obj]] = []
    for kind, objs, want in (("Configuration", configurations, want_cfgs),
                             ("Revision", revisions, want_revs)):
        for name in sorted(objs):
            obj = objs[name]
            listed = name in want
            if not listed and rname not in resources.list_annotation(
                    obj["metadata"].get("annotations"), ROUTES_ANNOTATION):
                continue
            patch = resources.routing_meta_patch(obj, rname, not listed, kind == "Revision", now_)
            if patch is not None:
                out.append((kind, name, patch))
    return out


class RouteReconciler:
    name = "serving-route"
    primary = ROUTE

    def __init__(self, client: Client, holder: ConfigHolder) -> None:
        self.client = client
        self.holder = holder
        self.tracker = Tracker()
        self.known = KeySet()

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [
            (INGRESS, owned_by("Route", names.GROUP)),
            (K8S_SERVICE, owned_by("Route", names.GROUP)),
            (CONFIGURATION, self.tracker.mapper("Configuration")),
            (REVISION, self.tracker.mapper("Revision", CONFIGURATION_LABEL)),
            (KNATIVE_SERVING, self.known.all()),
        ]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        route = await get_or_none(self.client, ROUTE, name, namespace)
        if route is None:
            self.tracker.reset(key)
            self.known.gone(key)
            return None
        self.known.seen(key)
        if route["metadata"].get("deletionTimestamp"):
            return None
        cfg = await load_config(self.client, self.holder)
        self.tracker.reset(key)
        cfg_names, rev_names = traffic.referenced_names(route)
        self.tracker.track(key, "Configuration", cfg_names)
        self.tracker.track(key, "Revision", rev_names)
        configurations = {c["metadata"]["name"]: c
                          for c in await self.client.list(CONFIGURATION, namespace)}
        revisions = {r["metadata"]["name"]: r for r in await self.client.list(REVISION, namespace)}
        # Revisions that a Configuration target resolves to are tracked as well.
        self.tracker.track(key, "Revision", [
            lrr for n in cfg_names if (c := configurations.get(n)) is not None
            and (lrr := (c.get("status") or {}).get("latestReadyRevisionName"))])

        old_status = route.get("status") or {}
        status = copy.deepcopy(old_status)
        gen = int(route["metadata"].get("generation") or 1)
        conditions.pre_process(ROUTE_CONDITIONS, status, gen)
        requeue: float | None = None
        try:
            tc = route_status(route, status, cfg, configurations, revisions)
            if tc is not None:
                requeue = await self._ingress(route, status, cfg, tc)
        finally:
            status["observedGeneration"] = gen
            route = await write_status(self.client, route, status, old_status)
        await self._label(route, configurations, revisions)
        return requeue

    async def _ingress(self, route: Obj, status: Obj, cfg: ServingConfig,
                       tc: traffic.TrafficConfig) -> float | None:
        want = resources.make_ingress(route, tc, cfg)
        ns = route["metadata"]["namespace"]
        have = await get_or_none(self.client, INGRESS, want["metadata"]["name"], ns)
        if have is None:
            have = await self.client.create(want)
        elif not resources.is_controlled_by(have, route):
            ROUTE_CONDITIONS.manage(status).mark_false(
                INGRESS_READY, "NotOwned",
                f'There is an existing Ingress "{want["metadata"]["name"]}" that we do not own.')
            return 5.0
        elif differs(have, want):
            upd = desired(have, want)
            try:
                have = await self.client.update(upd)
            except ApiError as e:
                if e.code != 409:
                    raise
                return 0.1
        propagate_ingress(status, have)
        await self._k8s_service(route, have)
        return None

    async def _k8s_service(self, route: Obj, ingress: Obj) -> None:
        """The Route's cluster name (<route>.<ns>.svc.cluster.local): an ExternalName Service to
        the local gateway, as upstream's route reconciler keeps it."""
        want = resources.make_k8s_service(route, ingress)
        if want is None:
            return
        ns = route["metadata"]["namespace"]
        have = await get_or_none(self.client, K8S_SERVICE, want["metadata"]["name"], ns)
        if have is None:
            with contextlib.suppress(ApiError):      # 409: made meanwhile; next pass compares
                await self.client.create(want)
        elif resources.is_controlled_by(have, route) and (
                any(have.get("spec", {}).get(k) != v for k, v in want["spec"].items())
                or (have["metadata"].get("labels") or {}) != want["metadata"]["labels"]):
            upd = copy.deepcopy(have)
            upd["spec"] = {**have.get("spec", {}), **want["spec"]}
            upd["metadata"]["labels"] = want["metadata"]["labels"]
            with contextlib.suppress(ApiError):
                await self.client.update(upd)

    async def _label(self, route: Obj, configurations: dict[str, Obj],
                     revisions: dict[str, Obj]) -> None:
        ns = route["metadata"]["namespace"]
        for kind, name, patch in routing_meta_patches(route, configurations, revisions, now()):
            ref = CONFIGURATION if kind == "Configuration" else REVISION
            try:
                await self.client.patch(ref, name, patch, ns)
            except ApiError as e:
                if e.code != 404:   # gone meanwhile: nothing to label
                    raise
