"""The kinds of access control: rbac.authorization.k8s.io/v1, authorization.k8s.io/v1 and
authentication.k8s.io/v1, with rbac's validation (k8s.io/kubernetes pkg/apis/rbac/validation).

Role, ClusterRole, RoleBinding and ClusterRoleBinding are stored kinds (no short
names, as upstream; names need only be path segments, as system:discovery
shows). The reviews (SelfSubjectAccessReview, SubjectAccessReview,
LocalSubjectAccessReview, SelfSubjectRulesReview, TokenReview,
SelfSubjectReview) are create-only and never stored: the API server answers
them through reviews.py; they are kinds here so that discovery and OpenAPI
list them. The validators are admission hooks (core/admission.py), pure:
roleRef is immutable ("cannot change roleRef"), subjects are User, Group or
ServiceAccount, rules name verbs and resources or non-resource URLs.
Builtin kinds (core/builtin_kinds.py) appends KINDS; platform.py registers
install_admission. Neighbours: rbac.py (reads the same objects).
"""

from __future__ import annotations

from typing import Any

from skiff.core.admission import Admission
from skiff.core.kinds import Kind
from skiff.core.schema import (
    ANY,
    BOOL,
    DATE_TIME,
    INT,
    LABEL_SELECTOR,
    STR,
    STR_LIST,
    Schema,
    arr,
    map_of,
    obj,
    open_obj,
    resource,
)
from skiff.core.validation import Cause

GROUP = "rbac.authorization.k8s.io"
AUTHZ = "authorization.k8s.io"
AUTHN = "authentication.k8s.io"


def _no_status(props: dict[str, Schema]) -> Schema:
    s = resource(extra=props)
    del s["properties"]["status"]
    return s


POLICY_RULE = obj({"verbs": STR_LIST, "apiGroups": STR_LIST, "resources": STR_LIST,
                   "resourceNames": STR_LIST, "nonResourceURLs": STR_LIST}, required=("verbs",))
SUBJECT = obj({"kind": STR, "apiGroup": STR, "name": STR, "namespace": STR},
              required=("kind", "name"))
ROLE_REF = obj({"apiGroup": STR, "kind": STR, "name": STR}, required=("apiGroup", "kind", "name"))

ROLE = _no_status({"rules": arr(POLICY_RULE)})
CLUSTER_ROLE = _no_status({"rules": arr(POLICY_RULE),
                           "aggregationRule": obj({"clusterRoleSelectors": arr(LABEL_SELECTOR)})})
ROLE_BINDING = _no_status({"subjects": arr(SUBJECT), "roleRef": ROLE_REF})
ROLE_BINDING["required"] = ["roleRef"]

RESOURCE_ATTRIBUTES = obj({"namespace": STR, "verb": STR, "group": STR, "version": STR,
                           "resource": STR, "subresource": STR, "name": STR,
                           "fieldSelector": ANY, "labelSelector": ANY})
NON_RESOURCE_ATTRIBUTES = obj({"path": STR, "verb": STR})
ACCESS_STATUS = open_obj({"allowed": BOOL, "denied": BOOL, "reason": STR, "evaluationError": STR})
SELF_SAR = resource(obj({"resourceAttributes": RESOURCE_ATTRIBUTES,
                         "nonResourceAttributes": NON_RESOURCE_ATTRIBUTES}), status=ACCESS_STATUS)
SAR = resource(obj({"resourceAttributes": RESOURCE_ATTRIBUTES,
                    "nonResourceAttributes": NON_RESOURCE_ATTRIBUTES, "user": STR,
                    "groups": STR_LIST, "extra": map_of(STR_LIST), "uid": STR}),
               status=ACCESS_STATUS)
SSRR = resource(obj({"namespace": STR}), status=open_obj({
    "resourceRules": arr(ANY), "nonResourceRules": arr(ANY), "incomplete": BOOL,
    "evaluationError": STR}))
