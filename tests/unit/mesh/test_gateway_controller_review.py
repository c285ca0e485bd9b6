"""Review of the gateway controller's informers (mesh/gateway/controller.py): the keys an
informer remembers as changed are kept only for an owner that takes them (the pods', for the
EDS index); the ServerlessServices', PodAutoscalers' and Revisions' informers (commits
0c00950, 4eb4a6c) and the others would keep every key ever changed, deleted ones too."""

from __future__ import annotations

from typing import Any

from skiff.mesh.gateway.controller import POD, SKS, Informer, fp_pod, fp_sks


def _obj(i: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": f"r-{i:05d}"}, "spec": {"mode": "Proxy"}}


def test_an_informer_nobody_takes_changes_from_keeps_no_keys() -> None:
    inf = Informer(None, SKS, "", fp_sks, lambda: None)  # type: ignore[arg-type]
    for i in range(1000):                       # revisions come and go
        assert inf.apply("ADDED", _obj(i))
        assert inf.apply("DELETED", _obj(i))
    assert not inf.items and not inf.touched


def test_a_tracking_informer_hands_its_changed_keys_over_once() -> None:
    inf = Informer(None, POD, "", fp_pod, lambda: None, track=True)  # type: ignore[arg-type]
    inf.apply("ADDED", _obj(1))
    inf.apply("DELETED", _obj(2))               # never seen: nothing changed
    assert inf.take_touched() == {("ns", "r-00001")}
    assert inf.take_touched() == set()
