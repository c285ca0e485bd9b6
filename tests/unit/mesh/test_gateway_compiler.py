"""mesh/gateway/compiler.py: the incremental compile equals the full one over a sequence of
changes, and compiles again only what changed.

Each step replaces objects the way the informers do (a new dict per event, with a new
resourceVersion when it carries one) and compares SnapshotCompiler.compile() with
snapshot.compile_snapshot() on the same Inputs: the whole Snapshot (listeners, route
configurations, passthrough hosts, Gateway and KIngress status, endpoints) must be equal.
Pure: no sockets, no clock.
"""

from __future__ import annotations

import asyncio
import copy
import random
from typing import Any

from test_gateway_snapshot import (  # the same objects as its golden tables
    DEFAULT_CERT,
    ISTIO,
    OTHER_CERT,
    OTHER_KEY,
    SEED_GATEWAYS,
    SETTINGS,
    WILD_CERT,
    WILD_KEY,
    gateway,
    https_server,
    kingress,
    split,
    tls_secret,
)

from skiff.mesh.gateway.compiler import SnapshotCompiler
from skiff.mesh.gateway.controller import GatewayController
from skiff.mesh.gateway.snapshot import Inputs, compile_snapshot


class World:
    """The watch caches: objects by (namespace, name), replaced (never changed in place)."""

    def __init__(self) -> None:
        self.gateways: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.ingresses: dict[tuple[str, str], dict[str, Any]] = {}
        self.servings: list[dict[str, Any]] = []
        self.endpoints: dict[tuple[str, str], tuple[tuple[str, int], ...]] = {}
        self.rv = 0

    def put(self, o: dict[str, Any], versioned: bool = True) -> dict[str, Any]:
        o = copy.deepcopy(o)
        m = o["metadata"]
        if versioned:
            self.rv += 1
            m["uid"] = m.get("uid") or f"uid-{m['namespace']}-{m['name']}"
            m["resourceVersion"] = str(self.rv)
        key = (m["namespace"], m["name"])
        if o["kind"] == "Gateway":
            self.gateways[key] = o
        elif o["kind"] == "Secret":
            self.secrets[m["name"]] = o
        else:
            self.ingresses[key] = o
        return o

    def relist(self) -> None:
        """A relist: new dicts, the same versions."""
        self.gateways = {k: copy.deepcopy(o) for k, o in self.gateways.items()}
        self.secrets = {k: copy.deepcopy(o) for k, o in self.secrets.items()}
        self.ingresses = {k: copy.deepcopy(o) for k, o in self.ingresses.items()}

    def inputs(self) -> Inputs:
        return Inputs(gateways=list(self.gateways.values()), secrets=dict(self.secrets),
                      ingresses=list(self.ingresses.values()), endpoints=dict(self.endpoints),
                      knative_servings=list(self.servings), settings=SETTINGS,
                      default_cert=DEFAULT_CERT)


def check(c: SnapshotCompiler, w: World) -> tuple[int, int]:
    """Incremental == full; (KIngresses compiled, server compiles) by this step."""
    i0, s0 = c.ingress_compiles, c.server_compiles
    inp = w.inputs()
    assert c.compile(inp) == compile_snapshot(inp)
    return c.ingress_compiles - i0, c.server_compiles - s0


