"""exchange_verdict: the three timeouts of a request in flight (request, response start, idle)."""

from __future__ import annotations

import pytest

from skiff.dataplane.proxy.limits import Limits, Verdict, exchange_verdict, sweep_period

KEEP, OUT = Verdict.KEEP, Verdict.REQUEST_TIMEOUT


@pytest.mark.parametrize("limits, elapsed, started, quiet, want", [
    (Limits(request_timeout=10), 9.9, False, 9.9, KEEP),
    (Limits(request_timeout=10), 10.0, True, 0.0, OUT),
    (Limits(request_timeout=0), 1e6, False, 1e6, KEEP),             # 0: no bound
    # the response must begin within response_start_timeout; once begun it no longer applies
    (Limits(request_timeout=10, response_start_timeout=2), 2.0, False, 0.0, OUT),
    (Limits(request_timeout=10, response_start_timeout=2), 5.0, True, 0.0, KEEP),
    # no response byte for stream_idle_timeout, before or after the response began
    (Limits(request_timeout=10, stream_idle_timeout=3), 5.0, True, 3.0, OUT),
    (Limits(request_timeout=10, stream_idle_timeout=3), 5.0, False, 2.9, KEEP),
    (Limits(request_timeout=0, stream_idle_timeout=3), 100.0, True, 1.0, KEEP),
])
def test_exchange_verdict(limits: Limits, elapsed: float, started: bool, quiet: float,
                          want: Verdict) -> None:
    assert exchange_verdict(elapsed, started, quiet, limits) is want


def test_the_sweep_is_fine_enough_for_the_shortest_timeout() -> None:
    assert sweep_period(Limits(request_timeout=300, response_start_timeout=1,
                               header_timeout=15, idle_timeout=300)) == 0.25
    assert sweep_period(Limits(request_timeout=300, stream_idle_timeout=2,
                               header_timeout=15, idle_timeout=300)) == 0.5
