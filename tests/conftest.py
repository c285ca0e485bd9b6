"""Fixtures for every test folder: one real `skiff up` per module (tests/skiffproc.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from skiffproc import Skiff, new_skiff


@pytest.fixture(scope="module")
def skiff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    s = new_skiff(tmp_path_factory.mktemp("skiff"))
    s.start()
    try:
        yield s
    finally:
        if s.proc is not None:
            s.stop()
