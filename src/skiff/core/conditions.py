"""Knative condition sets: a happy condition (Ready) and its dependents. Pure.

A port of knative.dev/pkg apis.ConditionSet as the serving types use it:
marking a dependent False marks Ready False with the same reason and
message; Unknown makes Ready Unknown unless another dependent is already
False; Ready turns True when every dependent is True. Conditions that are
not dependents (the Revision's Active) carry severity Info. Conditions are
kept sorted by type, and reason/message are omitted when empty, as the Go
JSON encoding does. Times are not touched while marking: stamp() compares
the result with the previous conditions once, at the end, and keeps a
condition's lastTransitionTime when nothing about it changed (knative bumps
the time on any change of status, reason or message). Neighbours: the
reconcilers (reconcilers/*.py, operator/serving.py) mark; their shells stamp
with `now`.
"""

from __future__ import annotations

from dataclasses import dataclass

from skiff.core.client import Obj

READY = "Ready"
TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
SEVERITY_INFO = "Info"

# PreProcessReconcile's reason when a new generation has not been reconciled yet.
FAILED_GENERATION_BUMP = "NewObservedGenFailure"


def _same(a: Obj, b: Obj) -> bool:
    strip = ("lastTransitionTime",)
    return {k: v for k, v in a.items() if k not in strip} == \
        {k: v for k, v in b.items() if k not in strip}


def get(status: Obj, type_: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def status_of(status: Obj, type_: str) -> str:
    """The condition's status, or "" when absent."""
    c = get(status, type_)
    return str(c.get("status", "")) if c else ""


@dataclass(frozen=True)
class ConditionSet:
    dependents: tuple[str, ...]
    happy: str = READY

    def manage(self, status: Obj) -> Manager:
        return Manager(self, status)


class Manager:
    """Marks conditions on a status dict in place (knative's ConditionManager)."""

    def __init__(self, cs: ConditionSet, status: Obj) -> None:
        self.cs = cs
        self.status = status

    def _severity(self, t: str) -> str:
        return "" if t == self.cs.happy or t in self.cs.dependents else SEVERITY_INFO

    def get(self, t: str) -> Obj | None:
        return get(self.status, t)

    def set(self, t: str, status: str, reason: str = "", message: str = "") -> None:
        cond: Obj = {"type": t, "status": status}
        if sev := self._severity(t):
            cond["severity"] = sev
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        conds = list(self.status.get("conditions") or [])
        for i, c in enumerate(conds):
            if c.get("type") == t:
                if _same(c, cond):
                    return
                conds[i] = cond
                break
        else:
            conds.append(cond)
        conds.sort(key=lambda c: str(c.get("type", "")))
        self.status["conditions"] = conds

    def initialize(self) -> None:
        """Unknown for every condition not set yet (True if Ready already is)."""
        happy = self.get(self.cs.happy)
        if happy is None:
            self.set(self.cs.happy, UNKNOWN)
            happy = {"status": UNKNOWN}
        init = TRUE if happy.get("status") == TRUE else UNKNOWN
        for t in self.cs.dependents:
            if self.get(t) is None:
                self.set(t, init)

    def mark_true(self, t: str) -> None:
        self.set(t, TRUE)
        self._happy_if_all_true()

    def mark_true_with_reason(self, t: str, reason: str, message: str) -> None:
        self.set(t, TRUE, reason, message)
        self._happy_if_all_true()

    def _happy_if_all_true(self) -> None:
        if all(status_of(self.status, d) == TRUE for d in self.cs.dependents):
            self.set(self.cs.happy, TRUE)

    def mark_unknown(self, t: str, reason: str, message: str = "") -> None:
        self.set(t, UNKNOWN, reason, message)
        for d in self.cs.dependents:
            if status_of(self.status, d) == FALSE:
                # A failed dependent trumps an unknown one: Ready stays False.
                if status_of(self.status, self.cs.happy) != FALSE:
                    self.set(self.cs.happy, FALSE, reason, message)
                return
        if t in self.cs.dependents:
            self.set(self.cs.happy, UNKNOWN, reason, message)

    def mark_false(self, t: str, reason: str, message: str = "") -> None:
        self.set(t, FALSE, reason, message)
        if t in self.cs.dependents:
            self.set(self.cs.happy, FALSE, reason, message)

    def is_happy(self) -> bool:
        return status_of(self.status, self.cs.happy) == TRUE


def pre_process(cs: ConditionSet, status: Obj, generation: int) -> None:
    """knative's PreProcessReconcile: initialize; a new generation makes Ready Unknown."""
    m = cs.manage(status)
    m.initialize()
    if int(status.get("observedGeneration") or 0) != generation:
        m.mark_unknown(cs.happy, FAILED_GENERATION_BUMP, "unsuccessfully observed a new generation")


def stamp(new: Obj, old: Obj, now: str) -> Obj:
    """Give every condition of `new` its lastTransitionTime: the old one when unchanged."""
    prev = {c.get("type"): c for c in old.get("conditions") or []}
    out = []
    for c in new.get("conditions") or []:
        p = prev.get(c.get("type"))
        c = {k: v for k, v in c.items() if k != "lastTransitionTime"}
        c["lastTransitionTime"] = p["lastTransitionTime"] if p is not None and _same(p, c) \
            and p.get("lastTransitionTime") else now
        out.append(c)
    if out or "conditions" in new:
        new["conditions"] = out
    return new


def same_status(a: Obj, b: Obj) -> bool:
    """Equal ignoring condition times: a status write would change nothing that matters."""
    def strip(s: Obj) -> Obj:
        return {**s, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                    for c in s.get("conditions") or []]}
    return strip(a) == strip(b)
