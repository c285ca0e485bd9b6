"""dataplane/codec.py: snapshots and endpoint updates survive the wire; a malformed,
oversized or out-of-order message is refused and the last good snapshot keeps serving.
Pure: frames are built and parsed in memory."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from skiff.core.pki import issue, make_ca
from skiff.dataplane import codec
from skiff.dataplane.model import GatewaySettings, Snapshot
from skiff.dataplane.proxy.http1 import Forward, RequestHead
from skiff.mesh.gateway.proxy import GatewayProxy
from skiff.mesh.gateway.snapshot import Inputs, compile_snapshot

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA = make_ca("example.com", NOW)
CERT = issue(*CA, "x", ["*.apps.example.com"], [], NOW)
HOST = "hello-default.apps.example.com"
ISTIO = {"spec": {"ingress": {"istio": {"enabled": True}}}}
SETTINGS = GatewaySettings(internal_https_port=40443, domain="apps.example.com")


def snapshot(endpoints: dict[str, list[int]] | None = None, istio: bool = True) -> Snapshot:
    import base64
    secret = {"metadata": {"name": "certs", "namespace": "istio-system"},
              "data": {"tls.crt": base64.b64encode(CERT[0]).decode(),
                       "tls.key": base64.b64encode(CERT[1]).decode()}}
    gw = {"metadata": {"name": "knative-ingress-gateway", "namespace": "knative-serving"},
          "spec": {"servers": [{"port": {"number": 443, "protocol": "HTTPS"},
                                "hosts": ["*.apps.example.com"],
                                "tls": {"mode": "SIMPLE", "credentialName": "certs"}}]}}
    paths = [{"headers": {"Knative-Serving-Tag": {"exact": "v2"}},
              "splits": [{"serviceName": "hello-00002", "percent": 100}],
              "appendHeaders": {"Knative-Serving-Tag": "v2"}},
             {"splits": [{"serviceName": "hello-00001", "percent": 50,
                          "appendHeaders": {"Knative-Serving-Revision": "hello-00001"}},
                         {"serviceName": "hello-00002", "percent": 50}]}]
    ing = {"metadata": {"name": "hello", "namespace": "default",
                        "annotations": {"serving.knative.openshift.io/enablePassthrough": "true"}},
           "spec": {"httpOption": "Redirected", "rules": [
               {"hosts": [HOST], "visibility": "ExternalIP", "http": {"paths": paths}},
               {"hosts": ["hello.default.svc.cluster.local"], "visibility": "ClusterLocal",
                "http": {"paths": paths}}]}}
    eps = endpoints if endpoints is not None else {"hello-00001": [31001, 31003],
                                                   "hello-00002": [31002]}
    return compile_snapshot(Inputs(
        gateways=[gw], secrets={"certs": secret}, ingresses=[ing],
        knative_servings=[ISTIO] if istio else [], settings=SETTINGS, default_cert=CERT,
        endpoints={("default", rev): tuple(("127.0.0.1", p) for p in ports)
                   for rev, ports in eps.items()})).dataplane()


def wire(msg: dict[str, Any]) -> dict[str, Any]:
    """Through a frame and back, as the channel does."""
    data = codec.frame(msg)
    n = codec.frame_length(data[:codec.HEADER.size])
    assert n == len(data) - codec.HEADER.size
    return codec.parse(data[codec.HEADER.size:])


@pytest.mark.parametrize("istio", [True, False])
def test_snapshot_round_trip_is_equal(istio: bool) -> None:
    snap = snapshot(istio=istio)
    update = codec.ReceiverState().accept(wire(codec.snapshot_message(1, snap)))
    assert update.version == 1 and update.snapshot == snap
    assert update.snapshot.clusters == {"default/hello-00001", "default/hello-00002"}


def test_a_vhost_shared_by_tables_stays_one_object() -> None:
    snap = codec.decode_snapshot(json.loads(json.dumps(codec.encode_snapshot(snapshot()))))
    assert snap.external.exact[HOST] is snap.listeners["https"].table.exact[HOST]


def test_endpoints_update_round_trip() -> None:
    changes = {"default/hello-00001": (("127.0.0.1", 31005),), "default/gone": ()}
    update = codec.ReceiverState(version=3).accept(wire(codec.endpoints_message(4, changes)))
    assert (update.version, update.snapshot, dict(update.endpoints)) == (4, None, changes)


def test_endpoints_message_is_small() -> None:
    msg = codec.frame(codec.endpoints_message(7, {"default/hello-00001": (("10.0.0.5", 8080),)}))
    assert len(msg) < 200


GOOD = codec.snapshot_message(5, snapshot())


def mangled(path: list[Any], value: Any) -> dict[str, Any]:
    m = json.loads(json.dumps(GOOD))
    o = m
    for k in path[:-1]:
        o = o[k]
    o[path[-1]] = value
    return dict(m)


@pytest.mark.parametrize("body,why", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "message object"),
    (b'{"type": "snapshot"}', "version"),
    (b'{"type": "reboot", "version": 9}', "unknown message type"),
    (json.dumps({**GOOD, "version": "6"}).encode(), "version"),
    (json.dumps({**GOOD, "version": True}).encode(), "version"),
])
def test_malformed_bodies_are_refused(body: bytes, why: str) -> None:
    with pytest.raises(codec.CodecError, match=why):
        codec.ReceiverState().accept(codec.parse(body))


@pytest.mark.parametrize("path,value", [
    (["protocol"], 99),
    (["snapshot"], []),
    (["snapshot", "vhosts", 0, "paths", 0, "splits", 0, "weight"], "50"),
    (["snapshot", "vhosts", 0, "redirectHTTP"], "yes"),
    (["snapshot", "external", "exact", HOST], 999),
    (["snapshot", "listeners", "https", "address"], ["127.0.0.1"]),
    (["snapshot", "listeners", "https", "servers", 0, "cert"], "%%% not base64"),
    (["snapshot", "endpoints", "default/hello-00001"], [["127.0.0.1", "31001"]]),
    (["snapshot", "passthroughHosts"], HOST),
])
def test_malformed_snapshots_are_refused(path: list[Any], value: Any) -> None:
    state = codec.ReceiverState()
    with pytest.raises(codec.CodecError):
        state.accept(mangled(path, value))
    assert state.version == 0


def test_oversized_frames_are_refused_by_their_header() -> None:
    with pytest.raises(codec.CodecError, match="exceeds"):
        codec.frame_length(codec.HEADER.pack(codec.MAX_FRAME + 1))
    assert codec.frame_length(codec.HEADER.pack(codec.MAX_FRAME)) == codec.MAX_FRAME


@pytest.mark.parametrize("served,incoming", [(5, 5), (5, 4), (5, 0)])
def test_out_of_order_versions_are_refused(served: int, incoming: int) -> None:
    state = codec.ReceiverState(version=served)
    for msg in (codec.snapshot_message(incoming, snapshot()),
                codec.endpoints_message(incoming, {"default/x": ()})):
        with pytest.raises(codec.CodecError, match="out of order"):
            state.accept(wire(msg))
    assert state.version == served


def head(host: str = HOST) -> RequestHead:
    return RequestHead(b"GET", b"/", host.encode(), [], {b"host": host.encode()}, b"10.0.0.1",
                       b"https", "1.1", True, False, -1)


def test_the_last_good_snapshot_keeps_serving() -> None:
    """A data plane's apply loop in miniature: good, then bad ones, then an old one."""
    gp = GatewayProxy(SETTINGS, CERT)
    state = codec.ReceiverState()

    def receive(msg: dict[str, Any]) -> bool:
        try:
            update = state.accept(msg)
        except codec.CodecError:
            return False
        if update.snapshot is not None:
            gp.swap(update.snapshot)
        else:
            gp.update_endpoints(update.endpoints)
        state.applied(update)
        return True

    assert receive(wire(codec.snapshot_message(2, snapshot({"hello-00001": [31001],
                                                             "hello-00002": [31002]}))))
    assert not receive(mangled(["snapshot", "vhosts"], None))
    assert not receive(wire(codec.snapshot_message(1, snapshot({}))))           # older
    assert not receive(wire(codec.endpoints_message(2, {"default/hello-00001": ()})))
    seen = {gp.configs["https"].dispatch(head()).endpoint[1]  # type: ignore[union-attr]
            for _ in range(4)}
    assert seen == {31001, 31002} and state.version == 2
    assert receive(wire(codec.endpoints_message(3, {"default/hello-00002": ()})))
    r = [gp.configs["https"].dispatch(head()) for _ in range(4)]
    assert [x.endpoint[1] for x in r if isinstance(x, Forward)] == [31001, 31001]
