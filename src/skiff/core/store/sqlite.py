"""SQLite (WAL) store: one table of objects, one transaction per write.

The resourceVersion is a single monotonic counter kept in the database, so it
survives restarts. Watch history is a bounded in-memory ring of committed
events (kine keeps it in a table; a ring is enough for one process): a watch
from a resourceVersion older than the ring gets TooOld (410 Gone), as with
etcd compaction. Fan-out happens after commit, so a watcher never sees a write
that was rolled back. Synchronous calls: each is well under a millisecond on
local disk, cheaper than a thread hop.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import sqlite3
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from skiff.core.bodies import MAX_OBJECT  # bytes of JSON per object, as etcd's request limit
from skiff.core.client import Obj
from skiff.core.home import make_private_dir, private_file
from skiff.core.store import AlreadyExists, Conflict, Event, NotFound, TooLarge, TooOld

HISTORY = 20000          # events kept for watch resumption
SMALL_EVENT = 4096       # history keeps longer event text zlib-compressed (CRDs shrink about 9x)
WATCH_BUFFER = 100000    # a watcher this far behind is closed (it must re-list)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, rv INTEGER NOT NULL, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('rv', 0);
"""


class _Watcher:
    """One watch's pending events: a deque and, while its consumer waits, one future to wake it
    (lighter than an asyncio.Queue; a write pushes to every matching watcher)."""

    def __init__(self, store: SQLiteStore, prefix: str) -> None:
        self._store = store
        self.prefix = prefix
        self._events: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def push(self, ev: Event) -> None:
        if self.closed:
            return
        if len(self._events) >= WATCH_BUFFER:
            # A consumer this slow would hold unbounded memory: end its watch.
            self.close()
            return
        self._events.append(ev)
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def close(self) -> None:
        """End the watch: the consumer gets the events already pushed, then the end."""
        if not self.closed:
            self.closed = True
            self._store._watchers.discard(self)
            self._wake()

    async def _iter(self) -> AsyncIterator[Event]:
        events = self._events
        while True:
            while events:
                yield events.popleft()
            if self.closed:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()


class SQLiteStore:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-256")
        self._db.executescript(_SCHEMA)
        self._rv: int = self._db.execute("SELECT value FROM meta WHERE name='rv'").fetchone()[0]
        # (rv, key, type, text or compressed text): the event as the ring keeps it
        self._history: deque[tuple[int, str, str, str | bytes]] = deque(maxlen=HISTORY)
        self._oldest_rv = self._rv  # watches may resume from here on
        self._watchers: set[_Watcher] = set()

    @property
    def rv(self) -> int:
        return self._rv

    def close(self) -> None:
        for w in list(self._watchers):
            w.close()
        self._db.close()

    # --- reads --------------------------------------------------------------
    def get(self, key: str) -> Obj | None:
        row = self._db.execute("SELECT value FROM objects WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, prefix: str, start_after: str = "") -> tuple[list[Obj], int]:
        return [o for _, o in self.iter(prefix, start_after)], self._rv

    def texts(self, prefix: str) -> tuple[builtins.list[str], int]:
        """The stored JSON text of every object under `prefix`, in key order, and the current
        resourceVersion: a watch's initial list, decoded one object at a time as it is sent."""
        cur = self._db.execute("SELECT value FROM objects WHERE key >= ? AND key < ? ORDER BY key",
                               (prefix, prefix + "\uffff"))
        return [v for (v,) in cur], self._rv

    def iter(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, Obj]]:
        """(key, object) under `prefix` in key order (namespace, then name: kubectl's order),
        decoded one row at a time so a paged or filtered list stops early."""
        lo = max(prefix, start_after + "\x00") if start_after else prefix
        cur = self._db.execute(
            "SELECT key, value FROM objects WHERE key >= ? AND key < ? ORDER BY key",
            (lo, prefix + "\uffff"))
        for key, value in cur:
            yield key, json.loads(value)

    # --- writes -------------------------------------------------------------
    def _write(self, key: str, obj: Obj | None, expect: str, expected_rv: int | None) -> Obj:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT rv, value FROM objects WHERE key=?", (key,)).fetchone()
            if expect == "absent" and row:
                raise AlreadyExists(key)
            if expect == "present":
                if not row:
                    raise NotFound(key)
                if expected_rv is not None and row[0] != expected_rv:
                    raise Conflict(key)
            rv = self._rv + 1
            if obj is None:
                db.execute("DELETE FROM objects WHERE key=?", (key,))
                gone: Obj = json.loads(row[1])
                gone["metadata"]["resourceVersion"] = str(rv)
                text = json.dumps(gone, separators=(",", ":"))
            else:
                obj["metadata"]["resourceVersion"] = str(rv)
                # allow_nan=False: a NaN stored would make every later read of the kind invalid JSON
                text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
                if len(text) > MAX_OBJECT:
                    raise TooLarge(key, len(text), MAX_OBJECT)
                db.execute("INSERT OR REPLACE INTO objects (key, rv, value) VALUES (?, ?, ?)",
                           (key, rv, text))
            db.execute("UPDATE meta SET value=? WHERE name='rv'", (rv,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._rv = rv
        ev_type = "DELETED" if obj is None else ("ADDED" if row is None else "MODIFIED")
        self._publish(Event(ev_type, key, text, rv))
        result: Obj = json.loads(text)  # callers and watchers never share a dict
        return result

    def create(self, key: str, obj: Obj) -> Obj:
        return self._write(key, obj, "absent", None)

    def update(self, key: str, obj: Obj, expected_rv: int | None = None) -> Obj:
        return self._write(key, obj, "present", expected_rv)

    def delete(self, key: str, expected_rv: int | None = None) -> Obj:
        return self._write(key, None, "present", expected_rv)

    # --- watch --------------------------------------------------------------
    def _publish(self, ev: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._oldest_rv = self._history[0][0]
        text = ev.text
        self._history.append((ev.rv, ev.key, ev.type,
                              text if len(text) <= SMALL_EVENT else zlib.compress(text.encode(), 1)))
        for w in list(self._watchers):
            if ev.key.startswith(w.prefix):
                w.push(ev)

    def watch(self, prefix: str, since_rv: int = 0) -> _Watcher:
        """Events after `since_rv` (0: from now on) under `prefix`."""
        if since_rv and since_rv < self._oldest_rv:
            raise TooOld(f"too old resource version: {since_rv} ({self._oldest_rv})")
        w = _Watcher(self, prefix)
        if since_rv:
            for rv, key, type_, data in self._history:
                if rv > since_rv and key.startswith(prefix):
                    w.push(Event(type_, key, data if isinstance(data, str) else zlib.decompress(data).decode(), rv))
        self._watchers.add(w)
        return w


def open_store(home: Path) -> SQLiteStore:
    make_private_dir(home)
    # Created 0600 before SQLite opens it: its -wal and -shm files take the database's mode.
    private_file(home / "skiff.db")
    return SQLiteStore(home / "skiff.db")


