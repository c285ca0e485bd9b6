"""The create-only APIs of access control, answered from the policy: pure request -> response.

SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview and
LocalSubjectAccessReview (the same question for someone else),
SelfSubjectRulesReview (`kubectl auth can-i --list`), SelfSubjectReview
(`kubectl auth whoami`), TokenReview, and TokenRequest (`kubectl create
token`: serviceaccounts/NAME/token). Each takes the decoded body and what it
needs (the requester, an authorize function, the ServiceAccount, `now`) and
returns the object to send, or raises ApiError as kube-apiserver would.
Neighbours: gate.py (calls these for the API server), rbac.py, tokens.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from skiff.core.auth import rbac, tokens
from skiff.core.auth.rbac import Attributes, Decision, UserInfo
from skiff.core.client import ApiError, Obj
from skiff.core.clock import rfc3339

Authorize = Callable[[Attributes], Decision]

AUTHZ_V1 = "authorization.k8s.io/v1"
AUTHN_V1 = "authentication.k8s.io/v1"
DEFAULT_EXPIRATION_S = 3600
MIN_EXPIRATION_S = 600


def _spec(body: Any) -> Obj:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
    spec = body.get("spec")
    return spec if isinstance(spec, dict) else {}


def _invalid(kind: str, field: str, message: str, name: str = "") -> ApiError:
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {field}: {message}',
                    {"name": name, "group": kind.partition(".")[2],
                     "kind": kind.partition(".")[0],
                     "causes": [{"reason": "FieldValueInvalid", "message": message,
                                 "field": field}]})


def attributes_of(user: UserInfo, spec: Obj, kind: str) -> Attributes:
    """The attributes a review asks about (exactly one of resource or non-resource)."""
    ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(ra) == bool(nra):
        raise _invalid(kind, "spec.resourceAttributes",
                       "Invalid value: \"null\": exactly one of nonResourceAttributes or "
                       "resourceAttributes must be specified")
    if isinstance(nra, dict):
        return Attributes(user, str(nra.get("verb", "")), resource_request=False,
                          path=str(nra.get("path", "")))
    assert isinstance(ra, dict)
    return Attributes(user, str(ra.get("verb", "")), True, namespace=str(ra.get("namespace", "")),
                      api_group=str(ra.get("group", "")), api_version=str(ra.get("version", "")),
                      resource=str(ra.get("resource", "")),
                      subresource=str(ra.get("subresource", "")), name=str(ra.get("name", "")))


def _answer(body: Obj, kind: str, spec: Obj, d: Decision) -> Obj:
    status: Obj = {"allowed": d.allowed}
    if d.reason:
        status["reason"] = d.reason
    meta = dict(body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {}
    meta.setdefault("creationTimestamp", None)
    return {"kind": kind, "apiVersion": AUTHZ_V1, "metadata": meta, "spec": spec, "status": status}


def self_subject_access_review(body: Any, user: UserInfo, authorize: Authorize) -> Obj:
    spec = _spec(body)
    a = attributes_of(user, spec, "SelfSubjectAccessReview.authorization.k8s.io")
    return _answer(body, "SelfSubjectAccessReview", spec, authorize(a))


def _user_from_spec(spec: Obj) -> UserInfo:
    groups = spec.get("groups") or []
    return UserInfo(str(spec.get("user", "")), tuple(str(g) for g in groups),
                    str(spec.get("uid", "")))


def subject_access_review(body: Any, authorize: Authorize, namespace: str = "") -> Obj:
    """SubjectAccessReview, or LocalSubjectAccessReview when `namespace` is the URL's."""
    kind = "LocalSubjectAccessReview" if namespace else "SubjectAccessReview"
    qualified = f"{kind}.authorization.k8s.io"
    spec = _spec(body)
    if not spec.get("user") and not spec.get("groups"):
        raise _invalid(qualified, "spec.user", 'Invalid value: "": at least one of user or '
                                                "group must be specified")
    a = attributes_of(_user_from_spec(spec), spec, qualified)
    if namespace:
        if not a.resource_request:
            raise _invalid(qualified, "spec.nonResourceAttributes",
                           "Invalid value: \"\": disallowed on this kind of request")
        if a.namespace != namespace:
            raise ApiError(400, "BadRequest", f"spec.resourceAttributes.namespace must match "
                                              f"namespace: {namespace}")
    return _answer(body, kind, spec, authorize(a))


