"""lifecycle: a LifecycleHandler -> Hook (the kubelet's handler order, probes' port
translation) and the grace left after a preStop hook (table tests)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.node import lifecycle
from skiff.node.lifecycle import Hook
from skiff.node.probes import ProbeSpec

Obj = dict[str, Any]
C: Obj = {"name": "u", "ports": [{"containerPort": 8080, "name": "http"},
                                 {"containerPort": 8022, "name": "admin"}]}
POD: Obj = {"spec": {"containers": [C]}}
MAP = {"8080": 41000, "8022": 41001}
KEYS = ["8080", "8022"]
UA = lifecycle.USER_AGENT


def parse(handler: Obj | None, isolated: bool = False, host: str = "127.0.0.1") -> Hook | None:
    mapping = {"8080": 8080, "8022": 8022} if isolated else MAP
    return lifecycle.parse(handler, POD, C, mapping, KEYS, host=host, isolated=isolated)


@pytest.mark.parametrize("handler, expect", [
    # a declared port by number or name -> its host port in the loopback fallback
    ({"httpGet": {"port": 8022, "path": "/wait-for-drain"}},
     Hook("http", ProbeSpec("http", port=41001, path="/wait-for-drain", user_agent=UA),
          what="HTTP lifecycle hook (/wait-for-drain)")),
    ({"httpGet": {"port": "admin", "scheme": "HTTPS",
                  "httpHeaders": [{"name": "X-Drain", "value": "1"}]}},
     Hook("http", ProbeSpec("http", port=41001, scheme="HTTPS", headers=(("X-Drain", "1"),),
                            user_agent=UA), what="HTTP lifecycle hook (/)")),
    # a host of its own is dialled as given
    ({"httpGet": {"port": 8080, "host": "10.0.0.9", "path": "/q"}},
     Hook("http", ProbeSpec("http", host="10.0.0.9", port=41000, path="/q", user_agent=UA),
          what="HTTP lifecycle hook (/q)")),
    # an unknown port name cannot be dialled: the check fails when it runs
    ({"httpGet": {"port": "nope"}},
     Hook("http", ProbeSpec("http", port=None, user_agent=UA), what="HTTP lifecycle hook (/)")),
    ({"exec": {"command": ["sh", "-c", "touch /tmp/x"]}},
     Hook("exec", ProbeSpec("exec", command=("sh", "-c", "touch /tmp/x"), user_agent=UA),
          what="Exec lifecycle hook (['sh', '-c', 'touch /tmp/x'])")),
    # the kubelet runs exec before httpGet when (unvalidated) both are set
    ({"httpGet": {"port": 8080}, "exec": {"command": ["true"]}},
     Hook("exec", ProbeSpec("exec", command=("true",), user_agent=UA),
          what="Exec lifecycle hook (['true'])")),
    ({"sleep": {"seconds": 5}}, Hook("sleep", seconds=5.0, what="Sleep lifecycle hook (5)")),
    # tcpSocket is kept in the API but the kubelet cannot run it: a hook that fails
    ({"tcpSocket": {"port": 8080}},
     Hook("invalid", what="Cannot run handler: invalid handler: {'tcpSocket': {'port': 8080}}")),
    ({}, Hook("invalid", what="Cannot run handler: invalid handler: {}")),
    (None, None),
])
def test_parse(handler: Obj | None, expect: Hook | None) -> None:
    assert parse(handler) == expect


def test_pod_ip_is_the_default_host_and_own_ports_in_a_pod_network() -> None:
    h = parse({"httpGet": {"port": 9999, "path": "/stop"}}, isolated=True, host="10.88.0.7")
    assert h is not None and h.check is not None
    assert (h.check.host, h.check.port) == ("10.88.0.7", 9999)
    named = parse({"httpGet": {"port": "admin"}}, isolated=True, host="10.88.0.7")
    assert named is not None and named.check is not None and named.check.port == 8022


def test_the_deadline_becomes_the_checks_timeout() -> None:
    h = parse({"exec": {"command": ["true"]}})
    assert h is not None
    spec = h.for_deadline(7.5)
    assert spec is not None and spec.timeout == 7.5 and spec.command == ("true",)
    late = h.for_deadline(-1)
    assert late is not None and late.timeout == 0.0
    assert Hook("sleep", seconds=3).for_deadline(3) is None
    assert Hook("invalid").for_deadline(3) is None


@pytest.mark.parametrize("container, expect", [
    ({"name": "a"}, (None, None)),
    ({"lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}, (None, {"sleep": {"seconds": 1}})),
    ({"lifecycle": {"postStart": {"exec": {"command": ["x"]}}, "preStop": None}},
     ({"exec": {"command": ["x"]}}, None)),
    ({"lifecycle": "junk"}, (None, None)),
])
def test_hooks_of(container: Obj, expect: tuple[Obj | None, Obj | None]) -> None:
    assert lifecycle.hooks_of(container) == expect


@pytest.mark.parametrize("grace, spent, left", [
    (30, 5, 25),       # the hook spends the shared grace period
    (30, 0, 30),
    (3, 2.5, 2.0),     # ... but SIGTERM always gets the kubelet's 2 s floor
    (2, 10, 2.0),      # a hook cut at the deadline
])
def test_grace_after_hook(grace: float, spent: float, left: float) -> None:
    assert lifecycle.grace_after_hook(grace, spent) == left
