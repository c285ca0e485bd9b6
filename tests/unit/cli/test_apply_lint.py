"""skiff apply's pure pre-flight: YAML errors with lines, the guide's callouts and placeholders."""

from __future__ import annotations

import pytest

from skiff.cli.apply import lint, load_documents

SMMR_CALLOUT = """apiVersion: maistra.io/v1
kind: ServiceMeshMemberRoll
metadata:
  name: default
  namespace: istio-system
spec:
  members: 1
    - knative-serving
    - knative-eventing
"""


def test_two_documents_with_lines() -> None:
    docs, problems = load_documents("a: 1\n---\nkind: X\nmetadata:\n  name: y\n", "f.yaml")
    assert problems == []
    assert [(d.index, d.line) for d in docs] == [(1, 1), (2, 3)]
    assert docs[1].lines["metadata.name"] == 5


@pytest.mark.parametrize("text, where, words", [
    ("a: b: c\n", "f.yaml:1", "invalid YAML"),
    ("spec:\n  x: 1\n y: 2\n", "f.yaml:3", "invalid YAML"),
    ("key: [1, 2\n", "f.yaml:2", "invalid YAML"),
])
def test_yaml_syntax_errors_name_file_and_line(text: str, where: str, words: str) -> None:
    docs, problems = load_documents(text, "f.yaml")
    assert docs == [] and len(problems) == 1
    assert str(problems[0]).startswith(where) and words in str(problems[0])


@pytest.mark.parametrize("text, path, fix", [
    (SMMR_CALLOUT, "spec.members", "remove the callout number"),
    (SMMR_CALLOUT.replace("members: 1\n    - knative-serving\n    - knative-eventing",
                          "members:\n    - <namespace>"), "spec.members[0]", "replace it"),
    ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: wildcard-certs 1\n", "metadata.name", 'did you mean "wildcard-certs"'),
])
def test_lint_finds_the_guides_mistakes(text: str, path: str, fix: str) -> None:
    (doc,), _ = load_documents(text, "seed.yaml")
    (p,) = lint(doc)
    assert path in p.message and fix in p.fix
    assert p.where.startswith(f"seed.yaml:{doc.lines[path]}")


def test_lint_clean_document_and_missing_kind() -> None:
    (doc,), _ = load_documents("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n", "f")
    assert lint(doc) == []
    (doc,), _ = load_documents("metadata:\n  name: ok\n", "f")
    assert {p.message for p in lint(doc)} == {"apiVersion is missing", "kind is missing"}
