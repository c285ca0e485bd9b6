"""The inbound sidecar's shortcut: with no policy selecting the pod, a request whose path
Istio's normalization leaves as it is goes to the app without a Request built or decided.
What decides whether the shortcut may be taken is checked here against decide() itself."""

from __future__ import annotations

import pytest

from skiff.mesh.authz import Request, Workload, compile_policies, decide
from skiff.mesh.sidecar.host import _plain_path

W = Workload.of("team", {"app": "web"})
POLICY = {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
          "metadata": {"name": "allow-get", "namespace": "team"},
          "spec": {"rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}}


@pytest.mark.parametrize("target", [b"/", b"/hello", b"/a/b.c/d-e_f", b"/x?y=1&z=/2",
                                    b"/v1/items/42"])
def test_plain_paths_are_left_as_they_are_and_allowed_without_policies(target: bytes) -> None:
    assert _plain_path(target)
    d = decide(compile_policies([]), Request(destination=W, port=8080, host="web",
                                             method="GET", path=target.decode()))
    assert d.allowed and d.policy is None and d.path == target.decode().split("?")[0]


@pytest.mark.parametrize("target", [b"/a/../b", b"/./a", b"//a", b"/a%2Fb", b"/a%00",
                                    b"*", b"http://x/", b"/a b", b"/a\\b", b"/.well-known"])
def test_anything_else_takes_the_full_path(target: bytes) -> None:
    assert not _plain_path(target)


def test_a_policy_selecting_the_workload_turns_the_shortcut_off() -> None:
    assert compile_policies([]).for_workload(W).none
    assert not compile_policies([POLICY]).for_workload(W).none
    other = Workload.of("elsewhere", {"app": "web"})
    assert compile_policies([POLICY]).for_workload(other).none
