"""Child names as upstream derives them (kmeta.ChildName and the resources/names packages)."""

from __future__ import annotations

import hashlib

import pytest

from skiff.serving import names


@pytest.mark.parametrize("parent, suffix, want", [
    ("hello", "-00001", "hello-00001"),
    ("hello-00001", "-deployment", "hello-00001-deployment"),
    ("a" * 57, "-00001", "a" * 57 + "-00001"),                     # exactly 63: kept
    # Too long: the parent is cut and an md5 of it keeps the name unique.
    ("a" * 60, "-00001", "a" * 25 + hashlib.md5(b"a" * 60).hexdigest() + "-00001"),
])
def test_child_name(parent: str, suffix: str, want: str) -> None:
    got = names.child_name(parent, suffix)
    assert got == want
    assert len(got) <= 63


def test_child_name_hashes_long_parents_deterministically() -> None:
    long = "x" * 70
    a, b = names.child_name(long, "-00001"), names.child_name(long, "-00001")
    assert a == b and len(a) == 63 and a.endswith("-00001") and a.startswith("x" * 25)
    assert names.child_name("y" + long[1:], "-00001") != a


@pytest.mark.parametrize("config, gen, want", [
    ("hello", 1, "hello-00001"),
    ("hello", 42, "hello-00042"),
    ("hello", 123456, "hello-123456"),
])
def test_revision_name(config: str, gen: int, want: str) -> None:
    assert names.revision_name(config, gen) == want


def test_other_names() -> None:
    assert names.deployment_name("hello-00001") == "hello-00001-deployment"
    assert names.configuration_name("hello") == names.route_name("hello") == "hello"
    assert names.ingress_name("hello") == "hello"
    assert names.k8s_service_fullname("hello", "default") == "hello.default.svc.cluster.local"


def test_first_key_wins() -> None:
    ann = {"autoscaling.knative.dev/minScale": "2", "autoscaling.knative.dev/min-scale": "3"}
    assert names.first(ann, names.MIN_SCALE_ANNOTATIONS) == "3"
    assert names.first({}, names.MIN_SCALE_ANNOTATIONS) is None