def self_subject_rules_review(body: Any, user: UserInfo, policy: rbac.Policy) -> Obj:
    spec = _spec(body)
    namespace = str(spec.get("namespace", ""))
    if not namespace:
        raise _invalid("SelfSubjectRulesReview.authorization.k8s.io", "spec.namespace",
                       'Required value: no namespace on request')
    rules, errors = rbac.rules_for(policy, user, namespace)
    status: Obj = {"resourceRules": list(rbac.iter_resource_rules(rules)),
                   "nonResourceRules": list(rbac.iter_non_resource_rules(rules)),
                   "incomplete": False}
    if errors:
        status["evaluationError"] = ", ".join(dict.fromkeys(errors))
    return {"kind": "SelfSubjectRulesReview", "apiVersion": AUTHZ_V1,
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


def user_info_obj(user: UserInfo) -> Obj:
    out: Obj = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        out["uid"] = user.uid
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra}
    return out


def self_subject_review(user: UserInfo) -> Obj:
    return {"kind": "SelfSubjectReview", "apiVersion": AUTHN_V1,
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": user_info_obj(user)}}


def token_review(body: Any, authenticate: Callable[[str], UserInfo | None]) -> Obj:
    spec = _spec(body)
    user = authenticate(str(spec.get("token", "")))
    status: Obj = {"authenticated": user is not None, "user": {}}
    if user is not None:
        status["user"] = user_info_obj(user)
        status["audiences"] = [tokens.AUDIENCE]
    return {"kind": "TokenReview", "apiVersion": AUTHN_V1, "metadata": {"creationTimestamp": None},
            "spec": spec, "status": status}


def token_request(body: Any, sa: Obj, signer: tokens.Signer, now: datetime) -> Obj:
    """A TokenRequest for ServiceAccount `sa`: a signed token bound to its uid."""
    spec = dict(_spec(body))
    meta = sa["metadata"]
    name = str(meta["name"])
    seconds = spec.get("expirationSeconds") or DEFAULT_EXPIRATION_S
    kind = "TokenRequest.authentication.k8s.io"
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise _invalid(kind, "spec.expirationSeconds", f"Invalid value: {seconds!r}: must be an "
                                                       "integer", name)
    if seconds < MIN_EXPIRATION_S:
        raise _invalid(kind, "spec.expirationSeconds",
                       f"Invalid value: {seconds}: may not specify a duration less than 10 "
                       "minutes", name)
    if seconds > 1 << 32:
        raise _invalid(kind, "spec.expirationSeconds",
                       f"Invalid value: {seconds}: may not specify a duration larger than 2^32 "
                       "seconds", name)
    audiences = [str(a) for a in spec.get("audiences") or []] or [tokens.AUDIENCE]
    claims = tokens.service_account_claims(str(meta.get("namespace", "")), name,
                                           str(meta.get("uid", "")), now, seconds, audiences)
    spec["audiences"] = audiences
    spec["expirationSeconds"] = seconds
    spec.setdefault("boundObjectRef", None)
    return {"kind": "TokenRequest", "apiVersion": AUTHN_V1,
            "metadata": {"name": name, "namespace": meta.get("namespace", ""),
                         "creationTimestamp": rfc3339(now)},
            "spec": spec,
            "status": {"token": signer.sign(claims),
                       "expirationTimestamp": rfc3339(now + timedelta(seconds=seconds))}}
