"""Review of f5895f5: whether knative-serving is a mesh member (so the activator's sidecar
decides first) follows the roll as Maistra resolves it: status.members when the roll has one
(names, "*" and memberSelectors resolved), else spec.members with "*". Reading spec.members
by name alone said "not a member" for a roll of ["*"] or one that selects by label, and the
check then skipped the activator's policies the traffic meets."""

from __future__ import annotations

from typing import Any

import pytest
from test_authz_cli_check import ALPHA, WORLD

from skiff.mesh.authz.check import Target, check


def roll(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"apiVersion": "maistra.io/v1", "kind": "ServiceMeshMemberRoll",
                         "metadata": {"name": "default", "namespace": "istio-system"},
                         "spec": spec}
    if status is not None:
        r["status"] = status
    return r


@pytest.mark.parametrize("smmr, via_activator", [
    (roll({"members": ["knative-serving", "team-alpha-1"]}), True),
    (roll({"members": ["*"]}), True),
    (roll({"memberSelectors": [{"matchLabels": {"mesh": "on"}}]},
          {"members": ["knative-serving", "team-alpha-1"]}), True),
    (roll({"memberSelectors": [{"matchLabels": {"mesh": "on"}}]},
          {"members": ["team-alpha-1"]}), False),
    (roll({"members": ["team-alpha-1", "team-bravo-1"]}), False),
])
def test_the_activator_is_a_mesh_workload_as_the_roll_resolves(
        smmr: dict[str, Any], via_activator: bool) -> None:
    v = check([*WORLD, smmr], ALPHA, Target("test-webapp", "team-alpha-1"))
    assert bool(v.hops) is via_activator
