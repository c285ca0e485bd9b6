"""Label and field selectors, parsed and matched as Kubernetes does.

Label selectors come as strings (`?labelSelector=`, `kubectl get -l`) parsed
by parse_label_selector() with the grammar and error messages of
k8s.io/apimachinery pkg/labels/selector.go, or as API objects
(`{matchLabels, matchExpressions}` in Deployments, NetworkPolicies...) read
by from_label_selector_object(). Field selectors (`?fieldSelector=`) follow
pkg/fields/selector.go: `f=v`, `f==v`, `f!=v` joined by commas, where the
field is a dotted path into the object.

Pure. Used by the API server's list/watch filtering, by reconcilers that
select pods (core/controller.py clients, serving/), and by describe-style
output (selector_to_string). Label key/value rules mirror core/validation.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.core.validation import dns1123_subdomain

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "fields_of",
    "from_label_selector_object",
    "parse_field_selector",
    "parse_label_selector",
    "selector_to_string",
]


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message reads like Kubernetes'."""


# Operators, spelled as k8s.io/apimachinery/pkg/selection spells them.
IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"


@dataclass(frozen=True)
class Requirement:
    """One label requirement: key, operator and (for most operators) values."""
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return has and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            # A missing label satisfies "not": `env!=prod` selects unlabelled objects.
            return not has or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return has
        if self.operator == DOES_NOT_EXIST:
            return not has
        if self.operator in (GREATER_THAN, LESS_THAN) and has:
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return have > want if self.operator == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator == EXISTS:
            return self.key
        values = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{values}"


@dataclass(frozen=True)
class LabelSelector:
    """Requirements ANDed together. No requirements: matches every object."""
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# ---------------------------------------------------------------------------
# Label key/value validation (k8s.io/apimachinery pkg/util/validation)

_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def _invalid(path: str, value: str, detail: str) -> SelectorError:
    # field.Invalid(...).Error(); the parser passes a nil path, printed "<nil>".
    return SelectorError(f'{path}: Invalid value: "{value}": {detail}')


def _check_key(key: str, path: str = "<nil>") -> None:
    prefix, slash, name = key.rpartition("/")
    problems: list[str] = []
    if slash:
        if "/" in prefix:
            problems.append("a qualified name " + _QUALIFIED_NAME_MSG + " with an optional DNS "
                            "subdomain prefix and '/' (e.g. 'example.com/MyName')")
        elif not prefix:
            problems.append("prefix part must be non-empty")
        elif (msg := dns1123_subdomain(prefix)) is not None:
            problems.append("prefix part " + msg)
    if not problems:
        if not name:
            problems.append("name part must be non-empty")
        elif len(name) > 63:
            problems.append("name part must be no more than 63 characters")
        if not _QUALIFIED_NAME.fullmatch(name):
            problems.append("name part " + _QUALIFIED_NAME_MSG)
    if problems:
        raise _invalid(path, key, "; ".join(problems))


def _check_value(key: str, value: str, index: int) -> None:
    if len(value) > 63:
        raise _invalid(f"values[{index}][{key}]", value, "must be no more than 63 characters")
    if not _LABEL_VALUE.fullmatch(value):
        raise _invalid(f"values[{index}][{key}]", value, _LABEL_VALUE_MSG)


def _requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """labels.NewRequirement: validate key, operator arity and values."""
    _check_key(key, "key")
    if operator in (IN, NOT_IN):
        if not values:
            raise _invalid("values", "[]", "for 'in', 'notin' operators, values set can't be empty")
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            raise _invalid("values", str(values),
                           "exact-match compatibility requires one single value")
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if values:
            raise _invalid("values", str(values),
                           "values set must be empty for exists and does not exist")
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            raise _invalid("values", str(values),
                           "for 'Gt', 'Lt' operators, exactly one value is required")
        if not re.fullmatch(r"[+-]?\d+", values[0]):
            raise _invalid("values[0]", values[0],
                           "for 'Gt', 'Lt' operators, the value must be an integer")
    else:
        raise SelectorError(f'operator: Unsupported value: "{operator}"')
    for i, value in enumerate(values):
        _check_value(key, value, i)
    # Values are a set: sorted and unique, so equal selectors compare equal.
    return Requirement(key, operator, tuple(sorted(set(values))))


