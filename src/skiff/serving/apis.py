"""Field errors the way knative.dev/pkg/apis words them, turned into API causes. Pure.

Upstream validation builds FieldErrors (a message, the field paths it
concerns, optional details) with a few constructors whose wording users
know from kubectl ("missing field(s)", "expected exactly one, got both",
"expected 0 <= 700 <= 600"). webhook.py and traffic.py build them here;
to_causes() turns them into skiff's Kubernetes-style causes (field path +
message), so the 422 reads `The Service "x" is invalid: spec.traffic:
Traffic targets sum to 90, want 100`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from skiff.core.validation import Cause


@dataclass(frozen=True)
class FieldError:
    message: str
    paths: tuple[str, ...] = ("",)
    details: str = ""
    reason: str = "FieldValueInvalid"

    def via(self, prefix: str) -> FieldError:
        """ViaField/ViaIndex: prefix every path ("spec", "traffic[0]", "[0]")."""
        def join(p: str) -> str:
            if not p:
                return prefix
            return prefix + p if p.startswith("[") else f"{prefix}.{p}"
        return replace(self, paths=tuple(join(p) for p in self.paths))

    def text(self) -> str:
        """FieldError.Error(): `message: paths` and the details on the next line."""
        s = f"{self.message}: {', '.join(self.paths)}"
        return f"{s}\n{self.details}" if self.details else s


def via(errs: list[FieldError], prefix: str) -> list[FieldError]:
    return [e.via(prefix) for e in errs]


def missing_field(*fields: str) -> FieldError:
    return FieldError("missing field(s)", tuple(fields), reason="FieldValueRequired")


def disallowed_fields(*fields: str) -> FieldError:
    return FieldError("must not set the field(s)", tuple(fields), reason="FieldValueForbidden")


def invalid_value(value: Any, field: str, details: str = "") -> FieldError:
    return FieldError(f"invalid value: {value}", (field,), details)


def invalid_array_value(value: Any, field: str, index: int) -> FieldError:
    return FieldError(f"invalid value: {value}", (f"{field}[{index}]",))


def invalid_key_name(key: str, field: str, details: str = "") -> FieldError:
    return FieldError(f'invalid key name "{key}"', (field,), details)


def out_of_bounds(value: Any, lower: Any, upper: Any, field: str) -> FieldError:
    return FieldError(f"expected {lower} <= {value} <= {upper}", (field,))


def multiple_one_of(*fields: str) -> FieldError:
    return FieldError("expected exactly one, got both", tuple(fields))


def missing_one_of(*fields: str) -> FieldError:
    return FieldError("expected exactly one, got neither", tuple(fields),
                      reason="FieldValueRequired")


def generic(message: str, *fields: str) -> FieldError:
    return FieldError(message, tuple(fields) or ("",))


def to_causes(errs: list[FieldError]) -> list[Cause]:
    """One cause per error, at its first path. The message leaves the path out, as
    Kubernetes causes do (kubectl prints `field: message`); an error on several paths
    names them all after the message, upstream's way."""
    out = []
    for e in errs:
        paths = [p for p in e.paths if p]
        msg = e.message
        if len(paths) > 1:
            msg += ": " + ", ".join(paths)
        if e.details:
            msg += f"\n{e.details}"
        out.append(Cause(paths[0] if paths else "", e.reason, msg))
    return out
