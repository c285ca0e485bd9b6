"""dataplane/proxy seams for the sidecar, activator and queue-proxy, with real sockets on
127.0.0.1: Defer (held requests, their deadline, client cancellation), RequestHooks (once per
request however it ends), TLS clusters (mTLS origination, SAN checks, pools per TLS settings),
the downstream ConnContext (SNI, ALPN, client certificate, SPIFFE ID) and the connect timeout.
HTTP/1.1 and HTTP/2 downstreams both."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.core.pki import make_ca
from skiff.dataplane.proxy.cluster import (
    Cluster,
    PeerNames,
    UpstreamTlsContext,
    peer_names,
    san_matches,
)
from skiff.dataplane.proxy.h2 import H2ServerProtocol, alpn_factory
from skiff.dataplane.proxy.http1 import (
    MAX_SSL_CONTEXTS,
    ConnContext,
    Defer,
    Forward,
    ProxyConfig,
    Reply,
    RequestHead,
    UpstreamPool,
    UpstreamTlsError,
    check_peer,
    h1_factory,
)
from skiff.dataplane.proxy.limits import Limits, defer_timeout
from skiff.dataplane.proxy.tls import server_context

NOW = dt.datetime.now(dt.UTC)
CA, CA_KEY = make_ca("mesh-ca", NOW)
OTHER_CA, OTHER_CA_KEY = make_ca("other-ca", NOW)


def leaf(ca: bytes, ca_key: bytes, cn: str, dns: tuple[str, ...] = (),
         uris: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """A certificate usable on both sides of mTLS (an Istio workload certificate's shape)."""
    ca_cert = x509.load_pem_x509_certificate(ca)
    cakey = serialization.load_pem_private_key(ca_key, None)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.UniformResourceIdentifier(u) for u in uris]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(minutes=5))
            .not_valid_after(NOW + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(cakey, hashes.SHA256()))  # type: ignore[arg-type]
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


SERVER_ID = "spiffe://cluster.local/ns/tenant-1/sa/hello"
CLIENT_ID = "spiffe://cluster.local/ns/knative-serving/sa/activator"
SERVER_CERT, SERVER_KEY = leaf(CA, CA_KEY, "hello", ("hello.tenant-1.svc",), (SERVER_ID,))
CLIENT_CERT, CLIENT_KEY = leaf(CA, CA_KEY, "activator", (), (CLIENT_ID,))


def run(fn: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(fn(), 20)
    asyncio.run(main())


class Upstream:
    """A keep-alive HTTP/1.1 server answering 200 "ok"; counts connections, keeps peer certs."""

    def __init__(self, ctx: ssl.SSLContext | None = None) -> None:
        self.ctx = ctx
        self.connections = 0
        self.peer_ids: list[str | None] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        addr = self.server.sockets[0].getsockname()
        return str(addr[0]), int(addr[1])

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        obj = w.get_extra_info("ssl_object")
        if obj is not None:
            der = obj.getpeercert(binary_form=True)
            self.peer_ids.append(peer_names(der).spiffe_id if der else None)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                if not head:
                    break
                w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            w.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class Hooks:
    def __init__(self) -> None:
        self.started: list[RequestHead] = []
        self.ended: list[tuple[int, int, str | None]] = []
        self.ctx: list[ConnContext] = []
        self.done = asyncio.Event()

    def start(self, ctx: ConnContext, head: RequestHead) -> None:
        self.started.append(head)

    def end(self, ctx: ConnContext, head: RequestHead, status: int, bytes_sent: int,
            duration: float, error: str | None) -> None:
        assert duration >= 0
        self.ctx.append(ctx)
        self.ended.append((status, bytes_sent, error))
        self.done.set()


async def serve(cfg: ProxyConfig, h2c: bool = False,
                ctx: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    factory: Callable[[], asyncio.Protocol]
    if ctx is not None:
        factory = alpn_factory(cfg, b"https")
    elif h2c:
        def factory() -> asyncio.Protocol:
            return H2ServerProtocol(cfg, b"http")
    else:
        factory = h1_factory(cfg)
    srv = await loop.create_server(factory, "127.0.0.1", 0, ssl=ctx)
    return srv, int(srv.sockets[0].getsockname()[1])


async def get(port: int, ctx: ssl.SSLContext | None = None, path: str = "/"
              ) -> tuple[int, bytes]:
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname="hello.example.com" if ctx else None)
    w.write(f"GET {path} HTTP/1.1\r\nhost: hello.example.com\r\n\r\n".encode())
    head = await r.readuntil(b"\r\n\r\n")
    status = int(head.split()[1])
    clen = 0
    for line in head.decode().split("\r\n"):
        if line.lower().startswith("content-length:"):
            clen = int(line.split(":")[1])
    body = await r.readexactly(clen)
    w.close()
    return status, body


async def h2_get(port: int) -> tuple[int, bytes]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                         (":authority", "hello.example.com")], end_stream=True)
    w.write(c.data_to_send())
    status, body = 0, b""
    while True:
        data = await r.read(65536)
        assert data, "closed"
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers or ())[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded):
                w.close()
                return status, body
        w.write(c.data_to_send())


