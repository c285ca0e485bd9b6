"""Knative condition-set semantics: how marking dependents moves Ready, and condition times."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core import conditions
from skiff.core.conditions import ConditionSet

CS = ConditionSet(("A", "B"))


def types(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status["conditions"]}


@pytest.mark.parametrize("marks, want", [
    ([], {"A": ("Unknown", ""), "B": ("Unknown", ""), "Ready": ("Unknown", "")}),
    ([("true", "A")], {"A": ("True", ""), "B": ("Unknown", ""), "Ready": ("Unknown", "")}),
    ([("true", "A"), ("true", "B")], {"A": ("True", ""), "B": ("True", ""), "Ready": ("True", "")}),
    # A failed dependent takes Ready down with its reason.
    ([("true", "A"), ("false", "B", "Bad")],
     {"A": ("True", ""), "B": ("False", "Bad"), "Ready": ("False", "Bad")}),
    # Unknown does not overrule a failure elsewhere.
    ([("false", "A", "Bad"), ("unknown", "B", "Wait")],
     {"A": ("False", "Bad"), "B": ("Unknown", "Wait"), "Ready": ("False", "Bad")}),
    ([("true", "A"), ("unknown", "B", "Wait")],
     {"A": ("True", ""), "B": ("Unknown", "Wait"), "Ready": ("Unknown", "Wait")}),
    # The last failure marked wins Ready's reason.
    ([("false", "A", "First"), ("false", "B", "Second")],
     {"A": ("False", "First"), "B": ("False", "Second"), "Ready": ("False", "Second")}),
    # A non-dependent condition does not touch Ready and carries severity Info.
    ([("false", "Active", "NoTraffic")],
     {"A": ("Unknown", ""), "B": ("Unknown", ""), "Ready": ("Unknown", ""),
      "Active": ("False", "NoTraffic")}),
])
def test_marks(marks: list[tuple[str, ...]], want: dict[str, tuple[str, str]]) -> None:
    status: dict[str, Any] = {}
    m = CS.manage(status)
    m.initialize()
    for mark in marks:
        op, t, *rest = mark
        if op == "true":
            m.mark_true(t)
        elif op == "false":
            m.mark_false(t, rest[0], "msg")
        else:
            m.mark_unknown(t, rest[0], "msg")
    assert types(status) == want
    assert [c["type"] for c in status["conditions"]] == sorted(want)
    for c in status["conditions"]:
        assert c.get("severity") == ("Info" if c["type"] == "Active" else None)


def test_true_with_reason_and_empty_fields_omitted() -> None:
    status: dict[str, Any] = {}
    m = CS.manage(status)
    m.initialize()
    m.mark_true_with_reason("A", "TLSNotEnabled", "autoTLS is not enabled")
    m.mark_true("B")
    assert conditions.get(status, "A") == {"type": "A", "status": "True",
                                           "reason": "TLSNotEnabled",
                                           "message": "autoTLS is not enabled"}
    assert conditions.get(status, "Ready") == {"type": "Ready", "status": "True"}


def test_initialize_keeps_existing_and_follows_ready() -> None:
    status = {"conditions": [{"type": "Ready", "status": "True"}]}
    CS.manage(status).initialize()
    assert types(status)["A"] == ("True", "")


def test_pre_process_marks_a_new_generation() -> None:
    status: dict[str, Any] = {"observedGeneration": 1,
                              "conditions": [{"type": "Ready", "status": "True"},
                                             {"type": "A", "status": "True"},
                                             {"type": "B", "status": "True"}]}
    conditions.pre_process(CS, status, 2)
    assert types(status)["Ready"] == ("Unknown", conditions.FAILED_GENERATION_BUMP)
    same: dict[str, Any] = {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}
    conditions.pre_process(CS, same, 2)
    assert types(same)["Ready"] == ("True", "")


def test_stamp_keeps_times_of_unchanged_conditions() -> None:
    old = {"conditions": [
        {"type": "A", "status": "True", "lastTransitionTime": "t0"},
        {"type": "B", "status": "Unknown", "reason": "X", "lastTransitionTime": "t0"}]}
    new = {"conditions": [{"type": "A", "status": "True"},
                          {"type": "B", "status": "Unknown", "reason": "Y"}]}
    out = conditions.stamp(new, old, "t1")
    assert [c["lastTransitionTime"] for c in out["conditions"]] == ["t0", "t1"]   # any change bumps
    assert conditions.same_status(out, {"conditions": [
        {"type": "A", "status": "True", "lastTransitionTime": "zzz"},
        {"type": "B", "status": "Unknown", "reason": "Y"}]})
