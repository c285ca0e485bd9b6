"""The kubectl JSONPath subset the server needs: CRD additionalPrinterColumns.

A CRD column is a JSONPath such as `.status.conditions[?(@.type=='Ready')].status`;
the API server evaluates it against each object to fill Table cells
(core/apiserver Tables, with the columns from core/kinds.py PrinterColumn).
This follows k8s.io/client-go/util/jsonpath as the apiextensions server uses
it (missing keys allowed: they yield no result rather than an error).

Supported: an optional `{...}` wrapper, a leading `$` or `.`, dotted fields
(with `\\.` escaping a dot in a name), `['key.with.dots']`, `[n]` and negative
indices, slices `[a:b:c]`, `[*]` and `.*`, recursive descent `..name`, and
filters `[?(@.a.b == 'x')]` with ==, !=, <, <=, >, >= against string, number,
true/false literals or another `@` path, or `[?(@.a)]` for existence.
Not supported: templates with text or several `{}` blocks, range/end, unions.

Pure; JSONPathError for expressions that do not parse.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["JSONPathError", "column_value", "compile_path", "evaluate"]


class JSONPathError(ValueError):
    """An expression outside the supported JSONPath subset, or malformed."""


# A compiled path is a tuple of steps, each applied to every current node.
@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Recurse:
    pass


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Slice:
    start: int | None
    stop: int | None
    step: int | None


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Filter:
    left: tuple[Any, ...]              # a path relative to the item (@)
    operator: str                      # "exists", "==", "!=", "<", "<=", ">", ">="
    right: tuple[Any, ...] | _Literal | None


Path = tuple[Any, ...]

_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")


def compile_path(expr: str) -> Path:
    """Parse an expression into steps (evaluate() does this on every call)."""
    text = expr.strip()
    if text.startswith("{"):
        if not text.endswith("}") or text.count("{") != 1 or text.count("}") != 1:
            raise JSONPathError(f"unsupported JSONPath template {expr!r}: one {{...}} block only")
        text = text[1:-1].strip()
    if not text:
        raise JSONPathError("empty JSONPath expression")
    if text.startswith("$"):
        text = text[1:]
    elif not text.startswith((".", "[")):
        raise JSONPathError(f"JSONPath {expr!r} must start with '.', '$' or '['")
    return _Parser(text, expr).steps()


class _Parser:
    def __init__(self, text: str, expr: str) -> None:
        self.text = text
        self.expr = expr
        self.pos = 0

    def error(self, why: str) -> JSONPathError:
        return JSONPathError(f"invalid JSONPath {self.expr!r} at position {self.pos}: {why}")

    def steps(self) -> Path:
        out: list[Any] = []
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if text.startswith("..", self.pos):
                self.pos += 2
                out.append(_Recurse())
                if self.pos < len(text) and text[self.pos] not in ".[":
                    out.append(self.name())
            elif ch == ".":
                self.pos += 1
                if self.pos < len(text) and text[self.pos] not in ".[":
                    out.append(self.name())
                # A lone trailing "." (as in "{.}") names the current node.
            elif ch == "[":
                out.append(self.bracket())
            else:
                raise self.error(f"unexpected {ch!r}")
        return tuple(out)

    def name(self) -> Any:
        chars: list[str] = []
        text = self.text
        while self.pos < len(text) and text[self.pos] not in ".[":
            if text[self.pos] == "\\" and self.pos + 1 < len(text):
                self.pos += 1  # `\.` keeps a dot inside a field name
            elif text[self.pos] in " ()]'\"":
                raise self.error(f"unexpected {text[self.pos]!r} in a field name")
            chars.append(text[self.pos])
            self.pos += 1
        name = "".join(chars)
        return _Wildcard() if name == "*" else _Field(name)

    def bracket(self) -> Any:
        text = self.text
        self.pos += 1  # "["
        if text.startswith("?(", self.pos):
            self.pos += 2
            end = _closing(text, self.pos)
            if end < 0 or not text.startswith(")]", end):
                raise self.error("unterminated filter, expected ')]'")
            body = text[self.pos:end]
            self.pos = end + 2
            return self.filter(body)
        end = _closing(text, self.pos, "]")
        if end < 0:
            raise self.error("missing ']'")
        inside = text[self.pos:end].strip()
        self.pos = end + 1
        if inside == "*":
            return _Wildcard()
        if len(inside) >= 2 and inside[0] == inside[-1] and inside[0] in "'\"":
            return _Field(inside[1:-1])
        if re.fullmatch(r"-?\d+", inside):
            return _Index(int(inside))
        if re.fullmatch(r"(-?\d+)?:(-?\d+)?(:(-?\d+)?)?", inside):
            parts = [int(p) if p else None for p in inside.split(":")]
            if len(parts) > 2 and parts[2] == 0:
                raise self.error("slice step cannot be 0")
            return _Slice(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        raise self.error(f"unsupported subscript [{inside}]")

    def filter(self, body: str) -> _Filter:
        split = _find_operator(body)
        if split is None:
            return _Filter(self.operand_path(body), "exists", None)
        at, operator = split
        left = self.operand(body[:at])
        right = self.operand(body[at + len(operator):])
        if isinstance(left, _Literal):
            # Keep the path on the left; swap the comparison to match.
            if isinstance(right, _Literal):
                raise self.error("a filter must compare an @ path")
            mirror = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
            left, right, operator = right, left, mirror.get(operator, operator)
        assert not isinstance(left, _Literal)
        return _Filter(left, operator, right)

    def operand(self, text: str) -> Path | _Literal:
        text = text.strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return _Literal(text[1:-1])
        if _NUMBER.fullmatch(text):
            return _Literal(float(text) if any(c in text for c in ".eE") else int(text))
        if text in ("true", "false"):
            return _Literal(text == "true")
        return self.operand_path(text)

    def operand_path(self, text: str) -> Path:
        text = text.strip()
        if not text.startswith("@"):
            raise self.error(f"filter operand {text!r} must be '@...' or a literal")
        return _Parser(text[1:], self.expr).steps()


def _closing(text: str, start: int, stop: str = ")") -> int:
    """Index of the `stop` that closes at `start`, skipping quoted text and nested brackets."""
    depth = 0
    quote = ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch == stop and depth == 0:
            return i
        elif ch in ")]":
            depth -= 1
    return -1


def _find_operator(body: str) -> tuple[int, str] | None:
    quote = ""
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        else:
            for op in _OPERATORS:
                if body.startswith(op, i):
                    return i, op
    return None


# ---------------------------------------------------------------------------
# Evaluation


def evaluate(expr: str, obj: Any) -> list[Any]:
    """Every value the expression selects in obj, in document order; [] when none."""
    return _run(compile_path(expr), [obj])


def column_value(expr: str, obj: Any) -> Any:
    """The first value selected (what a Table cell shows), or None."""
    results = evaluate(expr, obj)
    return results[0] if results else None


def _run(steps: Path, nodes: list[Any]) -> list[Any]:
    for step in steps:
        nodes = [out for node in nodes for out in _step(step, node)]
    return nodes


def _step(step: Any, node: Any) -> Iterator[Any]:
    if isinstance(step, _Field):
        # Fields of lists select nothing, as in kubectl: `[*]` says "each item".
        if isinstance(node, dict) and step.name in node:
            yield node[step.name]
    elif isinstance(step, _Wildcard):
        if isinstance(node, dict):
            yield from node.values()
        elif isinstance(node, list):
            yield from node
    elif isinstance(step, _Recurse):
        yield from _descendants(node)
    elif isinstance(step, _Index):
        if isinstance(node, list) and -len(node) <= step.index < len(node):
            yield node[step.index]
    elif isinstance(step, _Slice):
        if isinstance(node, list):
            yield from node[step.start:step.stop:step.step]
    elif isinstance(step, _Filter):
        if isinstance(node, list):
            yield from (item for item in node if _passes(step, item))


def _descendants(node: Any) -> Iterator[Any]:
    """The node and every map or list below it, parents before children."""
    if isinstance(node, dict | list):
        yield node
        for child in node.values() if isinstance(node, dict) else node:
            yield from _descendants(child)


def _passes(flt: _Filter, item: Any) -> bool:
    lefts = _run(flt.left, [item])
    if flt.operator == "exists":
        return bool(lefts)
    if isinstance(flt.right, _Literal):
        rights = [flt.right.value]
    else:
        assert flt.right is not None
        rights = _run(flt.right, [item])
    # kubectl compares exactly one value on each side; a missing side fails.
    if len(lefts) != 1 or len(rights) != 1:
        return False
    return _compare(lefts[0], flt.operator, rights[0])


def _compare(left: Any, operator: str, right: Any) -> bool:
    numbers = (isinstance(left, int | float) and isinstance(right, int | float)
               and not isinstance(left, bool) and not isinstance(right, bool))
    same = numbers or type(left) is type(right)
    if operator == "==":
        return same and left == right
    if operator == "!=":
        # Values of different types are not comparable in kubectl (an error); here: not equal.
        return not (same and left == right)
    if not same or not isinstance(left, int | float | str) or isinstance(left, bool):
        return False
    if operator == "<":
        return bool(left < right)
    if operator == "<=":
        return bool(left <= right)
    if operator == ">":
        return bool(left > right)
    return bool(left >= right)
