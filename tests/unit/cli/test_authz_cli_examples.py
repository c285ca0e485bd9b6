"""The guide's knative-default-authz-policies.yaml (2.3 step 2) through `skiff apply`'s path.

apply_files() runs as `skiff apply -f` does (load_documents, lint, a server dry run of
every document, then server-side apply) against an API that is skiff's own registry in
memory (core/memclient.py: the same schema validation and admission, with Istio's
AuthorizationPolicy checks registered as mesh/setup.py does), so no server is needed.

The file AS PRINTED (its four code blocks, copied into one file, extracted from the seed)
is rejected whole, nothing applied; with its document separators repaired the third
document's lost `name`/`namespace` is named by document and field; the principal broken by
a line break passes every validation, and `skiff authz check` is what shows it matches no
one; examples/tenant-isolation/01-knative-default-authz-policies.yaml, corrected, applies
all 11 policies and keeps every policy and field of the guide.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.cli.api import ApiFailure, Resource
from skiff.cli.apply import apply_files, load_documents
from skiff.core.admission import Admission
from skiff.core.client import ApiError
from skiff.core.memclient import MemoryClient
from skiff.mesh import crds as mesh_crds
from skiff.mesh.authz.check import RequestSpec, Source, Target, check
from skiff.mesh.authz.validate import admit

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT.parent / "shared" / "seeds" / "001_069c3c6f0ad6be10.txt"
EXAMPLE = ROOT / "examples" / "tenant-isolation" / "01-knative-default-authz-policies.yaml"
FOLDED = "cluster.local/ns/knative-eventing/sa/knative-kafka-channel-data- plane"

needs_seed = pytest.mark.skipif(not SEED.exists(), reason="the guide's seed is not here")


def as_printed() -> str:
    """The code blocks of 2.3 step 2, from the file's caption to the text after it."""
    lines = SEED.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines)
                 if "knative-default-authz-policies.yaml" in ln and "구성 파일의 예" in ln)
    end = next(i for i, ln in enumerate(lines) if i > start and ln.startswith("이러한 정책은"))
    blocks: list[list[str]] = []
    cur: list[str] | None = None
    for ln in lines[start + 1:end]:
        if ln.strip().startswith("```"):
            if cur is None:
                cur = []
            else:
                blocks.append(cur)
                cur = None
        elif cur is not None:
            cur.append(ln)
    assert len(blocks) == 4
    return "\n".join("\n".join(b) for b in blocks) + "\n"


class RegistryApi:
    """cli/api.Api's surface that apply_files uses, served by an in-memory registry."""

    namespace = "default"

    def __init__(self) -> None:
        adm = Admission()
        adm.validate("security.istio.io", "AuthorizationPolicy", admit)
        self.mc = MemoryClient(kinds=mesh_crds.KINDS, admission=adm)
        for ns in ("istio-system", "knative-serving", "knative-eventing"):
            self.mc.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self.warnings: list[str] = []
        self._plural: dict[tuple[str, str], Any] = {}

    def resource_for(self, api_version: str, kind: str) -> Resource | None:
        k = self.mc.registry.kinds.for_api_version(api_version, kind)
        if k is None:
            return None
        group, _, version = api_version.rpartition("/")
        self._plural[(group, k.plural)] = k
        return Resource(group, version, k.plural, k.kind, k.namespaced)

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, str] | None = None, content_type: str = "") -> Any:
        parts = path.strip("/").split("/")
        group = "" if parts[0] == "api" else parts[1]
        i = parts.index("namespaces")
        ns, plural, name = parts[i + 1], parts[i + 2], parts[i + 3]
        k = self._plural[(group, plural)]
        try:
            if method == "GET":
                return self.mc.registry.get(k, ns, name)
            assert method == "PATCH" and content_type == "application/apply-patch+yaml"
            return self.mc.registry.patch(k, ns, name, "apply", body,
                                          dry_run=(query or {}).get("dryRun") == "All")
        except ApiError as e:
            raise ApiFailure(e.code, e.status()) from None

    def policies(self) -> list[str]:
        k = self.mc.registry.kinds.for_api_version("security.istio.io/v1beta1",
                                                   "AuthorizationPolicy")
        assert k is not None
        return sorted(f"{o['metadata']['namespace']}/{o['metadata']['name']}"
                      for o in self.mc.registry.list(k)[0])


def _apply(tmp_path: Path, text: str, name: str = "knative-default-authz-policies.yaml"
           ) -> tuple[RegistryApi, int, list[str]]:
    f = tmp_path / name
    f.write_text(text)
    api = RegistryApi()
    applied, problems = apply_files(api, [str(f)], None, echo=lambda *_: None)  # type: ignore[arg-type]
    return api, applied, [str(p).replace(str(tmp_path) + "/", "") for p in problems]


def repair_separators(text: str) -> str:
    """Only the nesting repaired: every indented `---` becomes a separator and each top-level
    key (apiVersion, kind, metadata, spec) goes back to column 0, its block with it (the
    metadata split and the folded principal stay)."""
    out, cut = [], 0
    for ln in text.splitlines():
        if ln.strip() == "---":
            out.append("---")
            continue
        if re.match(r"\s*(apiVersion|kind|metadata|spec):", ln):
            cut = len(ln) - len(ln.lstrip())
        out.append(ln[cut:] if ln[:cut].strip() == "" else ln)
    return "\n".join(out) + "\n"


