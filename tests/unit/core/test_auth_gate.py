"""ServiceAccount tokens, the gate (authenticate, impersonate, authorize), the reviews and
TokenRequest, and rbac's validation: no sockets, a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from skiff.core.auth import bootstrap, kinds, reviews, tokens
from skiff.core.auth.gate import ADMIN, Gate, service_account_user
from skiff.core.auth.rbac import GROUP, UserInfo
from skiff.core.client import ApiError

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = tokens.generate_key()
SIGNER = tokens.Signer(KEY)
UID = "0b1e6f3c-0000-4000-8000-000000000001"


def headers(**h: str) -> CIMultiDictProxy[str]:
    d: CIMultiDict[str] = CIMultiDict()
    for k, v in h.items():
        for one in v.split("|"):
            d.add(k.replace("_", "-"), one)
    return CIMultiDictProxy(d)


class World:
    def __init__(self) -> None:
        self.now = NOW
        self.sas: dict[tuple[str, str], dict[str, Any]] = {}
        self.gate = Gate("admin-token", SIGNER, lambda ns, n: self.sas.get((ns, n)), lambda: self.now)
        for o in bootstrap.defaults():
            self.gate.policy.apply(o["kind"], "ADDED", o)
        self.add_sa("tenant-a", "app", UID)
        self.gate.policy.apply("RoleBinding", "ADDED", {
            "metadata": {"name": "app-edit", "namespace": "tenant-a"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "tenant-a"}]})

    def add_sa(self, ns: str, name: str, uid: str) -> None:
        sa = {"metadata": {"namespace": ns, "name": name, "uid": uid}}
        self.sas[(ns, name)] = sa
        self.gate.apply_service_account("ADDED", sa)

    def delete_sa(self, ns: str, name: str) -> None:
        sa = self.sas.pop((ns, name))
        self.gate.apply_service_account("DELETED", sa)

    def token(self, seconds: int = 3600, ns: str = "tenant-a", name: str = "app", uid: str = UID,
              at: datetime | None = None, **claims: Any) -> str:
        c = tokens.service_account_claims(ns, name, uid, at or self.now, seconds)
        c.update(claims)
        return SIGNER.sign(c)


APP = "system:serviceaccount:tenant-a:app"


# --- tokens -------------------------------------------------------------------------------

def test_token_round_trip_and_claims() -> None:
    w = World()
    t = w.token(1200)
    claims = SIGNER.verify(t, NOW)
    assert isinstance(claims, dict)
    assert claims["sub"] == APP and claims["aud"] == [tokens.AUDIENCE]
    assert claims["exp"] - claims["iat"] == 1200
    assert claims["kubernetes.io"] == {"namespace": "tenant-a",
                                       "serviceaccount": {"name": "app", "uid": UID}}
    assert tokens.service_account_of(claims) == tokens.ServiceAccountRef("tenant-a", "app", UID)


@pytest.mark.parametrize(("what", "make", "now", "error"), [
    ("expired", lambda w: w.token(600), NOW + timedelta(seconds=661), "token has expired"),
    ("within the leeway", lambda w: w.token(600), NOW + timedelta(seconds=659), None),
    ("not yet valid", lambda w: w.token(600, at=NOW + timedelta(hours=1)), NOW, "token is not valid yet"),
    ("another audience", lambda w: w.token(aud=["vault"]), NOW, "token audiences are invalid"),
    ("another issuer", lambda w: w.token(iss="https://elsewhere"), NOW, "token issuer is not skiff's"),
    ("another key", lambda w: tokens.Signer(tokens.generate_key()).sign(
        tokens.service_account_claims("tenant-a", "app", UID, NOW, 600)), NOW, "invalid signature"),
    ("tampered", lambda w: w.token().replace(".", ".e", 1), NOW, "invalid signature"),
    ("garbage", lambda w: "a.b!.c", NOW, "malformed token"),
    ("not a JWT", lambda w: "abc", NOW, "not a JWT"),
])
def test_token_rejections(what: str, make: Any, now: datetime, error: str | None) -> None:
    got = SIGNER.verify(make(World()), now)
    assert (got if isinstance(got, str) else None) == error


# --- authentication -------------------------------------------------------------------------

def test_admin_and_service_account_users() -> None:
    w = World()
    assert w.gate.authenticate("Bearer admin-token") == ADMIN
    u = w.gate.authenticate("Bearer " + w.token())
    assert u == UserInfo(APP, ("system:serviceaccounts", "system:serviceaccounts:tenant-a",
                               "system:authenticated"), UID)
    assert w.gate.authenticate("Bearer nope") is None
    assert w.gate.authenticate("Basic admin-token") is None
    assert w.gate.authenticate("") is None


def test_token_dies_with_its_service_account() -> None:
    w = World()
    t = w.token()
    w.delete_sa("tenant-a", "app")
    assert w.gate.authenticate_token(t) is None
    w.add_sa("tenant-a", "app", "another-uid")      # same name, a new object
    assert w.gate.authenticate_token(t) is None


def test_store_is_asked_when_the_watch_has_not_shown_the_service_account() -> None:
    w = World()
    w.sas[("tenant-a", "late")] = {"metadata": {"namespace": "tenant-a", "name": "late", "uid": "u2"}}
    assert w.gate.authenticate_token(w.token(name="late", uid="u2")) is not None
    w.sas[("tenant-a", "late")]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert w.gate.authenticate_token(w.token(name="late", uid="u2")) is None


def test_expiry_is_enforced_by_the_gate() -> None:
    w = World()
    t = w.token(600)
    h = headers(Authorization=f"Bearer {t}")
    assert w.gate.check("GET", "/api/v1/namespaces/tenant-a/secrets", {}, h).name == APP
    w.now = NOW + timedelta(hours=1)     # the signature is remembered; the expiry is not
    with pytest.raises(ApiError) as e:
        w.gate.check("GET", "/api/v1/namespaces/tenant-a/secrets", {}, headers(Authorization=f"Bearer {t}"))
    assert (e.value.code, e.value.message) == (401, "Unauthorized")


# --- check: authorization and impersonation ---------------------------------------------------

def test_check_allows_and_forbids() -> None:
    w = World()
    h = headers(Authorization="Bearer " + w.token())
    assert w.gate.check("GET", "/api/v1/namespaces/tenant-a/secrets", {}, h).name == APP
    with pytest.raises(ApiError) as e:
        w.gate.check("GET", "/api/v1/namespaces/tenant-b/secrets/s1", {}, h)
    assert e.value.code == 403
    assert e.value.message == (f'secrets "s1" is forbidden: User "{APP}" cannot get resource '
                               '"secrets" in API group "" in the namespace "tenant-b"')
    assert w.gate.check("GET", "/apis", {}, h).name == APP
    assert w.gate.check("GET", "/api/v1/namespaces/x", {}, headers(Authorization="Bearer admin-token")) is ADMIN


def test_admin_impersonates_and_is_judged_as_the_impersonated() -> None:
    w = World()
    h = headers(Authorization="Bearer admin-token", Impersonate_User=APP)
    u = w.gate.check("GET", "/api/v1/namespaces/tenant-a/secrets", {}, h)
    assert u == UserInfo(APP, ("system:serviceaccounts", "system:serviceaccounts:tenant-a",
                               "system:authenticated"))
    with pytest.raises(ApiError) as e:
        w.gate.check("GET", "/api/v1/namespaces/tenant-b/secrets", {}, h)
    assert e.value.code == 403 and f'User "{APP}" cannot list' in e.value.message
    # Groups given: those, plus system:authenticated.
    h = headers(Authorization="Bearer admin-token", Impersonate_User="bob",
                Impersonate_Group="devs|qa")
    assert w.gate.impersonate(ADMIN, h) == UserInfo("bob", ("devs", "qa", "system:authenticated"))


def test_impersonation_needs_the_impersonate_verb() -> None:
    w = World()
    h = headers(Authorization="Bearer " + w.token(), Impersonate_User="alice")
    with pytest.raises(ApiError) as e:
        w.gate.check("GET", "/api/v1/namespaces/tenant-a/secrets", {}, h)
    assert e.value.code == 403
    assert e.value.message == (f'users "alice" is forbidden: User "{APP}" cannot impersonate '
                               'resource "users" in API group "" at the cluster scope')
    # edit may impersonate the ServiceAccounts of its namespace (as upstream's edit role).
    h = headers(Authorization="Bearer " + w.token(),
                Impersonate_User="system:serviceaccount:tenant-a:default")
    assert w.gate.check("GET", "/apis", {}, h).name == "system:serviceaccount:tenant-a:default"
    with pytest.raises(ApiError) as e:
        w.gate.check("GET", "/apis", {}, headers(Authorization="Bearer admin-token",
                                                 Impersonate_Group="x"))
    assert e.value.code == 400


# --- reviews -----------------------------------------------------------------------------------

def ssar(verb: str, resource: str, ns: str = "", name: str = "") -> dict[str, Any]:
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": ns,
                                            "name": name}}}


def test_self_subject_access_review() -> None:
    w = World()
    app = service_account_user("tenant-a", "app")
    yes = w.gate.create("authorization.k8s.io", "selfsubjectaccessreviews", "", "", "",
                        ssar("get", "secrets", "tenant-a"), app)
    assert yes["status"]["allowed"] is True and yes["kind"] == "SelfSubjectAccessReview"
    assert yes["status"]["reason"].startswith('RBAC: allowed by RoleBinding "app-edit/tenant-a"')
    no = w.gate.create("authorization.k8s.io", "selfsubjectaccessreviews", "", "", "",
                       ssar("get", "secrets", "tenant-b"), app)
    assert no["status"] == {"allowed": False}
    admin = w.gate.create("authorization.k8s.io", "selfsubjectaccessreviews", "", "", "",
                          ssar("delete", "nodes"), ADMIN)
    assert admin["status"] == {"allowed": True}
    path = {"spec": {"nonResourceAttributes": {"verb": "get", "path": "/healthz"}}}
    assert reviews.self_subject_access_review(path, app, w.gate.authorize)["status"]["allowed"]
    with pytest.raises(ApiError) as e:
        reviews.self_subject_access_review({"spec": {}}, app, w.gate.authorize)
    assert e.value.code == 422 and "exactly one of nonResourceAttributes or resourceAttributes" \
        in e.value.message


def test_subject_access_reviews() -> None:
    w = World()
    body = {"spec": {"user": APP, "groups": ["system:authenticated"],
                     "resourceAttributes": {"verb": "list", "resource": "secrets",
                                            "namespace": "tenant-a"}}}
    assert w.gate.create("authorization.k8s.io", "subjectaccessreviews", "", "", "", body,
                         ADMIN)["status"]["allowed"] is True
    local = w.gate.create("authorization.k8s.io", "localsubjectaccessreviews", "", "tenant-a", "",
                          body, ADMIN)
    assert local["kind"] == "LocalSubjectAccessReview" and local["status"]["allowed"] is True
    with pytest.raises(ApiError) as e:
        w.gate.create("authorization.k8s.io", "localsubjectaccessreviews", "", "tenant-b", "", body,
                      ADMIN)
    assert e.value.code == 400


def test_self_subject_rules_review_and_whoami() -> None:
    w = World()
    app = service_account_user("tenant-a", "app", UID)
    r = w.gate.create("authorization.k8s.io", "selfsubjectrulesreviews", "", "", "",
                      {"spec": {"namespace": "tenant-a"}}, app)
    assert r["status"]["incomplete"] is False
    assert any("secrets" in rule["resources"] and "get" in rule["verbs"]
               for rule in r["status"]["resourceRules"])
    other = w.gate.create("authorization.k8s.io", "selfsubjectrulesreviews", "", "", "",
                          {"spec": {"namespace": "tenant-b"}}, app)
    assert not any("secrets" in rule["resources"] for rule in other["status"]["resourceRules"])
    me = w.gate.create("authentication.k8s.io", "selfsubjectreviews", "", "", "", {}, app)
    assert me["status"]["userInfo"] == {"username": APP, "uid": UID,
                                        "groups": list(app.groups)}


def test_token_request_issues_a_bound_token() -> None:
    w = World()
    r = w.gate.create("", "serviceaccounts", "token", "tenant-a", "app",
                      {"spec": {"expirationSeconds": 1200}}, ADMIN)
    assert r["kind"] == "TokenRequest" and r["apiVersion"] == "authentication.k8s.io/v1"
    assert r["status"]["expirationTimestamp"] == "2026-01-02T03:24:05Z"
    assert r["spec"]["audiences"] == [tokens.AUDIENCE]
    assert w.gate.authenticate_token(r["status"]["token"]) is not None
    default = w.gate.create("", "serviceaccounts", "token", "tenant-a", "app", {"spec": {}}, ADMIN)
    assert default["spec"]["expirationSeconds"] == 3600
    with pytest.raises(ApiError) as e:
        w.gate.create("", "serviceaccounts", "token", "tenant-a", "app",
                      {"spec": {"expirationSeconds": 60}}, ADMIN)
    assert (e.value.code, e.value.message) == (
        422, 'TokenRequest.authentication.k8s.io "app" is invalid: spec.expirationSeconds: '
             'Invalid value: 60: may not specify a duration less than 10 minutes')
    with pytest.raises(ApiError) as e:
        w.gate.create("", "serviceaccounts", "token", "tenant-a", "gone", {"spec": {}}, ADMIN)
    assert (e.value.code, e.value.message) == (404, 'serviceaccounts "gone" not found')


def test_token_review() -> None:
    w = World()
    ok = reviews.token_review({"spec": {"token": w.token()}}, w.gate.authenticate_token)
    assert ok["status"]["authenticated"] is True and ok["status"]["user"]["username"] == APP
    bad = reviews.token_review({"spec": {"token": "x"}}, w.gate.authenticate_token)
    assert bad["status"] == {"authenticated": False, "user": {}}


# --- validation (admission hooks) ---------------------------------------------------------------

def rb(kind: str = "ClusterRole", name: str = "view", subjects: list[dict[str, Any]] | None = None,
       group: str = GROUP) -> dict[str, Any]:
    return {"metadata": {"name": "rb"}, "roleRef": {"apiGroup": group, "kind": kind, "name": name},
            "subjects": subjects if subjects is not None else [
                {"kind": "ServiceAccount", "name": "app"}]}


@pytest.mark.parametrize(("what", "fn", "new", "old", "causes"), [
    ("valid", kinds.validate_role_binding, rb(), None, []),
    ("roleRef is immutable", kinds.validate_role_binding, rb(name="edit"), rb(), [
        ("roleRef", 'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
                    'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef')]),
    ("same roleRef, new subjects", kinds.validate_role_binding, rb(subjects=[]), rb(), []),
    ("roleRef kind", kinds.validate_role_binding, rb(kind="Robot"), None, [
        ("roleRef.kind", 'Unsupported value: "Robot": supported values: "Role", "ClusterRole"')]),
    ("cluster binding to a Role", kinds.validate_cluster_role_binding,
     rb(kind="Role", subjects=[{"kind": "ServiceAccount", "name": "a", "namespace": "n"}]), None, [
         ("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"')]),
    ("roleRef group", kinds.validate_role_binding, rb(group="x"), None, [
        ("roleRef.apiGroup", 'Unsupported value: "x": supported values: '
                             '"rbac.authorization.k8s.io"')]),
    ("subject kind", kinds.validate_role_binding, rb(subjects=[{"kind": "Robot", "name": "r"}]),
     None, [("subjects[0].kind", 'Unsupported value: "Robot": supported values: '
                                 '"ServiceAccount", "User", "Group"')]),
    ("SA in a cluster binding needs a namespace", kinds.validate_cluster_role_binding, rb(), None,
     [("subjects[0].namespace", "Required value")]),
    ("user group", kinds.validate_role_binding,
     rb(subjects=[{"kind": "User", "name": "u", "apiGroup": "x"}]), None,
     [("subjects[0].apiGroup", 'Unsupported value: "x": supported values: '
                               '"rbac.authorization.k8s.io"')]),
    ("rule without verbs", kinds.validate_role,
     {"rules": [{"apiGroups": [""], "resources": ["pods"]}]}, None,
     [("rules[0].verbs", "Required value: verbs must contain at least one value")]),
    ("namespaced non-resource URL", kinds.validate_role,
     {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}, None,
     [("rules[0].nonResourceURLs", 'Invalid value: []string{"/x"}: namespaced rules cannot apply '
                                   "to non-resource URLs")]),
    ("cluster non-resource URL", kinds.validate_cluster_role,
     {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}, None, []),
    ("resource rule without groups", kinds.validate_cluster_role,
     {"rules": [{"verbs": ["get"], "resources": ["pods"]}]}, None,
     [("rules[0].apiGroups", "Required value: resource rules must supply at least one api group")]),
])
def test_validation(what: str, fn: Any, new: dict[str, Any], old: dict[str, Any] | None,
                    causes: list[tuple[str, str]]) -> None:
    assert [(c.field, c.message) for c in fn(new, old)] == causes


def test_user_and_group_subjects_default_their_group() -> None:
    o = rb(subjects=[{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "a"}])
    kinds.default_subjects(o, None)
    assert o["subjects"] == [{"kind": "User", "name": "u", "apiGroup": GROUP},
                             {"kind": "ServiceAccount", "name": "a"}]
