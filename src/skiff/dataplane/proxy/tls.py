"""TLS helpers for the data plane: ClientHello peeking and server contexts from PEM.

parse_client_hello() is pure (bytes in, SNI and ALPN out): the router
(router/router.py) and the gateway's listeners (dataplane/proxy/listener.py) peek
the first TLS record of a connection without consuming it, to decide between
passing the raw stream through and terminating it. server_context() turns
PEM bytes (a Secret's tls.crt/tls.key, as the snapshot carries them) into an
ssl.SSLContext with ALPN h2 + http/1.1; the private key never touches the
disk (a memfd on Linux, a 0600 temporary file elsewhere), because ssl can
only load certificates from paths. With `client_ca` a server context asks
for client certificates (mTLS downstream); each context notes the SNI a
client asked for on its ssl object (note_sni), where http1.ConnContext
reads it. client_context() is the upstream side: an ssl context from a
cluster's UpstreamTlsContext (cluster.py), verified against its CA; the
peer's SAN is checked after the handshake by http1.UpstreamPool.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from skiff.dataplane.proxy.cluster import UpstreamTlsContext

__all__ = ["ClientHello", "NotTLS", "parse_client_hello", "server_context", "client_context",
           "note_sni", "requested_sni", "peer_chain", "ALPN"]

ALPN = ("h2", "http/1.1")

_HANDSHAKE = 0x16
_CLIENT_HELLO = 1
_EXT_SNI = 0
_EXT_ALPN = 16
MAX_HELLO = 64 * 1024  # a ClientHello never needs more; beyond this the peer is not speaking TLS


class NotTLS(ValueError):
    """The bytes are not (or no longer look like) a TLS ClientHello."""


@dataclass(frozen=True)
class ClientHello:
    sni: str | None              # lower-cased host name, None when the client sent no SNI
    alpn: tuple[str, ...] = ()


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of `data`; None when more bytes are needed.

    Raises NotTLS when the bytes are not a TLS handshake. The hello may span
    several records (large post-quantum key shares do); fragments are joined.
    """
    if not data:
        return None
    if data[0] != _HANDSHAKE:
        raise NotTLS("not a TLS handshake record")
    hs = bytearray()
    pos = 0
    need = -1
    while need < 0 or len(hs) < need:
        if len(data) < pos + 5:
            return None
        if data[pos] != _HANDSHAKE:
            raise NotTLS("handshake interrupted by another record type")
        if data[pos + 1] != 3:
            raise NotTLS("unknown record version")
        rlen = int.from_bytes(data[pos + 3:pos + 5], "big")
        if rlen == 0 or rlen > 16384 + 2048:
            raise NotTLS("bad record length")
        if len(data) < pos + 5 + rlen:
            return None
        hs += data[pos + 5:pos + 5 + rlen]
        pos += 5 + rlen
        if need < 0 and len(hs) >= 4:
            if hs[0] != _CLIENT_HELLO:
                raise NotTLS("first handshake message is not a ClientHello")
            need = 4 + int.from_bytes(hs[1:4], "big")
            if need > MAX_HELLO:
                raise NotTLS("ClientHello too large")
    return _parse_hello_body(bytes(hs[4:need]))


def _parse_hello_body(b: bytes) -> ClientHello:
    try:
        p = 2 + 32                                   # client_version, random
        p += 1 + b[p]                                # session_id
        p += 2 + int.from_bytes(b[p:p + 2], "big")   # cipher_suites
        p += 1 + b[p]                                # compression_methods
        if p >= len(b):
            return ClientHello(None)                 # no extensions at all (SSLv3-style hello)
        end = p + 2 + int.from_bytes(b[p:p + 2], "big")
        p += 2
        sni: str | None = None
        alpn: tuple[str, ...] = ()
        while p + 4 <= end:
            etype = int.from_bytes(b[p:p + 2], "big")
            elen = int.from_bytes(b[p + 2:p + 4], "big")
            ext = b[p + 4:p + 4 + elen]
            p += 4 + elen
            if etype == _EXT_SNI:
                q = 2
                while q + 3 <= len(ext):
                    ntype, nlen = ext[q], int.from_bytes(ext[q + 1:q + 3], "big")
                    if ntype == 0:
                        sni = ext[q + 3:q + 3 + nlen].decode("ascii").lower().rstrip(".")
                        break
                    q += 3 + nlen
            elif etype == _EXT_ALPN:
                q, names = 2, []
                while q < len(ext):
                    n = ext[q]
                    names.append(ext[q + 1:q + 1 + n].decode("ascii", "replace"))
                    q += 1 + n
                alpn = tuple(names)
        return ClientHello(sni, alpn)
    except (IndexError, UnicodeDecodeError) as e:
        raise NotTLS(f"malformed ClientHello: {e}") from None