# ---------------------------------------------------------------------------
# Label selector strings: lexer and parser (a port of labels/selector.go)

_IDENT, _END, _ERROR = "identifier", "end of string", "error"
_SPECIAL = "=!(),><"
# Tokens made of special characters; the lexer takes the longest that matches.
_SYMBOLS = ("!=", "==", "!", "=", "(", ")", ",", ">", "<")


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (type, literal): symbols stand for themselves, "in"/"notin" are keywords."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            tokens.append((_END, ""))
            return tokens
        if text[i] in _SPECIAL:
            for symbol in _SYMBOLS:
                if text.startswith(symbol, i):
                    tokens.append((symbol, symbol))
                    i += len(symbol)
                    break
            continue
        start = i
        while i < len(text) and text[i] not in _SPECIAL and text[i] not in " \t\r\n":
            i += 1
        word = text[start:i]
        tokens.append((word if word in (IN, NOT_IN) else _IDENT, word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def _token(self, values: bool, advance: bool) -> tuple[str, str]:
        kind, literal = self.tokens[min(self.pos, len(self.tokens) - 1)]
        if advance:
            self.pos += 1
        # Where a value is expected, "in" and "notin" are plain words (`k in (in)`).
        if values and kind in (IN, NOT_IN):
            kind = _IDENT
        return kind, literal

    def peek(self, values: bool = True) -> tuple[str, str]:
        return self._token(values, advance=False)

    def take(self, values: bool = True) -> tuple[str, str]:
        return self._token(values, advance=True)

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.peek()
            if kind in (_IDENT, "!"):
                try:
                    requirements.append(self.requirement())
                except SelectorError as err:
                    raise SelectorError(f"unable to parse requirement: {err}") from None
                kind, literal = self.take()
                if kind == _END:
                    return requirements
                if kind != ",":
                    raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
                kind, literal = self.peek()
                if kind not in (_IDENT, "!"):
                    raise SelectorError(f"found '{literal}', expected: identifier after ','")
            elif kind == _END:
                return requirements
            else:
                raise SelectorError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        kind, literal = self.take()
        negated = kind == "!"
        if negated:
            kind, literal = self.take()
        if kind != _IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        key = literal
        _check_key(key)
        # `!k` takes no operator; what follows it is checked by parse() (',' or the end).
        if negated:
            return _requirement(key, DOES_NOT_EXIST, [])
        if self.peek()[0] in (_END, ","):
            return _requirement(key, EXISTS, [])
        kind, literal = self.take(values=False)
        operator = {IN: IN, NOT_IN: NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS,
                    ">": GREATER_THAN, "<": LESS_THAN}.get(kind)
        if operator is None:
            raise SelectorError(f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")
        values = self.set_values() if operator in (IN, NOT_IN) else self.exact_value()
        return _requirement(key, operator, values)

    def set_values(self) -> list[str]:
        kind, literal = self.take()
        if kind != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self.peek()
        if kind == ")":  # "()" is the set holding the empty string
            self.take()
            return [""]
        if kind not in (_IDENT, ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            kind, literal = self.take()
            if kind == _IDENT:
                values.add(literal)
                kind, literal = self.peek()
                if kind == ")":
                    self.take()
                    return sorted(values)
                if kind != ",":
                    raise SelectorError(f"found '{literal}', expected: ',' or ')'")
            elif kind == ",":
                # Empty members, as in "(,a)", "(a,,b)" or "(a,)", are the empty string.
                if not values:
                    values.add("")
                kind, _ = self.peek()
                if kind == ")":
                    self.take()
                    values.add("")
                    return sorted(values)
                if kind == ",":
                    values.add("")
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def exact_value(self) -> list[str]:
        kind, literal = self.peek()
        if kind in (_END, ","):  # `k=` selects the empty value
            return [""]
        kind, literal = self.take()
        if kind != _IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return [literal]


def _sorted(requirements: list[Requirement]) -> tuple[Requirement, ...]:
    # Upstream keeps requirements sorted by key; String() and matching rely on no other order.
    return tuple(sorted(requirements, key=lambda r: r.key))


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a label selector string; "" selects everything. Bad input raises SelectorError."""
    return LabelSelector(_sorted(_Parser(text).parse()))


_API_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def from_label_selector_object(sel: Mapping[str, Any]) -> LabelSelector:
    """Convert a `{matchLabels, matchExpressions}` selector (metav1.LabelSelector).

    An empty selector (no labels, no expressions) matches every object, as
    upstream's LabelSelectorAsSelector. A missing selector (None) is the
    caller's to interpret: upstream treats it as matching nothing.
    """
    if not isinstance(sel, Mapping):
        raise SelectorError("a label selector must be an object with matchLabels/matchExpressions")
    match_labels = sel.get("matchLabels") or {}
    expressions = sel.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be a map of strings")
    if not isinstance(expressions, list):
        raise SelectorError("matchExpressions must be a list")
    requirements = [_requirement(str(k), EQUALS, [str(v)]) for k, v in match_labels.items()]
    for expr in expressions:
        if not isinstance(expr, Mapping):
            raise SelectorError("each matchExpressions item must be an object")
        operator = _API_OPERATORS.get(str(expr.get("operator")))
        if operator is None:
            raise SelectorError(f'"{expr.get("operator")}" is not a valid label selector operator')
        values = expr.get("values") or []
        if not isinstance(values, list):
            raise SelectorError("matchExpressions values must be a list of strings")
        requirements.append(_requirement(str(expr.get("key", "")), operator,
                                         [str(v) for v in values]))
    return LabelSelector(_sorted(requirements))


def selector_to_string(sel: Mapping[str, Any]) -> str:
    """The canonical string of a `{matchLabels, matchExpressions}` selector.

    E.g. "app=hello,tier in (a,b)"; "" for the empty selector (kubectl describe
    shows that as "<none>").
    """
    return str(from_label_selector_object(sel))


# ---------------------------------------------------------------------------
# Field selectors (a port of fields/selector.go)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str   # "=" (also for "==") or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = field_value(obj, self.field) == self.value
        return equal if self.operator == EQUALS else not equal

    def __str__(self) -> str:
        escaped = (self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\="))
        return f"{self.field}{self.operator}{escaped}"


@dataclass(frozen=True)
class FieldSelector:
    """Field requirements ANDed together. No requirements: matches every object."""
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares: a dotted path into obj; missing reads as ""."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, int | float | str):
        return str(cur)
    return ""  # null, maps and lists are not selectable


def _split_terms(text: str) -> list[str]:
    """Split on commas not escaped with a backslash."""
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse `f=v`, `f==v`, `f!=v` terms joined by commas; "" selects everything.

    Values may escape `\\`, `,` and `=` with a backslash. Unlike upstream,
    whitespace around a field name is ignored.
    """
    requirements: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)) if text else []:
        if term == "":
            continue
        # The first operator in the term splits it (field names are never escaped).
        match = re.search(r"!=|==|=", term)
        if match is None or not term[: match.start()].strip():
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field = term[: match.start()].strip()
        operator = NOT_EQUALS if match.group() == "!=" else EQUALS
        requirements.append(FieldRequirement(field, operator, _unescape(term[match.end():])))
    return FieldSelector(tuple(requirements))


def fields_of(selector: FieldSelector) -> list[str]:
    """The field names a selector uses, for servers that allow only some fields per kind."""
    return [r.field for r in selector.requirements]
