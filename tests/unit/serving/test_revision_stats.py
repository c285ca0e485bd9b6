"""RevisionStats, the KPA's intake of the data plane's reports: windows per revision, reports
for unknown revisions ignored, and its bound on how many revisions it keeps."""

from __future__ import annotations

import pytest

from skiff.serving.autoscaler import stats
from skiff.serving.autoscaler.stats import RevisionStats


def test_reports_feed_the_configured_revision_only() -> None:
    s = RevisionStats()
    s.configure("ns/r", 6.0, 1.0, now=100.0)
    s.record(100.0, {"ns/r": {"concurrency": 3.0, "requests": 30.0},
                     "ns/unknown": {"concurrency": 9.0}})
    got = s.stable_and_panic("ns/r", "concurrency", 100.5)
    assert got is not None and got[0] > 0
    assert s.stable_and_panic("ns/unknown", "concurrency", 100.5) is None
    assert s.last_seen("ns/r") == 100.0


def test_the_number_of_revisions_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "MAX_REVISIONS", 2)
    s = RevisionStats()
    for i in range(3):
        s.configure(f"ns/r{i}", 6.0, 1.0, now=0.0)
    assert s.dropped == 1
    s.record(0.0, {"ns/r2": {"concurrency": 1.0}})
    assert s.stable_and_panic("ns/r2", "concurrency", 0.5) is None
    s.forget("ns/r0")
    s.configure("ns/r2", 6.0, 1.0, now=0.0)
    assert s.dropped == 1


def test_a_poke_reaches_the_kpa() -> None:
    s = RevisionStats()
    seen: list[str] = []
    s.on_poke = seen.append
    s.poke("ns/r")
    assert seen == ["ns/r"]
