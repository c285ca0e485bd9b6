"""ports: the loopback ports a pod gets, how pod ports map to them (table tests), and the
allocator that hands them out."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from skiff.node import ports
from skiff.node.process import PortAllocator

Obj = dict[str, Any]


def pod(*containers: Obj) -> Obj:
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers)}}


USER: Obj = {"name": "user", "ports": [{"containerPort": 8080, "name": "http1"}],
             "env": [{"name": "PORT", "value": "8080"}]}
QP: Obj = {"name": "queue-proxy", "ports": [{"containerPort": 8012, "name": "http"},
                                            {"containerPort": 9090, "name": "metrics"}]}
BARE: Obj = {"name": "bare"}


@pytest.mark.parametrize("p, keys", [
    (pod(BARE), ["default"]),
    (pod(USER), ["8080"]),
    (pod(USER, QP), ["8080", "8012", "9090"]),
    (pod({"name": "u", "ports": [{"containerPort": 53, "protocol": "UDP"}]}), ["default"]),
])
def test_planned_keys(p: Obj, keys: list[str]) -> None:
    assert ports.planned_keys(p) == keys


def test_annotations_round_trip() -> None:
    p = pod(USER, QP)
    keys = ports.planned_keys(p)
    mapping = {"8080": 40001, "8012": 40002, "9090": 40003}
    ann = ports.port_annotations(mapping, keys)
    assert ann["skiff.dev/port"] == "40001"
    p["metadata"]["annotations"] = ann
    assert ports.recorded(p) == mapping
    assert ports.recorded(pod(BARE)) == {}
    assert ports.recorded({"metadata": {"annotations": {"skiff.dev/ports": "nonsense"}}}) == {}


MAP = {"8080": 40001, "8012": 40002, "9090": 40003}
KEYS = ["8080", "8012", "9090"]


@pytest.mark.parametrize("container, port, expect", [
    (USER, 8080, 40001),
    (USER, "8080", 40001),
    (USER, "http1", 40001),
    (USER, 0, 40001),
    (USER, None, 40001),
    (QP, "metrics", 40003),
    (QP, 8012, 40002),
    (QP, 0, 40002),
    (USER, 5432, 40001),          # undeclared: the container's own $PORT (shared loopback)
    (USER, "nosuch", None),
])
def test_port_for(container: Obj, port: object, expect: int | None) -> None:
    assert ports.port_for(pod(USER, QP), container, port, MAP, KEYS) == expect


def test_port_env_value_maps_to_port() -> None:
    c = {"name": "u", "env": [{"name": "PORT", "value": "9000"}]}
    assert ports.port_for(pod(c), c, 9000, {"default": 41000}, ["default"]) == 41000
    assert ports.container_port(c, {"default": 41000}, ["default"]) == 41000


def test_the_allocator_never_hands_out_a_reserved_port() -> None:
    """The platform's own ports are free for a moment whenever their process restarts; the
    allocator must not give one of them to a pod or to the gateway's internal listener then."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    ports = PortAllocator(reserved={free})
    assert ports.allocate(prefer=free) != free
    assert PortAllocator().allocate(prefer=free) == free    # the same port, not reserved
    every = PortAllocator(reserved=range(1, 65536))
    with pytest.raises(OSError, match="no free loopback port"):
        every.allocate()
