"""The fork server's standby pool, its pure parts: the request frame a standby reads, and when
the template must fork replacements. (The processes themselves: test_runtime_forkserver.py.)"""

from __future__ import annotations

import json

import pytest

from skiff.node.forkserver import (
    MAX_STANDBY_REQUEST,
    frame,
    frame_length,
    refill_timeout,
)


def test_a_frame_is_its_length_then_the_json_as_skiff_sent_it() -> None:
    req = {"id": 1, "module": "m", "env": {"A": "b"}}
    line = json.dumps(req).encode()
    data = frame(line)
    assert data is not None
    n = frame_length(data[:10])
    assert n == len(data) - 10
    assert data[10:] == line                 # passed on as it came, not encoded again
    assert json.loads(data[10:]) == req


def test_a_request_too_large_for_a_standby_has_no_frame() -> None:
    assert frame(json.dumps({"env": {"X": "y" * MAX_STANDBY_REQUEST}}).encode()) is None
    largest = b"x" * (MAX_STANDBY_REQUEST - 10)
    data = frame(largest)
    assert data is not None and len(data) == MAX_STANDBY_REQUEST
    assert frame(largest + b"x") is None


@pytest.mark.parametrize("header", [b"", b"12", b"00000000x1", b"-000000001",
                                    b"%010d" % MAX_STANDBY_REQUEST])
def test_a_bad_header_is_an_error(header: bytes) -> None:
    with pytest.raises(ValueError):
        frame_length(header)


@pytest.mark.parametrize("have,want,due,now,expect", [
    (2, 2, 5.0, 9.0, None),      # the pool is full
    (0, 2, None, 9.0, None),     # nothing used a standby since the last refill
    (1, 2, 5.0, 4.5, 0.5),       # wait for the quiet spell
    (1, 2, 5.0, 6.0, 0.0),       # due: fork now
    (0, 0, 0.0, 1.0, None),      # no standbys wanted
])
def test_refill_timeout(have: int, want: int, due: float | None, now: float,
                        expect: float | None) -> None:
    assert refill_timeout(have, want, due, now) == expect
