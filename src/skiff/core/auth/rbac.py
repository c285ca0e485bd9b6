"""RBAC, the decision: request attributes + the cluster's roles and bindings -> allow or deny.

A port of k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac (RuleAllows,
appliesTo, the visitor's order and reasons) and of the forbidden message
builder of k8s.io/apiserver pkg/endpoints/handlers/responsewriters. Pure: the
Policy below is plain data kept up to date from watch events by a shell
(controllers.py); authorize() reads it and never does I/O.

The Policy indexes bindings by subject: ("User", name) and ("Group", name)
keys, a ServiceAccount subject under the user name it authenticates as
(system:serviceaccount:NS:NAME). A decision looks up only the bindings of
the requester's name and groups (cluster-wide, then in the request's
namespace), never every binding. Rules are compiled to sets once, when a
role changes. Neighbours: requestinfo.py (Attributes from an HTTP request),
gate.py (the shell that calls authorize), reviews.py (SubjectAccessReviews
and SelfSubjectRulesReview use authorize and rules_for).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.core.client import ApiError, Obj
from skiff.core.selectors import SelectorError, from_label_selector_object

GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"
SubjectKey = tuple[str, str]    # ("User" | "Group", name)


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Attributes:
    """authorizer.Attributes: who asks to do what (a resource request, or a non-resource path)."""
    user: UserInfo
    verb: str
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class Rule:
    """A PolicyRule compiled for matching (sets instead of lists)."""
    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()
    source: Obj = field(default_factory=dict, compare=False, hash=False)


def compile_rule(r: Mapping[str, Any]) -> Rule:
    def strs(key: str) -> list[str]:
        v = r.get(key) or []
        return [str(x) for x in v] if isinstance(v, list) else []
    return Rule(frozenset(strs("verbs")), frozenset(strs("apiGroups")), frozenset(strs("resources")),
                frozenset(strs("resourceNames")), tuple(strs("nonResourceURLs")), dict(r))


def compile_rules(rules: Any) -> tuple[Rule, ...]:
    return tuple(compile_rule(r) for r in rules or [] if isinstance(r, Mapping))


def rule_allows(a: Attributes, r: Rule) -> bool:
    """RuleAllows: verb, then group/resource/name for resource requests, or the path."""
    if "*" not in r.verbs and a.verb not in r.verbs:
        return False
    if a.resource_request:
        if "*" not in r.api_groups and a.api_group not in r.api_groups:
            return False
        combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        if "*" not in r.resources and combined not in r.resources and not (
                a.subresource and f"*/{a.subresource}" in r.resources):
            return False
        return not r.resource_names or a.name in r.resource_names
    for url in r.non_resource_urls:
        if url == "*" or url == a.path or (url.endswith("*") and a.path.startswith(url.rstrip("*"))):
            return True
    return False


# --- the policy: roles and bindings, indexed -----------------------------------------------

@dataclass(frozen=True)
class Binding:
    kind: str                  # RoleBinding | ClusterRoleBinding
    namespace: str             # "" for a ClusterRoleBinding
    name: str
    role_kind: str             # Role | ClusterRole
    role_name: str
    subjects: tuple[tuple[SubjectKey, Obj], ...]   # (key, the subject as written)

    def describe(self, subject: Obj) -> str:
        """The reason's source (clusterRoleBindingDescriber / roleBindingDescriber)."""
        name = f"{self.name}/{self.namespace}" if self.namespace else self.name
        return f'{self.kind} "{name}" of {self.role_kind} "{self.role_name}" to ' \
               f"{describe_subject(subject, self.namespace)}"


def describe_subject(s: Obj, namespace: str) -> str:
    kind, name = s.get("kind", ""), s.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{s.get("namespace") or namespace}"'
    return f'{kind} "{name}"'


def subject_key(s: Mapping[str, Any], binding_namespace: str) -> SubjectKey | None:
    """The index key of a subject (appliesToUser): a ServiceAccount is its user name; one
    with no namespace takes the RoleBinding's, and in a ClusterRoleBinding matches nobody."""
    kind, name = s.get("kind"), str(s.get("name", ""))
    if kind == "User":
        return ("User", name)
    if kind == "Group":
        return ("Group", name)
    if kind == "ServiceAccount":
        ns = str(s.get("namespace") or binding_namespace)
        return ("User", f"{SA_PREFIX}{ns}:{name}") if ns else None
    return None


def user_keys(u: UserInfo) -> list[SubjectKey]:
    return [("User", u.name), *(("Group", g) for g in u.groups)]


