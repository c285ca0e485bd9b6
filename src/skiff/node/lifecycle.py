"""Container lifecycle hooks (lifecycle.postStart / preStop): the spec, read once. Pure.

parse() turns one LifecycleHandler into a Hook the way the kubelet's
handler runner reads it (pkg/kubelet/lifecycle/handlers.go): exec first,
then httpGet, then sleep; anything else (the deprecated tcpSocket, or no
action at all) is a hook that cannot run and so fails, as upstream's
"Cannot run handler: invalid handler" does. An exec or httpGet hook is a
probes.ProbeSpec without thresholds (probes.parse does the port translation,
ports.port_for), so prober.check runs it; its timeout is set when it runs
(for_deadline): the grace period that is left for a preStop hook.
grace_after_hook() is the kubelet's killContainer arithmetic: the hook spends
the grace period, the container then gets what is left but at least
MIN_GRACE seconds. pod.py runs the hooks (its shell) and records the
FailedPreStopHook / FailedPostStartHook events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from skiff.core.client import Obj
from skiff.node import probes

HookKind = Literal["exec", "http", "sleep", "invalid"]
USER_AGENT = "kube-lifecycle/1.29"   # upstream's request for hooks, as kube-probe/ for probes
MIN_GRACE = 2.0                      # kubelet's minimumGracePeriodInSeconds
UNBOUNDED = 365 * 86400.0            # a postStart hook has no deadline (the kubelet sets none)


@dataclass(frozen=True)
class Hook:
    kind: HookKind
    check: probes.ProbeSpec | None = None   # exec, http: what prober.check runs
    seconds: float = 0.0                    # sleep
    what: str = ""                          # for the log: which handler, or why it cannot run

    def for_deadline(self, seconds: float) -> probes.ProbeSpec | None:
        """The check with `seconds` as its timeout (the hook's deadline)."""
        return replace(self.check, timeout=max(seconds, 0.0)) if self.check else None


def parse(handler: Obj | None, pod: Obj, container: Obj, mapping: dict[str, int],
          keys: list[str], host: str = "127.0.0.1", isolated: bool = False) -> Hook | None:
    """One handler (container.lifecycle.preStop or .postStart) -> a Hook; None when unset."""
    if handler is None:
        return None
    actions: tuple[tuple[str, HookKind], ...] = (("exec", "exec"), ("httpGet", "http"))
    for key, kind in actions:
        if handler.get(key) is None:
            continue
        # only this action goes to probes.parse, so its exec-before-httpGet order is ours too
        spec = probes.parse({key: handler[key]}, pod, container, mapping, keys, host, isolated)
        if spec is None:
            break
        return Hook(kind, check=replace(spec, user_agent=USER_AGENT),
                    what=_describe(kind, handler[key]))
    sleep = handler.get("sleep")
    if isinstance(sleep, dict):
        return Hook("sleep", seconds=float(sleep.get("seconds") or 0),
                    what=f"Sleep lifecycle hook ({sleep.get('seconds')})")
    return Hook("invalid", what=f"Cannot run handler: invalid handler: {handler}")


def _describe(kind: HookKind, action: Obj) -> str:
    if kind == "exec":
        return f"Exec lifecycle hook ({list(action.get('command') or [])})"
    return f"HTTP lifecycle hook ({action.get('path') or '/'})"


def hooks_of(container: Obj) -> tuple[Obj | None, Obj | None]:
    """(postStart, preStop) handlers of a container spec, None where unset."""
    lc = container.get("lifecycle")
    if not isinstance(lc, dict):
        return None, None
    post, pre = lc.get("postStart"), lc.get("preStop")
    return (post if isinstance(post, dict) else None, pre if isinstance(pre, dict) else None)


def grace_after_hook(grace: float, spent: float) -> float:
    """What SIGTERM-to-SIGKILL gets after a preStop hook that took `spent` of `grace` seconds:
    the rest, but never under MIN_GRACE (the kubelet's floor, so a slow hook does not turn
    into an immediate SIGKILL)."""
    return max(grace - spent, MIN_GRACE)
