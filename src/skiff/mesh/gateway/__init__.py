"""The ingress gateway (Istio's istio-ingressgateway / knative-local-gateway, or Kourier).

snapshot.py: the pure compiler (Gateways, Secrets, KIngresses, endpoints -> Snapshot).
proxy.py: the data plane serving a Snapshot on core/proxy. controller.py: watches, compiles,
swaps and writes status. mesh/setup.py starts them, with the router (serving/router.py) in front.
"""
