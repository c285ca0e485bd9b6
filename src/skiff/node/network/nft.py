"""nftables, driven through libnftables: the one place skiff's rulesets reach the kernel.

A thin shell. proxier.py (kube-proxy's Service rules) and policy.py
(NetworkPolicy) compile pure nft scripts; Nft.run() hands such a script to
libnftables (through ctypes: Debian ships libnftables.so.1 with the `nftables`
package, but no Python binding on PyPI fits, and six C calls are all we need)
and raises NftError with nft's own message when the kernel or the parser
refuses it. Without the library it spawns `nft -f -` instead.

A script is applied as one netlink transaction, so a script of the form
`table ip T {}` / `delete table ip T` / `table ip T { ... }` replaces a whole
table atomically: packets see the old rules or the new ones, never none.
delete_tables() removes every table whose name starts with a prefix: the
sweep after a `kill -9` and the teardown after a stop.

Calls act in the network namespace of the calling thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import subprocess
import threading

__all__ = ["Nft", "NftError", "available", "delete_tables", "list_tables"]

_LIBRARY = "libnftables.so.1"


class NftError(RuntimeError):
    """nft refused a script; the message is nft's error text."""


def _load() -> ctypes.CDLL | None:
    for name in (_LIBRARY, ctypes.util.find_library("nftables")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_set_dry_run.argtypes = [ctypes.c_void_p, ctypes.c_bool]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        return lib
    return None


class Nft:
    """One libnftables context (or the `nft` binary when the library is absent).

    `use_library=False` forces the binary, for tests of the fallback.
    """

    def __init__(self, *, use_library: bool = True) -> None:
        self._lock = threading.Lock()
        self._lib = _load() if use_library else None
        self._ctx: int | None = None
        if self._lib is not None:
            ctx = self._lib.nft_ctx_new(0)          # NFT_CTX_DEFAULT
            if not ctx:
                self._lib = None
            else:
                self._ctx = ctx
                self._lib.nft_ctx_buffer_output(ctx)
                self._lib.nft_ctx_buffer_error(ctx)
        if self._lib is None and shutil.which("nft") is None:
            raise NftError("nftables is not available: neither libnftables.so.1 nor `nft` found")

    @property
    def backend(self) -> str:
        return "libnftables" if self._lib is not None else "nft"

    def run(self, script: str) -> str:
        """Run an nft script as one transaction; its output (listings) is returned."""
        return self._run(script, check=False)

    def check(self, script: str) -> None:
        """Parse and validate a script against the kernel without committing it (`nft -c`)."""
        self._run(script, check=True)

    def close(self) -> None:
        with self._lock:
            if self._lib is not None and self._ctx is not None:
                self._lib.nft_ctx_free(self._ctx)
            self._ctx = None
            self._lib = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, script: str, *, check: bool) -> str:
        with self._lock:
            if self._lib is not None and self._ctx is not None:
                lib, ctx = self._lib, self._ctx
                lib.nft_ctx_set_dry_run(ctx, check)
                try:
                    rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
                    out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
                    err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
                finally:
                    lib.nft_ctx_set_dry_run(ctx, False)
                if rc != 0:
                    raise NftError(err.strip() or f"nft failed with status {rc}")
                return out
        args = ["nft", "-c", "-f", "-"] if check else ["nft", "-f", "-"]
        proc = subprocess.run(args, input=script, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise NftError(proc.stderr.strip() or f"nft exited with status {proc.returncode}")
        return proc.stdout


_TABLE_LINE = re.compile(r"^table (\S+) (\S+)$")


def list_tables(nft: Nft, prefix: str = "") -> list[tuple[str, str]]:
    """(family, name) of every table whose name starts with prefix."""
    found = []
    for line in nft.run("list tables").splitlines():
        m = _TABLE_LINE.match(line.strip())
        if m and m.group(2).startswith(prefix):
            found.append((m.group(1), m.group(2)))
    return found


def delete_tables(prefix: str = "skiff", nft: Nft | None = None) -> list[str]:
    """Delete every table named prefix*, in one transaction; returns "family name" of each."""
    own = nft is None
    nft = nft or Nft()
    try:
        tables = list_tables(nft, prefix)
        if tables:
            nft.run("".join(f"delete table {family} {name}\n" for family, name in tables))
        return [f"{family} {name}" for family, name in tables]
    finally:
        if own:
            nft.close()


def available() -> bool:
    """Whether this process can program nftables here (a backend and CAP_NET_ADMIN)."""
    try:
        with Nft() as nft:
            nft.run("list tables")
    except (NftError, OSError):
        return False
    return True
