"""Request body limits (core/bodies.py), the JSON patch size accounting and core/v1 rules."""

from __future__ import annotations

import base64
import json

import pytest

from skiff.core import bodies
from skiff.core.bodies import BodyError, decode_json, decode_yaml, shown
from skiff.core.corevalidation import (
    DecodeError,
    decode_secret_data,
    validate_configmap,
    validate_secret,
)
from skiff.core.patch import PatchError, PatchTooLarge, json_patch


@pytest.mark.parametrize("raw, code, words", [
    (b'{"a": NaN}', 400, "NaN is not a valid JSON number"),
    (b'{"a": Infinity}', 400, "Infinity is not a valid JSON number"),
    (b'{"a": -Infinity}', 400, "-Infinity is not a valid JSON number"),
    (b"[" * 10000 + b"]" * 10000, 400, "nested too deeply"),
    (b'{"a":' * 101 + b"1" + b"}" * 101, 400, "nested too deeply"),
    (b"{" + b" " * (3 * 1024 * 1024) + b"}", 413, "the limit is 3145728 bytes"),
    (b"{not json", 400, "not valid JSON"),
])
def test_bad_json_bodies(raw: bytes, code: int, words: str) -> None:
    with pytest.raises(BodyError) as e:
        decode_json(raw)
    assert e.value.code == code and words in e.value.message


def test_json_at_the_limits_is_accepted() -> None:
    deep = b'{"a":' * 99 + b"1" + b"}" * 99
    assert decode_json(deep)["a"]["a"]
    assert decode_json(b"") == {}
    assert decode_json(b'{"x": 1.5e300, "s": "NaN"}') == {"x": 1.5e300, "s": "NaN"}


def test_yaml_alias_bomb_is_refused() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    raw = "\n".join(lines).encode()
    assert len(raw) < 1000
    with pytest.raises(BodyError) as e:
        decode_yaml(raw)
    assert e.value.code == 400 and "too many values" in e.value.message


@pytest.mark.parametrize("raw", [b"a: .nan", b"a: .inf", b"a: [-.inf]"])
def test_yaml_non_finite_numbers_are_refused(raw: bytes) -> None:
    with pytest.raises(BodyError, match="not a valid JSON number"):
        decode_yaml(raw)


def test_deep_yaml_is_refused() -> None:
    with pytest.raises(BodyError, match="nested too deeply"):
        decode_yaml(b"[" * 5000 + b"]" * 5000)


def test_shown_truncates_long_values() -> None:
    assert shown("abc") == '"abc"'
    long = shown("v" * 1_000_000)
    assert len(long) < 400 and "truncated, 1000000 characters" in long


def test_copy_bomb_stops_at_the_size_limit() -> None:
    obj = {"spec": {"a": "x" * 1000}}
    ops = [{"op": "copy", "from": "/spec", "path": f"/spec/c{i}"} for i in range(24)]
    with pytest.raises(PatchTooLarge) as e:
        json_patch(obj, ops)
    assert "larger than 1572864 bytes" in str(e.value)
    assert "operation 1" in str(e.value)   # stopped where it crossed, not at the end
    assert obj == {"spec": {"a": "x" * 1000}}   # the input is untouched


def test_json_patch_operation_count_limit() -> None:
    ops = [{"op": "test", "path": "/a", "value": 1}] * 10001
    with pytest.raises(PatchTooLarge, match="maximum operations in a JSON patch is 10000"):
        json_patch({"a": 1}, ops)


def test_json_patch_size_accounting_lets_shrinking_patches_through() -> None:
    big = {"a": "x" * 1_000_000, "b": "y"}
    out = json_patch(big, [{"op": "remove", "path": "/a"},
                           {"op": "add", "path": "/c", "value": "z" * 1_000_000}])
    assert set(out) == {"b", "c"}
    with pytest.raises(PatchTooLarge):
        json_patch(big, [{"op": "add", "path": "/c", "value": "z" * 1_000_000}])
    with pytest.raises(PatchError):   # still an ordinary error where one applies
        json_patch(big, [{"op": "remove", "path": "/nope"}])


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.mark.parametrize("value", ["not base64!", "YWJj=", "YWJjZA"])
def test_secret_data_must_be_base64(value: str) -> None:
    with pytest.raises(DecodeError, match='cannot be handled as a Secret: data\\["k"\\]: illegal base64'):
        decode_secret_data({"data": {"k": value}})


def test_secret_rules() -> None:
    old = {"type": "Opaque", "immutable": True, "data": {"k": _b64("v")}}
    assert validate_secret(dict(old), None) == []
    msgs = [c.message for c in validate_secret({"type": "Opaque", "immutable": False,
                                                "data": {"k": _b64("w")}}, old)]
    assert msgs == ["immutable: Forbidden: field is immutable when `immutable` is set",
                    "data: Forbidden: field is immutable when `immutable` is set"]
    # labels and annotations of an immutable Secret may still change: only data is held
    assert validate_secret(dict(old), old) == []
    msgs = [c.message for c in validate_secret({"type": "kubernetes.io/tls", "data": {}},
                                               {"type": "Opaque", "data": {}})]
    assert msgs == ['type: Invalid value: "kubernetes.io/tls": field is immutable']
    msgs = [c.message for c in validate_secret({"data": {"bad key": _b64("v")}}, None)]
    assert msgs and msgs[0].startswith('data: Invalid value: "bad key": a valid config key')
    huge = {"data": {"k": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()}}
    assert [c.message for c in validate_secret(huge, None)] == \
        ["data: Too long: must have at most 1048576 bytes"]


def test_configmap_rules() -> None:
    old = {"immutable": True, "data": {"a": "1"}, "binaryData": {"b": _b64("2")}}
    assert validate_configmap(dict(old), old) == []
    msgs = [c.message for c in validate_configmap({"immutable": True, "data": {"a": "2"},
                                                   "binaryData": {}}, old)]
    assert msgs == ["data: Forbidden: field is immutable when `immutable` is set",
                    "binaryData: Forbidden: field is immutable when `immutable` is set"]
    # not immutable before: anything goes, including setting it
    assert validate_configmap({"immutable": True, "data": {"a": "9"}}, {"data": {"a": "1"}}) == []
    msgs = [c.message for c in validate_configmap({"data": {"a": "1"}, "binaryData": {"a": "MQ=="}},
                                                  None)]
    assert msgs == ['data: Invalid value: "a": duplicate of key present in binaryData']


def test_limits_are_the_upstream_numbers() -> None:
    assert bodies.MAX_BODY == 3 * 1024 * 1024
    assert bodies.MAX_OBJECT == 1572864
    assert json.loads(json.dumps({"ok": True})) == {"ok": True}