def binding_of(kind: str, obj: Mapping[str, Any]) -> Binding:
    meta = obj.get("metadata") or {}
    ns = str(meta.get("namespace", "")) if kind == "RoleBinding" else ""
    ref = obj.get("roleRef") or {}
    subjects: list[tuple[SubjectKey, Obj]] = []
    for s in obj.get("subjects") or []:
        if isinstance(s, Mapping):
            key = subject_key(s, ns)
            if key is not None:
                subjects.append((key, dict(s)))
    return Binding(kind, ns, str(meta.get("name", "")), str(ref.get("kind", "")),
                   str(ref.get("name", "")), tuple(subjects))


@dataclass
class Policy:
    """Every Role, ClusterRole, RoleBinding and ClusterRoleBinding, as the authorizer needs them."""
    cluster_roles: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    cluster_role_objects: dict[str, Obj] = field(default_factory=dict)   # for aggregation
    roles: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    cluster_bindings: dict[str, Binding] = field(default_factory=dict)
    bindings: dict[tuple[str, str], Binding] = field(default_factory=dict)
    _cluster_by_subject: dict[SubjectKey, dict[str, Binding]] = field(default_factory=dict)
    _by_subject: dict[tuple[str, SubjectKey], dict[str, Binding]] = field(default_factory=dict)

    # --- keeping it: one call per watch event ---------------------------------------------
    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """Fold one watch event (ADDED, MODIFIED, DELETED) of an rbac kind into the policy."""
        meta = obj.get("metadata") or {}
        name, ns = str(meta.get("name", "")), str(meta.get("namespace", ""))
        gone = event == "DELETED"
        if kind == "ClusterRole":
            if gone:
                self.cluster_roles.pop(name, None)
                self.cluster_role_objects.pop(name, None)
            else:
                self.cluster_roles[name] = compile_rules(obj.get("rules"))
                self.cluster_role_objects[name] = dict(obj)
        elif kind == "Role":
            if gone:
                self.roles.pop((ns, name), None)
            else:
                self.roles[(ns, name)] = compile_rules(obj.get("rules"))
        elif kind == "ClusterRoleBinding":
            self._unindex(self.cluster_bindings.pop(name, None))
            if not gone:
                b = binding_of(kind, obj)
                self.cluster_bindings[name] = b
                self._index(b)
        elif kind == "RoleBinding":
            self._unindex(self.bindings.pop((ns, name), None))
            if not gone:
                b = binding_of(kind, obj)
                self.bindings[(ns, name)] = b
                self._index(b)

    def replace(self, kind: str, objs: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list of `kind` (after a re-list): drop what is not in it any more."""
        objs = list(objs)
        keep = {(str((o.get("metadata") or {}).get("namespace", "")),
                 str((o.get("metadata") or {}).get("name", ""))) for o in objs}
        if kind == "ClusterRole":
            for n in [n for n in self.cluster_roles if ("", n) not in keep]:
                self.apply(kind, "DELETED", {"metadata": {"name": n}})
        elif kind == "Role":
            for k in [k for k in self.roles if k not in keep]:
                self.apply(kind, "DELETED", {"metadata": {"namespace": k[0], "name": k[1]}})
        elif kind == "ClusterRoleBinding":
            for n in [n for n in self.cluster_bindings if ("", n) not in keep]:
                self.apply(kind, "DELETED", {"metadata": {"name": n}})
        elif kind == "RoleBinding":
            for k in [k for k in self.bindings if k not in keep]:
                self.apply(kind, "DELETED", {"metadata": {"namespace": k[0], "name": k[1]}})
        for o in objs:
            self.apply(kind, "ADDED", o)

    def _index(self, b: Binding) -> None:
        for key, _ in b.subjects:
            if b.namespace:
                self._by_subject.setdefault((b.namespace, key), {})[b.name] = b
            else:
                self._cluster_by_subject.setdefault(key, {})[b.name] = b

    def _unindex(self, b: Binding | None) -> None:
        if b is None:
            return
        for key, _ in b.subjects:
            idx = self._by_subject.get((b.namespace, key)) if b.namespace \
                else self._cluster_by_subject.get(key)
            if idx is not None:
                idx.pop(b.name, None)
                if not idx:
                    if b.namespace:
                        del self._by_subject[(b.namespace, key)]
                    else:
                        del self._cluster_by_subject[key]

    # --- reading it ------------------------------------------------------------------------
    def bindings_for(self, user: UserInfo, namespace: str) -> list[tuple[Binding, Obj]]:
        """The user's ClusterRoleBindings (namespace "") or RoleBindings in `namespace`, each
        with the first subject that names the user, in name order (as the lister gives them)."""
        keys = user_keys(user)
        found: dict[str, Binding] = {}
        for key in keys:
            idx = self._by_subject.get((namespace, key)) if namespace \
                else self._cluster_by_subject.get(key)
            if idx:
                found.update(idx)
        out: list[tuple[Binding, Obj]] = []
        wanted = set(keys)
        for name in sorted(found):
            b = found[name]
            subject = next(s for k, s in b.subjects if k in wanted)
            out.append((b, subject))
        return out

    def role_rules(self, b: Binding) -> tuple[tuple[Rule, ...], str]:
        """(rules, "") or ((), the not-found error upstream's resolver reports)."""
        if b.role_kind == "ClusterRole":
            rules = self.cluster_roles.get(b.role_name)
            if rules is None:
                return (), f'clusterrole.{GROUP} "{b.role_name}" not found'
            return rules, ""
        if b.role_kind == "Role" and b.namespace:
            rules = self.roles.get((b.namespace, b.role_name))
            if rules is None:
                return (), f'role.{GROUP} "{b.role_name}" not found'
            return rules, ""
        return (), f'unsupported role reference kind: "{b.role_kind}"'

    def aggregating(self) -> list[str]:
        return sorted(n for n, o in self.cluster_role_objects.items() if o.get("aggregationRule"))


def _aggregate_errors(errors: list[str]) -> str:
    uniq = list(dict.fromkeys(errors))
    return uniq[0] if len(uniq) == 1 else "[" + ", ".join(uniq) + "]"


def authorize(policy: Policy, a: Attributes) -> Decision:
    """The RBAC authorizer: cluster-wide bindings first, then the namespace's; the first rule
    that allows wins. Deny carries a reason only when a binding's role could not be found."""
    errors: list[str] = []
    scopes = [""] + ([a.namespace] if a.namespace else [])
    for ns in scopes:
        for b, subject in policy.bindings_for(a.user, ns):
            rules, err = policy.role_rules(b)
            if err:
                errors.append(err)
                continue
            for r in rules:
                if rule_allows(a, r):
                    return Decision(True, f"RBAC: allowed by {b.describe(subject)}")
    return Decision(False, f"RBAC: {_aggregate_errors(errors)}" if errors else "")


def rules_for(policy: Policy, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
    """Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview), and errors."""
    out: list[Rule] = []
    errors: list[str] = []
    for ns in [""] + ([namespace] if namespace else []):
        for b, _ in policy.bindings_for(user, ns):
            rules, err = policy.role_rules(b)
            if err:
                errors.append(err)
            out.extend(rules)
    return out, errors


# --- forbidden (responsewriters.Forbidden + apierrors.NewForbidden) -------------------------

def forbidden(a: Attributes, reason: str = "") -> ApiError:
    """403 with kube-apiserver's message, e.g. `secrets "x" is forbidden: User "u" cannot get
    resource "secrets" in API group "" in the namespace "ns"`."""
    user = a.user.name
    if not a.resource_request:
        msg = f'User "{user}" cannot {a.verb} path "{a.path}"'
    else:
        res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
        msg = f'User "{user}" cannot {a.verb} resource "{res}" in API group "{a.api_group}" {where}'
    msg = msg.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if reason:
        msg = f"{msg}: {reason}"
    return forbidden_error(a.api_group, a.resource if a.resource_request else "", a.name, msg)


def forbidden_error(group: str, resource: str, name: str, err: str) -> ApiError:
    """apierrors.NewForbidden(groupResource, name, err)."""
    gr = f"{resource}.{group}" if group else resource
    if not resource and not group:
        message = f"forbidden: {err}"
    elif not name:
        message = f"{gr} is forbidden: {err}"
    else:
        message = f'{gr} "{name}" is forbidden: {err}'
    details: Obj = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if resource:
        details["kind"] = resource
    return ApiError(403, "Forbidden", message, details)


# --- escalation prevention (pkg/registry/rbac/validation: ConfirmNoEscalation, Covers) ------

MAX_BREAKDOWN = 10_000   # single-permission rules one check may expand a role into


def _breakdown(r: Rule) -> Iterator[Rule]:
    """BreakdownRule: one rule per verb x group x resource (x name), or per verb x URL."""
    for group in sorted(r.api_groups):
        for resource in sorted(r.resources):
            for verb in sorted(r.verbs):
                if r.resource_names:
                    for name in sorted(r.resource_names):
                        yield Rule(frozenset({verb}), frozenset({group}), frozenset({resource}),
                                   frozenset({name}))
                else:
                    yield Rule(frozenset({verb}), frozenset({group}), frozenset({resource}))
    for url in r.non_resource_urls:
        for verb in sorted(r.verbs):
            yield Rule(frozenset({verb}), non_resource_urls=(url,))


def _has_all(owner: frozenset[str], wanted: frozenset[str]) -> bool:
    return "*" in owner or wanted <= owner


def _resource_covered(owner: frozenset[str], resource: str) -> bool:
    if "*" in owner or resource in owner:
        return True
    sub = resource.partition("/")[2]
    return bool(sub) and f"*/{sub}" in owner


def _url_covered(owner: tuple[str, ...], url: str) -> bool:
    return any(o == "*" or o == url or (o.endswith("*") and url.startswith(o[:-1])) for o in owner)


def rule_covers(owner: Rule, r: Rule) -> bool:
    """ruleCovers for one broken-down rule."""
    if not _has_all(owner.verbs, r.verbs):
        return False
    if r.non_resource_urls:
        return all(_url_covered(owner.non_resource_urls, u) for u in r.non_resource_urls)
    if not _has_all(owner.api_groups, r.api_groups):
        return False
    if not all(_resource_covered(owner.resources, res) for res in r.resources):
        return False
    return not owner.resource_names or (bool(r.resource_names) and r.resource_names <= owner.resource_names)


def uncovered(owner: Iterable[Rule], requested: Iterable[Rule]) -> list[Rule] | None:
    """The single permissions of `requested` no rule of `owner` covers (empty: all covered);
    None when the requested rules expand past MAX_BREAKDOWN (too large to check: refused)."""
    owned = list(owner)
    missing: list[Rule] = []
    count = 0
    for r in requested:
        for single in _breakdown(r):
            count += 1
            if count > MAX_BREAKDOWN:
                return None
            if not any(rule_covers(o, single) for o in owned):
                missing.append(single)
    return missing


def _go_rule(r: Rule) -> str:
    """A missing permission as upstream prints it: {APIGroups:[""], Resources:["secrets"], ...}."""
    def q(values: Iterable[str]) -> str:
        return "[" + " ".join(f'"{v}"' for v in values) + "]"
    parts = []
    if r.non_resource_urls:
        parts.append(f"NonResourceURLs:{q(r.non_resource_urls)}")
    else:
        parts += [f"APIGroups:{q(sorted(r.api_groups))}", f"Resources:{q(sorted(r.resources))}"]
        if r.resource_names:
            parts.append(f"ResourceNames:{q(sorted(r.resource_names))}")
    parts.append(f"Verbs:{q(sorted(r.verbs))}")
    return "{" + ", ".join(parts) + "}"


def escalation_error(user: UserInfo, missing: list[Rule] | None) -> str:
    """The text of the Forbidden error ConfirmNoEscalation returns."""
    groups = "[" + " ".join(user.groups) + "]"
    head = f'user "{user.name}" (groups={groups}) is attempting to grant RBAC permissions not ' \
           "currently held"
    if missing is None:
        return f"{head}: the role has more than {MAX_BREAKDOWN} single permissions to check"
    return head + ":\n" + "\n".join(_go_rule(r) for r in missing)


# --- ClusterRole aggregation (clusterroleaggregation controller) ---------------------------

def aggregated_rules(cluster_roles: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Obj]]:
    """For each ClusterRole with an aggregationRule: the union of the rules of the ClusterRoles
    its selectors match (by name, duplicates dropped), to a fixpoint, since an aggregated role
    (edit) is itself aggregated into another (admin)."""
    rules: dict[str, list[Obj]] = {n: list(o.get("rules") or []) for n, o in cluster_roles.items()}
    selectors: dict[str, list[Any]] = {}
    for n, o in cluster_roles.items():
        ar = o.get("aggregationRule")
        if not isinstance(ar, Mapping):
            continue
        sels = []
        for s in ar.get("clusterRoleSelectors") or []:
            try:
                sels.append(from_label_selector_object(s))
            except SelectorError:
                continue
        selectors[n] = sels
    for _ in range(len(selectors) + 1):
        changed = False
        for n, sels in sorted(selectors.items()):
            out: list[Obj] = []
            for other in sorted(cluster_roles):
                if other == n:
                    continue
                labels = (cluster_roles[other].get("metadata") or {}).get("labels") or {}
                if any(s.matches(labels) for s in sels):
                    for r in rules[other]:
                        if r not in out:
                            out.append(r)
            if out != rules[n]:
                rules[n] = out
                changed = True
        if not changed:
            break
    return {n: rules[n] for n in selectors}


def iter_resource_rules(rules: Iterable[Rule]) -> Iterator[Obj]:
    """The resource rules as SelfSubjectRulesReview's status.resourceRules (as written)."""
    for r in rules:
        if r.resources or r.api_groups:
            src = r.source
            d: Obj = {"verbs": list(src.get("verbs") or []),
                      "apiGroups": list(src.get("apiGroups") or []),
                      "resources": list(src.get("resources") or [])}
            if r.resource_names:
                d["resourceNames"] = list(src.get("resourceNames") or [])
            yield d


def iter_non_resource_rules(rules: Iterable[Rule]) -> Iterator[Obj]:
    for r in rules:
        if r.non_resource_urls:
            yield {"verbs": list(r.source.get("verbs") or []),
                   "nonResourceURLs": list(r.non_resource_urls)}
