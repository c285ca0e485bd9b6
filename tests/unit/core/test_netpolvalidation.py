"""NetworkPolicy validation: policies in, upstream's field errors out (pure), and through the
registry the 422 a client sees."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from skiff.core.client import ApiError
from skiff.core.memclient import MemoryClient
from skiff.core.netpolvalidation import port_name_problems, validate_network_policy

Obj = dict[str, Any]


def policy(**spec: Any) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"podSelector": {}, **spec}}


def ingress_port(**port: Any) -> Obj:
    return policy(ingress=[{"ports": [port]}])


def ingress_peer(**peer: Any) -> Obj:
    return policy(ingress=[{"from": [peer]}])


ROWS: list[tuple[str, Obj, list[str]]] = [
    ("the guide's 1.5 policy is valid",
     policy(ingress=[{"from": [{"namespaceSelector": {"matchLabels": {
         "name": "openshift-monitoring"}}}]}], policyTypes=["Ingress"]), []),
    ("a numeric port out of range", ingress_port(port=70000),
     ["spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
    ("a port name that is not an IANA_SVC_NAME", ingress_port(port="HTTP_port"),
     ['spec.ingress[0].ports[0].port: Invalid value: "HTTP_port": must contain only '
      "alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
    ("endPort with a named port", ingress_port(port="http", endPort=90),
     ["spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` "
      "is non-numeric"]),
    ("endPort without a port", ingress_port(endPort=90),
     ["spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` "
      "is not specified"]),
    ("endPort below port", ingress_port(port=8080, endPort=80),
     ["spec.ingress[0].ports[0].endPort: Invalid value: 8080: must be greater than or equal to "
      "`port`"]),
    ("a port range is fine", ingress_port(port=32000, endPort=32768, protocol="SCTP"), []),
    ("an ipBlock that is not a CIDR", ingress_peer(ipBlock={"cidr": "10.0.0.1"}),
     ['spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.1": must be a valid CIDR '
      "value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]),
    ("an except outside the cidr, and one equal to it",
     ingress_peer(ipBlock={"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24", "10.0.0.0/16",
                                                             "10.0.1.0/24"]}),
     ['spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a '
      "strict subset of `cidr`",
      'spec.ingress[0].from[0].ipBlock.except[1]: Invalid value: "10.0.0.0/16": must be a '
      "strict subset of `cidr`"]),
    ("ipBlock with another peer",
     ingress_peer(ipBlock={"cidr": "10.0.0.0/8"}, podSelector={}),
     ["spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"]),
    ("an empty peer", ingress_peer(),
     ["spec.ingress[0].from[0]: Required value: must specify a peer"]),
    ("a selector operator that does not exist",
     policy(podSelector={"matchExpressions": [{"key": "app", "operator": "Equals",
                                               "values": ["x"]}]}),
     ['spec.podSelector.matchExpressions[0].operator: Invalid value: "Equals": not a valid '
      "selector operator"]),
    ("In without values", policy(egress=[{"to": [{"namespaceSelector": {"matchExpressions": [
        {"key": "team", "operator": "In"}]}}]}]),
     ["spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values: Required value: must "
      "be specified when `operator` is 'In' or 'NotIn'"]),
    ("a bad label value in matchLabels", policy(podSelector={"matchLabels": {"app": "a b"}}),
     ['spec.podSelector.matchLabels: Invalid value: "a b": a valid label must be an empty '
      "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
      "with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
      "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    ("three policyTypes", policy(policyTypes=["Ingress", "Egress", "Ingress"]),
     ['spec.policyTypes: Invalid value: &[]networking.PolicyType{"Ingress", "Egress", '
      '"Ingress"}: may not specify more than two policyTypes']),
]


@pytest.mark.parametrize(("name", "obj", "want"), ROWS, ids=[r[0] for r in ROWS])
def test_validate_network_policy(name: str, obj: Obj, want: list[str]) -> None:
    assert [c.message for c in validate_network_policy(obj)] == want


def test_port_names_follow_iana_svc_name() -> None:
    assert port_name_problems("http") == []
    assert port_name_problems("a--b") == ["must not contain consecutive hyphens"]
    assert port_name_problems("-web") == ["must not begin or end with a hyphen"]
    assert port_name_problems("8080") == ["must contain at least one letter (a-z)"]
    assert port_name_problems("a" * 16) == ["must be no more than 15 characters"]


def test_the_registry_answers_422_with_the_cause() -> None:
    c = MemoryClient([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
    with pytest.raises(ApiError) as e:
        asyncio.run(c.create(ingress_port(port=0)))
    assert e.value.code == 422
    assert e.value.message == ('NetworkPolicy.networking.k8s.io "p" is invalid: '
                               "spec.ingress[0].ports[0].port: Invalid value: 0: must be between "
                               "1 and 65535, inclusive")
    assert e.value.details["causes"][0]["field"] == "spec.ingress[0].ports[0].port"


def test_namespaces_keep_their_name_label() -> None:
    from skiff.core.client import Ref
    c = MemoryClient([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}])
    ns = asyncio.run(c.get(Ref("v1", "Namespace"), "team-a"))
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team-a"
    ns["metadata"]["labels"] = {"kubernetes.io/metadata.name": "other", "tier": "x"}
    got = asyncio.run(c.update(ns))["metadata"]["labels"]
    assert got == {"kubernetes.io/metadata.name": "team-a", "tier": "x"}
