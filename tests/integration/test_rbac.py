"""Enforced RBAC through the real kubectl: two tenants, a ServiceAccount each bound to `edit` in its
own namespace, tokens from `kubectl create token`; `kubectl auth can-i` (with --as); expired and
deleted-ServiceAccount tokens; the admin kubeconfig unaffected. One `skiff up` for the module."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from skiff.core.auth import tokens
from skiffproc import Skiff

TENANTS = ("tenant-a", "tenant-b")


def sa_name(ns: str, name: str = "app") -> str:
    return f"system:serviceaccount:{ns}:{name}"


@pytest.fixture(scope="module")
def tenant_tokens(skiff: Skiff) -> Iterator[dict[str, str]]:
    out: dict[str, str] = {}
    for ns in TENANTS:
        skiff.kubectl("create", "namespace", ns)
        skiff.kubectl("create", "serviceaccount", "app", "-n", ns)
        skiff.kubectl("create", "rolebinding", "app-edit", "--clusterrole=edit",
                      f"--serviceaccount={ns}:app", "-n", ns)
        skiff.kubectl("create", "secret", "generic", "s1", "--from-literal=k=v", "-n", ns)
        out[ns] = skiff.kubectl("create", "token", "app", "-n", ns, "--duration=20m").stdout.strip()
    yield out


def as_token(skiff: Skiff, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return skiff.kubectl(f"--token={token}", *args, check=False)


def curl(skiff: Skiff, token: str, path: str) -> dict[str, object]:
    r = subprocess.run(["curl", "-s", "--cacert", str(skiff.home / "pki" / "ca.crt"),
                        "-H", f"Authorization: Bearer {token}",
                        f"https://127.0.0.1:{skiff.api_port}{path}"],
                       capture_output=True, text=True, timeout=10)
    body: dict[str, object] = json.loads(r.stdout)
    return body


def test_default_roles_bindings_and_service_accounts(skiff: Skiff) -> None:
    roles = skiff.kubectl("get", "clusterroles").stdout.splitlines()
    assert roles[0].split() == ["NAME", "CREATED", "AT"]
    names = {line.split()[0] for line in roles[1:]}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
            "system:public-info-viewer"} <= names
    crb = skiff.kubectl("get", "clusterrolebinding", "cluster-admin", "-o", "wide").stdout.splitlines()
    assert crb[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert crb[1].split()[1] == "ClusterRole/cluster-admin" and "system:masters" in crb[1]
    edit = skiff.kubectl_json("get", "clusterrole", "edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert edit["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}}]
    assert any("secrets" in r["resources"] and "get" in r["verbs"] for r in edit["rules"])
    # kube-controller-manager's serviceaccounts controller: `default` in every namespace.
    skiff.kubectl("create", "namespace", "fresh")
    skiff.wait_for(lambda: skiff.kubectl("get", "sa", "default", "-n", "fresh",
                                         check=False).returncode == 0, what="default SA")


def test_tenant_reads_its_own_secrets(skiff: Skiff, tenant_tokens: dict[str, str]) -> None:
    r = as_token(skiff, tenant_tokens["tenant-a"], "get", "secrets", "-n", "tenant-a")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == ["NAME", "TYPE", "DATA", "AGE"] and "s1" in r.stdout
    r = as_token(skiff, tenant_tokens["tenant-a"], "get", "secret", "s1", "-n", "tenant-a",
                 "-o", "jsonpath={.data.k}")
    assert (r.returncode, r.stdout) == (0, "dg==")


def test_tenant_cannot_read_the_other_tenants_secrets(skiff: Skiff,
                                                      tenant_tokens: dict[str, str]) -> None:
    for me, other in (("tenant-a", "tenant-b"), ("tenant-b", "tenant-a")):
        user = sa_name(me)
        r = as_token(skiff, tenant_tokens[me], "get", "secrets", "-n", other)
        assert r.returncode == 1
        assert r.stderr.strip() == (
            f'Error from server (Forbidden): secrets is forbidden: User "{user}" cannot list '
            f'resource "secrets" in API group "" in the namespace "{other}"')
        r = as_token(skiff, tenant_tokens[me], "get", "secret", "s1", "-n", other)
        assert r.returncode == 1
        assert r.stderr.strip() == (
            f'Error from server (Forbidden): secrets "s1" is forbidden: User "{user}" cannot get '
            f'resource "secrets" in API group "" in the namespace "{other}"')
    body = curl(skiff, tenant_tokens["tenant-a"], "/api/v1/namespaces/tenant-b/secrets/s1")
    assert body["code"] == 403 and body["reason"] == "Forbidden"
    assert body["details"] == {"name": "s1", "kind": "secrets"}
    # Cluster scope and other kinds of escalation are closed too.
    r = as_token(skiff, tenant_tokens["tenant-a"], "get", "secrets", "-A")
    assert 'cannot list resource "secrets" in API group "" at the cluster scope' in r.stderr
    r = as_token(skiff, tenant_tokens["tenant-a"], "create", "clusterrolebinding", "mine",
                 "--clusterrole=cluster-admin", "--serviceaccount=tenant-a:app")
    assert r.returncode == 1 and "clusterrolebindings.rbac.authorization.k8s.io is forbidden" in r.stderr
    r = as_token(skiff, tenant_tokens["tenant-a"], "create", "token", "app", "-n", "tenant-b")
    assert 'cannot create resource "serviceaccounts/token" in API group "" in the namespace ' \
           '"tenant-b"' in r.stderr


def test_tenant_works_in_its_own_namespace(skiff: Skiff, tenant_tokens: dict[str, str]) -> None:
    t = tenant_tokens["tenant-a"]
    r = as_token(skiff, t, "create", "configmap", "c1", "--from-literal=a=b", "-n", "tenant-a")
    assert r.returncode == 0, r.stderr
    assert as_token(skiff, t, "delete", "configmap", "c1", "-n", "tenant-a").returncode == 0
    r = as_token(skiff, t, "api-resources")       # discovery for every authenticated user
    assert r.returncode == 0 and "secrets" in r.stdout
    who = as_token(skiff, t, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == sa_name("tenant-a")


def test_auth_can_i(skiff: Skiff, tenant_tokens: dict[str, str]) -> None:
    t = tenant_tokens["tenant-a"]
    for args, answer in ((("get", "secrets", "-n", "tenant-a"), "yes"),
                         (("list", "secrets", "-n", "tenant-a"), "yes"),
                         (("get", "secrets", "-n", "tenant-b"), "no"),
                         (("create", "rolebindings", "-n", "tenant-a"), "no"),
                         (("list", "nodes"), "no"),
                         (("create", "pods/exec", "-n", "tenant-a"), "yes")):
        r = as_token(skiff, t, "auth", "can-i", *args)
        assert (r.stdout.strip(), r.returncode) == (answer, 0 if answer == "yes" else 1), args
    # The admin asks for a tenant with --as (impersonation), and for itself.
    r = skiff.kubectl("auth", "can-i", "get", "secrets", "-n", "tenant-b",
                      f"--as={sa_name('tenant-a')}", check=False)
    assert (r.stdout.strip(), r.returncode) == ("no", 1)
    r = skiff.kubectl("auth", "can-i", "get", "secrets", "-n", "tenant-a",
                      f"--as={sa_name('tenant-a')}", check=False)
    assert (r.stdout.strip(), r.returncode) == ("yes", 0)
    assert skiff.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    # A tenant may not impersonate.
    r = as_token(skiff, t, "get", "secrets", "-n", "tenant-b", f"--as={sa_name('tenant-b')}")
    assert r.returncode == 1
    assert (f'serviceaccounts "app" is forbidden: User "{sa_name("tenant-a")}" cannot impersonate '
            'resource "serviceaccounts" in API group "" in the namespace "tenant-b"') in r.stderr
    listed = as_token(skiff, t, "auth", "can-i", "--list", "-n", "tenant-a").stdout
    assert listed.splitlines()[0].split()[:2] == ["Resources", "Non-Resource"]
    assert any(line.split()[0] == "secrets" for line in listed.splitlines()[1:] if line.split())
    elsewhere = as_token(skiff, t, "auth", "can-i", "--list", "-n", "tenant-b").stdout
    assert not any(line.split()[0] == "secrets" for line in elsewhere.splitlines()[1:]
                   if line.split())


def test_expired_token_is_401(skiff: Skiff, tenant_tokens: dict[str, str]) -> None:
    sa = skiff.kubectl_json("get", "sa", "app", "-n", "tenant-a")
    signer = tokens.Signer((skiff.home / "sa.key").read_bytes())
    past = datetime.now(UTC) - timedelta(hours=2)
    expired = signer.sign(tokens.service_account_claims("tenant-a", "app", sa["metadata"]["uid"],
                                                        past, 3600))
    r = as_token(skiff, expired, "get", "secrets", "-n", "tenant-a")
    assert r.returncode == 1
    assert "error: You must be logged in to the server (Unauthorized)" in r.stderr
    body = curl(skiff, expired, "/api/v1/namespaces/tenant-a/secrets")
    assert (body["code"], body["reason"]) == (401, "Unauthorized")
    # The same claims, not expired, are accepted: it is the expiry that failed.
    fresh = signer.sign(tokens.service_account_claims("tenant-a", "app", sa["metadata"]["uid"],
                                                      datetime.now(UTC), 3600))
    assert as_token(skiff, fresh, "get", "secrets", "-n", "tenant-a").returncode == 0
    # --duration below upstream's minimum is refused as upstream does.
    r = skiff.kubectl("create", "token", "app", "-n", "tenant-a", "--duration=1m", check=False)
    assert "may not specify a duration less than 10 minutes" in r.stderr


def test_deleted_service_accounts_token_is_401(skiff: Skiff) -> None:
    skiff.kubectl("create", "serviceaccount", "temp", "-n", "tenant-a")
    skiff.kubectl("create", "rolebinding", "temp-view", "--clusterrole=view",
                  "--serviceaccount=tenant-a:temp", "-n", "tenant-a")
    t = skiff.kubectl("create", "token", "temp", "-n", "tenant-a").stdout.strip()
    skiff.wait_for(lambda: as_token(skiff, t, "get", "configmaps", "-n", "tenant-a").returncode == 0,
                   what="the new ServiceAccount's token works")
    skiff.kubectl("delete", "serviceaccount", "temp", "-n", "tenant-a")
    r = skiff.wait_for(lambda: (lambda r: r if r.returncode == 1 else None)(
        as_token(skiff, t, "get", "configmaps", "-n", "tenant-a")), what="401 after the delete")
    assert "error: You must be logged in to the server (Unauthorized)" in r.stderr
    # A new ServiceAccount of the same name is another object: the old token stays dead.
    skiff.kubectl("create", "serviceaccount", "temp", "-n", "tenant-a")
    assert as_token(skiff, t, "get", "configmaps", "-n", "tenant-a").returncode == 1


def test_admin_keeps_working_for_everything(skiff: Skiff, tenant_tokens: dict[str, str]) -> None:
    for ns in TENANTS:
        assert "s1" in skiff.kubectl("get", "secrets", "-n", ns).stdout
    assert skiff.kubectl("get", "secrets", "-A").returncode == 0
    assert skiff.kubectl("get", "rolebindings", "-A").returncode == 0
    who = json.loads(skiff.kubectl("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who["username"] == "skiff-admin" and "system:masters" in who["groups"]


def test_rolebinding_rules_and_printing(skiff: Skiff, tenant_tokens: dict[str, str]) -> None:
    rb = skiff.kubectl("get", "rolebinding", "-n", "tenant-a", "-o", "wide").stdout.splitlines()
    assert rb[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    row = next(line for line in rb if line.startswith("app-edit"))
    assert row.split()[1] == "ClusterRole/edit" and row.split()[-1] == "tenant-a/app"
    changed = json.dumps({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                          "metadata": {"name": "app-edit", "namespace": "tenant-a"},
                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                      "kind": "ClusterRole", "name": "admin"},
                          "subjects": [{"kind": "ServiceAccount", "name": "app",
                                        "namespace": "tenant-a"}]})
    r = skiff.kubectl("apply", "-f", "-", input=changed, check=False)
    assert r.returncode == 1
    assert ('The RoleBinding "app-edit" is invalid: roleRef: Invalid value: rbac.RoleRef{'
            'APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"admin"}: cannot '
            "change roleRef") in r.stderr
    # A tenant's own Role, bound by the admin, works once the watch has it.
    skiff.kubectl("create", "role", "cm-one", "--verb=get", "--resource=configmaps",
                  "--resource-name=one", "-n", "tenant-b")
    skiff.kubectl("create", "rolebinding", "a-reads-one", "--role=cm-one",
                  "--serviceaccount=tenant-a:app", "-n", "tenant-b")
    t = tenant_tokens["tenant-a"]
    skiff.wait_for(lambda: as_token(skiff, t, "auth", "can-i", "get", "configmaps/one", "-n",
                                    "tenant-b").stdout.strip() == "yes", what="role bound")
    assert as_token(skiff, t, "auth", "can-i", "get", "configmaps/two", "-n",
                    "tenant-b").stdout.strip() == "no"


def test_a_namespace_admin_cannot_grant_what_it_does_not_hold(skiff: Skiff) -> None:
    """Escalation prevention: an `admin` of tenant-c may bind `edit` there (it holds all of it),
    but not `cluster-admin`, and may not write a Role with permissions it lacks."""
    skiff.kubectl("create", "namespace", "tenant-c")
    skiff.kubectl("create", "serviceaccount", "boss", "-n", "tenant-c")
    skiff.kubectl("create", "rolebinding", "boss-admin", "--clusterrole=admin",
                  "--serviceaccount=tenant-c:boss", "-n", "tenant-c")
    token = skiff.kubectl("create", "token", "boss", "-n", "tenant-c").stdout.strip()
    ok = as_token(skiff, token, "create", "rolebinding", "dev-edit", "--clusterrole=edit",
                  "--user=dev", "-n", "tenant-c")
    assert ok.returncode == 0, ok.stderr
    r = as_token(skiff, token, "create", "rolebinding", "dev-root", "--clusterrole=cluster-admin",
                 "--user=dev", "-n", "tenant-c")
    assert r.returncode != 0
    assert 'rolebindings.rbac.authorization.k8s.io "dev-root" is forbidden: user ' \
           '"system:serviceaccount:tenant-c:boss"' in r.stderr
    assert "is attempting to grant RBAC permissions not currently held" in r.stderr
    assert skiff.kubectl("get", "rolebinding", "dev-root", "-n", "tenant-c",
                         check=False).returncode != 0
    r = as_token(skiff, token, "create", "role", "nodes-reader", "--verb=get", "--resource=nodes",
                 "-n", "tenant-c")
    assert r.returncode != 0 and '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}' in r.stderr
    ok = as_token(skiff, token, "create", "role", "pod-reader", "--verb=get",
                  "--resource=pods", "-n", "tenant-c")
    assert ok.returncode == 0, ok.stderr
    # and the admin of the platform may grant anything
    skiff.kubectl("create", "rolebinding", "dev-root", "--clusterrole=cluster-admin",
                  "--user=dev", "-n", "tenant-c")
