"""kubectl's answer to a kind or version the server does not serve is upstream's "no matches for
kind": its validator falls back to /openapi/v2 when a kind is missing from the /openapi/v3
document of an existing group-version, and a 404 there used to end in "failed to download
openapi"."""

from __future__ import annotations

import json

import pytest

from skiff.core.apiserver.discovery import openapi_v2_protobuf
from skiffproc import Skiff


@pytest.mark.parametrize("doc, kind, version", [
    ("apiVersion: maistra.io/v2\nkind: ServiceMeshMemberRoll\n"
     "metadata: {name: default, namespace: istio-system}\nspec: {members: [a]}\n",
     "ServiceMeshMemberRoll", "maistra.io/v2"),
    ("apiVersion: v1\nkind: ConfigMapp\nmetadata: {name: x}\n", "ConfigMapp", "v1"),
])
def test_unknown_kind_or_version_says_no_matches(skiff: Skiff, doc: str, kind: str,
                                                  version: str) -> None:
    r = skiff.kubectl("apply", "-f", "-", input=doc, check=False)
    assert r.returncode != 0
    assert f'no matches for kind "{kind}" in version "{version}"' in r.stderr
    assert "failed to download openapi" not in r.stderr


def test_openapi_v2_json_and_protobuf(skiff: Skiff) -> None:
    doc = json.loads(skiff.kubectl("get", "--raw", "/openapi/v2").stdout)
    assert doc["swagger"] == "2.0" and doc["info"]["title"] == "Kubernetes"
    pb = openapi_v2_protobuf()
    assert pb.startswith(b"\x0a\x032.0\x12") and pb.endswith(b"\x42\x00\x4a\x00")
