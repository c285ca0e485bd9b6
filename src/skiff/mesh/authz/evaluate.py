"""decide(): one authorization decision, naming the policy and rule that made it.

The order is Envoy's filter order as Istio builds it (pilot/pkg/security/authz/
builder): the CUSTOM filter (ext_authz, consulted only when an enforced CUSTOM
rule matches) -> AUDIT (logs, never decides) -> DENY (any matching rule denies)
-> ALLOW (if any enforced ALLOW policy selects the workload, one of its rules
must match; a policy without rules, `spec: {}`, matches nothing and so denies
all; `rules: [{}]` matches everything). Policies annotated
`istio.io/dry-run: "true"` run as Envoy shadow rules: they are evaluated where
their filter runs and reported in `dry_run_would`, never enforced, and do not
count as "an ALLOW policy selects the workload". Within an action the
effective rule is the first in Envoy's policy-name order (index.py finds it
among many rules without walking them all). HTTP requests have
their path normalized first (normalize.py); a path Envoy rejects is a 400
before any policy runs. Envoy only says "access denied"; here the Decision
says who and why (istio#39802).

Pure: the external authorizer of CUSTOM policies is a function passed in,
so the caller decides how (and whether) to call it. Neighbours: model.py
(compiled PolicySet), request.py (Request), the sidecar that answers a denial
with DENIED_STATUS / DENIED_BODY or closes the TCP connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from skiff.mesh.authz.index import INDEX_MIN, RuleIndex
from skiff.mesh.authz.model import PolicySet, RuleRef, WorkloadPolicies
from skiff.mesh.authz.normalize import PathRejected, matched_path
from skiff.mesh.authz.request import Request

__all__ = [
    "DENIED_BODY", "DENIED_CONTENT_TYPE", "DENIED_STATUS", "Decision", "DryRunResult",
    "ExtAuthz", "decide",
]

DENIED_STATUS = 403
DENIED_BODY = "RBAC: access denied"
DENIED_CONTENT_TYPE = "text/plain"
BAD_PATH_STATUS = 400

# (provider name, request) -> True allow / False deny / None: no such provider configured.
ExtAuthz = Callable[[str, Request], bool | None]


class DryRunResult(NamedTuple):
    """What a dry-run (shadow) filter would have done: Envoy's shadow_engine_result."""

    action: str               # ALLOW, DENY or CUSTOM
    allowed: bool
    policy: str | None        # ns/name of the shadow rule that matched, if any
    rule: int | None


class Decision(NamedTuple):
    """The verdict. A NamedTuple: built on every request, and a frozen dataclass costs ten
    times as much to construct."""

    allowed: bool
    action: str               # the deciding action: CUSTOM, DENY, ALLOW, or NONE (implicit)
    policy: str | None        # "ns/name" of the deciding policy; None when implicit
    rule: int | None          # index into that policy's spec.rules
    reason: str
    status: int | None = None          # HTTP status of a denial (403, or 400 for a bad path)
    path: str = ""                     # the normalized path matched (and forwarded)
    audit: tuple[str, int] | None = None   # AUDIT policy and rule that matched
    dry_run_would: tuple[DryRunResult, ...] = ()


def _first(wp: WorkloadPolicies, which: str, r: Request, path: str) -> RuleRef | None:
    """The first rule of `wp`'s `which` list (deny, allow, ...) that matches, in order."""
    refs: tuple[RuleRef, ...] = getattr(wp, which)
    http = r.http
    if len(refs) >= INDEX_MIN:
        idx = wp.indexes.get((which, http))
        if idx is None:
            idx = wp.indexes[(which, http)] = RuleIndex(refs, http)
        hit: RuleRef | None = idx.first(r, path)
        return hit
    for ref in refs:
        rule = ref.rule
        if rule is not None and (rule.http if http else rule.tcp).fn(r, path):
            return ref
    return None


def _shadow(wp: WorkloadPolicies, which: str, action: str, r: Request,
            path: str) -> DryRunResult:
    hit = _first(wp, which, r, path)
    if hit is None:
        return DryRunResult(action, action != "ALLOW", None, None)
    assert hit.rule is not None
    return DryRunResult(action, action == "ALLOW", hit.policy.key, hit.rule.index)


def _where(ref: RuleRef) -> str:
    assert ref.rule is not None
    return f"{ref.policy.action} policy {ref.policy.key} rule {ref.rule.index}"


def decide(policies: PolicySet, request: Request, *, normalization: str = "BASE",
           ext_authz: ExtAuthz | None = None) -> Decision:
    """Istio's verdict on `request` under `policies`, with the deciding policy and rule."""
    r = request
    path = ""
    if r.http:
        try:
            path = matched_path(r.path, normalization)
        except PathRejected as e:
            return Decision(False, "NONE", None, None, f"bad request: {e}", BAD_PATH_STATUS,
                            r.path)
    deny_status = DENIED_STATUS if r.http else None
    wp = policies.for_workload(r.destination)
    shadows: list[DryRunResult] = []

    # CUSTOM: ext_authz is triggered by a matching enforced CUSTOM rule.
    if wp.dry_custom:
        shadows.append(_shadow(wp, "dry_custom", "CUSTOM", r, path))
    if wp.custom:
        hit = _first(wp, "custom", r, path)
        if hit is not None:
            assert hit.rule is not None
            provider = hit.policy.provider or ""
            if len(wp.providers) > 1:
                verdict: bool | None = False
                why = (f"only one CUSTOM provider per workload is supported, found "
                       f"{', '.join(wp.providers)}")
            else:
                verdict = ext_authz(provider, r) if ext_authz is not None else None
                why = (f"extension provider {provider!r} allowed" if verdict else
                       f"extension provider {provider!r} denied" if verdict is False else
                       f"extension provider {provider!r} is not configured")
            if not verdict:
                return Decision(False, "CUSTOM", hit.policy.key, hit.rule.index,
                                f"denied by {_where(hit)}: {why}", deny_status, path,
                                dry_run_would=tuple(shadows))

    audited = None
    if wp.audit:
        a = _first(wp, "audit", r, path)
        if a is not None and a.rule is not None:
            audited = (a.policy.key, a.rule.index)

    if wp.deny or wp.dry_deny:
        if wp.dry_deny:
            shadows.append(_shadow(wp, "dry_deny", "DENY", r, path))
        hit = _first(wp, "deny", r, path)
        if hit is not None:
            assert hit.rule is not None
            return Decision(False, "DENY", hit.policy.key, hit.rule.index,
                            f"denied by {_where(hit)}", deny_status, path, audited,
                            tuple(shadows))

    if wp.dry_allow:
        shadows.append(_shadow(wp, "dry_allow", "ALLOW", r, path))
    if not wp.allow_policies:
        return Decision(True, "NONE", None, None, "allowed: no ALLOW policy selects the workload",
                        None, path, audited, tuple(shadows))
    hit = _first(wp, "allow", r, path)
    if hit is not None:
        assert hit.rule is not None
        return Decision(True, "ALLOW", hit.policy.key, hit.rule.index,
                        f"allowed by {_where(hit)}", None, path, audited, tuple(shadows))
    names = wp.allow_policies
    empty = wp.empty_allow
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    why = f"denied: no ALLOW policy matched ({len(names)} select the workload: {shown})"
    if empty:
        verb = "has no rules and allows" if len(empty) == 1 else "have no rules and allow"
        why += f"; {', '.join(empty)} {verb} nothing"
    return Decision(False, "NONE", None, None, why, deny_status, path, audited, tuple(shadows))
