"""Many rules, few candidates: an action's rules indexed by the exact values they require.

decide() walks an action's rules in Envoy's order until one matches, about 1 us a
rule. Where hundreds of policies select one workload, that walk is the whole cost,
though most rules cannot match the request at hand: a rule whose sources name exact
principals matches only a peer with one of those names; one whose sources name
exact namespaces, only a peer whose SPIFFE ID carries one of them; exact methods or
ports likewise. RuleIndex files each rule under one such requirement (its guard),
found in the compiled matcher tree: a Cond with positive values, all of them exact,
required by every alternative of the rule. A request then evaluates only the rules
filed under its own principal, namespaces, method and port, and the rules that have
no guard, in their original order: the first match, and so the deciding rule, is
the one the walk would have found (the guard is necessary for a match, never
sufficient; the rule's own matcher still decides).

What counts as exact follows the matchers in model.py: principals and methods
without `*` (a `*` anywhere makes a prefix, suffix or presence match); namespaces
without `*` or `/` (`/ns/<ns>/` must be found in the peer's URI SAN: with neither
character, that is a path segment after a segment `ns`, which is what the request
side lists); ports as numbers. A rule compiled to nothing (an HTTP-only field on
a TCP ALLOW rule) can never match and is left out. Below INDEX_MIN rules the walk
is cheaper than the lookups, and decide() walks.

Pure. Neighbours: model.py (the tree and WorkloadPolicies, which holds the
indexes once built), evaluate.py (the caller).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from skiff.mesh.authz.model import AllOf, AnyOf, Cond, Node, RuleRef, is_never
from skiff.mesh.authz.request import SPIFFE_PREFIX, Request

__all__ = ["INDEX_MIN", "RuleIndex", "guard_of", "request_keys"]

INDEX_MIN = 16

# Cond labels (the Source/Operation field, or the `when` key) -> guard kind, in the order
# a rule is filed by (the most selective first).
_KINDS = {"principals": "principal", "source.principal": "principal",
          "namespaces": "namespace", "source.namespace": "namespace",
          "methods": "method",
          "ports": "port", "destination.port": "port"}
PRIORITY = ("principal", "namespace", "method", "port")
_NEVER = "never"

Guard = dict[str, frozenset[Hashable]]


def _cond_guard(c: Cond) -> Guard:
    kind = _KINDS.get(c.key)
    if kind is None or c.pos is None or not c.values:
        return {}
    vals = c.values
    if any("*" in v for v in vals):
        return {}
    if kind == "namespace" and any("/" in v for v in vals):
        return {}
    if kind == "port":
        return {kind: frozenset(int(v) for v in vals)}
    return {kind: frozenset(vals)}


def guard_of(node: Node) -> Guard:
    """What a request must have for `node` to match it: guard kind -> the values one of
    which it must carry ({"never": ...} when nothing can match)."""
    if isinstance(node, Cond):
        return _cond_guard(node)
    if isinstance(node, AllOf):
        g: Guard = {}
        for item in node.items:
            for k, v in guard_of(item).items():
                if k not in g or len(v) < len(g[k]):
                    g[k] = v          # every item is required: the narrower one will do
        return g
    if isinstance(node, AnyOf):
        gs = [guard_of(i) for i in node.items]
        gs = [g for g in gs if _NEVER not in g]
        if not gs:
            return {_NEVER: frozenset()}
        common = set(gs[0]).intersection(*gs[1:])
        return {k: frozenset().union(*(g[k] for g in gs)) for k in common}
    if is_never(node):
        return {_NEVER: frozenset()}
    return {}


def _namespaces(uri: str) -> list[str]:
    # "/ns/X/" occurs in the URI: "ns" a segment after some "/", X the segment after it,
    # followed by another "/"
    parts = uri.split("/")
    return [parts[i + 1] for i in range(1, len(parts) - 2) if parts[i] == "ns"]


def request_keys(kind: str, r: Request) -> Sequence[Hashable]:
    """The values of `kind` that `r` carries."""
    if kind == "principal":
        uri = r.uri
        return (uri[len(SPIFFE_PREFIX):],) if uri is not None else ()
    if kind == "namespace":
        return _namespaces(r.uri) if r.uri is not None else ()
    if kind == "method":
        return (r.method,)
    return (r.port,)


class RuleIndex:
    """One action's rules for one workload on one filter chain (HTTP or TCP), filed by
    guard; first() answers as a walk of `refs` in order would."""

    __slots__ = ("buckets", "http", "refs", "unguarded")

    def __init__(self, refs: Sequence[RuleRef], http: bool) -> None:
        self.refs = tuple(refs)
        self.http = http
        self.unguarded: list[int] = []
        self.buckets: dict[str, dict[Hashable, list[int]]] = {}
        for i, ref in enumerate(self.refs):
            if ref.rule is None:            # a policy without rules matches nothing
                continue
            g = guard_of(ref.rule.http if http else ref.rule.tcp)
            if _NEVER in g:
                continue
            kind = next((k for k in PRIORITY if k in g), None)
            if kind is None:
                self.unguarded.append(i)
                continue
            bucket = self.buckets.setdefault(kind, {})
            for v in g[kind]:
                bucket.setdefault(v, []).append(i)

    def candidates(self, r: Request) -> list[int]:
        """Positions of the rules that may match `r`, in order."""
        out = list(self.unguarded)
        for kind, bucket in self.buckets.items():
            for key in request_keys(kind, r):
                hit = bucket.get(key)
                if hit:
                    out.extend(hit)
        if len(out) > 1:
            out = sorted(set(out))
        return out

    def first(self, r: Request, path: str) -> RuleRef | None:
        refs = self.refs
        http = self.http
        for i in self.candidates(r):
            ref = refs[i]
            rule = ref.rule
            assert rule is not None
            if (rule.http if http else rule.tcp).fn(r, path):
                return ref
        return None