# --- pure decisions ---------------------------------------------------------------------

def test_san_matching_is_exact_and_any_of() -> None:
    names = PeerNames(("Hello.tenant-1.svc",), (SERVER_ID,))
    assert san_matches((), names)
    assert san_matches((SERVER_ID,), names)
    assert san_matches(("other", "hello.TENANT-1.svc"), names)
    assert not san_matches((SERVER_ID + "x",), names)
    assert not san_matches(("spiffe://cluster.local/ns/tenant-1/sa/*",), names)
    assert peer_names(x509.load_pem_x509_certificate(SERVER_CERT).public_bytes(
        serialization.Encoding.DER)).spiffe_id == SERVER_ID
    assert peer_names(b"junk") == PeerNames()


def test_defer_timeout_defaults_to_the_request_timeout() -> None:
    lim = Limits(request_timeout=7.0)
    assert defer_timeout(None, lim) == 7.0
    assert defer_timeout(2.0, lim) == 2.0
    assert defer_timeout(0, lim) is None
    assert defer_timeout(None, Limits(request_timeout=0)) is None


# --- Defer ----------------------------------------------------------------------------

def test_defer_that_resolves_to_forward_serves_the_request_h1_and_h2() -> None:
    async def main() -> None:
        up = Upstream()
        ep = await up.start()
        hooks = Hooks()

        async def later() -> Forward:
            await asyncio.sleep(0.1)
            return Forward(ep)
        cfg = ProxyConfig(lambda h: Defer(later()), UpstreamPool(), hooks=[hooks])
        s1, p1 = await serve(cfg)
        s2, p2 = await serve(cfg, h2c=True)
        assert await get(p1) == (200, b"ok")
        assert await h2_get(p2) == (200, b"ok")
        assert [e[:2] for e in hooks.ended] == [(200, 2), (200, 2)]
        s1.close()
        s2.close()
        up.close()
    run(main)


def test_defer_on_a_shared_future_serves_every_held_request() -> None:
    async def main() -> None:
        up = Upstream()
        ep = await up.start()
        ready: asyncio.Future[Forward | Reply | Defer] = asyncio.get_running_loop().create_future()
        held: list[RequestHead] = []

        def dispatch(h: RequestHead) -> Defer:
            held.append(h)
            return Defer(ready)
        cfg = ProxyConfig(dispatch, UpstreamPool())
        srv, port = await serve(cfg)
        tasks = [asyncio.create_task(get(port)) for _ in range(3)]
        # every request has been dispatched and deferred (a signal, not a waiting window);
        # none is answered while the future is pending
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        while len(held) < 3:
            assert loop.time() < end, "the requests never reached the dispatcher"
            await asyncio.sleep(0.005)
        assert not any(t.done() for t in tasks)
        ready.set_result(Forward(ep))
        assert await asyncio.gather(*tasks) == [(200, b"ok")] * 3
        srv.close()
        up.close()
    run(main)


