"""Listeners that look before they leap: peek the first bytes, then terminate, splice or serve.

A PeekingListener accepts raw sockets and peeks (MSG_PEEK: nothing is
consumed) until it has a whole TLS ClientHello, or sees that the client is
not speaking TLS. Its `decide` callback, given the hello (or None for
plain bytes), answers with one of:
- Terminate(ctx, factory): TLS handshake here (uvloop's TLS), then `factory`'s protocol;
- Plain(factory): serve the bytes as they are;
- Splice(address): pass the raw stream, TLS and all, to another listener (or, with
  `ssl`, wrapped in TLS this side originates: a sidecar's mTLS around a TCP stream);
- Reject(): close.
Because nothing was read, the kernel still holds every byte for whichever
transport takes the socket over. The router's HTTPS port (router/router.py)
and the gateway's local listener (mesh/gateway/proxy.py) are built on it.

Stopping comes in two steps: close() stops accepting (and drops connections
still peeking or in their handshake) but leaves established connections to
their protocols, which the owner drains (ProxyConfig.drain); stop() closes
whatever is left. A client trickling its ClientHello is polled ever more
slowly, and dropped at hello_timeout.

A client that sends nothing at all may be waiting for the server to speak
first (MySQL, SMTP): with `detect_timeout` set (Istio's
protocolDetectionTimeout), such a connection is decided after that long as
one that sent no bytes (hello None, nothing to peek); without it, it is
dropped at hello_timeout. `decide_early`, when it answers, decides before
anything is awaited (a port whose protocol is known needs no peeking).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from skiff.dataplane.proxy.tls import MAX_HELLO, ClientHello, NotTLS, parse_client_hello

log = logging.getLogger("skiff.proxy.listener")

ProtocolFactory = Callable[[], asyncio.Protocol]


@dataclass(frozen=True)
class Terminate:
    ctx: ssl.SSLContext
    factory: ProtocolFactory


@dataclass(frozen=True)
class Plain:
    factory: ProtocolFactory


@dataclass(frozen=True)
class Splice:
    address: tuple[str, int]
    # Makes the upstream socket, connected (a sidecar's passthrough connects from inside its
    # pod's namespace); None: connect from here.
    connect: Callable[[], Awaitable[socket.socket]] | None = None
    # TLS to originate on the upstream connection (None: the bytes go as they are), and a
    # check of the handshake's result (the peer's SANs) that raises to refuse the peer.
    ssl: ssl.SSLContext | None = None
    check: Callable[[asyncio.BaseTransport], None] | None = None


@dataclass(frozen=True)
class Reject:
    reason: str = ""


Action = Terminate | Plain | Splice | Reject
Decide = Callable[[ClientHello | None], Action]
# A decision that also looks at the accepted socket (its original destination, its bytes).
DecideConn = Callable[[ClientHello | None, socket.socket], Action]
# A decision before any byte is awaited; None: peek first.
DecideEarly = Callable[[socket.socket], Action | None]


class Silent(Exception):
    """The client sent nothing within the listener's detect_timeout."""


