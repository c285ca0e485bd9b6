"""Tables for core/selectors.py: label selector strings and objects, field selectors."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    fields_of,
    from_label_selector_object,
    parse_field_selector,
    parse_label_selector,
    selector_to_string,
)

LABELS = {"app": "hello", "tier": "front", "env": "prod", "n": "5",
          "serving.knative.dev/service": "hello"}

# (selector, labels, matches)
LABEL_MATCHES = [
    ("", LABELS, True),
    ("", {}, True),
    ("app=hello", LABELS, True),
    ("app==hello", LABELS, True),
    ("app=other", LABELS, False),
    ("app!=other", LABELS, True),
    ("app!=hello", LABELS, False),
    ("missing!=x", LABELS, True),        # a missing label satisfies !=
    ("missing=x", LABELS, False),
    ("tier in (front,back)", LABELS, True),
    ("tier in (back)", LABELS, False),
    ("missing in (a)", LABELS, False),
    ("tier notin (back)", LABELS, True),
    ("tier notin (front,back)", LABELS, False),
    ("missing notin (a)", LABELS, True),
    ("app", LABELS, True),
    ("missing", LABELS, False),
    ("!missing", LABELS, True),
    ("!app", LABELS, False),
    ("app=hello,tier=front", LABELS, True),
    ("app=hello,tier=back", LABELS, False),
    ("  app = hello ,  tier  in ( front , back ) , !gone ", LABELS, True),
    ("serving.knative.dev/service=hello", LABELS, True),
    ("n>4", LABELS, True),
    ("n<5", LABELS, False),
    ("app>4", LABELS, False),            # not an integer label: no match
    ("env=", {"env": ""}, True),         # empty value
    ("env=", LABELS, False),
    ("env in ()", {"env": ""}, True),    # "()" is the set of the empty string
    ("env in (,prod)", LABELS, True),
    ("x in (in,notin)", {"x": "in"}, True),   # keywords are values inside the set
    ("in=notin", {"in": "notin"}, True),
    ("app=hello", None, False),
    ("!app", None, True),
]


@pytest.mark.parametrize(("selector", "labels", "expected"), LABEL_MATCHES)
def test_label_selector_matches(selector: str, labels: dict[str, str] | None,
                                expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


# (input, canonical string): requirements sorted by key, set values sorted.
LABEL_STRINGS = [
    ("", ""),
    ("b=2,a=1", "a=1,b=2"),
    ("app==x", "app==x"),
    ("tier in (z, a , m)", "tier in (a,m,z)"),
    ("tier notin (b,a)", "tier notin (a,b)"),
    ("!a, b", "!a,b"),
    ("x != y", "x!=y"),
    ("n > 3", "n>3"),
]


@pytest.mark.parametrize(("selector", "canonical"), LABEL_STRINGS)
def test_label_selector_string(selector: str, canonical: str) -> None:
    assert str(parse_label_selector(selector)) == canonical


# (input, the error message Kubernetes gives)
LABEL_ERRORS = [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a=b,,c", "found ',', expected: identifier after ','"),
    ("k!", "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"),
    ("a$b=c", 'unable to parse requirement: <nil>: Invalid value: "a$b": name part must consist'),
    ("/a=b", 'Invalid value: "/a": prefix part must be non-empty'),
    ("Example.com/a=b", 'Invalid value: "Example.com/a": prefix part a lowercase RFC 1123'),
    ("a/b/c=d", "a qualified name must consist"),
    ("a=" + "v" * 64, "values[0][a]: Invalid value: \"" + "v" * 64 + "\": must be no more than 63"),
    ("a=-x", 'values[0][a]: Invalid value: "-x": a valid label must be an empty string'),
    ("a>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
    ("k" * 64, "name part must be no more than 63 characters"),
]


@pytest.mark.parametrize(("selector", "message"), LABEL_ERRORS)
def test_label_selector_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector(selector)
    assert message in str(err.value)


# ---------------------------------------------------------------------------
# {matchLabels, matchExpressions}

SELECTOR_OBJECTS: list[tuple[dict[str, Any], dict[str, str], bool, str]] = [
    # (selector object, labels, matches, canonical string)
    ({}, {"any": "thing"}, True, ""),                      # empty selects everything
    ({"matchLabels": {}, "matchExpressions": []}, {}, True, ""),
    ({"matchLabels": {"app": "hello"}}, LABELS, True, "app=hello"),
    ({"matchLabels": {"tier": "front", "app": "hello"}}, {"app": "hello"}, False,
     "app=hello,tier=front"),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]},
     LABELS, True, "tier in (back,front)"),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]},
     LABELS, False, "tier notin (front)"),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, LABELS, True, "app"),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, LABELS, False, "!app"),
    ({"matchLabels": {"app": "hello"},
      "matchExpressions": [{"key": "knative.openshift.io/part-of", "operator": "Exists"}]},
     {"app": "hello", "knative.openshift.io/part-of": "openshift-serverless"}, True,
     "app=hello,knative.openshift.io/part-of"),
]


@pytest.mark.parametrize(("sel", "labels", "expected", "text"), SELECTOR_OBJECTS)
def test_label_selector_object(sel: dict[str, Any], labels: dict[str, str], expected: bool,
                               text: str) -> None:
    selector = from_label_selector_object(sel)
    assert selector.matches(labels) is expected
    assert selector_to_string(sel) == text
    # The string form parses back to the same selector.
    assert parse_label_selector(text) == selector


SELECTOR_OBJECT_ERRORS = [
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
     '"Equals" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "values set must be empty for exists and does not exist"),
    ({"matchLabels": {"bad key": "x"}}, 'key: Invalid value: "bad key"'),
    ({"matchLabels": ["app"]}, "matchLabels must be a map"),
]


@pytest.mark.parametrize(("sel", "message"), SELECTOR_OBJECT_ERRORS)
def test_label_selector_object_errors(sel: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as err:
        from_label_selector_object(sel)
    assert message in str(err.value)


def test_selectors_are_frozen_values() -> None:
    assert parse_label_selector("a=1,b=2") == parse_label_selector("b=2, a=1")
    assert LabelSelector().empty and parse_label_selector("").empty
    assert hash(parse_label_selector("a in (x,y)")) == hash(parse_label_selector("a in (y,x)"))


# ---------------------------------------------------------------------------
# Field selectors

POD = {"metadata": {"name": "web-1", "namespace": "default"},
       "spec": {"nodeName": "node-a", "unschedulable": False},
       "status": {"phase": "Running", "restartCount": 2}}
EVENT = {"metadata": {"name": "e1", "namespace": "default"},
         "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u-1",
                            "namespace": "default"}}

FIELD_MATCHES = [
    ("", POD, True),
    ("metadata.name=web-1", POD, True),
    ("metadata.name==web-1", POD, True),
    ("metadata.name!=web-1", POD, False),
    ("metadata.namespace=default,status.phase=Running", POD, True),
    ("metadata.namespace=default,status.phase=Pending", POD, False),
    ("status.phase!=Succeeded,status.phase!=Failed", POD, True),
    ("spec.nodeName=node-a", POD, True),
    ("spec.nodeName=", POD, False),
    ("spec.nodeName=", {"spec": {}}, True),           # unset reads as ""
    ("spec.unschedulable=false", POD, True),          # booleans read as "true"/"false"
    ("status.restartCount=2", POD, True),
    ("spec=", POD, True),                             # maps are not selectable: ""
    ("involvedObject.name=web-1,involvedObject.uid=u-1", EVENT, True),
    ("involvedObject.kind=Pod,involvedObject.namespace=default", EVENT, True),
    ("involvedObject.name=other", EVENT, False),
    (r"metadata.name=a\,b", {"metadata": {"name": "a,b"}}, True),
    (r"metadata.name=a\=b\\c", {"metadata": {"name": "a=b\\c"}}, True),
    (" metadata.name =web-1", POD, True),             # whitespace around the field ignored
]


@pytest.mark.parametrize(("selector", "obj", "expected"), FIELD_MATCHES)
def test_field_selector_matches(selector: str, obj: dict[str, Any], expected: bool) -> None:
    assert parse_field_selector(selector).matches(obj) is expected


FIELD_STRINGS = [
    ("", "", []),
    ("metadata.name==x", "metadata.name=x", ["metadata.name"]),
    ("status.phase!=Running,metadata.name=x", "metadata.name=x,status.phase!=Running",
     ["metadata.name", "status.phase"]),
    (r"metadata.name=a\,b", r"metadata.name=a\,b", ["metadata.name"]),
]


@pytest.mark.parametrize(("selector", "canonical", "fields"), FIELD_STRINGS)
def test_field_selector_string_and_fields(selector: str, canonical: str,
                                          fields: list[str]) -> None:
    parsed = parse_field_selector(selector)
    assert str(parsed) == canonical
    assert fields_of(parsed) == fields
    assert isinstance(parsed, FieldSelector)


FIELD_ERRORS = [
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("=x", "can't understand '=x'"),
    ("a=b,c", "can't understand 'c'"),
    ("metadata.name=a=b", "unescaped character in value: ="),
    (r"metadata.name=a\x", r"invalid escape sequence: \x"),
    ("metadata.name=a\\", "invalid escape sequence"),
]


@pytest.mark.parametrize(("selector", "message"), FIELD_ERRORS)
def test_field_selector_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_field_selector(selector)
    assert message in str(err.value)
