"""dataplane/proxy/tls.py: SNI/ALPN from real ClientHellos (made by ssl with in-memory BIOs), partial
and multi-record hellos, non-TLS bytes; server contexts from PEM with ALPN. No sockets."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest

from skiff.core.pki import issue, make_ca
from skiff.dataplane.proxy.tls import ClientHello, NotTLS, parse_client_hello, server_context

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA_CERT, CA_KEY = make_ca("test-ca", NOW)
CERT, KEY = issue(CA_CERT, CA_KEY, "hello", ["*.apps.example.com"], [], NOW)


def client_hello(sni: str | None, alpn: list[str] | None = None) -> bytes:
    ctx = ssl.create_default_context()
    if sni is None:
        ctx.check_hostname = False
    if alpn:
        ctx.set_alpn_protocols(alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_sni_and_alpn_of_a_real_client_hello() -> None:
    data = client_hello("Hello-Default.Apps.Example.com", ["h2", "http/1.1"])
    assert parse_client_hello(data) == ClientHello("hello-default.apps.example.com",
                                                   ("h2", "http/1.1"))


def test_no_sni() -> None:
    assert parse_client_hello(client_hello(None)) == ClientHello(None, ())


def test_every_prefix_asks_for_more() -> None:
    data = client_hello("a.example.com")
    for n in range(len(data)):
        assert parse_client_hello(data[:n]) is None
    hello = parse_client_hello(data + b"trailing application bytes")
    assert hello is not None and hello.sni == "a.example.com"


def test_a_hello_split_across_two_records() -> None:
    data = client_hello("split.example.com")
    hs = data[5:5 + int.from_bytes(data[3:5], "big")]
    a, b = hs[:40], hs[40:]
    two = (b"\x16\x03\x01" + len(a).to_bytes(2, "big") + a +
           b"\x16\x03\x01" + len(b).to_bytes(2, "big") + b)
    assert parse_client_hello(two[:len(two) - 1]) is None
    hello = parse_client_hello(two)
    assert hello is not None and hello.sni == "split.example.com"


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",     # a handshake, but not a ClientHello
    b"\x16\x09\x01\x00\x05abcde",                     # unknown record version
    b"\x15\x03\x01\x00\x02\x02\x28",                  # an alert
])
def test_not_tls(data: bytes) -> None:
    with pytest.raises(NotTLS):
        parse_client_hello(data)


def test_empty_needs_more() -> None:
    assert parse_client_hello(b"") is None


def test_server_context_loads_pem_and_negotiates_alpn() -> None:
    server = server_context(CERT + CA_CERT, KEY)
    client = ssl.create_default_context(cadata=CA_CERT.decode())
    client.set_alpn_protocols(["h2", "http/1.1"])
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="x.apps.example.com")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    c.do_handshake()
    assert c.selected_alpn_protocol() == "h2"
    assert s.selected_alpn_protocol() == "h2"


def test_server_context_rejects_a_key_of_another_certificate() -> None:
    _, other_key = issue(CA_CERT, CA_KEY, "other", ["other"], [], NOW)
    with pytest.raises(ssl.SSLError):
        server_context(CERT, other_key)
