"""The gate every API request passes: authenticate, impersonate, authorize (kube-apiserver's
WithAuthentication, WithImpersonation and WithAuthorization filters, in that order).

Who: the kubeconfig's bearer token is skiff-admin in system:masters (as a
cluster's admin client certificate is); a ServiceAccount token (tokens.py) is
system:serviceaccount:NS:NAME in system:serviceaccounts,
system:serviceaccounts:NS and system:authenticated, valid only while that
ServiceAccount lives with the uid the token names. Impersonate-User /
Impersonate-Group / Impersonate-Uid are honoured for a requester allowed the
`impersonate` verb on users, groups, serviceaccounts or uids. What: the RBAC
decision (rbac.authorize) over the Policy the watches keep (controllers.py);
system:masters is allowed before RBAC is asked, as upstream's privileged-group
authorizer, so the admin token costs one string comparison. The gate holds
state and reads the clock, and does no I/O but the ServiceAccount lookup it is
given for a token whose ServiceAccount the watch has not shown (yet).
Neighbours: core/apiserver/server.py (its auth middleware calls check(), its
resource handler create()), rbac.py, requestinfo.py, reviews.py, tokens.py.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from skiff.core.auth import rbac, reviews, tokens
from skiff.core.auth.kinds import AUTHN, AUTHZ
from skiff.core.auth.rbac import Attributes, Decision, Policy, UserInfo
from skiff.core.auth.requestinfo import request_attributes
from skiff.core.client import ApiError, Obj
from skiff.core.clock import utcnow
from skiff.core.home import write_private

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
ADMIN = UserInfo("skiff-admin", (MASTERS, AUTHENTICATED))
KEY_FILE = "sa.key"
VERIFIED_CACHE = 4096
_IMPERSONATE = ("Impersonate-User", "Impersonate-Group", "Impersonate-Uid")


class Headers(Protocol):
    def get(self, key: str, default: str, /) -> str: ...

    def getall(self, key: str, default: list[str], /) -> list[str]: ...

    def keys(self) -> Any: ...

    def __contains__(self, key: object) -> bool: ...


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def load_signer(home: Path) -> tokens.Signer:
    """The ServiceAccount signing key, made on first start, kept in the home (0600)."""
    path = home / KEY_FILE
    if not path.exists():
        write_private(path, tokens.generate_key())
    return tokens.Signer(path.read_bytes())


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"{tokens.SA_PREFIX}{namespace}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
                    uid)


class Gate:
    def __init__(self, admin_token: str, signer: tokens.Signer,
                 get_service_account: Callable[[str, str], Obj | None],
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._admin_header = f"Bearer {admin_token}"
        self._admin_token = admin_token.encode()
        self.signer = signer
        self.get_service_account = get_service_account
        self.clock = clock
        self.policy = Policy()
        # (namespace, name) -> uid of each live ServiceAccount, from the watch.
        self.service_accounts: dict[tuple[str, str], str] = {}
        # Tokens whose signature was checked (an RSA verify is most of a request's 90 us);
        # expiry and the ServiceAccount are still checked on every request.
        self._verified: dict[str, tokens.Claims] = {}

    # --- the ServiceAccounts the tokens are bound to (fed by the watch) ------------------
    def apply_service_account(self, event: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event == "DELETED" or meta.get("deletionTimestamp"):
            self.service_accounts.pop(key, None)
        else:
            self.service_accounts[key] = str(meta.get("uid", ""))

    def replace_service_accounts(self, objs: list[Obj]) -> None:
        self.service_accounts.clear()
        for o in objs:
            self.apply_service_account("ADDED", o)

    # --- authentication -------------------------------------------------------------------
    def authenticate_token(self, token: str) -> UserInfo | None:
        if hmac.compare_digest(token.encode(), self._admin_token):
            return ADMIN
        now = self.clock()
        claims = self._verified.get(token)
        if claims is None:
            got = self.signer.verify(token, now)
            if isinstance(got, str):
                return None
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
            claims = self._verified[token] = got
        elif isinstance(tokens.check_claims(claims, now), str):
            return None    # expired since it was verified
        ref = tokens.service_account_of(claims)
        if ref is None or not self._service_account_live(ref):
            return None
        return service_account_user(ref.namespace, ref.name, ref.uid)

    def _service_account_live(self, ref: tokens.ServiceAccountRef) -> bool:
        if self.service_accounts.get((ref.namespace, ref.name)) == ref.uid:
            return True
        # Not in the watched set (or another uid): the store decides, so that a token minted
        # just after its ServiceAccount was created works before the watch event arrives.
        sa = self.get_service_account(ref.namespace, ref.name)
        meta = (sa or {}).get("metadata") or {}
        return bool(sa) and meta.get("uid") == ref.uid and not meta.get("deletionTimestamp")

    def authenticate(self, authorization: str) -> UserInfo | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.authenticate_token(token.strip())

    # --- impersonation ----------------------------------------------------------------------
    def impersonate(self, user: UserInfo, headers: Headers) -> UserInfo:
        name = headers.get("Impersonate-User", "")
        groups = list(headers.getall("Impersonate-Group", []))
        uid = headers.get("Impersonate-Uid", "")
        extras = [k for k in headers.keys() if k.lower().startswith("impersonate-extra-")]
        if not name:
            raise ApiError(400, "BadRequest", "requested impersonation of groups, uid or extra "
                                              "without impersonating a user")
        checks = [Attributes(user, "impersonate", True, resource="groups", name=g) for g in groups]
        if name.startswith(tokens.SA_PREFIX) and name.count(":") == 3:
            ns, sa = name[len(tokens.SA_PREFIX):].split(":", 1)
            checks.insert(0, Attributes(user, "impersonate", True, namespace=ns,
                                        resource="serviceaccounts", name=sa))
            if not groups:    # a ServiceAccount's own groups come with it, unchecked
                groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
        else:
            checks.insert(0, Attributes(user, "impersonate", True, resource="users", name=name))
        if uid:
            checks.append(Attributes(user, "impersonate", True, api_group=AUTHN, resource="uids",
                                     name=uid))
        extra: list[tuple[str, tuple[str, ...]]] = []
        for header in extras:
            key = header[len("impersonate-extra-"):].lower()
            values = tuple(headers.getall(header, []))
            extra.append((key, values))
            checks += [Attributes(user, "impersonate", True, api_group=AUTHN,
                                  resource="userextras", subresource=key, name=v) for v in values]
        for a in checks:
            d = self.authorize(a)
            if not d.allowed:
                raise rbac.forbidden(a, d.reason)
        if name != ANONYMOUS and not ({AUTHENTICATED, UNAUTHENTICATED} & set(groups)):
            groups.append(AUTHENTICATED)
        return UserInfo(name, tuple(groups), uid, tuple(extra))

    # --- authorization ----------------------------------------------------------------------
    def authorize(self, a: Attributes) -> Decision:
        if MASTERS in a.user.groups:
            return Decision(True)
        return rbac.authorize(self.policy, a)

    def check(self, method: str, path: str, query: Mapping[str, str], headers: Headers,
              websocket: bool = False) -> UserInfo:
        """The requester, once authenticated and authorized; or raises 401 / 403 (or 400)."""
        authorization = headers.get("Authorization", "")
        impersonating = any(h in headers for h in _IMPERSONATE)
        if authorization == self._admin_header and not impersonating:
            return ADMIN    # the fast path: system:masters may do anything
        user = self.authenticate(authorization)
        if user is None:
            raise unauthorized()
        if impersonating:
            user = self.impersonate(user, headers)
        a = request_attributes(user, method, path, query, websocket)
        d = self.authorize(a)
        if not d.allowed:
            raise rbac.forbidden(a, d.reason)
        return user

    # --- escalation: granting only what one holds (or with escalate / bind) ----------------
    def check_escalation(self, kind: str, namespace: str, obj: Obj, user: UserInfo) -> None:
        """Refuse a Role/ClusterRole that grants, or a binding to a role that holds, permissions
        the requester does not hold, unless it may `escalate` roles / `bind` that role (as
        kube-apiserver's RBAC storage does). Raises 403."""
        if MASTERS in user.groups:
            return
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        ns = namespace if kind in ("Role", "RoleBinding") else ""
        if kind in ("Role", "ClusterRole"):
            plural = "roles" if kind == "Role" else "clusterroles"
            requested = rbac.compile_rules(obj.get("rules"))
            if self._may(user, "escalate", plural, ns, name):
                return
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            plural = "rolebindings" if kind == "RoleBinding" else "clusterrolebindings"
            binding = rbac.binding_of(kind, {**obj, "metadata": {**meta, "namespace": ns}})
            ref_plural = "roles" if binding.role_kind == "Role" else "clusterroles"
            if self._may(user, "bind", ref_plural, ns, binding.role_name):
                return
            requested, err = self.policy.role_rules(binding)
            if err:
                return   # upstream lets a binding to a missing role through (it grants nothing)
        else:
            return
        owned, _ = rbac.rules_for(self.policy, user, ns)
        missing = rbac.uncovered(owned, requested)
        if missing == []:
            return
        raise rbac.forbidden_error(rbac.GROUP, plural, name,
                                   rbac.escalation_error(user, missing))

    def _may(self, user: UserInfo, verb: str, plural: str, namespace: str, name: str) -> bool:
        return self.authorize(Attributes(user=user, verb=verb, namespace=namespace,
                                         api_group=rbac.GROUP, api_version="v1", resource=plural,
                                         name=name)).allowed

    # --- the create-only endpoints ----------------------------------------------------------
    def serves(self, group: str, plural: str, subresource: str) -> bool:
        if subresource:
            return group == "" and plural == "serviceaccounts" and subresource == "token"
        return group in (AUTHZ, AUTHN)

    def create(self, group: str, plural: str, subresource: str, namespace: str, name: str,
               body: Any, user: UserInfo) -> Obj:
        """Answer a POST to a review kind or to serviceaccounts/NAME/token."""
        if subresource == "token":
            sa = self.get_service_account(namespace, name)
            if sa is None:
                raise ApiError(404, "NotFound", f'serviceaccounts "{name}" not found',
                               {"name": name, "kind": "serviceaccounts"})
            return reviews.token_request(body, sa, self.signer, self.clock())
        if plural == "selfsubjectaccessreviews":
            return reviews.self_subject_access_review(body, user, self.authorize)
        if plural == "subjectaccessreviews":
            return reviews.subject_access_review(body, self.authorize)
        if plural == "localsubjectaccessreviews":
            return reviews.subject_access_review(body, self.authorize, namespace)
        if plural == "selfsubjectrulesreviews":
            return reviews.self_subject_rules_review(body, user, self.policy)
        if plural == "selfsubjectreviews":
            return reviews.self_subject_review(user)
        if plural == "tokenreviews":
            return reviews.token_review(body, self.authenticate_token)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
