"""The SQLite store: transactions, resourceVersions, watch from committed writes, 410 on old history."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skiff.core.store import AlreadyExists, Conflict, NotFound, TooOld, key_for, prefix_for
from skiff.core.store import sqlite as sq


def obj(name: str, ns: str = "default", **extra: object) -> dict:
    return {"metadata": {"name": name, "namespace": ns}, **extra}


def test_create_get_list_update_delete(tmp_path: Path) -> None:
    s = sq.SQLiteStore(tmp_path / "db")
    a = s.create(key_for("", "pods", "default", "a"), obj("a"))
    assert a["metadata"]["resourceVersion"] == "1"
    s.create(key_for("", "pods", "other", "b"), obj("b", "other"))
    with pytest.raises(AlreadyExists):
        s.create(key_for("", "pods", "default", "a"), obj("a"))
    items, rv = s.list(prefix_for("", "pods"))
    assert [i["metadata"]["name"] for i in items] == ["a", "b"] and rv == 2
    items, _ = s.list(prefix_for("", "pods", "other"))
    assert [i["metadata"]["name"] for i in items] == ["b"]
    with pytest.raises(Conflict):
        s.update(key_for("", "pods", "default", "a"), obj("a", x=1), expected_rv=2)
    u = s.update(key_for("", "pods", "default", "a"), obj("a", x=1), expected_rv=1)
    assert u["metadata"]["resourceVersion"] == "3"
    with pytest.raises(NotFound):
        s.update(key_for("", "pods", "default", "zz"), obj("zz"))
    d = s.delete(key_for("", "pods", "default", "a"))
    assert d["metadata"]["resourceVersion"] == "4" and s.get(key_for("", "pods", "default", "a")) is None


def test_rv_survives_restart(tmp_path: Path) -> None:
    s = sq.SQLiteStore(tmp_path / "db")
    s.create("/core/pods/default/a", obj("a"))
    s.create("/core/pods/default/c", obj("c"))
    s.close()
    s2 = sq.SQLiteStore(tmp_path / "db")
    assert s2.rv == 2 and s2.get("/core/pods/default/a") is not None
    assert s2.create("/core/pods/default/b", obj("b"))["metadata"]["resourceVersion"] == "3"
    with pytest.raises(TooOld):
        s2.watch("/core/pods/", since_rv=1)   # history before the restart is gone


def test_failed_write_changes_nothing_and_is_not_watched(tmp_path: Path) -> None:
    async def main() -> None:
        s = sq.SQLiteStore(tmp_path / "db")
        w = s.watch("/core/pods/")
        s.create("/core/pods/default/a", obj("a"))
        with pytest.raises(AlreadyExists):
            s.create("/core/pods/default/a", obj("a"))
        s.create("/core/configmaps/default/c", obj("c"))   # other prefix: not seen
        s.delete("/core/pods/default/a")
        got = []
        async for ev in w:
            got.append((ev.type, ev.rv))
            if len(got) == 2:
                break
        assert got == [("ADDED", 1), ("DELETED", 3)]
        assert s.rv == 3
    asyncio.run(main())


def test_watch_replays_history_after_rv(tmp_path: Path) -> None:
    async def main() -> None:
        s = sq.SQLiteStore(tmp_path / "db")
        for n in "abc":
            s.create(f"/core/pods/default/{n}", obj(n))
        w = s.watch("/core/pods/", since_rv=1)
        got = []
        async for ev in w:
            got.append(ev.decode()["metadata"]["name"])
            if len(got) == 2:
                break
        assert got == ["b", "c"]
    asyncio.run(main())


def test_history_ring_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = sq.SQLiteStore(tmp_path / "db")
    s._history = __import__("collections").deque(maxlen=3)
    for i in range(6):
        s.create(f"/core/pods/default/p{i}", obj(f"p{i}"))
    with pytest.raises(TooOld):
        s.watch("/core/pods/", since_rv=1)
    s.watch("/core/pods/", since_rv=4).close()