def test_defer_that_never_resolves_gets_503_at_its_deadline() -> None:
    async def main() -> None:
        hooks = Hooks()
        never: asyncio.Future[Forward | Reply | Defer] = asyncio.get_running_loop().create_future()
        # no timeout of its own: the listener's request timeout bounds the wait
        cfg = ProxyConfig(lambda h: Defer(never), UpstreamPool(), hooks=[hooks],
                          limits=Limits(request_timeout=0.3))
        s1, p1 = await serve(cfg)
        s2, p2 = await serve(cfg, h2c=True)
        t0 = asyncio.get_running_loop().time()
        status, body = await get(p1)
        assert (status, body) == (503, b"context deadline exceeded\n")
        assert asyncio.get_running_loop().time() - t0 >= 0.28
        assert (await h2_get(p2))[0] == 503
        assert [e[0] for e in hooks.ended] == [503, 503]
        assert [e[2] for e in hooks.ended] == ["UT", "UT"]
        assert not never.cancelled()        # a shared future is not the request's to cancel
        s1.close()
        s2.close()
    run(main)


def test_defer_timeout_and_reply_of_its_own() -> None:
    async def main() -> None:
        never: asyncio.Future[Forward | Reply | Defer] = asyncio.get_running_loop().create_future()
        cfg = ProxyConfig(lambda h: Defer(never, timeout=0.1, timeout_reply=Reply(504, b"late")),
                          UpstreamPool())
        srv, port = await serve(cfg)
        assert await get(port) == (504, b"late")
        srv.close()
    run(main)


def test_a_client_going_away_cancels_the_deferred_wait() -> None:
    async def main() -> None:
        hooks = Hooks()
        cancelled = asyncio.Event()
        waiting = asyncio.Event()

        async def wait_for_pod() -> Forward:
            waiting.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            raise AssertionError("not reached")
        cfg = ProxyConfig(lambda h: Defer(wait_for_pod()), UpstreamPool(), hooks=[hooks])
        for h2c in (False, True):
            cancelled.clear()
            waiting.clear()
            hooks.done.clear()
            srv, port = await serve(cfg, h2c=h2c)
            r, w = await asyncio.open_connection("127.0.0.1", port)
            if h2c:
                c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
                c.initiate_connection()
                c.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                   (":authority", "x")], end_stream=True)
                w.write(c.data_to_send())
            else:
                w.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            await asyncio.wait_for(waiting.wait(), 2)
            w.transport.abort()         # a reset, not a goodbye
            await asyncio.wait_for(cancelled.wait(), 2)
            await asyncio.wait_for(hooks.done.wait(), 2)
            srv.close()
        assert hooks.ended == [(0, 0, "DC"), (0, 0, "DC")]
        assert len(hooks.started) == 2
    run(main)


def test_deferred_request_body_is_held_and_then_sent() -> None:
    async def main() -> None:
        got: list[bytes] = []

        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            got.append(await r.readexactly(5))
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await w.drain()
            w.close()
        srv_up = await asyncio.start_server(echo, "127.0.0.1", 0)
        ep = srv_up.sockets[0].getsockname()[:2]

        async def later() -> Forward:
            await asyncio.sleep(0.1)
            return Forward((ep[0], ep[1]))
        cfg = ProxyConfig(lambda h: Defer(later()), UpstreamPool())
        srv, port = await serve(cfg)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert got == [b"hello"]
        w.close()
        srv.close()
        srv_up.close()
    run(main)


# --- hooks ----------------------------------------------------------------------------

def test_hooks_run_once_per_request_however_it_ends() -> None:
    async def main() -> None:
        up = Upstream()
        ep = await up.start()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[:2]          # nothing listens there once closed
        hooks = Hooks()

        def dispatch(h: RequestHead) -> Forward | Reply:
            if h.target == b"/dead":
                return Forward((dead[0], dead[1]))
            if h.target == b"/local":
                return Reply(404, b"nope")
            if h.target == b"/boom":
                raise RuntimeError("dispatch bug")
            return Forward(ep)
        cfg = ProxyConfig(dispatch, UpstreamPool(), hooks=[hooks])
        srv, port = await serve(cfg)
        assert await get(port) == (200, b"ok")
        assert (await get(port, path="/dead"))[0] == 503
        assert await get(port, path="/local") == (404, b"nope")
        assert (await get(port, path="/boom"))[0] == 500
        assert hooks.ended == [(200, 2, None), (503, len(
            b"upstream connect error or disconnect/reset before headers. reset reason: "
            b"connection failure"), "UF"), (404, 4, None), (500, 14, None)]
        assert len(hooks.started) == 4
        srv.close()
        up.close()
    run(main)


