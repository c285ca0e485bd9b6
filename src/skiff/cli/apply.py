"""`skiff apply -f`: all-or-nothing apply of YAML files.

Unlike kubectl, which applies document after document and stops half way,
skiff reads every document of every file first, lints it (YAML syntax,
placeholders and callout numbers left from the guide), asks the server for a
dry run of each (the server's schema and admission checks, unchanged), and
only when all pass applies them with server-side apply. Errors name the
file, the document, its line, the object and the field path, with the likely
fix. load_documents() and lint() are pure; apply_files() is the shell.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skiff.cli.api import Api, ApiFailure

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_ -]*>")
_CALLOUT_LIST = re.compile(r"^\d{1,2} - ")
_TRAILING_CALLOUT = re.compile(r"^(.*\S) (\d{1,2})$")


@dataclass
class Doc:
    file: str
    index: int              # 1-based position in the file
    line: int               # 1-based line where the document starts
    obj: Any
    lines: dict[str, int] = field(default_factory=dict)   # field path -> line

    def where(self, path: str = "") -> str:
        line = self.lines.get(path, self.line) if path else self.line
        return f"{self.file}:{line}: document {self.index}"

    def label(self) -> str:
        if not isinstance(self.obj, dict):
            return "(not an object)"
        raw = self.obj.get("metadata")
        meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
        name = meta.get("name", "?")
        ns = meta.get("namespace")
        return f"{self.obj.get('kind', '?')} {ns + '/' if ns else ''}{name}"


@dataclass
class Problem:
    where: str
    what: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        s = f"{self.where} ({self.what}): {self.message}"
        return s + (f" — {self.fix}" if self.fix else "")


def _paths(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = str(k.value)
            p = f"{path}.{key}" if path else key
            out[p] = k.start_mark.line + 1
            _paths(v, p, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _paths(v, f"{path}[{i}]", out)


def load_documents(text: str, file: str) -> tuple[list[Doc], list[Problem]]:
    """Parse every document with line numbers; a YAML syntax error is a Problem, not a crash."""
    docs: list[Doc] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(e, "problem", None) or str(e)
        fix = ""
        if "mapping values are not allowed" in problem:
            fix = "a key is indented wrongly or a value holds an unquoted ': '"
        elif "expected <block end>" in str(e) or "did not find expected key" in str(e):
            fix = "check the indentation of this line against the key above it"
        return [], [Problem(f"{file}:{line}", "YAML", f"invalid YAML: {problem}", fix)]
    index = 0
    for node in nodes:
        if node is None:
            continue
        index += 1
        lines: dict[str, int] = {}
        _paths(node, "", lines)
        obj = yaml.load(yaml.serialize(node), Loader=_LOADER)  # same node, as plain data
        docs.append(Doc(file, index, node.start_mark.line + 1, obj, lines))
    return [d for d in docs if d.obj is not None], []


def _walk(v: Any, path: str) -> Iterable[tuple[str, Any]]:
    yield path, v
    if isinstance(v, dict):
        for k, sub in v.items():
            yield from _walk(sub, f"{path}.{k}" if path else str(k))
    elif isinstance(v, list):
        for i, sub in enumerate(v):
            yield from _walk(sub, f"{path}[{i}]")


def lint(doc: Doc) -> list[Problem]:
    """Mistakes the guide's YAML is known for, found before the server sees them. Pure."""
    out: list[Problem] = []
    if not isinstance(doc.obj, dict):
        return [Problem(doc.where(), doc.label(), "a document must be a YAML mapping (an object)")]
    for f in ("apiVersion", "kind"):
        if not doc.obj.get(f):
            out.append(Problem(doc.where(), doc.label(), f"{f} is missing",
                               "every object needs apiVersion and kind"))
    for path, v in _walk(doc.obj, ""):
        if not isinstance(v, str):
            continue
        if _CALLOUT_LIST.match(v):
            out.append(Problem(doc.where(path), doc.label(),
                               f'{path}: "{v}" reads as text where a list was meant',
                               f"remove the callout number after `{path.rsplit('.', 1)[-1]}:` so the "
                               "list items below belong to it"))
        elif _PLACEHOLDER.search(v):
            m = _PLACEHOLDER.search(v)
            assert m is not None
            out.append(Problem(doc.where(path), doc.label(),
                               f'{path}: the placeholder {m.group(0)} is still in the YAML',
                               "replace it with a real value"))
        elif path.endswith(("name", "namespace", "credentialName")) and _TRAILING_CALLOUT.match(v):
            m = _TRAILING_CALLOUT.match(v)
            assert m is not None
            out.append(Problem(doc.where(path), doc.label(), f'{path}: "{v}" ends with a callout number',
                               f'did you mean "{m.group(1)}"?'))
    return out