class Pipe(asyncio.Protocol):
    """One side of a TCP splice; half-closes are passed on, the pair closes when both ended.
    Bytes that arrive before the other side is linked wait in `early` (the owner keeps that
    bounded: it links at once, or pauses reading until it does). `on_lost` is called once,
    when this side's connection is gone."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Pipe | None = None
        self.early: list[bytes] = []
        self.eof = False
        self.on_lost: Callable[[], None] | None = None
        self.reads = 0                  # data_received calls: what an idle watchdog compares

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def link(self, peer: Pipe) -> None:
        self.peer = peer
        if self.early and peer.transport is not None:
            peer.transport.write(b"".join(self.early))
        self.early = []

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.early.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None or peer.transport is None:
            return False
        if peer.eof:
            peer.transport.close()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        # a TLS transport closes after its end of input whatever this returns (and logs a
        # warning if asked to stay open): only a plain one can stay half-open
        return self.transport is None or self.transport.get_extra_info("ssl_object") is None

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()
        done, self.on_lost = self.on_lost, None
        if done is not None:
            done()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


_Pipe = Pipe


async def upstream(address: tuple[str, int],
                   connect: Callable[[], Awaitable[socket.socket]] | None = None,
                   tls: ssl.SSLContext | None = None,
                   check: Callable[[asyncio.BaseTransport], None] | None = None,
                   handshake_timeout: float = 10.0) -> tuple[asyncio.Transport, Pipe]:
    """A Pipe connected to `address` (through the socket `connect` makes, if given), with
    TLS originated on it when `tls` is given and its peer accepted by `check`."""
    loop = asyncio.get_running_loop()
    extra: dict[str, Any] = {}
    if tls is not None:
        extra = {"ssl": tls, "server_hostname": "", "ssl_handshake_timeout": handshake_timeout}
    if connect is None:
        up_t, up_p = await loop.create_connection(Pipe, address[0], address[1], **extra)
    else:
        up_t, up_p = await loop.create_connection(Pipe, sock=await connect(), **extra)
    if check is not None:
        try:
            check(up_t)
        except BaseException:
            up_t.close()
            raise
    return up_t, up_p


async def splice(sock: socket.socket, address: tuple[str, int],
                 connect: Callable[[], Awaitable[socket.socket]] | None = None,
                 tls: ssl.SSLContext | None = None,
                 check: Callable[[asyncio.BaseTransport], None] | None = None,
                 ) -> tuple[asyncio.BaseTransport, asyncio.BaseTransport]:
    """Join an accepted socket to a new connection to `address` (or the one `connect`
    makes; TLS originated on it with `tls`), byte for byte."""
    loop = asyncio.get_running_loop()
    up_t, up_p = await upstream(address, connect, tls, check)
    try:
        down_t, down_p = await loop.connect_accepted_socket(Pipe, sock)
    except BaseException:
        up_t.close()
        raise
    down_p.link(up_p)
    up_p.link(down_p)
    return down_t, up_t


def listening_socket(host: str, port: int, reuse_port: bool = False,
                     backlog: int = 1024) -> socket.socket:
    """A non-blocking TCP socket bound to (host, port) and listening (SO_REUSEPORT when
    asked: several data-plane workers on one port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        # which of the data plane's several ports it was: the errno alone does not say
        raise OSError(e.errno, f"{host}:{port}: {e.strerror}") from e
    sock.setblocking(False)
    return sock


async def server_on(factory: ProtocolFactory, host: str, port: int, reuse_port: bool = False,
                    **kwargs: Any) -> asyncio.Server:
    """An asyncio server on a listening_socket(), not yet accepting (start_serving() does);
    the socket is closed again if the server cannot be made."""
    sock = listening_socket(host, port, reuse_port)
    try:
        return await asyncio.get_running_loop().create_server(
            factory, sock=sock, backlog=1024, start_serving=False, **kwargs)
    except BaseException:
        sock.close()          # bound, but no server took it
        raise


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class PeekingListener:
    def __init__(self, host: str, port: int, decide: Decide, *, hello_timeout: float = 10.0,
                 handshake_timeout: float = 10.0, name: str = "",
                 reuse_port: bool = False, sock: socket.socket | None = None,
                 decide_conn: DecideConn | None = None,
                 on_drop: Callable[[str], None] | None = None,
                 decide_early: DecideEarly | None = None,
                 detect_timeout: float = 0.0) -> None:
        self.host = host
        self.decide_early = decide_early
        self.detect_timeout = detect_timeout   # 0: none (a silent client waits hello_timeout)
        self.on_drop = on_drop           # told why a connection failed before it was served
        self._bound = sock               # a socket bound elsewhere (in a pod's namespace)
        self.decide_conn = decide_conn
        self.reuse_port = reuse_port     # SO_REUSEPORT: data-plane workers share the port
        self.port = port
        self.decide = decide
        self.hello_timeout = hello_timeout
        self.handshake_timeout = handshake_timeout
        self.name = name or f"{host}:{port}"
        self.sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        # not a WeakSet: uvloop's TLS transports cannot be weakly referenced
        self._transports: set[asyncio.BaseTransport] = set()

    @property
    def address(self) -> tuple[str, int]:
        assert self.sock is not None
        addr = self.sock.getsockname()
        return str(addr[0]), int(addr[1])

    async def start(self, accept: bool = True) -> None:
        """Bind and listen; accept now, or (accept=False) from accept() on: until then the
        kernel keeps new connections in the backlog."""
        if self._bound is not None:
            self.sock, self._bound = self._bound, None
            self.sock.setblocking(False)
        else:
            self.sock = listening_socket(self.host, self.port, self.reuse_port)
        if accept:
            self.accept()

    def accept(self) -> None:
        """Start taking connections (once)."""
        if self._task is None and self.sock is not None:
            self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def close(self) -> None:
        """Stop accepting; connections not yet handed to a transport are dropped, established
        ones are left to their protocols (to drain)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        for t in list(self._handlers):
            t.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def stop(self) -> None:
        """close(), then close every connection this listener handed over."""
        await self.close()
        for tr in list(self._transports):
            tr.close()
        self._transports.clear()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.sock is not None
        while True:
            try:
                conn, _ = await loop.sock_accept(self.sock)
            except asyncio.CancelledError:
                raise
            except OSError as e:         # EMFILE and friends: back off instead of spinning
                log.warning("%s: accept failed: %s", self.name, e)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._handle(conn))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    def _track(self, *transports: asyncio.BaseTransport) -> None:
        if len(self._transports) > 512:
            self._transports = {t for t in self._transports if not t.is_closing()}
        self._transports.update(transports)

    async def _handle(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            early = self.decide_early(conn) if self.decide_early is not None else None
            if early is not None:
                action: Action = early
            else:
                try:
                    hello: ClientHello | None = await self._peek(conn)
                except (NotTLS, Silent):
                    hello = None
                action = (self.decide(hello) if self.decide_conn is None
                          else self.decide_conn(hello, conn))
            # from here on a transport owns the socket: it is never closed here again
            if isinstance(action, Terminate):
                tr, _ = await loop.connect_accepted_socket(
                    action.factory, conn, ssl=action.ctx,
                    ssl_handshake_timeout=self.handshake_timeout)
                self._track(tr)
            elif isinstance(action, Plain):
                tr, _ = await loop.connect_accepted_socket(action.factory, conn)
                self._track(tr)
            elif isinstance(action, Splice):
                self._track(*await splice(conn, action.address, action.connect, action.ssl,
                                          action.check))
            else:
                conn.close()
        except asyncio.CancelledError:
            conn.close()
            raise
        except (OSError, EOFError, TimeoutError, ssl.SSLError) as e:
            log.debug("%s: connection dropped: %s", self.name, e)
            if self.on_drop is not None:
                msg = f"{type(e).__name__}: {e}"
                with contextlib.suppress(OSError):
                    peer = conn.getpeername()
                    msg = f"from {peer[0]}:{peer[1]}: {msg}"
                self.on_drop(msg)
            conn.close()
        except Exception:
            log.exception("%s: connection failed", self.name)
            conn.close()

    async def _peek(self, conn: socket.socket) -> ClientHello:
        """The ClientHello, read without consuming it; NotTLS for any other first bytes."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self.hello_timeout
        detect = self.detect_timeout
        quiet = start + detect if 0 < detect < self.hello_timeout else None
        fd = conn.fileno()
        pause = 0.002
        while True:
            try:
                data: bytes | None = conn.recv(MAX_HELLO, socket.MSG_PEEK)
            except BlockingIOError:
                data = None
            if data is not None:
                if not data:
                    raise EOFError("closed before sending anything")
                hello = parse_client_hello(data)
                if hello is not None:
                    return hello
                if len(data) >= MAX_HELLO:
                    raise NotTLS("ClientHello too large")
                # part of a hello: the socket stays readable while the bytes sit there
                # unread, so poll gently instead of waiting for readiness
                if loop.time() > deadline:
                    raise TimeoutError
                # a hello cut by the network completes in a moment; one trickled by a slowloris
                # must not cost a wake-up every 2 ms for ten seconds
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            fut: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, fut)
            try:
                if quiet is not None:
                    # nothing yet: a server-first client is let through at the detect timeout
                    try:
                        await asyncio.wait_for(fut, max(0.0, quiet - loop.time()))
                    except TimeoutError:
                        raise Silent from None
                else:
                    await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            finally:
                loop.remove_reader(fd)
