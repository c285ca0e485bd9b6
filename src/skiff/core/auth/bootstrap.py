"""The default cluster roles and bindings, as kube-apiserver bootstraps them (bootstrappolicy).

cluster-admin (everything, bound to the group system:masters), the user-facing
admin/edit/view that aggregate the system:aggregate-to-* roles by the
rbac.authorization.k8s.io/aggregate-to-* labels, system:discovery and
system:public-info-viewer (the discovery and health paths) and
system:basic-user (SelfSubjectAccessReview, SelfSubjectRulesReview,
SelfSubjectReview) bound to every authenticated user. The aggregate-to-*
rules are upstream's v1.32 lists verbatim (they name resources skiff does not
serve yet, such as replicasets and jobs: harmless, and right once served),
plus the aggregated roles the Knative Serving and Eventing releases install,
since skiff serves their kinds natively. Pure data and a pure
reconcile_default(): what to write, given what is stored. Neighbours:
controllers.py (writes them at start), rbac.aggregated_rules (fills in admin,
edit and view).
"""

from __future__ import annotations

import copy

from skiff.core.auth.rbac import GROUP, aggregated_rules
from skiff.core.client import Obj

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = READ + WRITE

_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"


def _rule(verbs: list[str], groups: list[str], resources: list[str]) -> Obj:
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


def _urls(verbs: list[str], urls: list[str]) -> Obj:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


def _role(name: str, rules: list[Obj], labels: dict[str, str] | None = None,
          aggregate_from: str = "") -> Obj:
    meta: Obj = {"name": name, "labels": {**_LABELS, **(labels or {})},
                 "annotations": dict(_AUTOUPDATE)}
    role: Obj = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole", "metadata": meta,
                 "rules": rules}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]}
    return role


def _binding(name: str, role: str, groups: list[str]) -> Obj:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": dict(_LABELS), "annotations": dict(_AUTOUPDATE)},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups]}


_HEALTH = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

_KNATIVE_SERVING = ["serving.knative.dev", "networking.internal.knative.dev",
                    "autoscaling.internal.knative.dev", "caching.internal.knative.dev"]
_KNATIVE_EVENTING = ["eventing.knative.dev", "messaging.knative.dev", "sources.knative.dev",
                     "flows.knative.dev", "bindings.knative.dev"]