def read_sources(paths: list[str]) -> list[tuple[str, str]]:
    """(display name, text) for each file; a directory means its *.yaml/*.yml/*.json files."""
    out: list[tuple[str, str]] = []
    for p in paths:
        if p == "-":
            out.append(("<stdin>", sys.stdin.read()))
            continue
        path = Path(p)
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.suffix in (".yaml", ".yml", ".json"))
            out += [(str(f), f.read_text()) for f in files]
        elif path.exists():
            out.append((str(path), path.read_text()))
        else:
            raise FileNotFoundError(f'the path "{p}" does not exist')
    return out


def _server_problem(doc: Doc, e: ApiFailure) -> Problem:
    causes = (e.status.get("details") or {}).get("causes") or []
    if causes:
        first = causes[0].get("field", "")
        msgs = "; ".join(c.get("message", "") for c in causes)
        hint = ""
        if "callout number" in msgs:
            hint = "remove the number after the colon"
        elif "did you mean" in msgs:
            hint = "check the spelling and indentation of that key"
        return Problem(doc.where(first), doc.label(), msgs, hint)
    return Problem(doc.where(), doc.label(), str(e.status.get("message", e)))


def apply_files(api: Api, paths: list[str], namespace: str | None,
                echo: Any = print, warn: Any = None) -> tuple[int, list[Problem]]:
    """Check everything, then apply everything. Returns (objects applied, problems).
    `warn` gets the API's warnings (what is accepted but not acted on yet); default `echo`."""
    warn = warn or echo
    docs: list[Doc] = []
    problems: list[Problem] = []
    for name, text in read_sources(paths):
        loaded, found = load_documents(text, name)
        docs += loaded
        problems += found
    for doc in docs:
        problems += lint(doc)
    if problems:
        return 0, problems
    new_namespaces = {d.obj.get("metadata", {}).get("name") for d in docs
                      if d.obj.get("kind") == "Namespace" and isinstance(d.obj.get("metadata"), dict)}
    plans = []
    for d in docs:
        r = api.resource_for(str(d.obj.get("apiVersion")), str(d.obj.get("kind")))
        if r is None:
            problems.append(Problem(d.where(), d.label(),
                                    f'no matches for kind "{d.obj.get("kind")}" in version '
                                    f'"{d.obj.get("apiVersion")}"',
                                    "check apiVersion and kind (see `kubectl api-resources`)"))
            continue
        meta = d.obj.setdefault("metadata", {})
        if not isinstance(meta, dict) or not meta.get("name"):
            problems.append(Problem(d.where("metadata"), d.label(), "metadata.name: Required value"))
            continue
        ns = meta.get("namespace") or namespace or api.namespace
        if r.namespaced:
            meta["namespace"] = ns
        try:
            api.request("PATCH", r.path(ns, meta["name"]), d.obj,
                        {"fieldManager": "skiff", "force": "true", "dryRun": "All",
                         "fieldValidation": "Strict"}, "application/apply-patch+yaml")
        except ApiFailure as e:
            missing_ns = e.code == 404 and f'namespaces "{ns}" not found' in str(e.status.get("message"))
            if not (missing_ns and ns in new_namespaces):
                problems.append(_server_problem(d, e))
                continue
        plans.append((d, r, ns))
    if problems:
        return 0, problems
    applied = 0
    for d, r, ns in plans:
        name = d.obj["metadata"]["name"]
        try:
            existed = True
            try:
                before = api.request("GET", r.path(ns, name))
            except ApiFailure as e:
                if e.code != 404:
                    raise
                existed, before = False, None
            api.warnings.clear()
            after = api.request("PATCH", r.path(ns, name), d.obj,
                                {"fieldManager": "skiff", "force": "true"}, "application/apply-patch+yaml")
            verb = "created" if not existed else (
                "unchanged" if before and before["metadata"]["resourceVersion"] ==
                after["metadata"]["resourceVersion"] else "configured")
            group = f".{r.group}" if r.group else ""
            for w in api.warnings:
                warn(f"Warning: {w}")
            echo(f"{r.kind.lower()}{group}/{name} {verb}")
            applied += 1
        except ApiFailure as e:
            # The dry run passed, so this is a race with another writer: report it, keep going.
            problems.append(_server_problem(d, e))
    return applied, problems