def test_incremental_equals_full_over_a_sequence_of_changes() -> None:
    w, c = World(), SnapshotCompiler()
    for g in SEED_GATEWAYS:
        w.put(g)
    w.put(tls_secret("wildcard-certs"))
    for i in range(20):
        w.put(kingress(f"s{i}", created=f"2026-01-01T00:00:{i:02d}Z"))
        w.endpoints[("default", f"s{i}-00001")] = (("127.0.0.1", 31000 + i),)
    assert check(c, w) == (20, 0)                        # Kourier mode: no servers compiled
    w.servings = [ISTIO]                                 # the mode flips: routes are kept
    assert check(c, w) == (0, 1)
    assert check(c, w) == (0, 0)                         # nothing changed, nothing compiled
    # a traffic split: that KIngress alone
    w.put(kingress("s3", splits=[split("s3-00001", 90), split("s3-00002", 10)],
                   created="2026-01-01T00:00:03Z"))
    assert check(c, w) == (1, 0)
    # a younger KIngress claims s1's host: it reports DomainConflict, s1 keeps the host
    w.put(kingress("late", hosts=["s1-default.apps.openshift.example.com"],
                   created="2026-01-02T00:00:00Z"))
    assert check(c, w) == (1, 0)
    snap = c.compile(w.inputs())
    assert snap.ingress_status[("default", "late")].conditions[0].reason == "DomainConflict"
    # s1 goes (deleting, then deleted): the younger one gets the host, no one else recompiles
    gone = copy.deepcopy(w.ingresses[("default", "s1")])
    gone["metadata"]["deletionTimestamp"] = "2026-01-03T00:00:00Z"
    w.put(gone)
    assert check(c, w) == (1, 0)
    del w.ingresses[("default", "s1")]
    assert check(c, w) == (0, 0)
    snap = c.compile(w.inputs())
    assert snap.ingress_status[("default", "late")].conditions[0].status == "True"
    # passthrough, another ingress class, and a status-only write (a new version, the same
    # routes: not compiled)
    w.put(kingress("s4", annotations={"serving.knative.openshift.io/enablePassthrough": "true"},
                   created="2026-01-01T00:00:04Z"))
    contour = kingress("s5", created="2026-01-01T00:00:05Z")
    contour["metadata"]["annotations"]["networking.knative.dev/ingress.class"] = "contour"
    w.put(contour)
    with_status = copy.deepcopy(w.ingresses[("default", "s6")])
    with_status["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    w.put(with_status)
    assert check(c, w) == (2, 0)
    # a rotated certificate, a Gateway of another team, one gone: servers again, routes kept
    w.put(tls_secret("wildcard-certs", cert=OTHER_CERT, key=OTHER_KEY))
    assert check(c, w) == (0, 1)
    w.put(gateway("team", [https_server(hosts=["*.team.example.com"])], ns="team",
                  created="2026-01-05T00:00:00Z"))
    assert check(c, w) == (0, 1)
    del w.gateways[("knative-serving", "knative-local-gateway")]
    assert check(c, w) == (0, 1)
    # endpoints alone: nothing compiled
    w.endpoints[("default", "s7-00001")] = (("127.0.0.1", 32000),)
    del w.endpoints[("default", "s8-00001")]
    assert check(c, w) == (0, 0)
    # a relist brings new objects of the same versions: nothing compiled
    w.relist()
    assert check(c, w) == (0, 0)
    w.servings = []                                      # back to Kourier
    assert check(c, w) == (0, 0)


def test_objects_without_a_version_are_known_by_identity_or_content() -> None:
    """A cache filled directly (benchmarks, tests) has no resourceVersion: the same dict is
    the same object; a new dict is compiled again unless its spec and metadata are equal."""
    w, c = World(), SnapshotCompiler()
    for i in range(3):
        w.put(kingress(f"s{i}"), versioned=False)
    assert check(c, w) == (3, 0)
    assert check(c, w) == (0, 0)
    w.put(kingress("s1", hosts=["moved.example.com"]), versioned=False)
    assert check(c, w) == (1, 0)
    w.relist()                                           # new dicts, no versions, equal
    assert check(c, w) == (0, 0)


def test_unchanged_virtual_hosts_are_the_same_objects() -> None:
    """So the channel's diff (model.route_changes) passes them by identity."""
    w, c = World(), SnapshotCompiler()
    for i in range(3):
        w.put(kingress(f"s{i}"))
    before = c.compile(w.inputs())
    w.put(kingress("s1", splits=[split("s1-00002")]))
    after = c.compile(w.inputs())
    host = "s0-default.apps.openshift.example.com"
    assert after.external.exact[host] is before.external.exact[host]
    moved = "s1-default.apps.openshift.example.com"
    assert after.external.exact[moved] != before.external.exact[moved]


def test_a_split_change_patches_the_tables_without_joining_every_kingress() -> None:
    """The usual change (traffic split, generation) keeps every host's owner: the last
    tables are patched, the Gateway listeners' ones too, wildcard hosts included."""
    w, c = World(), SnapshotCompiler()
    w.servings = [ISTIO]
    for g in SEED_GATEWAYS:
        w.put(g)
    w.put(tls_secret("wildcard-certs"))
    for i in range(5):
        w.put(kingress(f"s{i}", created=f"2026-01-01T00:00:0{i}Z"))
    w.put(kingress("wild", hosts=["*.wild.example.com"], local_hosts=["wild.default"],
                   created="2026-01-01T00:01:00Z"))
    check(c, w)
    full = c.full_assemblies
    for n, name in enumerate(("s2", "wild", "s2", "s4")):
        o = kingress(name, splits=[split(f"{name}-00001", 100 - 10 * n), split(f"{name}-0002", 10 * n)],
                     created=w.ingresses[("default", name)]["metadata"]["creationTimestamp"],
                     hosts=w.ingresses[("default", name)]["spec"]["rules"][1]["hosts"],
                     local_hosts=w.ingresses[("default", name)]["spec"]["rules"][0]["hosts"])
        o["metadata"]["generation"] = 3 + n
        w.put(o)
        assert check(c, w) == (1, 0)
    assert c.full_assemblies == full                     # all patched
    w.put(kingress("s9", created="2026-01-01T00:02:00Z"))   # a new host: joined again
    check(c, w)
    assert c.full_assemblies == full + 1


def test_random_changes_keep_incremental_equal_to_full() -> None:
    """A seeded walk over adds, removals, splits, host moves, conflicts, class and mode flips,
    Gateway and Secret changes and relists."""
    rng = random.Random(7)
    w, c = World(), SnapshotCompiler()
    for g in SEED_GATEWAYS:
        w.put(g)
    w.put(tls_secret("wildcard-certs"))
    names = [f"k{i}" for i in range(12)]
    hosts = ["a.example.com", "b.example.com", "*.example.com", "*.apps.example.com",
             "c.apps.example.com", "*"]
    for _ in range(300):
        op = rng.randrange(10)
        name = rng.choice(names)
        key = ("default", name)
        if op <= 3 or key not in w.ingresses:            # a new spec (often just the split)
            prev = w.ingresses.get(key)
            created = (prev["metadata"]["creationTimestamp"] if prev is not None
                       else f"2026-01-01T00:00:{rng.randrange(60):02d}Z")
            keep = prev is not None and rng.random() < 0.7
            p = rng.randrange(101)
            o = kingress(name, created=created,
                         splits=[split(f"{name}-1", p), split(f"{name}-2", 100 - p)],
                         hosts=(prev["spec"]["rules"][1]["hosts"] if keep and prev is not None
                                else rng.sample(hosts, rng.randrange(1, 3))),
                         local_hosts=(prev["spec"]["rules"][0]["hosts"] if keep and prev is not None
                                      else [f"{name}.default", rng.choice(["x.default", "y.default"])]),
                         annotations=({"serving.knative.openshift.io/enablePassthrough": "true"}
                                      if rng.random() < 0.2 else None))
            o["metadata"]["generation"] = rng.randrange(1, 5)
            w.put(o)
        elif op == 4:
            del w.ingresses[key]
        elif op == 5:
            o = copy.deepcopy(w.ingresses[key])
            if rng.random() < 0.5:
                o["metadata"]["annotations"]["networking.knative.dev/ingress.class"] = "contour"
            else:
                o["metadata"]["deletionTimestamp"] = "2026-02-01T00:00:00Z"
            w.put(o)
        elif op == 6:
            w.servings = [] if w.servings else [ISTIO]
        elif op == 7:
            w.put(tls_secret("wildcard-certs", *((OTHER_CERT, OTHER_KEY) if rng.random() < 0.5
                                                 else (WILD_CERT, WILD_KEY))))
        elif op == 8:
            if ("team", "team") in w.gateways:
                del w.gateways[("team", "team")]
            else:
                w.put(gateway("team", [https_server(hosts=["a.example.com"], port=80)], ns="team"))
        else:
            w.relist()
        check(c, w)


class FakePublisher:
    def __init__(self) -> None:
        self.on_ack: Any = None
        self.snapshots: list[Any] = []

    def publish(self, snap: Any) -> int:
        self.snapshots.append(snap)
        return len(self.snapshots)

    def publish_endpoints(self, changes: Any) -> int:
        return len(self.snapshots)

    def publish_part(self, name: str, data: Any) -> int:
        return len(self.snapshots)

    async def wait_acked(self, version: int, timeout: float) -> bool:
        return True


class StatusClient:
    """update_status only: counts the writes and returns the object with a new version."""

    def __init__(self) -> None:
        self.writes = 0

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        out = copy.deepcopy(obj)
        out["metadata"]["resourceVersion"] = f"s{self.writes}"
        return out


def test_the_controller_compiles_incrementally_and_writes_only_changed_status() -> None:
    """GatewayController.compile_and_apply: the same snapshot as a full compile of its caches
    (endpoints from its pod index), one KIngress compiled per change, one status written."""
    client, pub = StatusClient(), FakePublisher()
    ctl = GatewayController(client, pub, SETTINGS, DEFAULT_CERT)  # type: ignore[arg-type]
    w = World()
    for i in range(4):
        o = w.put(kingress(f"s{i}", created=f"2026-01-01T00:00:0{i}Z"))
        ctl.ingresses.items[("default", f"s{i}")] = o
        ctl.pods.items[("default", f"p{i}")] = {
            "metadata": {"name": f"p{i}", "namespace": "default",
                         "labels": {"serving.knative.dev/revision": f"s{i}-00001"},
                         "annotations": {"skiff.dev/port": str(31000 + i)}},
            "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}}
    asyncio.run(ctl.compile_and_apply())
    assert ctl.snapshot == compile_snapshot(ctl.inputs())
    assert client.writes == 4 and ctl.compiler.ingress_compiles == 4
    o = w.put(kingress("s2", splits=[split("s2-00001", 50), split("s2-00002", 50)],
                       created="2026-01-01T00:00:02Z"))
    o["metadata"]["generation"] = 3
    ctl.ingresses.apply("MODIFIED", o)
    ctl.pods.apply("DELETED", ctl.pods.items[("default", "p1")])
    asyncio.run(ctl.compile_and_apply())
    assert ctl.snapshot == compile_snapshot(ctl.inputs())
    # s2 compiled again (the status writes replaced the objects in the cache: the same
    # versions, so not compiled); s2's observedGeneration written, nothing else
    assert ctl.compiler.ingress_compiles == 5
    assert client.writes == 5
