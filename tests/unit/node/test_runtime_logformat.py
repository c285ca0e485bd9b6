"""logformat: CRI records written and read back (pure: bytes in, bytes out)."""

from __future__ import annotations

import pytest

from skiff.node import logformat as lf

T0 = 1475713029669794202          # 2016-10-06T00:17:09.669794202Z
S0 = b"2016-10-06T00:17:09.669794202Z"


def test_stamps_are_fixed_width_rfc3339nano() -> None:
    stamp = lf.Stamper()
    assert stamp(T0) == S0
    assert stamp(T0 - 669794202) == b"2016-10-06T00:17:09.000000000Z"
    assert len(stamp(0)) == lf.TS_WIDTH
    assert lf.parse_timestamp(stamp(T0 + 1)) == T0 + 1


@pytest.mark.parametrize("raw, ns", [
    ("2016-10-06T00:17:09Z", 1475713029 * 10**9),
    ("2016-10-06T00:17:09.5Z", 1475713029 * 10**9 + 500_000_000),
    ("2016-10-06T02:17:09.669794202+02:00", T0),
    ("yesterday", None),
    ("2016-13-06T00:17:09Z", None),
])
def test_parse_timestamp(raw: str, ns: int | None) -> None:
    assert lf.parse_timestamp(raw) == ns


def test_framer_writes_full_lines_and_holds_a_tail() -> None:
    f = lf.Framer()
    assert f.feed(b"a\n\nb", S0) == S0 + b" stdout F a\n" + S0 + b" stdout F \n"
    assert f.pending == b"b"
    assert f.feed(b"c\n", S0) == S0 + b" stdout F bc\n"
    assert f.feed(b"tail", S0) == b""
    assert f.flush(S0) == S0 + b" stdout F tail\n"      # the stream ended: a full line
    assert f.flush(S0) == b""


def test_framer_cuts_long_lines_into_partials() -> None:
    f = lf.Framer(max_line=4)
    out = f.feed(b"0123456789", S0)
    assert out == S0 + b" stdout P 0123\n" + S0 + b" stdout P 4567\n"
    assert f.feed(b"\n", S0) == S0 + b" stdout F 89\n"


def test_message_is_one_full_line() -> None:
    assert lf.message("failed to start", S0) == S0 + b" stdout F failed to start\n"


def test_split_at_room_cuts_after_whole_records() -> None:
    out = b"aaa\nbb\nc\n"
    assert lf.split_at_room(out, 100) == (out, b"")
    assert lf.split_at_room(out, 7) == (b"aaa\nbb\n", b"c\n")
    assert lf.split_at_room(out, 6) == (b"aaa\n", b"bb\nc\n")
    assert lf.split_at_room(out, 2) == (b"", out)


def records(*parts: tuple[bytes, bytes, bytes]) -> bytes:
    return b"".join(b"%s stdout %s %s\n" % p for p in parts)


def test_render_strips_prefixes_and_joins_partials() -> None:
    s1 = b"2016-10-06T00:17:10.000000000Z"
    data = records((S0, b"F", b"one"), (S0, b"P", b"tw"), (s1, b"F", b"o"), (s1, b"F", b""))
    assert lf.Renderer().render(data) == b"one\ntwo\n\n"
    # a line keeps its first part's time, as the kubelet prints it
    assert lf.Renderer(timestamps=True).render(data) == (
        S0 + b" one\n" + S0 + b" two\n" + s1 + b" \n")


def test_render_carries_a_partial_across_calls_and_passes_foreign_lines() -> None:
    r = lf.Renderer(timestamps=True)
    assert r.render(records((S0, b"P", b"ab"))) == S0 + b" ab"
    assert r.in_partial
    assert r.render(records((S0, b"F", b"c"))) == b"c\n"
    assert r.render(b"not a record\n") == b"not a record\n"
    assert lf.Renderer().render(b"not a record\n") == b"not a record\n"


def test_record_helpers() -> None:
    rec = S0 + b" stdout P x\n"
    assert lf.record_time(rec) == T0
    assert lf.record_tag(rec) == b"P"
    assert lf.record_tag(b"junk") == b""