def test_hooks_on_an_upstream_reset_and_over_h2() -> None:
    async def main() -> None:
        async def rude(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            w.transport.abort()
        rude_srv = await asyncio.start_server(rude, "127.0.0.1", 0)
        rude_ep = rude_srv.sockets[0].getsockname()[:2]
        up = Upstream()
        ep = await up.start()
        hooks = Hooks()

        def dispatch(h: RequestHead) -> Forward:
            return Forward((rude_ep[0], rude_ep[1])) if h.target == b"/rude" else Forward(ep)
        cfg = ProxyConfig(dispatch, UpstreamPool(), hooks=[hooks])
        s1, p1 = await serve(cfg)
        s2, p2 = await serve(cfg, h2c=True)
        assert (await get(p1, path="/rude"))[0] == 503
        assert await h2_get(p2) == (200, b"ok")
        assert [(e[0], e[2]) for e in hooks.ended] == [(503, "UC"), (200, None)]
        for srv in (s1, s2, rude_srv):
            srv.close()
        up.close()
    run(main)


def test_hooks_are_not_called_when_a_failing_hook_raises() -> None:
    class Bad:
        def start(self, ctx: ConnContext, head: RequestHead) -> None:
            raise RuntimeError("bug")

        def end(self, *a: Any) -> None:
            raise RuntimeError("bug")

    async def main() -> None:
        up = Upstream()
        ep = await up.start()
        good = Hooks()
        cfg = ProxyConfig(lambda h: Forward(ep), UpstreamPool(), hooks=[Bad(), good])
        srv, port = await serve(cfg)
        assert await get(port) == (200, b"ok")
        assert good.ended == [(200, 2, None)]
        srv.close()
        up.close()
    run(main)


# --- TLS clusters -----------------------------------------------------------------------

def mtls_upstream_ctx() -> ssl.SSLContext:
    return server_context(SERVER_CERT + CA, SERVER_KEY, alpn=("http/1.1",), client_ca=CA,
                          require_client_cert=True)


def test_mtls_upstream_with_the_right_san_succeeds_and_a_wrong_one_is_refused() -> None:
    async def main() -> None:
        up = Upstream(mtls_upstream_ctx())
        ep = await up.start()
        good = Cluster("hello", UpstreamTlsContext(
            sni="outbound_.80_._.hello.tenant-1.svc.cluster.local", cert_pem=CLIENT_CERT,
            key_pem=CLIENT_KEY, ca_pem=CA, match_san=(SERVER_ID,), alpn=("http/1.1",)))
        wrong = Cluster("hello", UpstreamTlsContext(
            cert_pem=CLIENT_CERT, key_pem=CLIENT_KEY, ca_pem=CA,
            match_san=("spiffe://cluster.local/ns/tenant-2/sa/hello",)))
        untrusted = Cluster("hello", UpstreamTlsContext(
            cert_pem=CLIENT_CERT, key_pem=CLIENT_KEY, ca_pem=OTHER_CA))
        no_client_cert = Cluster("hello", UpstreamTlsContext(ca_pem=CA, match_san=(SERVER_ID,)))
        clusters = {b"/good": good, b"/wrong": wrong, b"/untrusted": untrusted,
                    b"/nocert": no_client_cert}
        pool = UpstreamPool()
        cfg = ProxyConfig(lambda h: Forward(ep, cluster=clusters[h.target]), pool)
        srv, port = await serve(cfg)
        assert await get(port, path="/good") == (200, b"ok")
        assert await get(port, path="/good") == (200, b"ok")
        assert up.peer_ids == [CLIENT_ID]                 # one connection, kept alive
        status, body = await get(port, path="/wrong")
        assert status == 503
        assert body.startswith(b"upstream connect error or disconnect/reset before headers. "
                               b"reset reason: connection failure, transport failure reason: "
                               b"TLS error: peer SAN mismatch: expected "
                               b"spiffe://cluster.local/ns/tenant-2/sa/hello, got " +
                               SERVER_ID.encode())
        status, body = await get(port, path="/untrusted")
        assert status == 503 and b"CERTIFICATE_VERIFY_FAILED" in body
        status, body = await get(port, path="/nocert")
        assert status == 503
        assert body.startswith(b"upstream connect error or disconnect/reset before headers.")
        srv.close()
        up.close()
        pool.close()
    run(main)


def test_pools_are_not_shared_across_tls_settings() -> None:
    async def main() -> None:
        up = Upstream(server_context(SERVER_CERT + CA, SERVER_KEY, alpn=("http/1.1",),
                                     client_ca=CA))       # client certificates optional
        ep = await up.start()
        with_id = Cluster("a", UpstreamTlsContext(cert_pem=CLIENT_CERT, key_pem=CLIENT_KEY,
                                                  ca_pem=CA))
        anonymous = Cluster("b", UpstreamTlsContext(ca_pem=CA))
        pool = UpstreamPool()

        def dispatch(h: RequestHead) -> Forward:
            return Forward(ep, cluster=with_id if h.target == b"/a" else anonymous)
        cfg = ProxyConfig(dispatch, pool)
        srv, port = await serve(cfg)
        for path in ("/a", "/b", "/a", "/b"):
            assert await get(port, path=path) == (200, b"ok")
        assert up.connections == 2
        assert sorted(map(str, up.peer_ids)) == sorted([CLIENT_ID, "None"])
        assert set(pool.idle) == {(ep, with_id.tls), (ep, anonymous.tls)}
        srv.close()
        up.close()
        pool.close()
    run(main)


# --- connection context -------------------------------------------------------------------

def test_connection_context_shows_the_client_certificate_spiffe_id() -> None:
    async def main() -> None:
        up = Upstream()
        ep = await up.start()
        seen: list[ConnContext] = []

        def dispatch(h: RequestHead) -> Forward:
            seen.append(h.conn)
            return Forward(ep)
        cfg = ProxyConfig(dispatch, UpstreamPool())
        srv, port = await serve(cfg, ctx=server_context(SERVER_CERT + CA, SERVER_KEY,
                                                        client_ca=CA, require_client_cert=True))
        for alpn in ("http/1.1", "h2"):
            client = ssl.create_default_context(cadata=CA.decode())
            client.check_hostname = False
            client.load_cert_chain(*_pair_files())
            client.set_alpn_protocols([alpn])
            if alpn == "h2":
                await _h2_tls_get(port, client)
            else:
                assert await get(port, ctx=client) == (200, b"ok")
        for conn, alpn in zip(seen, ("http/1.1", "h2"), strict=True):
            assert conn.tls
            assert conn.spiffe_id == CLIENT_ID
            assert conn.sni == "hello.example.com"
            assert conn.alpn == alpn
            assert conn.peer is not None and conn.peer[0] == "127.0.0.1"
            assert conn.local == ("127.0.0.1", port)
            assert len(conn.peer_certificates) >= 1
            assert peer_names(conn.peer_certificates[0]).uris == (CLIENT_ID,)
        # a plain connection: addresses only
        plain_cfg = ProxyConfig(dispatch, UpstreamPool())
        psrv, pport = await serve(plain_cfg)
        assert await get(pport) == (200, b"ok")
        c = seen[-1]
        assert not c.tls and c.sni is None and c.spiffe_id is None and c.peer_certificates == ()
        assert c.local == ("127.0.0.1", pport)
        srv.close()
        psrv.close()
        up.close()
    run(main)


_files: list[Any] = []


def _pair_files() -> tuple[str, str]:
    import tempfile
    if not _files:
        for data in (CLIENT_CERT, CLIENT_KEY):
            f = tempfile.NamedTemporaryFile(suffix=".pem")  # noqa: SIM115 - kept for the session
            f.write(data)
            f.flush()
            _files.append(f)
    return _files[0].name, _files[1].name


async def _h2_tls_get(port: int, ctx: ssl.SSLContext) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname="hello.example.com")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"),
                       (":authority", "hello.example.com")], end_stream=True)
    w.write(c.data_to_send())
    while True:
        data = await r.read(65536)
        assert data
        if any(isinstance(ev, h2.events.StreamEnded) for ev in c.receive_data(data)):
            break
        w.write(c.data_to_send())
    w.close()


