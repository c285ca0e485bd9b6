"""The inbound sidecar hands authz a lazy view of the request's headers (RequestHeaders): its
dict is made only when a policy reads a header, and decisions are the same as with a dict."""

from __future__ import annotations

from skiff.dataplane.proxy.http1 import RequestHead
from skiff.mesh.authz import Request, Workload, compile_policies, decide
from skiff.mesh.sidecar.host import RequestHeaders, _headers

W = Workload.of("team", {"app": "web"})


def head() -> RequestHead:
    return RequestHead(b"GET", b"/x", b"web:8080", [b"x-team: blue\r\n", b"user-agent: t\r\n"],
                       {b"host": b"web:8080", b"content-length": b"0"}, b"10.0.0.3", b"https",
                       "1.1", True, False, 0)


def policy(rule: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "rules": [rule]}}


def request(headers: object) -> Request:
    return Request(destination=W, port=8080, host="web:8080", method="GET", path="/x",
                   headers=headers, source_principal="cluster.local/ns/team/sa/load")  # type: ignore[arg-type]


def test_the_view_is_the_dict_the_sidecar_used_to_build() -> None:
    h = RequestHeaders(head())
    assert h._d is None
    assert dict(h) == _headers(head()) == {"x-team": "blue", "user-agent": "t",
                                           "host": "web:8080", "content-length": "0"}
    assert h.get("x-team") == "blue" and h["host"] == "web:8080" and "nope" not in h
    assert len(h) == 4 and h.get("nope", "-") == "-"


def test_decisions_match_a_dict_and_headers_are_read_only_when_asked() -> None:
    by_header = compile_policies([policy({"when": [{"key": "request.headers[x-team]",
                                                    "values": ["blue"]}]})])
    by_method = compile_policies([policy({"to": [{"operation": {"methods": ["GET"]}}]})])
    for ps in (by_header, by_method):
        lazy = RequestHeaders(head())
        assert decide(ps, request(lazy)) == decide(ps, request(_headers(head())))
        assert decide(ps, request(lazy)).allowed
        assert (lazy._d is not None) == (ps is by_header)
    other = RequestHead(b"GET", b"/x", b"web", [b"x-team: red\r\n"], {}, b"", b"https", "1.1",
                        True, False, -1)
    assert not decide(by_header, request(RequestHeaders(other))).allowed