USER_INFO = obj({"username": STR, "uid": STR, "groups": STR_LIST, "extra": map_of(STR_LIST)})
TOKEN_REVIEW = resource(obj({"token": STR, "audiences": STR_LIST}), status=open_obj({
    "authenticated": BOOL, "user": USER_INFO, "audiences": STR_LIST, "error": STR}))
SELF_SUBJECT_REVIEW = resource(None, status=open_obj({"userInfo": USER_INFO}))
TOKEN_REQUEST = resource(obj({"audiences": STR_LIST, "expirationSeconds": INT,
                              "boundObjectRef": obj({"kind": STR, "apiVersion": STR, "name": STR,
                                                     "uid": STR})}),
                         status=open_obj({"token": STR, "expirationTimestamp": DATE_TIME}))

_CREATE = ("create",)

KINDS: list[Kind] = [
    Kind(group=GROUP, version="v1", kind="ClusterRole", plural="clusterroles", namespaced=False,
         schema=CLUSTER_ROLE, status_subresource=False, name_rule="path-segment", builtin=True),
    Kind(group=GROUP, version="v1", kind="ClusterRoleBinding", plural="clusterrolebindings",
         namespaced=False, schema=ROLE_BINDING, status_subresource=False,
         name_rule="path-segment", builtin=True),
    Kind(group=GROUP, version="v1", kind="Role", plural="roles", namespaced=True, schema=ROLE,
         status_subresource=False, name_rule="path-segment", builtin=True),
    Kind(group=GROUP, version="v1", kind="RoleBinding", plural="rolebindings", namespaced=True,
         schema=ROLE_BINDING, status_subresource=False, name_rule="path-segment", builtin=True),
    Kind(group=AUTHZ, version="v1", kind="SelfSubjectAccessReview",
         plural="selfsubjectaccessreviews", namespaced=False, schema=SELF_SAR,
         status_subresource=False, verbs=_CREATE, builtin=True),
    Kind(group=AUTHZ, version="v1", kind="SelfSubjectRulesReview",
         plural="selfsubjectrulesreviews", namespaced=False, schema=SSRR,
         status_subresource=False, verbs=_CREATE, builtin=True),
    Kind(group=AUTHZ, version="v1", kind="SubjectAccessReview", plural="subjectaccessreviews",
         namespaced=False, schema=SAR, status_subresource=False, verbs=_CREATE, builtin=True),
    Kind(group=AUTHZ, version="v1", kind="LocalSubjectAccessReview",
         plural="localsubjectaccessreviews", namespaced=True, schema=SAR,
         status_subresource=False, verbs=_CREATE, builtin=True),
    Kind(group=AUTHN, version="v1", kind="TokenReview", plural="tokenreviews", namespaced=False,
         schema=TOKEN_REVIEW, status_subresource=False, verbs=_CREATE, builtin=True),
    Kind(group=AUTHN, version="v1", kind="SelfSubjectReview", plural="selfsubjectreviews",
         namespaced=False, schema=SELF_SUBJECT_REVIEW, status_subresource=False, verbs=_CREATE,
         builtin=True),
]

# Kinds answered by reviews.py, never stored: (group, plural).
REVIEWS = frozenset((k.group, k.plural) for k in KINDS if k.group != GROUP)


# --- validation (pkg/apis/rbac/validation) -----------------------------------------------

def _q(v: Any) -> str:
    return f'"{v}"'


def _unsupported(path: str, value: Any, supported: list[str]) -> Cause:
    return Cause(path, "FieldValueNotSupported",
                 f"Unsupported value: {_q(value)}: supported values: "
                 + ", ".join(_q(s) for s in supported))