# --- connect timeout ------------------------------------------------------------------------

def blackhole() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose accept queue is full: further SYNs are dropped, so a connect
    to it hangs (loopback only)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(8):
        s = socket.socket()
        s.settimeout(0.2)
        try:
            s.connect(lsock.getsockname())
        except (TimeoutError, OSError):
            s.close()
            break
        fillers.append(s)
    return lsock, fillers


def test_connect_timeout_to_a_blackhole_is_envoys_503() -> None:
    async def main() -> None:
        lsock, fillers = blackhole()
        try:
            ep = lsock.getsockname()[:2]
            hooks = Hooks()
            pool = UpstreamPool(connect_timeout=0.3)

            def dispatch(h: RequestHead) -> Forward:
                if h.target == b"/cluster":
                    return Forward((ep[0], ep[1]), cluster=Cluster("hole", connect_timeout=0.2))
                return Forward((ep[0], ep[1]))
            cfg = ProxyConfig(dispatch, pool, hooks=[hooks])
            s1, p1 = await serve(cfg)
            s2, p2 = await serve(cfg, h2c=True)
            loop = asyncio.get_running_loop()
            for path in ("/", "/cluster"):
                t0 = loop.time()
                assert await get(p1, path=path) == (503, (
                    b"upstream connect error or disconnect/reset before headers. "
                    b"reset reason: connection timeout"))
                assert 0.15 <= loop.time() - t0 < 2
            assert (await h2_get(p2))[0] == 503
            assert [(e[0], e[2]) for e in hooks.ended] == [(503, "UF")] * 3
            s1.close()
            s2.close()
        finally:
            for s in fillers:
                s.close()
            lsock.close()
    run(main)


