"""Go's time.ParseDuration and time.Duration.String, in integer nanoseconds. Pure.

The config-autoscaler keys and the autoscaling annotations are Go durations,
and upstream's validation messages print them back with Duration.String
("stable-window = 5s, must be in [6s; 1h0m0s] range"). Nanoseconds, not float
seconds, because "at most second precision" is a test on the exact value.

Neighbours: config.py and validate.py parse and print with these; other
packages keep their own copies (domains do not import each other's helpers).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {"ns": NANOSECOND, "us": MICROSECOND, "\u00b5s": MICROSECOND, "\u03bcs": MICROSECOND,
          "ms": MILLISECOND, "s": SECOND, "m": MINUTE, "h": HOUR}
_MAX = (1 << 63) - 1


class DurationError(ValueError):
    """time.ParseDuration's error, with Go's text."""


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_duration(text: str) -> int:
    """time.ParseDuration: "1m9s82ms", "-42s", "0", "1.5h" -> nanoseconds."""
    orig, s = text, text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f"time: invalid duration {_quote(orig)}")
    total = Decimal(0)
    while s:
        # The number: digits, optionally a dot and more digits; at least one digit overall.
        i = 0
        while i < len(s) and s[i].isascii() and s[i].isdigit():
            i += 1
        j = i
        if j < len(s) and s[j] == ".":
            j += 1
            while j < len(s) and s[j].isascii() and s[j].isdigit():
                j += 1
        number = s[:j]
        if number in ("", "."):
            raise DurationError(f"time: invalid duration {_quote(orig)}")
        k = j
        while k < len(s) and s[k] != "." and not (s[k].isascii() and s[k].isdigit()):
            k += 1
        unit = s[j:k]
        if not unit:
            raise DurationError(f"time: missing unit in duration {_quote(orig)}")
        if unit not in _UNITS:
            raise DurationError(f"time: unknown unit {_quote(unit)} in duration {_quote(orig)}")
        try:
            total += Decimal(number if number[-1] != "." else number[:-1]) * _UNITS[unit]
        except InvalidOperation as e:  # pragma: no cover - the scan above admits only numbers
            raise DurationError(f"time: invalid duration {_quote(orig)}") from e
        if total > _MAX:
            raise DurationError(f"time: invalid duration {_quote(orig)}")
        s = s[k:]
    ns = int(total)  # Go truncates the fractional nanoseconds
    return -ns if neg else ns


def _frac(v: int, prec: int) -> str:
    """v / 10**prec with trailing zeros (and a bare dot) dropped, as Go's fmtFrac does."""
    whole, part = divmod(v, 10 ** prec)
    digits = str(part).rjust(prec, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def format_duration(ns: int) -> str:
    """time.Duration.String: 0s, 1.5ms, 61.984s -> 1m1.984s, 3600s -> 1h0m0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < SECOND:
        if u < MICROSECOND:
            return f"{sign}{u}ns"
        if u < MILLISECOND:
            return f"{sign}{_frac(u, 3)}\u00b5s"
        return f"{sign}{_frac(u, 6)}ms"
    secs = _frac(u % MINUTE, 9) + "s"
    if u < MINUTE:
        return sign + secs
    mins = (u // MINUTE) % 60
    if u < HOUR:
        return f"{sign}{mins}m{secs}"
    return f"{sign}{u // HOUR}h{mins}m{secs}"


def seconds(ns: int) -> float:
    return ns / SECOND


def to_ns(secs: float) -> int:
    """Float seconds back to nanoseconds, rounding away float noise (0.1 * 3 and the like)."""
    return round(secs * SECOND)
