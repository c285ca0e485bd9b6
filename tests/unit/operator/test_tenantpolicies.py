"""tenant_policies(): the knative-istio-authz chart (1.31.0) as data.

(a) the golden files for the guide's two tenants; (b) equality with the chart itself,
rendered from the local mirror of openshift-knative/knative-istio-authz-chart at 41b6121
by a small renderer of the Go template subset its six templates use (helm is not
installed here; skipped when the mirror is absent); (c) every object passes skiff's own
AuthorizationPolicy schema, name rule and Istio validation; (d) bad input is refused with
a clear message; (e) to_yaml.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.core.validation import NAME_RULES, validate
from skiff.mesh import crds as mesh_crds
from skiff.mesh.authz.validate import validate_authorization_policy
from skiff.operator.tenantpolicies import TenantPolicyError, tenant_policies, to_yaml

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "tenant-policies"
EXAMPLES = ROOT / "examples" / "tenant-isolation"
CHART = Path("/work/.mirror/openshift-knative+knative-istio-authz-chart/repo")
CHART_COMMIT = "41b6121"
TEMPLATES = (  # helm template sorts the chart's files by name
    "common-allow-knative-to-ns.yaml",
    "common-allow-via-knative-serving.yaml",
    "eventing-allow-ns-to-kafka-broker-reply.yaml",
    "eventing-allow-ns-to-mt-channel-based-broker-reply.yaml",
    "eventing-allow-to-knative-eventing-receiver.yaml",
    "serving-allow-wait-for-drain.yaml",
)
TENANTS = {"team-alpha": ["team-alpha-1", "team-alpha-2"],
           "team-bravo": ["team-bravo-1", "team-bravo-2"]}


# --- (a) golden ---------------------------------------------------------------------------

@pytest.mark.parametrize("tenant", sorted(TENANTS))
def test_golden(tenant: str) -> None:
    got = to_yaml(tenant_policies(tenant, TENANTS[tenant]))
    assert got == (GOLDEN / f"{tenant}.yaml").read_text()


@pytest.mark.parametrize(("tenant", "example"), [("team-alpha", "02-team-alpha.yaml"),
                                                 ("team-bravo", "03-team-bravo.yaml")])
def test_examples_are_the_golden_files(tenant: str, example: str) -> None:
    assert (EXAMPLES / example).read_text() == (GOLDEN / f"{tenant}.yaml").read_text()


def test_guide_tenant_shape() -> None:
    objs = tenant_policies("team-alpha", TENANTS["team-alpha"])
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs] == [
        ("team-alpha-1", "allow-from-knative-and-istio"),
        ("team-alpha-2", "allow-from-knative-and-istio"),
        ("knative-serving", "allow-team-alpha-to-activator"),
        ("knative-eventing", "allow-team-alpha-kafka-broker-reply"),
        ("knative-eventing", "allow-team-alpha-mt-channel-based-broker-reply"),
        ("knative-eventing", "allow-team-alpha-to-imc"),
        ("knative-eventing", "allow-team-alpha-to-ekb"),
        ("knative-eventing", "allow-team-alpha-to-ekc"),
        ("knative-eventing", "allow-team-alpha-to-eks"),
        ("knative-eventing", "allow-team-alpha-to-broker-ingress"),
        ("team-alpha-1", "allow-wait-for-drain"),
        ("team-alpha-2", "allow-wait-for-drain"),
    ]
    assert all(o["spec"]["action"] == "ALLOW" for o in objs)


# --- (b) the chart, rendered ----------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _tokens(src: str) -> list[tuple[str, str]]:
    """[('text', s) | ('action', expr)] with Go's {{- / -}} whitespace trimming applied."""
    out: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2)))
        pos, trim_next = m.end(), bool(m.group(3))
    tail = src[pos:]
    out.append(("text", tail.lstrip() if trim_next else tail))
    return out


def _parse(tokens: list[tuple[str, str]], i: int = 0) -> tuple[list[Any], int]:
    body: list[Any] = []
    while i < len(tokens):
        kind, val = tokens[i]
        i += 1
        if kind == "text":
            body.append(("text", val))
        elif val == "end":
            return body, i
        elif val.startswith("range "):
            m = re.fullmatch(r"range (\$\w+) := (.+)", val)
            assert m, val
            inner, i = _parse(tokens, i)
            body.append(("range", m.group(1), m.group(2), inner))
        elif val.startswith("if "):
            inner, i = _parse(tokens, i)
            body.append(("if", val[3:], inner))
        else:
            body.append(("expr", val))
    return body, i


def _term(t: str, scope: dict[str, Any]) -> Any:
    if t.startswith('"'):
        return t[1:-1]
    head, *path = t.split(".")
    v = scope[head or "."] if head != "$" else scope["$"]
    for p in path:
        v = v[p]
    return v


def _eval(expr: str, scope: dict[str, Any]) -> Any:
    cmds = [c.strip() for c in expr.split("|")]
    words = cmds[0].split()
    if words[0] == "join":
        v: Any = _term(words[1], scope).join(_term(words[2], scope))
    else:
        (word,) = words
        v = _term(word, scope)
    for c in cmds[1:]:
        assert c == "quote", c
        v = '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return v


def _render(nodes: list[Any], scope: dict[str, Any]) -> str:
    out = []
    for n in nodes:
        if n[0] == "text":
            out.append(n[1])
        elif n[0] == "expr":
            out.append(str(_eval(n[1], scope)))
        elif n[0] == "if":
            if _eval(n[1], scope):
                out.append(_render(n[2], scope))
        else:
            for item in _eval(n[2], scope) or []:
                out.append(_render(n[3], {**scope, n[1]: item, ".": item}))
    return "".join(out)