def cluster_roles() -> list[Obj]:
    """Every default ClusterRole; admin, edit and view with empty rules (aggregated later)."""
    core, apps = "", "apps"
    return [
        _role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _urls(["*"], ["*"])]),
        _role("system:discovery", [_urls(["get"], ["/api", "/api/*", "/apis", "/apis/*",
                                                   "/healthz", "/livez", "/openapi", "/openapi/*",
                                                   "/readyz", "/version", "/version/"])]),
        _role("system:public-info-viewer", [_urls(["get"], _HEALTH)]),
        _role("system:basic-user", [
            _rule(["create"], ["authorization.k8s.io"],
                  ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
        ]),
        _role("admin", [], aggregate_from=TO_ADMIN),
        _role("edit", [], labels={TO_ADMIN: "true"}, aggregate_from=TO_EDIT),
        _role("view", [], labels={TO_EDIT: "true"}, aggregate_from=TO_VIEW),
        _role("system:aggregate-to-admin", [
            _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
            _rule(READ_WRITE, [GROUP], ["roles", "rolebindings"]),
        ], labels={TO_ADMIN: "true"}),
        _role("system:aggregate-to-edit", [
            _rule(READ, [core], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward",
                                 "secrets", "services/proxy"]),
            _rule(["impersonate"], [core], ["serviceaccounts"]),
            _rule(WRITE, [core], ["pods", "pods/attach", "pods/proxy", "pods/exec",
                                  "pods/portforward"]),
            _rule(["create"], [core], ["pods/eviction"]),
            _rule(WRITE, [core], ["replicationcontrollers", "replicationcontrollers/scale",
                                  "serviceaccounts", "services", "services/proxy",
                                  "persistentvolumeclaims", "configmaps", "secrets", "events"]),
            _rule(["create"], [core], ["serviceaccounts/token"]),
            _rule(WRITE, [apps], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                                  "deployments/scale", "deployments/rollback", "replicasets",
                                  "replicasets/scale"]),
            _rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
            _rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
            _rule(WRITE, ["extensions"], ["daemonsets", "deployments", "deployments/scale",
                                          "deployments/rollback", "ingresses", "replicasets",
                                          "replicasets/scale", "replicationcontrollers/scale",
                                          "networkpolicies"]),
            _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
            _rule(WRITE, ["networking.k8s.io"], ["networkpolicies", "ingresses"]),
            _rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
        ], labels={TO_EDIT: "true"}),
        _role("system:aggregate-to-view", [
            _rule(READ, [core], ["pods", "replicationcontrollers", "replicationcontrollers/scale",
                                 "serviceaccounts", "services", "services/status", "endpoints",
                                 "persistentvolumeclaims", "persistentvolumeclaims/status",
                                 "configmaps"]),
            _rule(READ, [core], ["limitranges", "resourcequotas", "bindings", "events",
                                 "pods/status", "resourcequotas/status", "namespaces/status",
                                 "replicationcontrollers/status", "pods/log"]),
            _rule(READ, [core], ["namespaces"]),
            _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
            _rule(READ, [apps], ["controllerrevisions", "statefulsets", "statefulsets/status",
                                 "statefulsets/scale", "daemonsets", "daemonsets/status",
                                 "deployments", "deployments/status", "deployments/scale",
                                 "replicasets", "replicasets/status", "replicasets/scale"]),
            _rule(READ, ["autoscaling"], ["horizontalpodautoscalers",
                                          "horizontalpodautoscalers/status"]),
            _rule(READ, ["batch"], ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]),
            _rule(READ, ["extensions"], ["daemonsets", "daemonsets/status", "deployments",
                                         "deployments/scale", "deployments/status", "ingresses",
                                         "ingresses/status", "replicasets", "replicasets/scale",
                                         "replicasets/status", "replicationcontrollers/scale",
                                         "networkpolicies"]),
            _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
            _rule(READ, ["networking.k8s.io"], ["networkpolicies", "ingresses", "ingresses/status"]),
        ], labels={TO_VIEW: "true"}),
        # What Knative's releases install (config/core/roles/clusterrole-namespaced.yaml).
        _role("knative-serving-namespaced-admin", [_rule(["*"], _KNATIVE_SERVING, ["*"])],
              labels={TO_ADMIN: "true", "app.kubernetes.io/name": "knative-serving"}),
        _role("knative-serving-namespaced-edit",
              [_rule(["create", "update", "patch", "delete"], _KNATIVE_SERVING, ["*"])],
              labels={TO_EDIT: "true", "app.kubernetes.io/name": "knative-serving"}),
        _role("knative-serving-namespaced-view", [_rule(READ, _KNATIVE_SERVING, ["*"])],
              labels={TO_VIEW: "true", "app.kubernetes.io/name": "knative-serving"}),
        _role("knative-eventing-namespaced-admin", [_rule(["*"], _KNATIVE_EVENTING, ["*"])],
              labels={TO_ADMIN: "true", "app.kubernetes.io/name": "knative-eventing"}),
        _role("knative-eventing-namespaced-edit",
              [_rule(["create", "update", "patch", "delete"], _KNATIVE_EVENTING, ["*"])],
              labels={TO_EDIT: "true", "app.kubernetes.io/name": "knative-eventing"}),
        _role("knative-eventing-namespaced-view", [_rule(READ, _KNATIVE_EVENTING, ["*"])],
              labels={TO_VIEW: "true", "app.kubernetes.io/name": "knative-eventing"}),
    ]


def cluster_role_bindings() -> list[Obj]:
    return [
        _binding("cluster-admin", "cluster-admin", ["system:masters"]),
        _binding("system:discovery", "system:discovery", ["system:authenticated"]),
        _binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 ["system:authenticated", "system:unauthenticated"]),
    ]


def defaults() -> list[Obj]:
    """The ClusterRoles (admin, edit and view already aggregated) and ClusterRoleBindings."""
    roles = cluster_roles()
    agg = aggregated_rules({r["metadata"]["name"]: r for r in roles})
    for r in roles:
        if r["metadata"]["name"] in agg:
            r["rules"] = agg[r["metadata"]["name"]]
    return [*roles, *cluster_role_bindings()]


def reconcile_default(want: Obj, have: Obj | None) -> Obj | None:
    """The object to write for a default (None: nothing). Missing: create it. Stored with
    autoupdate "true": add what is missing (labels, annotations, rules, subjects), never take
    away what a user added, as upstream's reconciliation of bootstrap roles does."""
    if have is None:
        return copy.deepcopy(want)
    meta = have.get("metadata") or {}
    if (meta.get("annotations") or {}).get("rbac.authorization.kubernetes.io/autoupdate") != "true":
        return None
    new = copy.deepcopy(have)
    nm = new.setdefault("metadata", {})
    for f in ("labels", "annotations"):
        merged = {**(want["metadata"].get(f) or {}), **(nm.get(f) or {})}
        if merged != (nm.get(f) or {}):
            nm[f] = merged
    for f in ("rules", "subjects"):
        if f in want:
            cur = list(new.get(f) or [])
            for item in want[f]:
                if item not in cur:
                    cur.append(item)
            new[f] = cur
    if "aggregationRule" in want and new.get("aggregationRule") != want["aggregationRule"]:
        new["aggregationRule"] = want["aggregationRule"]
    return new if new != have else None
