"""queue-proxy's first probes of the app (serving/queue/main.retry_wait): the wait before the
next try is half the time since the first, between FIRST_RETRY and the period."""

from __future__ import annotations

import pytest

from skiff.serving.queue.main import FIRST_RETRY, retry_wait


@pytest.mark.parametrize("elapsed,period,expect", [
    (0.0, 0.025, FIRST_RETRY),       # at once: the soonest retry
    (0.0015, 0.025, FIRST_RETRY),
    (0.006, 0.025, 0.003),           # half the time since the first try
    (0.1, 0.025, 0.025),             # never longer than the period
    (0.0, 0.0005, 0.0005),           # nor than a period below FIRST_RETRY
])
def test_retry_wait(elapsed: float, period: float, expect: float) -> None:
    assert retry_wait(elapsed, period) == pytest.approx(expect)
