"""dataplane/codec.py: snapshots and endpoint updates survive the wire; a malformed,
oversized or out-of-order message is refused and the last good snapshot keeps serving.
Pure: frames are built and parsed in memory."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from skiff.core.pki import issue, make_ca
from skiff.dataplane import codec, model
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
    https = snap.table_of(snap.listeners["https"])
    assert https is not None and snap.external.exact[HOST] is https.exact[HOST]


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
    (["snapshot", "routes", "external", "exact", HOST], 999),
    (["snapshot", "routes", "https.443"], []),
    (["snapshot", "listeners", "https", "routeConfig"], 7),
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
                codec.endpoints_message(incoming, {"default/x": ()}),
                codec.routes_message(incoming, {}, frozenset()),
                codec.listeners_message(incoming, snapshot())):
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


# --- listeners apart from routes (LDS / RDS) ---------------------------------------------


def compiled(weights: tuple[int, int] = (50, 50), extra_hosts: int = 0, cert: Any = CERT,
             passthrough: bool = True) -> Snapshot:
    """The istio-mode snapshot of `snapshot()`, with another split and more services."""
    import base64
    secret = {"metadata": {"name": "certs", "namespace": "istio-system"},
              "data": {"tls.crt": base64.b64encode(cert[0]).decode(),
                       "tls.key": base64.b64encode(cert[1]).decode()}}
    gw = {"metadata": {"name": "knative-ingress-gateway", "namespace": "knative-serving"},
          "spec": {"servers": [{"port": {"number": 443, "protocol": "HTTPS"},
                                "hosts": ["*.apps.example.com"],
                                "tls": {"mode": "SIMPLE", "credentialName": "certs"}}]}}

    def ing(name: str, host: str, w: tuple[int, int]) -> dict[str, Any]:
        ann = {"serving.knative.openshift.io/enablePassthrough": "true"} if passthrough else {}
        return {"metadata": {"name": name, "namespace": "default", "annotations": ann},
                "spec": {"rules": [{"hosts": [host], "visibility": "ExternalIP", "http": {
                    "paths": [{"splits": [{"serviceName": f"{name}-00001", "percent": w[0]},
                                          {"serviceName": f"{name}-00002", "percent": w[1]}]}]}}]}}
    ings = [ing("hello", HOST, weights)] + [ing(f"s{i}", f"s{i}-default.apps.example.com", (100, 0))
                                             for i in range(extra_hosts)]
    return compile_snapshot(Inputs(
        gateways=[gw], secrets={"certs": secret}, ingresses=ings, knative_servings=[ISTIO],
        settings=SETTINGS, endpoints={("default", "hello-00001"): (("127.0.0.1", 31001),),
                                      ("default", "hello-00002"): (("127.0.0.1", 31002),)},
    )).dataplane()


def kinds(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in msgs]


def test_a_split_change_sends_only_the_changed_hosts_routes() -> None:
    old, new = compiled((50, 50), extra_hosts=20), compiled((90, 10), extra_hosts=20)
    msgs = codec.delta_messages(8, old, new)
    assert kinds(msgs) == ["routes"] and msgs[0]["version"] == 8
    routes = msgs[0]["routes"]
    # the external configuration and the 443 listener's, each only the changed host, and the
    # changed vhost sent once for both
    assert set(routes) == {"external", "https.443"}
    assert all(set(r["exact"]) == {HOST} and r["patch"] for r in routes.values())
    assert len(msgs[0]["vhosts"]) == 1
    update = codec.ReceiverState(version=7).accept(wire(msgs[0]))
    got = update.on(old)
    assert got == new
    https = got.table_of(got.listeners["https"])
    assert https is not None and https.exact[HOST] is got.external.exact[HOST]
    assert got.listeners is old.listeners and got.endpoints is old.endpoints


def test_delta_messages_send_each_changed_part_alone() -> None:
    base = compiled()
    assert codec.delta_messages(3, base, compiled()) == []          # nothing changed
    assert kinds(codec.delta_messages(3, None, base)) == ["snapshot"]
    # a rotated certificate: listeners only
    other = issue(*CA, "y", ["*.apps.example.com"], [], NOW)
    rotated = compiled(cert=other)
    msgs = codec.delta_messages(3, base, rotated)
    assert kinds(msgs) == ["listeners"]
    assert codec.ReceiverState(version=2).accept(wire(msgs[0])).on(base) == rotated
    # passthrough hosts travel with routes
    plain = compiled(passthrough=False)
    msgs = codec.delta_messages(3, base, plain)
    assert kinds(msgs) == ["routes"] and msgs[0]["routes"] == {}
    assert codec.ReceiverState(version=2).accept(wire(msgs[0])).on(base) == plain
    # endpoints and routes: endpoints first, so a route finds its cluster's endpoints
    moved = compiled((90, 10)).with_endpoints({"default/hello-00001": (("127.0.0.1", 31005),)})
    msgs = codec.delta_messages(3, base, moved)
    assert kinds(msgs) == ["endpoints", "routes"] and [m["version"] for m in msgs] == [3, 4]
    # listeners and routes together: one whole snapshot, never a listener without its routes
    assert kinds(codec.delta_messages(3, base, compiled((90, 10), cert=other))) == ["snapshot"]


def test_route_configurations_added_and_removed() -> None:
    base = compiled(extra_hosts=2)
    smaller = compiled(extra_hosts=1)
    msgs = codec.delta_messages(2, base, smaller)
    assert kinds(msgs) == ["routes"]
    ext = msgs[0]["routes"]["external"]
    assert ext["exact"] == {"s1-default.apps.example.com": None}
    assert codec.ReceiverState(version=1).accept(wire(msgs[0])).on(base) == smaller
    # a whole new configuration, and one gone
    renamed = Snapshot(base.server_header, base.listeners,
                       {**{("other" if k == "local" else k): v for k, v in base.routes.items()}},
                       base.passthrough_hosts, base.endpoints)
    msgs = codec.delta_messages(2, base, renamed)
    assert msgs[0]["routes"]["local"] is None and msgs[0]["routes"]["other"]["patch"] is False
    assert codec.ReceiverState(version=1).accept(wire(msgs[0])).on(base) == renamed


def test_a_patch_without_its_configuration_is_refused() -> None:
    """The receiver missed what the patch builds on: CodecError, and the channel resends the
    whole snapshot (SnapshotServer on a nack)."""
    msgs = codec.delta_messages(2, compiled(), compiled((90, 10)))
    update = codec.ReceiverState(version=1).accept(wire(msgs[0]))
    bare = Snapshot("envoy", {}, {}, frozenset())
    with pytest.raises(codec.CodecError, match="a patch, but there is none"):
        update.on(bare)


ROUTES = codec.delta_messages(2, compiled(), compiled((90, 10)))[0]


@pytest.mark.parametrize("path,value", [
    (["routes"], []),
    (["routes", "external"], 3),
    (["routes", "external", "patch"], "yes"),
    (["routes", "external", "exact", HOST], 5),
    (["routes", "external", "exact", HOST], "0"),
    (["routes", "external", "wildcard"], [["*", 0, 1]]),
    (["vhosts", 0, "paths", 0, "splits"], None),
    (["passthroughHosts"], None),
])
def test_malformed_routes_are_refused(path: list[Any], value: Any) -> None:
    m = json.loads(json.dumps(ROUTES))
    o = m
    for k in path[:-1]:
        o = o[k]
    o[path[-1]] = value
    state = codec.ReceiverState(version=1)
    with pytest.raises(codec.CodecError):
        state.accept(m)
    assert state.version == 1


def test_a_whole_configuration_cannot_remove_hosts() -> None:
    m = json.loads(json.dumps(ROUTES))
    m["routes"]["external"]["patch"] = False
    m["routes"]["external"]["exact"][HOST] = None
    with pytest.raises(codec.CodecError, match="removed"):
        codec.ReceiverState(version=1).accept(m)


@pytest.mark.parametrize("path,value", [
    (["listeners"], []),
    (["listeners", "https", "routeConfig"], None),
    (["listeners", "https", "servers", 0, "port"], "443"),
    (["serverHeader"], 1),
])
def test_malformed_listeners_are_refused(path: list[Any], value: Any) -> None:
    m = json.loads(json.dumps(codec.listeners_message(2, compiled())))
    o = m
    for k in path[:-1]:
        o = o[k]
    o[path[-1]] = value
    with pytest.raises(codec.CodecError):
        codec.ReceiverState(version=1).accept(m)


def test_a_listener_naming_a_missing_route_configuration_answers_404() -> None:
    """Envoy's NR (route not found): the listener serves, its hosts are not found; the
    router's external routes and the other listeners go on."""
    base = compiled()
    gp = GatewayProxy(SETTINGS, CERT)
    gp.swap(base)
    assert isinstance(gp.configs["https"].dispatch(head()), Forward)
    dangling = {b: li if b != "https" else type(li)(li.bind, li.address, li.servers, "nowhere")
                for b, li in base.listeners.items()}
    msg = wire(codec.listeners_message(2, Snapshot(base.server_header, dangling, {}, frozenset())))
    update = codec.ReceiverState(version=1).accept(msg)
    gp.swap(update.on(gp.snapshot))
    assert gp.snapshot.missing_routes == {"nowhere"}
    r = gp.configs["https"].dispatch(head())
    assert not isinstance(r, Forward) and r.status == 404
    assert isinstance(gp.configs["external"].dispatch(head()), Forward)
    # the routes arrive under that name: served again
    routes = {"nowhere": base.routes["https.443"]}
    gp.swap(codec.ReceiverState(version=2).accept(
        wire(codec.routes_message(3, model.route_changes({}, routes), frozenset()))).on(gp.snapshot))
    assert isinstance(gp.configs["https"].dispatch(head()), Forward)
