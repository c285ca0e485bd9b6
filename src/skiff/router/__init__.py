"""The OpenShift router: the one external entry point (edge TLS or passthrough), router.py.

It runs in the data-plane process beside the ingress gateway (dataplane/main.py);
mesh/setup.py wires it. It belongs to no domain: OpenShift puts it in front of
whatever the cluster serves.
"""
