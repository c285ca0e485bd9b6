"""A registry of the built-in kinds over a SQLite file with the `default` namespace, for unit
tests that run controllers or the write path against the real API machinery in-process."""

from __future__ import annotations

from pathlib import Path

from skiff.core import builtin_kinds
from skiff.core.apiserver.local_client import LocalClient
from skiff.core.apiserver.registry import Registry
from skiff.core.kinds import Kinds
from skiff.core.store.sqlite import SQLiteStore


def registry(tmp: Path) -> tuple[Registry, Kinds]:
    kinds = Kinds()
    for k in builtin_kinds.KINDS:
        kinds.add(k)
    reg = Registry(SQLiteStore(tmp / "db"), kinds)
    reg.create(kinds.for_api_version("v1", "Namespace"), "", {"metadata": {"name": "default"}})  # type: ignore[arg-type]
    return reg, kinds


def local_client(tmp: Path) -> LocalClient:
    return LocalClient(registry(tmp)[0])
