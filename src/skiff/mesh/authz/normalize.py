"""Istio's request path normalization, as the sidecar applies it before authorization.

meshConfig.pathNormalization.normalization picks Envoy HTTP connection
manager options (istio pilot/pkg/networking/core/listener_builder.go):
- NONE: the path is used as received;
- BASE (the default, also DEFAULT): normalize_path, i.e. Envoy's RFC 3986
  canonicalization (a Chromium URL canonicalizer fork): percent-decoding of
  unreserved characters (ALPHA, DIGIT, `-._~`), `\\` to `/`, `.`/`..` segments
  resolved, characters that may not appear raw percent-encoded; `%00` makes the
  path invalid and Envoy answers 400;
- MERGE_SLASHES: BASE, then runs of `/` merged;
- DECODE_AND_MERGE_SLASHES: first `%2F`/`%5C` unescaped
  (path_with_escaped_slashes_action UNESCAPE_AND_FORWARD), then as MERGE_SLASHES.
The query string and a fragment never take part: only the path before them is
normalized, and authorization matches that path alone (Envoy's PathMatcher).
Other percent-encodings keep their spelling (`%2f` stays lower-case), as Istio's
normalization integration test (tests/integration/security/normalization_test.go)
expects; its tables are this module's golden cases.

Pure. Neighbours: evaluate.py calls normalize_path() once per HTTP decision;
the data plane forwards `Normalized.forwarded` upstream (Envoy does too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["MODES", "Normalized", "PathRejected", "matched_path", "normalize_path"]

MODES = ("NONE", "BASE", "DEFAULT", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")
# Raw characters the canonicalizer percent-encodes in a path (controls, space, `"`, `<`,
# `>`, backtick, `{`, `}`, DEL and every non-ASCII byte).
_ESCAPE = frozenset(" \"<>`{}\x7f") | frozenset(chr(c) for c in range(1, 0x20))
_ESCAPED_SLASH = re.compile(r"%(2[fF]|5[cC])")
_SLASHES = re.compile(r"/{2,}")
# Quick test for a path canonicalization cannot change (the common case).
_NEEDS_WORK = re.compile(r"[%\\.\x00-\x20\"<>`{}\x7f-\U0010ffff]")


class PathRejected(ValueError):
    """The path cannot be normalized: Envoy answers 400 Bad Request."""


@dataclass(frozen=True, slots=True)
class Normalized:
    path: str        # what authorization matches: normalized, without query or fragment
    query: str       # "" or "?..." as received
    forwarded: str   # what goes upstream: path + query


def _split(raw: str) -> tuple[str, str]:
    raw = raw.split("#", 1)[0]
    q = raw.find("?")
    return (raw, "") if q < 0 else (raw[:q], raw[q:])


def _canonical_chars(path: str) -> str:
    """Percent-decode unreserved characters, `\\` -> `/`, escape what may not stay raw."""
    out: list[str] = []
    i, n = 0, len(path)
    while i < n:
        c = path[i]
        if c == "%":
            if i + 2 < n and path[i + 1] in _HEX and path[i + 2] in _HEX:
                b = int(path[i + 1:i + 3], 16)
                if b == 0:
                    raise PathRejected("invalid path: %00 is not allowed")
                if b in _UNRESERVED:
                    out.append(chr(b))
                else:
                    out.append(path[i:i + 3])
                i += 3
                continue
            out.append("%")   # a stray `%` passes as it is
        elif c == "\\":
            out.append("/")
        elif c == "\x00":
            raise PathRejected("invalid path: NUL is not allowed")
        elif c in _ESCAPE:
            out.append(f"%{ord(c):02X}")
        elif ord(c) > 0x7f:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8"))
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    segments = path[1:].split("/")
    out: list[str] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == ".":
            if i == last:
                out.append("")
        elif seg == "..":
            if out:
                out.pop()
            if i == last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def normalize_path(raw: str, mode: str = "BASE") -> Normalized:
    """The path authorization sees for the request-target `raw` under `mode`; raises
    PathRejected where Envoy answers 400."""
    path, query = _split(raw)
    if mode == "NONE":
        if "\x00" in path:
            raise PathRejected("invalid path: NUL is not allowed")
        return Normalized(path, query, path + query)
    if mode not in MODES:
        raise ValueError(f"unknown path normalization {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "DECODE_AND_MERGE_SLASHES" and "%" in path:
        path = _ESCAPED_SLASH.sub(lambda m: "/" if m.group(1) in ("2f", "2F") else "\\", path)
    # Envoy canonicalizes only origin-form paths; "*" (OPTIONS) and the like pass through.
    if path.startswith("/") and _NEEDS_WORK.search(path):
        path = _remove_dot_segments(_canonical_chars(path))
    if mode in ("MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES") and "//" in path:
        path = _SLASHES.sub("/", path)
    return Normalized(path, query, path + query)


@lru_cache(maxsize=4096)
def _matched_path(raw: str, mode: str) -> str | PathRejected:
    try:
        return normalize_path(raw, mode).path
    except PathRejected as e:
        return e


def matched_path(raw: str, mode: str = "BASE") -> str:
    """normalize_path(raw, mode).path, memoised: the same paths recur request after request."""
    got = _matched_path(raw, mode)
    if isinstance(got, PathRejected):
        raise got
    return got
