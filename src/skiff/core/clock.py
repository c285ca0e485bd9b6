"""Time, in one place: the shells read the clock here and pass `now` to pure code.

Also the one set of time helpers everything shares: RFC 3339 in and out,
and Kubernetes' human durations (apimachinery's duration.HumanDuration for
kubectl's AGE columns, ShortHumanDuration for kn describe).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (metav1.Time or MicroTime), timezone-aware, or None if absent or
    malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _go_seconds(d: timedelta) -> int:
    """int(d.Seconds()) in Go: truncation toward zero."""
    us = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    return us // 1_000_000 if us >= 0 else -((-us) // 1_000_000)


def human_duration(d: timedelta) -> str:
    """duration.HumanDuration: ~2-3 significant figures ("5m3s", "3h", "2y45d")."""
    seconds = _go_seconds(d)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def human_age(then: datetime, now: datetime) -> str:
    """How long ago `then` was, as kubectl's AGE column prints it."""
    return human_duration(_aware(now) - _aware(then))


def short_human_duration(d: timedelta) -> str:
    """duration.ShortHumanDuration (kn describe's ages): one unit ("5m", "3h", "2d")."""
    seconds = _go_seconds(d)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = seconds
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 86400 * 365:
        return f"{s // 86400}d"
    return f"{s // (86400 * 365)}y"
