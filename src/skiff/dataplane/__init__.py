"""The data plane, apart from the control plane (DESIGN.md: as Envoy runs apart from istiod).

model.py: the generic snapshot (listeners, route tables, clusters, endpoints). codec.py: the
versioned wire format (pure). channel.py: the Unix-socket shells on both ends (the control
plane's SnapshotServer, the data plane's client). main.py: the data-plane process
(`python -m skiff.dataplane`). supervisor.py: starts it from the platform and restarts it.
The proxy itself (GatewayProxy) and the router stay in mesh/gateway/proxy.py and
router/router.py; the proxy primitives in dataplane/proxy/.
"""
