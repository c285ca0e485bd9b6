"""AuthorizationPolicy -> a compiled matcher tree, once per policy (Istio's authz model + builder).

A policy's rule becomes AllOf(AnyOf(from sources), AnyOf(to operations),
when conditions); a source or an operation is AllOf its fields; a field is a
Cond: any of `values` matches AND none of `notValues` does. Leaves follow
istio pilot/pkg/security/authz/model/generator.go and matcher/*.go:
- strings: exact `abc`, prefix `abc*`, suffix `*abc`, and `*` (regex `.+`:
  non-empty; for headers, hosts and methods Envoy's present-match);
  hosts compare case-insensitively (HostMatcher), everything else exactly;
- principals against the peer's URI SAN (`spiffe://` + value); namespaces as
  Istio's regex `.*/ns/<ns>/.*` on it (a `*` anywhere is `.*`); serviceAccounts
  `ns/sa` or `sa` (the policy's namespace) as `spiffe://.+/ns/NS/(.+/|)sa/SA(/.+)?`;
- ipBlocks / remoteIpBlocks / source.ip / remote.ip / destination.ip: CIDRs
  (a bare address is /32 or /128); ports / destination.port: numbers;
- paths: the normalized path without query; `{*}` / `{**}` path templates as
  Envoy's uri_template (one segment / the rest);
- requestPrincipals and request.auth.principal: `iss/sub` split at the last
  `/`, each side its own string match; audiences (`aud`), presenter (`azp`),
  claims[a][b]: a claim's string value or any element of its list.
Each rule is compiled twice, as Istio builds both filter chains: for HTTP, and
for TCP, where hosts, methods, paths, requestPrincipals, request.headers and
request.auth.* cannot be evaluated. There an ALLOW rule using any of them
never matches (the generator's error skips the rule), while DENY, AUDIT and
CUSTOM rules drop those fields and so match more (checkError ignores it);
bad values (a malformed CIDR or port) are treated the same way. istio.io's
"TCP Traffic" task (docs/tasks/security/authorization/authz-tcp) says it so:
ALLOW methods+ports on TCP, "the rule becomes invalid when it uses an
HTTP-only field (`methods`) for TCP traffic. Istio ignores the invalid ALLOW
rule"; DENY methods alone, "Istio doesn't understand the HTTP-only fields
while creating a DENY rule for tcp port and due to it's restrictive nature it
denies all the traffic to the tcp ports"; DENY methods+ports denies the port.

PolicySet indexes compiled policies by namespace; for_workload() selects the
ones that apply to a workload (its namespace and the root namespace; selector
matchLabels; targetRef(s) only for Gateway API gateways, as Istio's
WorkloadPolicyMatcher) and orders each action's rules by Envoy's policy name
`ns[NS]-policy[NAME]-rule[I]` (the RBAC filter's map order, which picks the
effective policy), memoised per workload.

Pure. Neighbours: request.py (the attributes leaves read), evaluate.py
(decide walks the selection), validate.py (apply-time checks of the same spec).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

from skiff.mesh.authz.request import SPIFFE_PREFIX, Request, Workload, ip_int

__all__ = [
    "ACTIONS", "DEFAULT_ROOT_NAMESPACE", "DRY_RUN_ANNOTATION", "GATEWAY_NAME_LABEL",
    "AllOf", "AnyOf", "CompiledPolicy", "CompiledRule", "Cond", "Node", "PolicySet",
    "RuleRef", "WorkloadPolicies", "compile_policies", "compile_policy", "is_never",
]

ACTIONS = ("ALLOW", "DENY", "AUDIT", "CUSTOM")
DEFAULT_ROOT_NAMESPACE = "istio-system"
DRY_RUN_ANNOTATION = "istio.io/dry-run"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
MEMO_MAX = 4096     # workloads (label sets) whose selection a PolicySet keeps at once

Test = Callable[[Request, str], bool]   # (request, normalized path) -> matched


class _Skip(Exception):
    """A value Envoy cannot use on this filter chain (HTTP-only on TCP) or at all (malformed)."""


# --- the tree ---------------------------------------------------------------------------

class Node:
    """A matcher; `fn` is the same test flattened into one callable (what decide() runs:
    a rule costs one call per leaf, not one per tree level)."""

    __slots__ = ("fn",)
    fn: Test

    def match(self, r: Request, path: str) -> bool:
        return self.fn(r, path)

    def describe(self) -> str:
        raise NotImplementedError


class Cond(Node):
    """One field: any of `values` (if given) and none of `not_values` (if given)."""

    __slots__ = ("key", "neg", "not_values", "pos", "values")

    def __init__(self, key: str, values: Sequence[str], not_values: Sequence[str],
                 pos: Test | None, neg: Test | None) -> None:
        self.key, self.values, self.not_values = key, tuple(values), tuple(not_values)
        self.pos, self.neg = pos, neg
        if pos is not None and neg is not None:
            self.fn = lambda r, p: pos(r, p) and not neg(r, p)
        elif neg is not None:
            self.fn = lambda r, p: not neg(r, p)
        else:
            assert pos is not None
            self.fn = pos

    def describe(self) -> str:
        parts = []
        if self.pos is not None:
            parts.append(f"{self.key} in {list(self.values)}")
        if self.neg is not None:
            parts.append(f"{self.key} not in {list(self.not_values)}")
        return " and ".join(parts) or "any"


class AllOf(Node):
    __slots__ = ("items",)

    def __init__(self, items: Iterable[Node]) -> None:
        self.items = tuple(items)
        fns = tuple(n.fn for n in self.items)
        if not fns:
            self.fn = lambda r, p: True
        elif len(fns) == 1:
            self.fn = fns[0]
        elif len(fns) == 2:
            a, b = fns
            self.fn = lambda r, p: a(r, p) and b(r, p)
        else:
            self.fn = lambda r, p: all(f(r, p) for f in fns)

    def describe(self) -> str:
        return " and ".join(f"({n.describe()})" for n in self.items) or "any"


class AnyOf(Node):
    __slots__ = ("items",)

    def __init__(self, items: Iterable[Node]) -> None:
        self.items = tuple(items)
        fns = tuple(n.fn for n in self.items)
        if not fns:
            self.fn = lambda r, p: False
        elif len(fns) == 1:
            self.fn = fns[0]
        else:
            self.fn = lambda r, p: any(f(r, p) for f in fns)

    def describe(self) -> str:
        return " or ".join(f"({n.describe()})" for n in self.items) or "nothing"


class _Never(Node):
    __slots__ = ()

    def __init__(self) -> None:
        self.fn = lambda r, p: False

    def describe(self) -> str:
        return "nothing"


NEVER = _Never()
ANY = AllOf(())


def is_never(node: Node) -> bool:
    """Whether `node` is the matcher of nothing (a rule a filter chain cannot use)."""
    return isinstance(node, _Never)


# --- string matching (matcher.StringMatcher / HeaderMatcher / HostMatcher) --------------

@dataclass(frozen=True)
class _Strings:
    exact: frozenset[str]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    present: bool
    fold: bool
    present_any: bool   # header present-match: present even if empty

    def __call__(self, s: str | None) -> bool:
        if s is None:
            return False
        if self.present and (self.present_any or s != ""):
            return True
        if self.fold:
            s = s.lower()
        if s in self.exact:
            return True
        if self.prefixes and s.startswith(self.prefixes):
            return True
        return bool(self.suffixes) and s.endswith(self.suffixes)


def _strings(values: Iterable[str], fold: bool = False, present_any: bool = False) -> _Strings:
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    present = False
    for v in values:
        if fold:
            v = v.lower()
        # Istio checks "*" first, then a leading "*", then a trailing one: "*a*" is suffix "a*".
        if v == "*":
            present = True
        elif v.startswith("*"):
            suffixes.append(v[1:])
        elif v.endswith("*"):
            prefixes.append(v[:-1])
        else:
            exact.add(v)
    return _Strings(frozenset(exact), tuple(prefixes), tuple(suffixes), present, fold, present_any)


# --- leaves per attribute ---------------------------------------------------------------

_Net = tuple[int, int, int]   # version, network as int, mask


def _cidr(value: str) -> _Net:
    try:
        n = ip_network(value.strip(), strict=False)
    except ValueError as e:
        raise _Skip(f"invalid IP address or CIDR {value!r}") from e
    bits = 32 if n.version == 4 else 128
    mask = ((1 << n.prefixlen) - 1) << (bits - n.prefixlen)
    return n.version, int(n.network_address), mask


def _ip_test(values: Sequence[str], attr: Callable[[Request], str]) -> Test:
    nets = tuple(_cidr(v) for v in values)

    def test(r: Request, _p: str) -> bool:
        a = ip_int(attr(r))
        if a is None:
            return False
        ver, x = a
        for v, n, m in nets:
            if v == ver and (x & m) == n:
                return True
        return False
    return test


def _port(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > 65535:   # not "²"
        raise _Skip(f"invalid port {value}")
    return int(value)


def _ports_test(values: Sequence[str]) -> Test:
    ports = frozenset(_port(v) for v in values)
    return lambda r, _p: r.port in ports


def _principal_test(values: Sequence[str]) -> Test:
    # StringMatcherWithPrefix(v, "spiffe://"): "*" is `.+`, "*x" is `spiffe://.*x`.
    m = _strings(values)

    def test(r: Request, _p: str) -> bool:
        uri = r.uri
        if uri is None:
            return False
        if m.present:
            return True
        p = uri[len(SPIFFE_PREFIX):] if uri.startswith(SPIFFE_PREFIX) else None
        if p is None:
            return False
        return p in m.exact or (bool(m.prefixes) and p.startswith(m.prefixes)) or (
            bool(m.suffixes) and p.endswith(m.suffixes))
    return test


def _namespace_test(values: Sequence[str]) -> Test:
    literal = tuple(f"/ns/{v}/" for v in values if "*" not in v)
    patterns = tuple(re.compile(".*/ns/" + ".*".join(re.escape(p) for p in v.split("*")) + "/.*",
                                re.DOTALL) for v in values if "*" in v)

    if len(literal) == 1 and not patterns:
        only = literal[0]
        return lambda r, _p: r.uri is not None and only in r.uri

    def test(r: Request, _p: str) -> bool:
        uri = r.uri
        if uri is None:
            return False
        for s in literal:
            if s in uri:
                return True
        return any(p.fullmatch(uri) for p in patterns)
    return test


def _service_account_test(values: Sequence[str], policy_ns: str) -> Test:
    pats = []
    for v in values:
        ns, sep, sa = v.partition("/")
        if not sep:
            ns, sa = policy_ns, v
        pats.append(re.compile(f"spiffe://.+/ns/{re.escape(ns)}/(.+/|)sa/{re.escape(sa)}(/.+)?",
                               re.DOTALL))

    def test(r: Request, _p: str) -> bool:
        uri = r.uri
        return uri is not None and any(p.fullmatch(uri) for p in pats)
    return test


def _trust_domain_test(values: Sequence[str]) -> Test:
    prefixes, pats = [], []
    for v in values:
        if v == "*":
            prefixes.append(SPIFFE_PREFIX)
        elif "*" not in v:
            prefixes.append(f"{SPIFFE_PREFIX}{v}/")
        else:
            a, _, b = v.partition("*")
            pats.append(re.compile(f"spiffe://{re.escape(a)}[^/]*{re.escape(b)}/.*", re.DOTALL))
    pre = tuple(prefixes)

    def test(r: Request, _p: str) -> bool:
        uri = r.uri
        if uri is None:
            return False
        return (bool(pre) and uri.startswith(pre)) or any(p.fullmatch(uri) for p in pats)
    return test


def _request_principal_test(values: Sequence[str]) -> Test:
    def side(v: str, how: str) -> Callable[[str], bool]:
        if how == "any":
            return lambda s: s != ""
        if how == "prefix":
            return lambda s: s.startswith(v)
        if how == "suffix":
            return lambda s: s.endswith(v)
        return lambda s: s == v

    pairs: list[tuple[Callable[[str], bool], Callable[[str], bool]]] = []
    for value in values:
        # generator.go requestPrincipalGenerator: split at the last "/" (issuers are URLs).
        iss, found, sub = value.rpartition("/")
        if not found:
            iss, sub = value, ""
        if value == "*":
            pairs.append((side("", "any"), side("", "any")))
        elif value.startswith("*"):
            if found:
                mi = side("", "any") if iss == "*" else side(iss[1:], "suffix")
                pairs.append((mi, side(sub, "exact")))
            else:
                pairs.append((side("", "any"), side(value[1:], "suffix")))
        elif value.endswith("*"):
            if found:
                ms = side("", "any") if sub == "*" else side(sub[:-1], "prefix")
                pairs.append((side(iss, "exact"), ms))
            else:
                pairs.append((side(value[:-1], "prefix"), side("", "any")))
        else:
            pairs.append((side(iss, "exact"), side(sub, "exact")))

    def test(r: Request, _p: str) -> bool:
        isub = r.issuer_subject()
        return isub is not None and any(mi(isub[0]) and ms(isub[1]) for mi, ms in pairs)
    return test


def _claim_test(path: Sequence[str], values: Sequence[str]) -> Test:
    m = _strings(values)

    def test(r: Request, _p: str) -> bool:
        v: Any = r.claims
        for k in path:
            if not isinstance(v, Mapping) or k not in v:
                return False
            v = v[k]
        # The extended JWT matcher: a string claim, or any element of a list claim.
        if isinstance(v, str):
            return m(v)
        if isinstance(v, list):
            return any(isinstance(x, str) and m(x) for x in v)
        return False
    return test


def _bracketed(s: str) -> str:
    if not (s.startswith("[") and s.endswith("]")):
        raise _Skip(f"expecting format [<NAME>], but found {s}")
    return s[1:-1]


def _nested_brackets(s: str) -> list[str]:
    names = re.findall(r"\[([^\[\]]*)\]", s)
    if names and "".join(f"[{n}]" for n in names) == s:
        return names
    return [_bracketed(s)]


def _header_test(name: str, values: Sequence[str]) -> Test:
    h = name.lower()
    m = _strings(values, present_any=True)
    return lambda r, _p: m(r.headers.get(h))


def _path_template(v: str) -> re.Pattern[str]:
    lit = "[a-zA-Z0-9-._~%!$&'()+,;:@=]"
    out = []
    for part in re.split(r"(\{\*\*\}|\{\*\})", v):
        if part == "{**}":
            out.append(f"(?:{lit}|/)*")
        elif part == "{*}":
            out.append(f"{lit}+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _paths_test(values: Sequence[str]) -> Test:
    plain = [v for v in values if "{*}" not in v and "{**}" not in v]
    templates = tuple(_path_template(v) for v in values if v not in plain)
    m = _strings(plain)
    if not templates:
        return lambda r, path: m(path)
    return lambda r, path: m(path) or any(t.fullmatch(path) for t in templates)


def _envoy_filter_test(key: str, values: Sequence[str]) -> Test:
    filt, _, rest = key[len("experimental."):].partition("[")
    if not rest.endswith("]"):
        raise _Skip(f"invalid key: {key}")
    field_name = rest[:-1]
    lists = _strings(v[1:-1] for v in values if v.startswith("[") and v.endswith("]"))
    plain = _strings(v for v in values if not (v.startswith("[") and v.endswith("]")))

    def test(r: Request, _p: str) -> bool:
        v = r.filter_metadata.get(filt, {}).get(field_name)
        if isinstance(v, str):
            return plain(v)
        if isinstance(v, list):
            return any(isinstance(x, str) and lists(x) for x in v)
        return False
    return test


# key -> (http only?, builder(values, key, policy namespace)); Source and Operation fields
# map onto the same keys as the `when` attributes they mean.
_Builder = Callable[[Sequence[str], str, str], Test]


def _str_attr(get: Callable[[Request], str | None], fold: bool = False,
              present_any: bool = False) -> _Builder:
    def build(values: Sequence[str], _k: str, _ns: str) -> Test:
        m = _strings(values, fold=fold, present_any=present_any)
        return lambda r, _p: m(get(r))
    return build


_EXACT_KEYS: dict[str, tuple[bool, _Builder]] = {
    "source.ip": (False, lambda v, _k, _n: _ip_test(v, lambda r: r.source_ip)),
    "remote.ip": (False, lambda v, _k, _n: _ip_test(v, lambda r: r.effective_remote_ip)),
    "source.namespace": (False, lambda v, _k, _n: _namespace_test(v)),
    "source.serviceAccount": (False, lambda v, _k, ns: _service_account_test(v, ns)),
    "source.trustDomain": (False, lambda v, _k, _n: _trust_domain_test(v)),
    "source.principal": (False, lambda v, _k, _n: _principal_test(v)),
    "request.auth.principal": (True, lambda v, _k, _n: _request_principal_test(v)),
    "request.auth.audiences": (True, lambda v, _k, _n: _claim_test(["aud"], v)),
    "request.auth.presenter": (True, lambda v, _k, _n: _claim_test(["azp"], v)),
    "destination.ip": (False, lambda v, _k, _n: _ip_test(v, lambda r: r.destination_ip)),
    "destination.port": (False, lambda v, _k, _n: _ports_test(v)),
    "connection.sni": (False, _str_attr(lambda r: r.sni)),
    # Operation fields (not `when` keys): Envoy's :authority, :method and path matchers.
    ":authority": (True, _str_attr(lambda r: r.host, fold=True, present_any=True)),
    ":method": (True, _str_attr(lambda r: r.method, present_any=True)),
    "path": (True, lambda v, _k, _n: _paths_test(v)),
}
_PREFIX_KEYS: dict[str, tuple[bool, _Builder]] = {
    "request.headers": (True, lambda v, k, _n: _header_test(
        _bracketed(k[len("request.headers"):]), v)),
    "request.auth.claims": (True, lambda v, k, _n: _claim_test(
        _nested_brackets(k[len("request.auth.claims"):]), v)),
    "experimental.envoy.filters.": (False, lambda v, k, _n: _envoy_filter_test(k, v)),
}

SOURCE_FIELDS = (  # (positive, negative, key), in the order generator.go inserts them
    ("principals", "notPrincipals", "source.principal"),
    ("requestPrincipals", "notRequestPrincipals", "request.auth.principal"),
    ("serviceAccounts", "notServiceAccounts", "source.serviceAccount"),
    ("trustDomains", "notTrustDomains", "source.trustDomain"),
    ("namespaces", "notNamespaces", "source.namespace"),
    ("remoteIpBlocks", "notRemoteIpBlocks", "remote.ip"),
    ("ipBlocks", "notIpBlocks", "source.ip"),
)
OPERATION_FIELDS = (
    ("hosts", "notHosts", ":authority"),
    ("methods", "notMethods", ":method"),
    ("paths", "notPaths", "path"),
    ("ports", "notPorts", "destination.port"),
)


class UnknownAttribute(ValueError):
    pass


def attribute(key: str) -> tuple[bool, _Builder]:
    """(http only?, builder) for a `when` key or an internal field key."""
    if key in _EXACT_KEYS:
        return _EXACT_KEYS[key]
    for prefix, entry in _PREFIX_KEYS.items():
        if key.startswith(prefix):
            return entry
    raise UnknownAttribute(f"unknown attribute {key}")


def _cond(key: str, label: str, values: Sequence[str], not_values: Sequence[str],
          policy_ns: str, for_tcp: bool, strict: bool) -> Cond | None:
    """The Cond for one field, None when nothing of it is left. `strict` (ALLOW): a value
    the chain cannot use makes the whole rule unusable (raises _Skip); otherwise (DENY,
    AUDIT, CUSTOM) such values are dropped, which widens the rule."""
    http_only, build = attribute(key)
    if not values and not not_values:
        return None
    if for_tcp and http_only:
        if strict:
            raise _Skip(f"{key!r} is HTTP only")
        return None

    def side(vals: Sequence[str]) -> tuple[Test | None, list[str]]:
        if not vals:
            return None, []
        try:
            return build(vals, key, policy_ns), list(vals)
        except _Skip:
            if strict:
                raise
        kept = []   # keep what can be built, value by value
        for v in vals:
            try:
                build([v], key, policy_ns)
                kept.append(v)
            except _Skip:
                pass
        return (build(kept, key, policy_ns) if kept else None), kept

    pos, pv = side(values)
    neg, nv = side(not_values)
    if pos is None and neg is None:
        return None
    return Cond(label, pv, nv, pos, neg)


def _strs(v: Any) -> list[str]:
    return [str(x) for x in v] if isinstance(v, list) else []


def _compile_rule(rule: Mapping[str, Any], policy_ns: str, for_tcp: bool,
                  strict: bool) -> Node:
    whens: list[Node] = []
    for w in rule.get("when") or []:
        key = str((w or {}).get("key") or "")
        c = _cond(key, key, _strs(w.get("values")), _strs(w.get("notValues")),
                  policy_ns, for_tcp, strict)
        if c is not None:
            whens.append(c)
    parts: list[Node] = []
    froms = rule.get("from")
    if froms:
        alts = []
        for f in froms:
            src = (f or {}).get("source") or {}
            conds = [_cond(key, pos, _strs(src.get(pos)), _strs(src.get(neg)), policy_ns,
                           for_tcp, strict) for pos, neg, key in SOURCE_FIELDS]
            alts.append(AllOf(c for c in conds if c is not None))
        parts.append(alts[0] if len(alts) == 1 else AnyOf(alts))
    tos = rule.get("to")
    if tos:
        alts = []
        for t in tos:
            op = (t or {}).get("operation") or {}
            conds = [_cond(key, pos, _strs(op.get(pos)), _strs(op.get(neg)), policy_ns,
                           for_tcp, strict) for pos, neg, key in OPERATION_FIELDS]
            alts.append(AllOf(c for c in conds if c is not None))
        parts.append(alts[0] if len(alts) == 1 else AnyOf(alts))
    parts.extend(whens)
    return parts[0] if len(parts) == 1 else AllOf(parts)


# --- compiled policies ------------------------------------------------------------------

@dataclass(frozen=True)
class CompiledRule:
    index: int
    http: Node
    tcp: Node
    envoy_name: str          # ns[NS]-policy[NAME]-rule[I]: Envoy's RBAC map key
    skipped: str | None = None   # why Istio would not generate this rule at all


@dataclass(frozen=True)
class CompiledPolicy:
    namespace: str
    name: str
    action: str
    provider: str | None
    dry_run: bool
    selector: tuple[tuple[str, str], ...] | None
    target_refs: tuple[Mapping[str, str], ...]
    rules: tuple[CompiledRule, ...]
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _envoy_name(ns: str, name: str, i: int) -> str:
    return f"ns[{ns}]-policy[{name}]-rule[{i}]"


def compile_policy(obj: Mapping[str, Any]) -> CompiledPolicy:
    """One AuthorizationPolicy object (v1beta1 or v1) compiled into matchers."""
    meta = obj.get("metadata") or {}
    ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    spec = obj.get("spec") or {}
    action = str(spec.get("action") or "ALLOW")
    notes: list[str] = []
    dry = str((meta.get("annotations") or {}).get(DRY_RUN_ANNOTATION, "")).strip().lower()
    # strconv.ParseBool: anything else is an error Istio logs, and the policy is enforced.
    dry_run = dry in ("1", "t", "true")
    if dry and dry not in ("1", "t", "true", "0", "f", "false"):
        notes.append(f"failed to parse the value of {DRY_RUN_ANNOTATION}: {dry!r}")
    sel = spec.get("selector")
    selector = tuple(sorted((str(k), str(v)) for k, v in (sel.get("matchLabels") or {}).items())) \
        if isinstance(sel, Mapping) else None
    refs = list(spec.get("targetRefs") or [])
    if not refs and spec.get("targetRef"):
        refs = [spec["targetRef"]]
    provider = (spec.get("provider") or {}).get("name") if action == "CUSTOM" else None
    strict = action == "ALLOW"
    rules: list[CompiledRule] = []
    for i, rule in enumerate(spec.get("rules") or []):
        en = _envoy_name(ns, name, i)
        if rule is None:
            rules.append(CompiledRule(i, NEVER, NEVER, en, "nil rule"))
            continue
        try:
            http = _compile_rule(rule, ns, False, strict)
        except UnknownAttribute as e:   # model.New fails: skipped for every action
            rules.append(CompiledRule(i, NEVER, NEVER, en, str(e)))
            continue
        except _Skip as e:
            rules.append(CompiledRule(i, NEVER, NEVER, en, str(e)))
            continue
        try:
            tcp = _compile_rule(rule, ns, True, strict)
            rules.append(CompiledRule(i, http, tcp, en))
        except _Skip as e:
            rules.append(CompiledRule(i, http, NEVER, en, f"on TCP: {e}"))
    return CompiledPolicy(ns, name, action, str(provider) if provider else None, dry_run,
                          selector, tuple(refs), tuple(rules), tuple(notes))


# --- selection --------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleRef:
    policy: CompiledPolicy
    rule: CompiledRule | None   # None: a policy without rules (never matches)


@dataclass(frozen=True)
class WorkloadPolicies:
    """The policies applying to one workload, by action, each as rules in Envoy's order."""

    custom: tuple[RuleRef, ...] = ()
    deny: tuple[RuleRef, ...] = ()
    allow: tuple[RuleRef, ...] = ()
    audit: tuple[RuleRef, ...] = ()
    dry_custom: tuple[RuleRef, ...] = ()
    dry_deny: tuple[RuleRef, ...] = ()
    dry_allow: tuple[RuleRef, ...] = ()
    allow_policies: tuple[str, ...] = ()   # enforced ALLOW policies selecting the workload
    empty_allow: tuple[str, ...] = ()      # those of them without rules (allow nothing)
    providers: tuple[str, ...] = ()        # distinct CUSTOM providers (enforced)
    # (action field, http?) -> its index.RuleIndex, built on first use where there are many
    # rules (a cache beside the memoised selection: same rules, same index)
    indexes: dict[tuple[str, bool], Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def none(self) -> bool:
        """No policy at all selects the workload: every well-formed request is allowed."""
        return not (self.custom or self.deny or self.allow or self.audit or self.dry_custom
                    or self.dry_deny or self.dry_allow or self.allow_policies)


def _refs(policies: Iterable[CompiledPolicy]) -> tuple[RuleRef, ...]:
    out: list[RuleRef] = []
    for p in policies:
        if p.rules:
            out.extend(RuleRef(p, r) for r in p.rules)
        else:
            out.append(RuleRef(p, None))
    out.sort(key=lambda x: x.rule.envoy_name if x.rule else _envoy_name(
        x.policy.namespace, x.policy.name, 0))
    return tuple(out)


@dataclass
class PolicySet:
    """Compiled policies of the mesh, indexed by namespace. Immutable once built; the
    per-workload selection is memoised (a cache, not state: same input, same answer)."""

    by_namespace: dict[str, list[CompiledPolicy]]
    root_namespace: str = DEFAULT_ROOT_NAMESPACE
    _memo: dict[Workload, WorkloadPolicies] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_namespace.values())

    def applies(self, p: CompiledPolicy, w: Workload) -> bool:
        """WorkloadPolicyMatcher.ShouldAttachPolicy for a sidecar or a Gateway API gateway."""
        labels = w.label_map()
        gateway = labels.get(GATEWAY_NAME_LABEL)
        if gateway is None:
            if p.target_refs:      # targetRefs never select a sidecar workload
                return False
            return p.selector is None or all(labels.get(k) == v for k, v in p.selector)
        if not p.target_refs:
            return p.selector is None or all(labels.get(k) == v for k, v in p.selector)
        for ref in p.target_refs:
            if p.namespace != w.namespace or ref.get("namespace") not in (None, "", w.namespace):
                continue
            if (ref.get("group") == GATEWAY_API_GROUP and ref.get("kind") == "Gateway"
                    and ref.get("name") == gateway):
                return True
        return False

    def for_workload(self, w: Workload) -> WorkloadPolicies:
        hit = self._memo.get(w)
        if hit is not None:
            return hit
        if len(self._memo) >= MEMO_MAX:
            # label sets come and go with rollouts (pod-template-hash): a cache, not a record
            self._memo.clear()
        seen: list[CompiledPolicy] = []
        for ns in dict.fromkeys((self.root_namespace, w.namespace)):
            seen.extend(p for p in self.by_namespace.get(ns, ()) if self.applies(p, w))
        enforced = [p for p in seen if not p.dry_run]
        dry = [p for p in seen if p.dry_run]

        def of(ps: list[CompiledPolicy], action: str) -> list[CompiledPolicy]:
            return [p for p in ps if p.action == action]
        allow = of(enforced, "ALLOW")
        custom = of(enforced, "CUSTOM")
        wp = WorkloadPolicies(
            custom=_refs(custom), deny=_refs(of(enforced, "DENY")), allow=_refs(allow),
            audit=_refs(of(seen, "AUDIT")), dry_custom=_refs(of(dry, "CUSTOM")),
            dry_deny=_refs(of(dry, "DENY")), dry_allow=_refs(of(dry, "ALLOW")),
            allow_policies=tuple(sorted(p.key for p in allow)),
            empty_allow=tuple(sorted(p.key for p in allow if not p.rules)),
            providers=tuple(sorted({p.provider or "" for p in custom})))
        self._memo[w] = wp
        return wp


def compile_policies(objs: Iterable[Mapping[str, Any]],
                     root_namespace: str = DEFAULT_ROOT_NAMESPACE) -> PolicySet:
    """Every AuthorizationPolicy object compiled once and indexed for decide()."""
    by_ns: dict[str, list[CompiledPolicy]] = {}
    for o in objs:
        p = compile_policy(o)
        by_ns.setdefault(p.namespace, []).append(p)
    return PolicySet(by_ns, root_namespace)