def _required(path: str, detail: str = "") -> Cause:
    return Cause(path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


# Causes carry the message without the field (kubectl prints "field: message"); the
# registry puts the field in front for the Status message.
def _invalid(path: str, shown: str, detail: str) -> Cause:
    return Cause(path, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


def _go_strings(v: Any) -> str:
    return "[]string{" + ", ".join(_q(x) for x in (v or [])) + "}"


def _rule_causes(rules: Any, namespaced: bool) -> list[Cause]:
    out: list[Cause] = []
    for i, r in enumerate(rules or []):
        if not isinstance(r, dict):
            continue
        p = f"rules[{i}]"
        if not r.get("verbs"):
            out.append(_required(f"{p}.verbs", "verbs must contain at least one value"))
        urls = r.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                out.append(_invalid(f"{p}.nonResourceURLs", _go_strings(urls),
                                    "namespaced rules cannot apply to non-resource URLs"))
            if r.get("apiGroups") or r.get("resources") or r.get("resourceNames"):
                out.append(_invalid(f"{p}.nonResourceURLs", _go_strings(urls),
                                    "rules cannot apply to both regular resources and "
                                    "non-resource URLs"))
            continue
        if not r.get("apiGroups"):
            out.append(_required(f"{p}.apiGroups",
                                 "resource rules must supply at least one api group"))
        if not r.get("resources"):
            out.append(_required(f"{p}.resources",
                                 "resource rules must supply at least one resource"))
    return out


def validate_role(new: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    return _rule_causes(new.get("rules"), namespaced=True)


def validate_cluster_role(new: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    return _rule_causes(new.get("rules"), namespaced=False)


def _role_ref_go(ref: dict[str, Any]) -> str:
    return (f'rbac.RoleRef{{APIGroup:{_q(ref.get("apiGroup", ""))}, Kind:{_q(ref.get("kind", ""))}, '
            f'Name:{_q(ref.get("name", ""))}}}')


def _binding_causes(new: dict[str, Any], old: dict[str, Any] | None, namespaced: bool) -> list[Cause]:
    out: list[Cause] = []
    ref = new.get("roleRef") or {}
    if old is not None:
        old_ref = old.get("roleRef") or {}
        if {k: old_ref.get(k, "") for k in ("apiGroup", "kind", "name")} != \
                {k: ref.get(k, "") for k in ("apiGroup", "kind", "name")}:
            return [_invalid("roleRef", _role_ref_go(ref), "cannot change roleRef")]
    if ref.get("apiGroup") != GROUP:
        out.append(_unsupported("roleRef.apiGroup", ref.get("apiGroup", ""), [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        out.append(_unsupported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        out.append(_required("roleRef.name"))
    for i, s in enumerate(new.get("subjects") or []):
        if not isinstance(s, dict):
            continue
        p = f"subjects[{i}]"
        if not s.get("name"):
            out.append(_required(f"{p}.name"))
        kind, group = s.get("kind"), s.get("apiGroup", "")
        if kind == "ServiceAccount":
            if group:
                out.append(_unsupported(f"{p}.apiGroup", group, [""]))
            if not namespaced and not s.get("namespace"):
                out.append(_required(f"{p}.namespace"))
        elif kind in ("User", "Group"):
            if group != GROUP:
                out.append(_unsupported(f"{p}.apiGroup", group, [GROUP]))
        else:
            out.append(_unsupported(f"{p}.kind", kind or "", ["ServiceAccount", "User", "Group"]))
    return out


def validate_role_binding(new: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    return _binding_causes(new, old, namespaced=True)


def validate_cluster_role_binding(new: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    return _binding_causes(new, old, namespaced=False)


def default_subjects(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """SetDefaults_Subject: User and Group subjects are in the rbac group when none is given."""
    for s in obj.get("subjects") or []:
        if isinstance(s, dict) and s.get("kind") in ("User", "Group") and not s.get("apiGroup"):
            s["apiGroup"] = GROUP


def install_admission(admission: Admission) -> None:
    admission.validate(GROUP, "Role", validate_role)
    admission.validate(GROUP, "ClusterRole", validate_cluster_role)
    for kind, fn in (("RoleBinding", validate_role_binding),
                     ("ClusterRoleBinding", validate_cluster_role_binding)):
        admission.default(GROUP, kind, default_subjects)
        admission.validate(GROUP, kind, fn)
