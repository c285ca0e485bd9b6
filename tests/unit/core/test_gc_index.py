"""The garbage collector's owner index: who to delete when an owner goes (pure)."""

from __future__ import annotations

from skiff.core.client import Ref
from skiff.core.reconcilers.gc import OwnerIndex

POD = Ref("v1", "Pod")
DEP = Ref("apps/v1", "Deployment")


def obj(uid: str, name: str, *owners: str) -> dict:
    return {"metadata": {"uid": uid, "name": name, "namespace": "ns",
                         "ownerReferences": [{"uid": o, "kind": "X", "name": o, "apiVersion": "v1"}
                                             for o in owners]}}


def test_single_owner_cascade() -> None:
    ix = OwnerIndex()
    assert ix.put(DEP, obj("d", "web")) == []
    assert ix.put(POD, obj("p1", "web-1", "d")) == []
    assert ix.put(POD, obj("p2", "web-2", "d")) == []
    assert ix.remove("d") == [(POD, "ns", "web-1"), (POD, "ns", "web-2")]


def test_a_live_second_owner_keeps_the_dependent() -> None:
    ix = OwnerIndex()
    ix.put(DEP, obj("a", "a"))
    ix.put(DEP, obj("b", "b"))
    ix.put(POD, obj("p", "p", "a", "b"))
    assert ix.remove("a") == []
    assert ix.remove("b") == [(POD, "ns", "p")]


def test_ownership_changes_are_followed() -> None:
    ix = OwnerIndex()
    ix.put(DEP, obj("a", "a"))
    ix.put(POD, obj("p", "p", "a"))
    ix.put(POD, obj("p", "p"))            # orphaned by an update
    assert ix.remove("a") == []


def test_a_dependent_seen_after_its_owner_went_is_deleted() -> None:
    ix = OwnerIndex()
    ix.put(DEP, obj("d", "d"))
    assert ix.remove("d") == []
    assert ix.put(POD, obj("late", "late", "d")) == [(POD, "ns", "late")]


def test_orphans_and_deleted_dependents() -> None:
    ix = OwnerIndex()
    ix.put(POD, obj("p", "p", "never-seen"))
    ix.put(DEP, obj("d", "d"))
    ix.put(POD, obj("q", "q", "d"))
    assert ix.orphans() == [(POD, "ns", "p")]
    assert ix.remove("q") == []           # a dependent going first is no cascade
    assert ix.remove("d") == []


def test_memory_of_deleted_uids_is_bounded() -> None:
    ix = OwnerIndex(remember=2)
    for u in "abc":
        ix.put(DEP, obj(u, u))
        ix.remove(u)
    assert list(ix.gone) == ["b", "c"]


def test_a_relist_deletes_what_went_during_the_gap() -> None:
    ix = OwnerIndex()
    ix.put(DEP, obj("d1", "kept"))
    ix.put(DEP, obj("d2", "gone"))
    ix.put(POD, obj("p1", "of-kept", "d1"))
    ix.put(POD, obj("p2", "of-gone", "d2"))
    # the Deployment watch broke; d2 was deleted meanwhile: the re-list has d1 only
    assert ix.resync(DEP, [obj("d1", "kept")]) == [(POD, "ns", "of-gone")]
    assert ix.resync(DEP, [obj("d1", "kept")]) == []   # nothing more the second time
    assert ix.resync(POD, [obj("p1", "of-kept", "d1")]) == []
