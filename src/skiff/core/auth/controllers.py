"""The shells around RBAC: the watches that keep the gate's policy, and two controllers.

- write_defaults(): at start, before the API listens, the default cluster roles
  and bindings (bootstrap.py) are created or topped up in the store.
- PolicyInformer: lists, then watches, Roles, ClusterRoles, RoleBindings,
  ClusterRoleBindings and ServiceAccounts through the in-process client and
  folds every event into the gate (rbac.Policy.apply), as kube-apiserver's
  RBAC authorizer reads from informers. The first list is done before the API
  server starts listening, so no request is judged against an empty policy.
- DefaultServiceAccountReconciler: a `default` ServiceAccount in every
  namespace, recreated if deleted (kube-controller-manager's serviceaccounts
  controller).
- AggregationReconciler: a ClusterRole with an aggregationRule gets the rules
  of the ClusterRoles its selectors match (the clusterrole-aggregation
  controller); rbac.aggregated_rules decides.
Neighbours: gate.py (the state fed here), core/controller.py (the runtime the
reconcilers run in), platform.py (starts these).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from skiff.core.apiserver.registry import Registry
from skiff.core.auth import bootstrap, rbac
from skiff.core.auth.gate import Gate
from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.controller import RELIST_MIN, Mapper, relist_delay

log = logging.getLogger("skiff.rbac")

RBAC_V1 = f"{rbac.GROUP}/v1"
CLUSTER_ROLE = Ref(RBAC_V1, "ClusterRole")
SERVICE_ACCOUNT = Ref("v1", "ServiceAccount")
NAMESPACE = Ref("v1", "Namespace")
WATCHED = [Ref(RBAC_V1, "ClusterRole"), Ref(RBAC_V1, "Role"), Ref(RBAC_V1, "ClusterRoleBinding"),
           Ref(RBAC_V1, "RoleBinding"), SERVICE_ACCOUNT]


def write_defaults(registry: Registry) -> None:
    """Create the default ClusterRoles and ClusterRoleBindings, or top up autoupdate ones."""
    for want in bootstrap.defaults():
        k = registry.kinds.for_api_version(want["apiVersion"], want["kind"])
        assert k is not None, want["kind"]
        name = want["metadata"]["name"]
        try:
            have: Obj | None = registry.get(k, "", name)
        except ApiError as e:
            if e.code != 404:
                raise
            have = None
        new = bootstrap.reconcile_default(want, have)
        if new is None:
            continue
        if have is None:
            registry.create(k, "", new)
        else:
            registry.update(k, "", name, new)


class PolicyInformer:
    def __init__(self, client: Client, gate: Gate) -> None:
        self.client = client
        self.gate = gate
        self._tasks: list[asyncio.Task[None]] = []

    def _fold(self, ref: Ref, event: str, obj: Obj) -> None:
        if ref == SERVICE_ACCOUNT:
            self.gate.apply_service_account(event, obj)
        else:
            self.gate.policy.apply(ref.kind, event, obj)

    def _replace(self, ref: Ref, items: list[Obj]) -> None:
        if ref == SERVICE_ACCOUNT:
            self.gate.replace_service_accounts(items)
        else:
            self.gate.policy.replace(ref.kind, items)

    async def start(self) -> None:
        """List every kind (the policy is complete when this returns), then watch each."""
        for ref in WATCHED:
            items, rv = await self.client.list_with_version(ref)
            self._replace(ref, items)
            self._tasks.append(asyncio.create_task(self._watch(ref, rv)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _watch(self, ref: Ref, rv: str) -> None:
        delay = RELIST_MIN
        while True:
            try:
                async for ev in self.client.watch(ref, resource_version=rv if rv != "0" else ""):
                    delay = RELIST_MIN
                    if ev.type in ("ADDED", "MODIFIED", "DELETED"):
                        self._fold(ref, ev.type, ev.object)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                log.debug("rbac: watch %s restarts: %s", ref.kind, e.message)
            except Exception:
                log.exception("rbac: watch %s failed", ref.kind)
            await asyncio.sleep(delay)
            delay = relist_delay(delay)
            try:
                items, rv = await self.client.list_with_version(ref)
                self._replace(ref, items)
            except ApiError as e:
                log.debug("rbac: re-list %s failed: %s", ref.kind, e.message)


class DefaultServiceAccountReconciler:
    """Every active namespace has a ServiceAccount named `default`."""
    name = "serviceaccounts"
    primary = NAMESPACE

    def __init__(self, client: Client) -> None:
        self.client = client

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        def mapper(o: Obj) -> list[tuple[str, str]]:
            meta = o["metadata"]
            return [("", meta.get("namespace", ""))] if meta.get("name") == "default" else []
        return [(SERVICE_ACCOUNT, mapper)]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            ns = await self.client.get(NAMESPACE, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if ns["metadata"].get("deletionTimestamp"):
            return None
        try:
            await self.client.get(SERVICE_ACCOUNT, "default", name)
            return None
        except ApiError as e:
            if e.code != 404:
                raise
        try:
            await self.client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                                      "metadata": {"name": "default", "namespace": name}})
        except ApiError as e:
            # 409: made meanwhile; 403/404: the namespace is going away.
            if e.code not in (403, 404, 409):
                raise
        return None


class AggregationReconciler:
    """ClusterRoles with an aggregationRule carry the rules of the roles they select."""
    name = "clusterrole-aggregation"
    primary = CLUSTER_ROLE

    def __init__(self, client: Client, policy: rbac.Policy) -> None:
        self.client = client
        self.policy = policy

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        # Any ClusterRole's change may change what an aggregating role selects: map it to
        # every aggregating role the policy knows (and to itself, if it aggregates).
        def mapper(o: Obj) -> list[tuple[str, str]]:
            return [("", n) for n in self.policy.aggregating()]
        return [(CLUSTER_ROLE, mapper)]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        roles: dict[str, Any] = {o["metadata"]["name"]: o for o in await self.client.list(CLUSTER_ROLE)}
        role = roles.get(name)
        if role is None or not role.get("aggregationRule"):
            return None
        want = rbac.aggregated_rules(roles).get(name, [])
        if (role.get("rules") or []) != want:
            role["rules"] = want
            await self.client.update(role)
        return None


def service_account_getter(registry: Registry) -> Callable[[str, str], Obj | None]:
    """The store's ServiceAccount (or None): the gate's word for a token the watch has not
    shown yet."""
    k = registry.kinds.for_api_version("v1", "ServiceAccount")
    assert k is not None

    def get(namespace: str, name: str) -> Obj | None:
        try:
            return registry.get(k, namespace, name)
        except ApiError:
            return None
    return get
