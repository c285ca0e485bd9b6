"""CrashLoopBackOff and image pull back-off, as kubelet computes them. Pure.

A port of client-go's flowcontrol.Backoff as kubelet uses it: the first
restart after a crash is immediate; each later one waits the current
back-off, counted from when the container finished, which doubles from
`initial` (10 s) up to `cap` (5 min); an entry untouched for `reset_after`
(10 min, twice the cap) starts over. Times are seconds on one monotonic
clock, passed in. pod.py keeps one BackoffEntry per container.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 10.0
    cap: float = 300.0
    reset_after: float = 600.0


@dataclass(frozen=True)
class BackoffEntry:
    delay: float          # the back-off now in force
    last_update: float    # when it was last advanced (a restart)


def expired(policy: BackoffPolicy, entry: BackoffEntry | None, now: float) -> bool:
    return entry is None or now - entry.last_update > policy.reset_after


def restart_delay(policy: BackoffPolicy, entry: BackoffEntry | None,
                  finished_at: float, now: float) -> float:
    """Seconds from `now` until a container that finished at `finished_at` may start again."""
    if entry is None or expired(policy, entry, now):
        return 0.0
    return max(0.0, finished_at + entry.delay - now)


def advance(policy: BackoffPolicy, entry: BackoffEntry | None, now: float) -> BackoffEntry:
    """The entry after a (re)start at `now`: initial when fresh or expired, else doubled."""
    if entry is None or expired(policy, entry, now):
        return BackoffEntry(policy.initial, now)
    return BackoffEntry(min(entry.delay * 2, policy.cap), now)


def go_duration(seconds: float) -> str:
    """Go's time.Duration String() for whole and fractional seconds: 10s, 1m20s, 5m0s, 200ms."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds, 3)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(int(minutes), 60)
    s = f"{secs:g}s"
    if hours:
        return f"{hours}h{minutes}m{s}"
    if minutes:
        return f"{minutes}m{s}"
    return s


def crash_loop_message(delay: float, container: str, pod: str, namespace: str, uid: str) -> str:
    return (f"back-off {go_duration(delay)} restarting failed container={container} "
            f"pod={pod}_{namespace}({uid})")