def _git_show(what: str) -> str:
    return subprocess.run(["git", "-C", str(CHART), "show", f"{CHART_COMMIT}:{what}"],
                          capture_output=True, text=True, check=True).stdout


def helm_template(overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """What `helm template --set ...` renders: values.yaml merged with `overrides`, the
    templates in file-name order, empty documents dropped."""
    values = yaml.safe_load(_git_show("values.yaml"))
    for key, v in overrides.items():
        node = values
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = v
    root = {"Values": values}
    docs: list[dict[str, Any]] = []
    for t in TEMPLATES:
        nodes, _ = _parse(_tokens(_git_show(f"templates/{t}")))
        text = _render(nodes, {"$": root, ".": root})
        docs += [d for d in yaml.safe_load_all(text) if d is not None]
    return docs


needs_chart = pytest.mark.skipif(not (CHART / "HEAD").exists() and not (CHART / ".git").exists(),
                                 reason="the chart's git mirror is not on this machine")

CHART_CASES = [
    ("team-alpha", ["team-alpha-1", "team-alpha-2"], {}),
    ("team-bravo", ["team-bravo-1", "team-bravo-2"], {}),
    ("solo", ["only"], {}),
    ("three", ["a1", "b-2", "c3"], {}),
    ("alpha", ["a1", "a2"], {"serving.enabled": False}),
    ("alpha", ["a1", "a2"], {"eventing.enabled": False}),
    ("alpha", ["a1"], {"istioNamespace": "mesh-system", "cluster.domain": "corp.example"}),
]


@needs_chart
@pytest.mark.parametrize(("name", "namespaces", "extra"), CHART_CASES)
def test_equals_the_chart(name: str, namespaces: list[str], extra: dict[str, Any]) -> None:
    want = helm_template({"name": name, "namespaces": namespaces, **extra})
    got = tenant_policies(name, namespaces, serving=extra.get("serving.enabled", True),
                          eventing=extra.get("eventing.enabled", True),
                          istio_namespace=extra.get("istioNamespace", "istio-system"),
                          cluster_domain=extra.get("cluster.domain", "cluster.local"))
    assert got == want


@needs_chart
def test_renderer_sees_the_chart_comments_and_quotes() -> None:
    # A guard on the small renderer itself: the trimmed ranges give one value per line.
    root = {"Values": {"namespaces": ["x"], "serving": {"enabled": True}}}
    text = _render(_parse(_tokens(_git_show("templates/serving-allow-wait-for-drain.yaml")))[0],
                   {"$": root, ".": root})
    assert 'namespace: "x"' in text and '- "8022"' in text


# --- (c) skiff's own validation -------------------------------------------------------------

AP_KIND = next(k for k in mesh_crds.KINDS if k.kind == "AuthorizationPolicy")


@pytest.mark.parametrize(("serving", "eventing"), [(True, True), (False, True), (True, False)])
def test_every_policy_passes_skiffs_validation(serving: bool, eventing: bool) -> None:
    for tenant, nss in TENANTS.items():
        for o in tenant_policies(tenant, nss, serving=serving, eventing=eventing):
            where = f"{o['metadata']['namespace']}/{o['metadata']['name']}"
            assert validate(AP_KIND.schema, o) == [], where
            assert NAME_RULES[AP_KIND.name_rule](o["metadata"]["name"]) is None, where
            assert validate_authorization_policy(o) == [], where


def test_golden_files_pass_skiffs_validation() -> None:
    for path in GOLDEN.glob("*.yaml"):
        for o in yaml.safe_load_all(path.read_text()):
            assert validate(AP_KIND.schema, o) == []
            assert validate_authorization_policy(o) == []


# --- (d) input errors -----------------------------------------------------------------------

@pytest.mark.parametrize(("name", "namespaces", "kw", "message"), [
    ("", ["a"], {}, "tenant name must not be empty"),
    ("  ", ["a"], {}, "tenant name must not be empty"),
    ("Team", ["a"], {}, "tenant name 'Team' is not usable in policy names"),
    ("t" * 230, ["a"], {}, "must be no more than 253 characters"),
    ("t", [], {}, "tenant t needs at least one namespace"),
    ("t", "abc", {}, "must be a list of names"),
    ("t", ["ok", "Bad_NS"], {}, "namespace 'Bad_NS' is not a valid namespace name"),
    ("t", ["a.b"], {}, "namespace 'a.b' is not a valid namespace name"),
    ("t", ["x" * 64], {}, "must be no more than 63 characters"),
    ("t", ["a", "b", "a"], {}, "namespace a is listed twice"),
    ("t", ["knative-serving"], {}, "namespace knative-serving is a system namespace"),
    ("t", ["a"], {"serving": False, "eventing": False}, "both disabled"),
    ("t", ["a"], {"cluster_domain": "Bad Domain"}, "cluster domain 'Bad Domain' is not valid"),
])
def test_bad_input(name: str, namespaces: Any, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(TenantPolicyError, match=re.escape(message)):
        tenant_policies(name, namespaces, **kw)


# --- (e) to_yaml ------------------------------------------------------------------------------

def test_to_yaml_round_trips_without_aliases() -> None:
    objs = tenant_policies("t", ["a", "b"])
    text = to_yaml(objs)
    assert text.startswith("---\n") and text.count("---\n") == len(objs)
    assert "&id" not in text and "*id" not in text
    assert list(yaml.safe_load_all(text)) == objs
    assert "- '8022'" in text          # a string, as the chart's "8022"
    assert to_yaml([]) == ""
