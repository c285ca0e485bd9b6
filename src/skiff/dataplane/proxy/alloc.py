"""Allocator tuning for the data plane process (glibc only; a no-op elsewhere).

uvloop's TLS layer reads each record batch into a fresh 256 KiB buffer and shrinks it to the
bytes read. glibc serves an allocation that large with mmap(), shrinks it with mremap() and frees
it with munmap(): three system calls per request read, measured here to cost as much as the
request's own reads and writes (benchmarks/gateway: HTTPS through the gateway went from about
64 to about 32 CPU-us per request with them gone). Raising the mmap threshold keeps such buffers
on the heap; raising the trim threshold keeps the heap from being returned and re-grown each
time. Called once by the gateway (mesh/gateway/proxy.py) when its listeners start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("skiff.proxy")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator(mmap_threshold: int = 4 << 20, trim_threshold: int = 16 << 20) -> bool:
    """Apply once per process; True when glibc accepted the settings."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False          # not glibc (musl has no mallopt)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    _done = ok
    if not ok:
        log.debug("mallopt refused the data plane's allocator settings")
    return ok
