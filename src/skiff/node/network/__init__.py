"""The pod network: pod namespaces and IPs (podnet.py, sandbox.py), the service proxy
(proxier.py over nft.py), NetworkPolicy (policy.py) and cluster DNS (dns*.py)."""
