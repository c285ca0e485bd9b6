"""The Deployment reconciler creates pods as the ReplicaSet controller does: slow start, capped."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core.reconcilers.deployment import BURST_REPLICAS, plan, slow_start_batches


@pytest.mark.parametrize("count,initial,batches", [
    (0, 1, []),
    (-3, 1, []),
    (1, 1, [1]),
    (2, 1, [1, 1]),
    (3, 1, [1, 2]),
    (4, 1, [1, 2, 1]),
    (7, 1, [1, 2, 4]),
    (10, 1, [1, 2, 4, 3]),
    (500, 1, [1, 2, 4, 8, 16, 32, 64, 128, 245]),
    (10, 3, [3, 6, 1]),
    (2, 5, [2]),
    (5, 0, [1, 2, 2]),        # a batch is never empty
])
def test_slow_start_batches(count: int, initial: int, batches: list[int]) -> None:
    assert slow_start_batches(count, initial) == batches
    assert sum(batches) == max(count, 0)


def deployment(replicas: int) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default", "uid": "d1", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


@pytest.mark.parametrize("replicas,create", [
    (0, 0), (3, 3), (BURST_REPLICAS, BURST_REPLICAS), (BURST_REPLICAS + 1, BURST_REPLICAS),
    (10**9, BURST_REPLICAS),
])
def test_plan_caps_creates_per_sync(replicas: int, create: int) -> None:
    assert plan(deployment(replicas), []).create == create
