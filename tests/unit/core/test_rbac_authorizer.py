"""The RBAC authorizer as tables: policy + request attributes -> allowed, with upstream's reasons
and forbidden messages; the subject index kept from watch events; aggregation; request info."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core.auth import bootstrap, rbac
from skiff.core.auth.rbac import Attributes, Policy, UserInfo, authorize, compile_rule, rule_allows
from skiff.core.auth.requestinfo import request_attributes

G = rbac.GROUP


def role(name: str, rules: list[dict[str, Any]], ns: str = "", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta, "rules": rules, **extra}


def binding(name: str, role_kind: str, role_name: str, subjects: list[dict[str, Any]],
            ns: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta, "roleRef": {"apiGroup": G, "kind": role_kind, "name": role_name},
            "subjects": subjects}


def sa(name: str, ns: str = "") -> dict[str, Any]:
    s = {"kind": "ServiceAccount", "name": name}
    if ns:
        s["namespace"] = ns
    return s


def sa_user(ns: str, name: str) -> UserInfo:
    return UserInfo(f"system:serviceaccount:{ns}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}",
                     "system:authenticated"))


ALICE = UserInfo("alice", ("devs", "system:authenticated"))
APP_A = sa_user("tenant-a", "app")
APP_B = sa_user("tenant-b", "app")


def world() -> Policy:
    p = Policy()
    for o in bootstrap.defaults():
        p.apply(o["kind"], "ADDED", o)
    p.apply("Role", "ADDED", role("cm-reader", [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"]}],
        ns="tenant-a"))
    p.apply("RoleBinding", "ADDED", binding("app-edit", "ClusterRole", "edit", [sa("app")],
                                            ns="tenant-a"))
    p.apply("RoleBinding", "ADDED", binding("app-edit", "ClusterRole", "edit",
                                            [sa("app", "tenant-b")], ns="tenant-b"))
    p.apply("RoleBinding", "ADDED", binding("devs-cm", "Role", "cm-reader",
                                            [{"kind": "Group", "name": "devs", "apiGroup": G}],
                                            ns="tenant-a"))
    p.apply("RoleBinding", "ADDED", binding("dangling", "Role", "missing",
                                            [{"kind": "User", "name": "alice", "apiGroup": G}],
                                            ns="tenant-c"))
    return p


def res(user: UserInfo, verb: str, resource: str, ns: str = "", name: str = "", group: str = "",
        sub: str = "") -> Attributes:
    return Attributes(user, verb, True, namespace=ns, api_group=group, resource=resource,
                      subresource=sub, name=name)


def path(user: UserInfo, p: str, verb: str = "get") -> Attributes:
    return Attributes(user, verb, resource_request=False, path=p)


EDIT_A = ('RBAC: allowed by RoleBinding "app-edit/tenant-a" of ClusterRole "edit" to '
          'ServiceAccount "app/tenant-a"')

DECISIONS = [
    # (what, attributes, allowed, reason)
    ("own secrets: list", res(APP_A, "list", "secrets", "tenant-a"), True, EDIT_A),
    ("own secret: get", res(APP_A, "get", "secrets", "tenant-a", "s1"), True, EDIT_A),
    ("other tenant's secrets", res(APP_A, "list", "secrets", "tenant-b"), False, ""),
    ("other tenant's secret by name", res(APP_A, "get", "secrets", "tenant-b", "s1"), False, ""),
    ("the other tenant in its own", res(APP_B, "get", "secrets", "tenant-b", "s1"), True,
     'RBAC: allowed by RoleBinding "app-edit/tenant-b" of ClusterRole "edit" to '
     'ServiceAccount "app/tenant-b"'),
    ("cluster scope is not the namespace's", res(APP_A, "list", "secrets"), False, ""),
    ("edit cannot touch rbac", res(APP_A, "create", "rolebindings", "tenant-a", group=G), False, ""),
    ("edit: pods/exec create", res(APP_A, "create", "pods", "tenant-a", "p", sub="exec"), True,
     EDIT_A),
    ("edit: pods/log via view", res(APP_A, "get", "pods", "tenant-a", "p", sub="log"), True, EDIT_A),
    ("edit: no pods/status write", res(APP_A, "update", "pods", "tenant-a", "p", sub="status"),
     False, ""),
    ("edit: tokens of its namespace's SAs",
     res(APP_A, "create", "serviceaccounts", "tenant-a", "app", sub="token"), True, EDIT_A),
    ("edit: knative services", res(APP_A, "create", "services", "tenant-a",
                                   group="serving.knative.dev"), True, EDIT_A),
    ("edit: not nodes", res(APP_A, "list", "nodes"), False, ""),
    ("resourceNames: the named one", res(ALICE, "get", "configmaps", "tenant-a", "one"), True,
     'RBAC: allowed by RoleBinding "devs-cm/tenant-a" of Role "cm-reader" to Group "devs"'),
    ("resourceNames: not another", res(ALICE, "get", "configmaps", "tenant-a", "two"), False, ""),
    ("resourceNames: not a list", res(ALICE, "list", "configmaps", "tenant-a"), False, ""),
    ("a missing role is the reason", res(ALICE, "get", "pods", "tenant-c", "p"), False,
     'RBAC: role.rbac.authorization.k8s.io "missing" not found'),
    ("discovery for any authenticated", path(APP_A, "/apis/apps/v1"), True,
     'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" '
     'to Group "system:authenticated"'),
    ("openapi", path(APP_A, "/openapi/v3/api/v1"), True,
     'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" '
     'to Group "system:authenticated"'),
    ("version, unauthenticated", path(UserInfo("system:anonymous", ("system:unauthenticated",)),
                                      "/version"), True,
     'RBAC: allowed by ClusterRoleBinding "system:public-info-viewer" of ClusterRole '
     '"system:public-info-viewer" to Group "system:unauthenticated"'),
    ("discovery is not for the unauthenticated",
     path(UserInfo("system:anonymous", ("system:unauthenticated",)), "/apis"), False, ""),
    ("a path nobody grants", path(APP_A, "/metrics"), False, ""),
    ("post on a discovery path", path(APP_A, "/api", "post"), False, ""),
    ("self access review", res(APP_A, "create", "selfsubjectaccessreviews",
                               group="authorization.k8s.io"), True,
     'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole "system:basic-user" '
     'to Group "system:authenticated"'),
    ("masters through the binding", res(UserInfo("root", ("system:masters",)), "delete", "nodes",
                                        name="n"), True,
     'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to '
     'Group "system:masters"'),
    ("masters, any path", path(UserInfo("root", ("system:masters",)), "/metrics"), True,
     'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to '
     'Group "system:masters"'),
    ("impersonate the namespace's SAs", res(APP_A, "impersonate", "serviceaccounts", "tenant-a",
                                            "other"), True, EDIT_A),
    ("not users", res(APP_A, "impersonate", "users", name="alice"), False, ""),
]


@pytest.mark.parametrize(("what", "a", "allowed", "reason"), DECISIONS,
                         ids=[d[0] for d in DECISIONS])
def test_decisions(what: str, a: Attributes, allowed: bool, reason: str) -> None:
    d = authorize(world(), a)
    assert (d.allowed, d.reason) == (allowed, reason)


RULES = [
    # (rule, attributes, allowed)
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, res(ALICE, "get", "pods", sub="log"),
     True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
     res(ALICE, "get", "pods", sub="log"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]},
     res(ALICE, "get", "pods", sub="log"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}, res(ALICE, "get", "pods"), False),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]},
     res(ALICE, "get", "deployments"), False),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]},
     res(ALICE, "get", "deployments", group="apps"), True),
    ({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]},
     res(ALICE, "watch", "secrets"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz/*"]}, path(ALICE, "/healthz/etcd"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz/*"]}, path(ALICE, "/healthz"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, path(ALICE, "/anything"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, res(ALICE, "get", "pods"), False),
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, path(ALICE, "/version"), False),
]


@pytest.mark.parametrize(("rule", "a", "allowed"), RULES)
def test_rule_allows(rule: dict[str, Any], a: Attributes, allowed: bool) -> None:
    assert rule_allows(a, compile_rule(rule)) is allowed


FORBIDDEN = [
    (res(APP_A, "get", "secrets", "tenant-b", "s1"), "",
     'secrets "s1" is forbidden: User "system:serviceaccount:tenant-a:app" cannot get resource '
     '"secrets" in API group "" in the namespace "tenant-b"'),
    (res(APP_A, "list", "secrets", "tenant-b"), "",
     'secrets is forbidden: User "system:serviceaccount:tenant-a:app" cannot list resource '
     '"secrets" in API group "" in the namespace "tenant-b"'),
    (res(APP_A, "list", "nodes"), "",
     'nodes is forbidden: User "system:serviceaccount:tenant-a:app" cannot list resource "nodes" '
     'in API group "" at the cluster scope'),
    (res(APP_A, "create", "clusterrolebindings", group=G), "",
     'clusterrolebindings.rbac.authorization.k8s.io is forbidden: User '
     '"system:serviceaccount:tenant-a:app" cannot create resource "clusterrolebindings" in API '
     'group "rbac.authorization.k8s.io" at the cluster scope'),
    (res(APP_A, "get", "pods", "tenant-b", "p", sub="log"), "",
     'pods "p" is forbidden: User "system:serviceaccount:tenant-a:app" cannot get resource '
     '"pods/log" in API group "" in the namespace "tenant-b"'),
    (path(ALICE, "/metrics"), "", 'forbidden: User "alice" cannot get path "/metrics"'),
    (res(ALICE, "get", "pods", "tenant-c", "p"),
     'RBAC: role.rbac.authorization.k8s.io "missing" not found',
     'pods "p" is forbidden: User "alice" cannot get resource "pods" in API group "" in the '
     'namespace "tenant-c": RBAC: role.rbac.authorization.k8s.io "missing" not found'),
]


@pytest.mark.parametrize(("a", "reason", "message"), FORBIDDEN)
def test_forbidden_message(a: Attributes, reason: str, message: str) -> None:
    e = rbac.forbidden(a, reason)
    assert (e.code, e.reason, e.message) == (403, "Forbidden", message)
    details = e.status().get("details", {})
    assert details.get("kind", "") == (a.resource if a.resource_request else "")
    assert details.get("name", "") == a.name


def test_index_follows_events_and_relists() -> None:
    p = world()
    a = res(APP_A, "list", "secrets", "tenant-a")
    assert authorize(p, a).allowed
    # The binding loses its subject: denied; gets it back: allowed; is deleted: denied.
    p.apply("RoleBinding", "MODIFIED", binding("app-edit", "ClusterRole", "edit",
                                               [sa("other")], ns="tenant-a"))
    assert not authorize(p, a).allowed
    p.apply("RoleBinding", "MODIFIED", binding("app-edit", "ClusterRole", "edit", [sa("app")],
                                               ns="tenant-a"))
    assert authorize(p, a).allowed
    p.apply("RoleBinding", "DELETED", binding("app-edit", "ClusterRole", "edit", [], ns="tenant-a"))
    assert not authorize(p, a).allowed
    assert ("tenant-a", ("User", APP_A.name)) not in p._by_subject
    # A re-list without the cluster role drops it: the binding's role is now missing.
    p.apply("RoleBinding", "ADDED", binding("app-edit", "ClusterRole", "edit", [sa("app")],
                                            ns="tenant-a"))
    kept = [o for o in bootstrap.defaults() if o["kind"] == "ClusterRole"
            and o["metadata"]["name"] != "edit"]
    p.replace("ClusterRole", kept)
    d = authorize(p, a)
    assert (d.allowed, d.reason) == (False, 'RBAC: clusterrole.rbac.authorization.k8s.io "edit" '
                                            'not found')


def test_decision_reads_only_the_requesters_bindings() -> None:
    p = world()
    for i in range(2000):
        p.apply("RoleBinding", "ADDED", binding(f"b{i}", "ClusterRole", "edit", [sa(f"sa{i}")],
                                                ns="tenant-a"))
    assert [b.name for b, _ in p.bindings_for(APP_A, "tenant-a")] == ["app-edit"]
    assert authorize(p, res(APP_A, "get", "secrets", "tenant-a", "s")).allowed


def test_service_account_subject_without_namespace_in_a_cluster_binding_matches_nobody() -> None:
    p = world()
    p.apply("ClusterRoleBinding", "ADDED", binding("x", "ClusterRole", "cluster-admin", [sa("app")]))
    assert not authorize(p, res(APP_A, "list", "nodes")).allowed
    p.apply("ClusterRoleBinding", "MODIFIED", binding("x", "ClusterRole", "cluster-admin",
                                                      [sa("app", "tenant-a")]))
    assert authorize(p, res(APP_A, "list", "nodes")).allowed


def test_rules_for_lists_cluster_and_namespace_rules() -> None:
    rules, errors = rbac.rules_for(world(), ALICE, "tenant-a")
    resources = [r for r in rbac.iter_resource_rules(rules)]
    assert {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": ["one"]} in resources
    assert {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]} in resources
    assert {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version",
                                                  "/version/"]} in \
        list(rbac.iter_non_resource_rules(rules))
    assert errors == []


# --- aggregation -----------------------------------------------------------------------------

def test_aggregation_follows_labels_to_a_fixpoint() -> None:
    roles = {r["metadata"]["name"]: r for r in bootstrap.cluster_roles()}
    extra = {"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}
    roles["widgets-view"] = {"metadata": {"name": "widgets-view", "labels": {bootstrap.TO_VIEW: "true"}},
                             "rules": [extra]}
    agg = rbac.aggregated_rules(roles)
    assert set(agg) == {"admin", "edit", "view"}
    # view -> edit -> admin: the rule reaches all three, once.
    for name in ("admin", "edit", "view"):
        assert agg[name].count(extra) == 1, name
    secrets_read = {"verbs": bootstrap.READ, "apiGroups": [""],
                    "resources": ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward",
                                  "secrets", "services/proxy"]}
    assert secrets_read in agg["edit"] and secrets_read in agg["admin"]
    assert secrets_read not in agg["view"]
    rbac_write = {"verbs": bootstrap.READ_WRITE, "apiGroups": [G], "resources": ["roles", "rolebindings"]}
    assert rbac_write in agg["admin"] and rbac_write not in agg["edit"]


def test_reconcile_default_tops_up_and_respects_autoupdate_false() -> None:
    want = next(o for o in bootstrap.defaults() if o["metadata"]["name"] == "system:discovery")
    assert bootstrap.reconcile_default(want, None) == want
    assert bootstrap.reconcile_default(want, want) is None
    mine = {**want, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/mine"]}]}
    merged = bootstrap.reconcile_default(want, mine)
    assert merged is not None and merged["rules"][0] == {"verbs": ["get"], "nonResourceURLs": ["/mine"]}
    assert merged["rules"][1:] == want["rules"]
    frozen = {**mine, "metadata": {**want["metadata"], "annotations": {
        "rbac.authorization.kubernetes.io/autoupdate": "false"}}}
    assert bootstrap.reconcile_default(want, frozen) is None


# --- request info -----------------------------------------------------------------------------

U = UserInfo("u")

REQUESTS = [
    # (method, path, query, websocket) -> (verb, resource request, ns, group, resource, sub, name)
    ("GET", "/api/v1/namespaces/a/secrets", {}, False, ("list", True, "a", "", "secrets", "", "")),
    ("GET", "/api/v1/namespaces/a/secrets", {"watch": "true"}, False,
     ("watch", True, "a", "", "secrets", "", "")),
    ("GET", "/api/v1/namespaces/a/secrets", {"watch": "false"}, False,
     ("list", True, "a", "", "secrets", "", "")),
    ("GET", "/api/v1/namespaces/a/secrets", {"fieldSelector": "metadata.name=s1"}, False,
     ("list", True, "a", "", "secrets", "", "s1")),
    ("GET", "/api/v1/namespaces/a/secrets/s1", {}, False, ("get", True, "a", "", "secrets", "", "s1")),
    ("GET", "/api/v1/secrets", {}, False, ("list", True, "", "", "secrets", "", "")),
    ("POST", "/apis/apps/v1/namespaces/a/deployments", {}, False,
     ("create", True, "a", "apps", "deployments", "", "")),
    ("PUT", "/apis/apps/v1/namespaces/a/deployments/d/scale", {}, False,
     ("update", True, "a", "apps", "deployments", "scale", "d")),
    ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d", {}, False,
     ("patch", True, "a", "apps", "deployments", "", "d")),
    ("DELETE", "/api/v1/namespaces/a/pods/p", {}, False, ("delete", True, "a", "", "pods", "", "p")),
    ("DELETE", "/api/v1/namespaces/a/pods", {}, False,
     ("deletecollection", True, "a", "", "pods", "", "")),
    ("GET", "/api/v1/namespaces/a/pods/p/log", {}, False, ("get", True, "a", "", "pods", "log", "p")),
    ("GET", "/api/v1/namespaces/a/pods/p/exec", {}, True, ("create", True, "a", "", "pods", "exec", "p")),
    ("POST", "/api/v1/namespaces/a/serviceaccounts/app/token", {}, False,
     ("create", True, "a", "", "serviceaccounts", "token", "app")),
    # namespaces: the namespace is the name, status and finalize are its subresources
    ("GET", "/api/v1/namespaces/a", {}, False, ("get", True, "a", "", "namespaces", "", "a")),
    ("PUT", "/api/v1/namespaces/a/finalize", {}, False,
     ("update", True, "a", "", "namespaces", "finalize", "a")),
    ("GET", "/api/v1/namespaces", {}, False, ("list", True, "", "", "namespaces", "", "")),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view", {}, False,
     ("get", True, "", G, "clusterroles", "", "view")),
    # non-resource
    ("GET", "/api", {}, False, ("get", False, "", "", "", "", "")),
    ("GET", "/api/v1", {}, False, ("get", False, "", "", "", "", "")),
    ("GET", "/apis/apps/v1", {}, False, ("get", False, "", "", "", "", "")),
    ("GET", "/openapi/v3/apis/apps/v1", {}, False, ("get", False, "", "", "", "", "")),
    ("POST", "/version", {}, False, ("post", False, "", "", "", "", "")),
]


@pytest.mark.parametrize(("method", "p", "query", "ws", "want"), REQUESTS,
                         ids=[f"{r[0]} {r[1]}" for r in REQUESTS])
def test_request_attributes(method: str, p: str, query: dict[str, str], ws: bool,
                            want: tuple[Any, ...]) -> None:
    a = request_attributes(U, method, p, query, ws)
    assert (a.verb, a.resource_request, a.namespace, a.api_group, a.resource, a.subresource,
            a.name) == want
    assert a.path == p


# --- escalation prevention: Covers -------------------------------------------------------------

def _r(**kw: Any) -> dict[str, Any]:
    return kw


@pytest.mark.parametrize("owner, requested, missing", [
    ([_r(verbs=["*"], apiGroups=["*"], resources=["*"])],
     [_r(verbs=["get", "delete"], apiGroups=["apps"], resources=["deployments"])], []),
    ([_r(verbs=["get", "list"], apiGroups=[""], resources=["pods"])],
     [_r(verbs=["get"], apiGroups=[""], resources=["pods"])], []),
    ([_r(verbs=["get"], apiGroups=[""], resources=["pods"])],
     [_r(verbs=["get", "delete"], apiGroups=[""], resources=["pods"])],
     ['{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}']),
    ([_r(verbs=["get"], apiGroups=[""], resources=["pods"])],      # "*" is covered only by "*"
     [_r(verbs=["*"], apiGroups=[""], resources=["pods"])],
     ['{APIGroups:[""], Resources:["pods"], Verbs:["*"]}']),
    ([_r(verbs=["get"], apiGroups=[""], resources=["*/log"])],
     [_r(verbs=["get"], apiGroups=[""], resources=["pods/log"])], []),
    ([_r(verbs=["get"], apiGroups=[""], resources=["secrets"], resourceNames=["a"])],
     [_r(verbs=["get"], apiGroups=[""], resources=["secrets"])],   # all names > one name
     ['{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}']),
    ([_r(verbs=["get"], apiGroups=[""], resources=["secrets"])],
     [_r(verbs=["get"], apiGroups=[""], resources=["secrets"], resourceNames=["a", "b"])], []),
    ([_r(verbs=["get"], nonResourceURLs=["/healthz/*"])],
     [_r(verbs=["get"], nonResourceURLs=["/healthz/ping", "/metrics"])],
     ['{NonResourceURLs:["/metrics"], Verbs:["get"]}']),
])
def test_covers(owner: list[dict[str, Any]], requested: list[dict[str, Any]],
                missing: list[str]) -> None:
    from skiff.core.auth.rbac import _go_rule, compile_rules, uncovered
    got = uncovered(compile_rules(owner), compile_rules(requested))
    assert got is not None and [_go_rule(r) for r in got] == missing


def test_covers_refuses_a_huge_breakdown() -> None:
    from skiff.core.auth.rbac import MAX_BREAKDOWN, compile_rules, uncovered
    many = [_r(verbs=[f"v{i}" for i in range(200)], apiGroups=[""],
               resources=[f"r{i}" for i in range(MAX_BREAKDOWN // 100)])]
    assert uncovered(compile_rules([_r(verbs=["*"], apiGroups=["*"], resources=["*"])]),
                     compile_rules(many)) is None
