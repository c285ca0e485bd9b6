"""Admission: per-kind defaulting and validation hooks (Knative's webhooks).

A domain registers an Admission for a kind (e.g. serving validates traffic
targets and BYO revision names, core defaults Pods and Deployments). The API
registry calls every hook on create and update, before the store is touched,
so a rejected object changes nothing. Hooks are pure: object (+ old object)
in, a defaulted object or a list of causes out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from skiff.core.client import Obj
from skiff.core.validation import Cause

Defaulter = Callable[[Obj, Obj | None], None]          # mutates obj in place
Validator = Callable[[Obj, Obj | None], list[Cause]]   # (new, old) -> causes


@dataclass
class Admission:
    defaulters: dict[tuple[str, str], list[Defaulter]] = field(default_factory=dict)
    validators: dict[tuple[str, str], list[Validator]] = field(default_factory=dict)

    def default(self, group: str, kind: str, fn: Defaulter) -> None:
        self.defaulters.setdefault((group, kind), []).append(fn)

    def validate(self, group: str, kind: str, fn: Validator) -> None:
        self.validators.setdefault((group, kind), []).append(fn)

    def run(self, group: str, kind: str, obj: Obj, old: Obj | None) -> list[Cause]:
        for d in self.defaulters.get((group, kind), []):
            d(obj, old)
        causes: list[Cause] = []
        for v in self.validators.get((group, kind), []):
            causes.extend(v(obj, old))
        return causes