# --- as printed ------------------------------------------------------------------------------

@needs_seed
def test_as_printed_is_rejected_whole(tmp_path: Path) -> None:
    api, applied, problems = _apply(tmp_path, as_printed())
    assert applied == 0 and api.policies() == []
    assert len(problems) == 1, problems
    # line 36: the fourth policy, indented under the third's rules after an indented `---`
    assert problems[0].startswith("knative-default-authz-policies.yaml:36 (YAML): invalid YAML:")
    assert as_printed().splitlines()[35].strip() == "apiVersion: security.istio.io/v1beta1"
    assert as_printed().splitlines()[34] == "    ---"


@needs_seed
def test_as_printed_separators_repaired_names_document_and_field(tmp_path: Path) -> None:
    api, applied, problems = _apply(tmp_path, repair_separators(as_printed()))
    assert applied == 0 and api.policies() == []
    # the third document: `metadata:` is empty and name/namespace sit at the top level
    assert problems == ["knative-default-authz-policies.yaml:18: document 3 "
                        "(AuthorizationPolicy ?): metadata.name: Required value"]
    assert repair_separators(as_printed()).splitlines()[17] == "metadata:"


@needs_seed
def test_folded_principal_passes_validation_and_matches_no_one() -> None:
    docs, problems = load_documents(repair_separators(as_printed()), "f.yaml")
    assert problems == []
    broken = next(d.obj for d in docs if d.obj["metadata"]
                  and d.obj["metadata"].get("name") ==
                  "allow-kafka-channel-to-mt-channel-based-broker-filter")
    assert broken["spec"]["rules"][0]["from"][0]["source"]["principals"] == [FOLDED]
    kafka = Source("knative-eventing", "knative-kafka-channel-data-plane")
    filt = Target("broker-filter", "knative-eventing",
                  labels=(("app.kubernetes.io/component", "broker-filter"),))
    fixed = list(yaml.safe_load_all(EXAMPLE.read_text()))
    post = RequestSpec(method="POST", port=8080)
    assert check(fixed, kafka, filt, post).decision.policy == \
        "knative-eventing/allow-kafka-channel-to-mt-channel-based-broker-filter"
    assert not check([broken, *[o for o in fixed if o["metadata"]["name"] !=
                                broken["metadata"]["name"]]], kafka, filt, post).allowed


# --- corrected ---------------------------------------------------------------------------------

def test_corrected_file_applies_every_policy(tmp_path: Path) -> None:
    api, applied, problems = _apply(tmp_path, EXAMPLE.read_text())
    assert problems == [] and applied == 11
    assert api.policies() == sorted([
        "knative-eventing/deny-all-by-default", "knative-serving/deny-all-by-default",
        "knative-eventing/allow-mt-channel-based-broker-ingress-to-imc-dispatcher",
        "knative-eventing/allow-mt-channel-based-broker-ingress-to-kafka-channel",
        "knative-eventing/allow-kafka-channel-to-mt-channel-based-broker-filter",
        "knative-eventing/allow-imc-to-mt-channel-based-broker-filter",
        "knative-eventing/allow-probe-kafka-broker-receiver",
        "knative-eventing/allow-probe-kafka-sink-receiver",
        "knative-eventing/allow-probe-kafka-channel-receiver",
        "knative-serving/allow-traffic-to-activator",
        "knative-serving/allow-traffic-to-autoscaler"])


@needs_seed
def test_corrected_file_keeps_every_policy_and_field_of_the_guide() -> None:
    """The repaired-as-printed documents, with the two remaining typos fixed by hand, are
    exactly the example's documents."""
    docs, _ = load_documents(repair_separators(as_printed()), "f.yaml")
    guide = [d.obj for d in docs]
    third = guide[2]
    third["metadata"] = {"name": third.pop("name"), "namespace": third.pop("namespace")}
    third_ordered = {"apiVersion": third["apiVersion"], "kind": third["kind"],
                     "metadata": third["metadata"], "spec": third["spec"]}
    guide[2] = third_ordered
    for o in guide:
        for rule in o["spec"].get("rules") or []:
            for f in rule.get("from") or []:
                src = f["source"]
                if "principals" in src:
                    src["principals"] = [p.replace("data- plane", "data-plane")
                                         for p in src["principals"]]
    assert guide == list(yaml.safe_load_all(EXAMPLE.read_text()))


# --- the whole example folder --------------------------------------------------------------------

def test_every_example_document_validates() -> None:
    import importlib

    from skiff.core import builtin_kinds
    from skiff.core.kinds import Kinds
    from skiff.core.validation import NAME_RULES, validate
    reg = Kinds()
    for k in [*builtin_kinds.KINDS, *(k for d in ("serving", "mesh", "eventing", "operator")
                                      for k in importlib.import_module(f"skiff.{d}.crds").KINDS)]:
        reg.add(k)
    seen = 0
    for path in sorted(EXAMPLE.parent.glob("*.yaml")):
        docs, problems = load_documents(path.read_text(), path.name)
        assert problems == [], problems
        for d in docs:
            kind = reg.for_api_version(d.obj["apiVersion"], d.obj["kind"])
            assert kind is not None, d.label()
            assert validate(kind.schema, d.obj) == [], (path.name, d.label())
            assert NAME_RULES[kind.name_rule](d.obj["metadata"]["name"]) is None
            seen += 1
    assert seen == 6 + 11 + 12 + 12 + 2 + 1
