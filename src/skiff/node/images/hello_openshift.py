"""The built-in docker.io/openshift/hello-openshift image, as a Python app.

Answers every request (any method, any path) with $RESPONSE, or
"Hello OpenShift!", plus a newline, like the upstream Go program. Listens
on $PORT (8080 when run by hand): on every address of the pod's own network
namespace, as the upstream program does, or on 127.0.0.1 only when it shares
the host's network (skiff's loopback fallback, or run by hand). HTTP/1.1 with keep-alive and pipelining; an asyncio Protocol with
httptools parsing on uvloop when available, the data-plane stack DESIGN.md
measured. Started by the node runtime (pod.py) as
`python -m skiff.node.images.hello_openshift`; imports nothing else
from skiff so it starts fast.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from email.utils import formatdate
from typing import cast

import httptools

try:        # imported here, not in main(), so that the fork server's template has it loaded
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency
    uvloop = None  # type: ignore[assignment]


class _Date:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = formatdate(now, usegmt=True).encode()
        return self.value


class HelloProtocol(asyncio.Protocol):
    def __init__(self, body: bytes, date: _Date) -> None:
        self.body = body
        self.date = date
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.method = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._respond(keep_alive=False)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                     b"Connection: close\r\n\r\n")
                self.transport.close()

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()

    def on_message_complete(self) -> None:
        self._respond(self.parser.should_keep_alive())

    def _respond(self, keep_alive: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        head = (b"HTTP/1.1 200 OK\r\nDate: " + self.date.get() +
                b"\r\nContent-Length: " + str(len(self.body)).encode() +
                b"\r\nContent-Type: text/plain; charset=utf-8\r\n")
        if not keep_alive:
            head += b"Connection: close\r\n"
        t.write(head + b"\r\n" + (b"" if self.method == b"HEAD" else self.body))
        if not keep_alive:
            t.close()


def listen(port: int, host: str = "127.0.0.1") -> socket.socket:
    """The listening socket, made before the event loop: from the bind on, the kernel queues
    connections (a readiness probe's connect succeeds and waits for the answer), while
    the loop still starts. Bound by address rather than by host name: uvloop would resolve
    a name on its thread pool, which costs milliseconds in a child forked from the warm
    template."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(port: int, body: bytes, host: str = "127.0.0.1",
                sock: socket.socket | None = None) -> None:
    loop = asyncio.get_running_loop()
    date = _Date()
    if sock is None:
        sock = listen(port, host)
    server = await loop.create_server(lambda: HelloProtocol(body, date), sock=sock)
    print(f"serving on {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def bind_address() -> str:
    """All addresses inside a network namespace of its own; loopback only on the host's.
    (The parent, the node's fork server or skiff or a shell, is on the host's network.)"""
    try:
        if os.stat("/proc/self/ns/net").st_ino != os.stat(f"/proc/{os.getppid()}/ns/net").st_ino:
            return "0.0.0.0"
    except OSError:
        pass
    return "127.0.0.1"


def main() -> None:
    port = int(os.environ.get("PORT") or "8080")
    host = bind_address()
    body = (os.environ.get("RESPONSE") or "Hello OpenShift!").encode() + b"\n"
    try:
        sock = listen(port, host)
        if uvloop is not None:
            uvloop.install()
        asyncio.run(serve(port, body, host, sock))
    except OSError as e:
        print(f"hello-openshift: cannot listen on {host}:{port}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
