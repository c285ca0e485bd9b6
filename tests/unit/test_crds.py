"""The custom kinds (serving, mesh, eventing, operator, pipelines crds.py) and the
Serverless guide's YAML.

(a) every declared Kind survives crd_for -> kinds_from_crd unchanged, and its
CRD object is a valid CustomResourceDefinition; (b) every YAML example of the
guide, corrected, in tests/golden/seeds/ validates with zero causes; (c) the
guide's typing errors, reproduced one per file in tests/golden/seeds_bad/,
fail the way each file's `# expect:` header says; (d) hand-made bad inputs.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.core import builtin_kinds
from skiff.core.kinds import Kind, Kinds, crd_for, kinds_from_crd
from skiff.core.validation import NAME_RULES, Cause, validate

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
DOMAINS = ("serving", "mesh", "eventing", "operator", "pipelines")

CUSTOM: list[Kind] = [k for d in DOMAINS
                      for k in importlib.import_module(f"skiff.{d}.crds").KINDS]

BUILTIN: list[Kind] = list(builtin_kinds.KINDS)


def _registry() -> Kinds:
    ks = Kinds()
    for k in [*BUILTIN, *CUSTOM]:
        ks.add(k)
    return ks


REGISTRY = _registry()
CUSTOM_GROUPS = {k.group for k in CUSTOM}


def _id(k: Kind) -> str:
    return f"{k.kind}.{k.group}"


# --- (a) the kinds ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", CUSTOM, ids=_id)
def test_crd_round_trip(kind: Kind) -> None:
    assert kinds_from_crd(crd_for(kind)) == kind


@pytest.mark.parametrize("kind", CUSTOM, ids=_id)
def test_crd_object_is_a_valid_crd(kind: Kind) -> None:
    crd_kind = next(k for k in BUILTIN if k.kind == "CustomResourceDefinition")
    crd = crd_for(kind)
    assert validate(crd_kind.schema, crd) == []
    assert crd["metadata"]["name"] == kind.crd_name


@pytest.mark.parametrize("kind", CUSTOM, ids=_id)
def test_kind_declaration_is_consistent(kind: Kind) -> None:
    assert kind.versions[0] == kind.version, "the storage version is listed first"
    assert kind.namespaced
    assert kind.name_rule in NAME_RULES
    assert kind.printer_columns is not None, "CRD kinds declare their columns, () for none"
    assert kind.schema["properties"]["spec"]["type"] == "object"


def test_resources_and_short_names_are_unique() -> None:
    every = [*BUILTIN, *CUSTOM]
    resources = [(k.group, k.plural) for k in every]
    assert len(resources) == len(set(resources))
    shorts = [s for k in every for s in k.short_names]
    assert len(shorts) == len(set(shorts)), shorts


def test_upstream_names() -> None:
    by = {(k.group, k.kind): k for k in CUSTOM}
    ksvc = by[("serving.knative.dev", "Service")]
    assert ksvc.short_names == ("kservice", "ksvc")
    assert ksvc.categories == ("all", "knative", "serving")
    assert ksvc.name_rule == "dns1035-label"
    assert [(c.name, c.json_path) for c in ksvc.printer_columns or ()] == [
        ("URL", ".status.url"),
        ("LatestCreated", ".status.latestCreatedRevisionName"),
        ("LatestReady", ".status.latestReadyRevisionName"),
        ("Ready", ".status.conditions[?(@.type=='Ready')].status"),
        ("Reason", ".status.conditions[?(@.type=='Ready')].reason"),
    ]
    for kind in ("Configuration", "Route", "Revision"):
        assert by[("serving.knative.dev", kind)].name_rule == "dns1035-label"
    assert by[("serving.knative.dev", "DomainMapping")].versions == ("v1beta1", "v1alpha1")
    assert by[("networking.istio.io", "Gateway")].short_names == ("gw",)
    assert by[("security.istio.io", "AuthorizationPolicy")].short_names == ()
    assert by[("security.istio.io", "PeerAuthentication")].short_names == ("pa",)
    assert by[("maistra.io", "ServiceMeshControlPlane")].version == "v2"
    assert by[("maistra.io", "ServiceMeshMemberRoll")].short_names == ("smmr",)
    assert by[("messaging.knative.dev", "InMemoryChannel")].short_names == ("imc",)
    assert by[("tekton.dev", "PipelineRun")].short_names == ("pr", "prs")
    assert by[("operator.knative.dev", "KnativeServing")].short_names == ()


# --- (b) the guide's examples, corrected ---------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _check(doc: dict[str, Any]) -> tuple[Kind, list[Cause]]:
    """The kind of `doc` and its causes (schema and name)."""
    api_version, kind_name = doc.get("apiVersion", ""), doc.get("kind", "")
    kind = REGISTRY.for_api_version(api_version, kind_name)
    if kind is None:
        pytest.fail(f"no kind serves {api_version} {kind_name}")
    causes = validate(kind.schema, doc)
    name = (doc.get("metadata") or {}).get("name")
    if isinstance(name, str):
        err = NAME_RULES[kind.name_rule](name)
        if err:
            causes.append(Cause("metadata.name", "FieldValueInvalid", err))
    return kind, causes


SEEDS = sorted((GOLDEN / "seeds").glob("*.yaml"))


def test_every_seed_example_has_a_fixture() -> None:
    # The two seed files hold 27 YAML examples (8 in 000_*, 19 in 001_*; some span several
    # documents or code blocks): one fixture each, plus 2 derived from a kn command (5.1)
    # and the PipelineRun screenshot (4.2).
    assert len(SEEDS) == 29


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_seed_fixture_validates(path: Path) -> None:
    docs = _documents(path)
    assert docs
    for doc in docs:
        _, causes = _check(doc)
        assert causes == [], [c.message for c in causes]


# --- (c) the guide's typing errors, uncorrected ------------------------------------------------

BAD = sorted((GOLDEN / "seeds_bad").glob("*.yaml"))


def _expectations(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            what, _, arg = line.removeprefix("# expect:").strip().partition(" ")
            out.append((what, arg))
    return out


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_seed_typo_is_reported(path: Path) -> None:
    expect = _expectations(path)
    assert expect, f"{path.name} has no `# expect:` header"
    kinds = {what for what, _ in expect}
    if kinds == {"parse-error"}:
        with pytest.raises(yaml.YAMLError):
            _documents(path)
        return
    (doc,) = _documents(path)
    _, causes = _check(doc)
    fields = {c.field for c in causes}
    for what, arg in expect:
        if what == "cause":
            assert arg in fields, (arg, [c.message for c in causes])
        elif what == "name":
            assert "metadata.name" in fields
        elif what == "undetected":
            # Recorded on purpose: the schema cannot see it; the header says who does.
            assert causes == [], [c.message for c in causes]
        elif what == "duplicate":
            assert any(c.reason == "FieldValueDuplicate" and c.field.startswith(arg.split()[0])
                       for c in causes), [c.message for c in causes]
        else:
            pytest.fail(f"unknown expectation {what!r} in {path.name}")


def test_callout_after_list_key_names_the_field_and_hints() -> None:
    (doc,) = _documents(GOLDEN / "seeds_bad" / "1_3_smmr_members_callout.yaml")
    _, causes = _check(doc)
    assert [c.field for c in causes] == ["spec.members"]
    assert "callout" in causes[0].message


# --- (d) hand-made bad inputs ------------------------------------------------------------------


def _ksvc(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": "hello"}]}}, **spec}}


def _fields(doc: dict[str, Any]) -> list[str]:
    return [c.field for c in _check(doc)[1]]


def test_unknown_field_in_gateway_server() -> None:
    doc = _documents(GOLDEN / "seeds" / "1_3_gateway_local_https.yaml")[0]
    doc["spec"]["servers"][0]["hostz"] = ["*"]
    _, causes = _check(doc)
    assert [c.field for c in causes] == ["spec.servers[0].hostz"]
    assert 'did you mean "hosts"' in causes[0].message


def test_traffic_percent_must_be_an_integer_0_to_100() -> None:
    assert _fields(_ksvc(traffic=[{"latestRevision": True, "percent": "50%"}])) == [
        "spec.traffic[0].percent"]
    assert _fields(_ksvc(traffic=[{"latestRevision": True, "percent": 150}])) == [
        "spec.traffic[0].percent"]
    assert _fields(_ksvc(traffic=[{"latestRevision": True, "percent": 100}])) == []


def test_revision_spec_limits() -> None:
    doc = _ksvc()
    tmpl = doc["spec"]["template"]["spec"]
    tmpl["containerConcurrency"] = 2000
    tmpl["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["true"]}}}
    tmpl["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/healthz"}}  # no port: ok
    tmpl["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "one"}}
    assert sorted(_fields(doc)) == [
        "spec.template.spec.containerConcurrency",
        "spec.template.spec.containers[0].lifecycle",
        "spec.template.spec.containers[0].resources.limits.nvidia.com/gpu",
    ]


def test_ksvc_name_is_a_dns1035_label() -> None:
    doc = _ksvc()
    doc["metadata"]["name"] = "1hello"
    assert _fields(doc) == ["metadata.name"]


def test_enums_are_closed() -> None:
    pa = {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication",
          "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "strict"}}}
    assert _fields(pa) == ["spec.mtls.mode"]
    ap = {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
          "metadata": {"name": "x"}, "spec": {"action": "ALLOWED"}}
    assert _fields(ap) == ["spec.action"]
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "t"},
               "spec": {"broker": "default", "subscriber": {"uri": "http://x"},
                        "delivery": {"backoffPolicy": "quadratic"}}}
    assert _fields(trigger) == ["spec.delivery.backoffPolicy"]


def test_required_fields() -> None:
    sink = {"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "KafkaSink",
            "metadata": {"name": "s"}, "spec": {"bootstrapServers": ["kafka:9092"]}}
    assert _fields(sink) == ["spec.topic"]
    rule = {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "x"}, "spec": {"rules": [{"when": [{"values": ["a"]}]}]}}
    assert _fields(rule) == ["spec.rules[0].when[0].key"]


def test_pipeline_run_unknown_field_and_v1beta1_spelling() -> None:
    run = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": "r"},
           "spec": {"pipelineRef": {"name": "p"}, "serviceAccount": "pipeline"}}
    assert _fields(run) == ["spec.serviceAccount"]
    run["spec"] = {"pipelineRef": {"name": "p"}, "serviceAccountName": "pipeline"}
    assert _fields(run) == []
