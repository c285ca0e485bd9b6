"""The ingress gateway (Istio's istio-ingressgateway / knative-local-gateway, or Kourier).

snapshot.py: the pure compiler (Gateways, Secrets, KIngresses, endpoints -> Snapshot, whose
dataplane() is dataplane/model.py's generic snapshot). controller.py: watches, compiles,
publishes over the snapshot channel and writes status once the data plane acks. proxy.py: the
proxy serving a snapshot on dataplane/proxy/, inside the data-plane process (dataplane/main.py), with
the router (router/router.py) in front. mesh/setup.py starts the control side and the process.
"""