@contextlib.contextmanager
def _pem_path(pem: bytes) -> Iterator[str]:
    """A path ssl can read `pem` from, gone when the block ends."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("skiff-pem", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    f = tempfile.NamedTemporaryFile(prefix="skiff-pem-", delete=False)  # noqa: SIM115 - unlinked below
    try:
        os.chmod(f.name, 0o600)
        f.write(pem)
        f.close()
        yield f.name
    finally:
        os.unlink(f.name)


_SNI_ATTR = "skiff_sni"


def note_sni(sslobj: Any, name: str | None) -> None:
    """Remember on the connection's ssl object the server name its client asked for: a
    server-side ssl object does not keep it. Called from SNI callbacks."""
    try:
        setattr(sslobj, _SNI_ATTR, name.lower().rstrip(".") if name else None)
    except AttributeError:
        pass


def requested_sni(sslobj: Any) -> str | None:
    return getattr(sslobj, _SNI_ATTR, None)


def _note_sni_callback(sslobj: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
    note_sni(sslobj, name)


def peer_chain(sslobj: Any) -> tuple[bytes, ...]:
    """The peer's certificate chain as DER, leaf first; () when it showed none. Python 3.11
    has no public accessor for the chain (3.13's get_verified_chain): the private one is used
    where it exists, else only the leaf."""
    if sslobj is None:
        return ()
    inner = getattr(sslobj, "_sslobj", None)
    get = getattr(inner, "get_verified_chain", None) or getattr(inner, "get_unverified_chain",
                                                                None)
    if get is not None:
        try:
            chain = get() or []
            out = tuple(c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                        for c in chain)
            if out:
                return out
        except (ssl.SSLError, ValueError, AttributeError):
            pass
    leaf = sslobj.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


class FastSSLObject(ssl.SSLObject):
    """ssl.SSLObject whose read, write and pending are the C methods of the underlying
    _ssl object, bound on the instance. The event loop's TLS layer (uvloop's SSLProtocol)
    calls these for every record; ssl.SSLObject's own are Python wrappers that only pass the
    call on, a Python frame each time (benchmarks/gateway: about 1 us per request)."""

    @classmethod
    def _create(cls, *args: Any, **kwargs: Any) -> FastSSLObject:
        self: FastSSLObject = super()._create(*args, **kwargs)  # type: ignore[misc]
        inner = self._sslobj                # type: ignore[attr-defined]
        self.read = inner.read              # type: ignore[method-assign]  # (size[, buffer])
        self.write = inner.write            # type: ignore[method-assign]
        self.pending = inner.pending        # type: ignore[method-assign]
        return self


def _fast(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.sslobject_class = FastSSLObject
    return ctx


def server_context(cert_pem: bytes, key_pem: bytes, alpn: tuple[str, ...] = ALPN,
                   client_ca: bytes | None = None,
                   require_client_cert: bool = False) -> ssl.SSLContext:
    """A server-side context for this certificate chain and key (raises ssl.SSLError if they
    do not load or do not match). With `client_ca`, clients are asked for a certificate
    issued by it (required when `require_client_cert`, as Istio's ISTIO_MUTUAL/STRICT)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    with _pem_path(cert_pem + b"\n" + key_pem) as path:
        ctx.load_cert_chain(path)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if client_ca is not None:
        ctx.load_verify_locations(cadata=client_ca.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    ctx.sni_callback = _note_sni_callback
    return _fast(ctx)


def client_context(tls: UpstreamTlsContext) -> ssl.SSLContext:
    """A client-side context for originating TLS to an upstream. Host names are not checked
    by ssl: the peer is identified by tls.match_san (URI SANs included), after the handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.check_hostname = False
    if tls.ca_pem is not None:
        ctx.load_verify_locations(cadata=tls.ca_pem.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_pem is not None and tls.key_pem is not None:
        with _pem_path(tls.cert_pem + b"\n" + tls.key_pem) as path:
            ctx.load_cert_chain(path)
    if tls.alpn:
        ctx.set_alpn_protocols(list(tls.alpn))
    return _fast(ctx)