class _Shown(asyncio.BaseTransport):
    """A transport stand-in whose peer showed no certificate; it records close()."""
    closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        self.closed = True


def test_check_peer_raises_and_leaves_the_closing_to_its_caller() -> None:
    tr = _Shown()
    check_peer(tr, UpstreamTlsContext())          # nothing expected: any peer
    want = UpstreamTlsContext(match_san=("spiffe://cluster.local/ns/a/sa/b",))
    try:
        check_peer(tr, want)
    except UpstreamTlsError as e:
        assert str(e) == ("peer SAN mismatch: expected spiffe://cluster.local/ns/a/sa/b, "
                          "got no SAN")
    else:
        raise AssertionError("a peer without the SAN was accepted")
    assert not tr.closed     # listener.upstream() and the pool close it, once


def test_the_pools_ssl_contexts_are_kept_once_and_bounded() -> None:
    assert UpstreamPool().max_ssl_contexts == MAX_SSL_CONTEXTS
    pool = UpstreamPool(max_ssl_contexts=2)
    # each rotation of a client certificate is a new UpstreamTlsContext; an SNI stands for it
    gens = [UpstreamTlsContext(sni=f"gen-{i}.example") for i in range(5)]
    first = pool.context_for(gens[0])
    assert pool.context_for(gens[0]) is first                # made once, then kept
    for tls in gens[1:]:
        pool.context_for(tls)
        assert len(pool.ssl_contexts) <= 2
    assert list(pool.ssl_contexts) == gens[3:]               # the oldest went first
    assert pool.context_for(gens[0]) is not first            # evicted: made again


def test_the_pools_keys_are_bounded_and_keep_what_is_in_use() -> None:
    """Each pod address an endpoint ever had is a pool key: past max_keys, keys with no idle
    and no open connection are forgotten; one with a connection open or pooled stays."""
    from skiff.dataplane.proxy.http1 import MAX_POOL_KEYS, UpstreamConnection
    assert UpstreamPool().max_keys == MAX_POOL_KEYS
    pool = UpstreamPool(max_keys=4)
    busy = UpstreamConnection(pool, ("10.0.0.1", 8080))
    pool.opened(busy)                          # open, serving a request: not in an idle list
    _, _, busy_list = pool.slot(("10.0.0.1", 8080))
    pooled = UpstreamConnection(pool, ("10.0.0.2", 8080))
    pool.opened(pooled)
    pool.put(pooled)
    for i in range(3, 200):                    # pods come and go
        pool.slot((f"10.0.0.{i % 250}", 8080))
        assert len(pool.idle) <= 5
    assert pool.idle[("10.0.0.1", 8080)] is busy_list     # its list survives: busy.idle stays valid
    assert pool.idle[("10.0.0.2", 8080)] == [pooled]         # still pooled
