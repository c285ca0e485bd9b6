"""Shared HTTP proxy primitives for the data plane (gateway, router; later sidecar, activator).

http1.py: httptools-based HTTP/1.1 server protocol, upstream connections and their keep-alive
pool, the Exchange that streams one request/response between them. h2.py: HTTP/2 downstream on
the `h2` library and ALPN switching. tls.py: ClientHello (SNI) peeking and ssl contexts from PEM.
listener.py: accept, peek, then terminate TLS, splice or serve plain. alloc.py: glibc tuning that
keeps uvloop's per-read TLS buffers off mmap(). cluster.py: upstream Clusters with their
UpstreamTlsContext (mTLS origination) and the pure SAN/SPIFFE decisions. limits.py: the pure
limit and timeout verdicts. No policy lives here: a dispatch function (mesh/gateway/proxy.py)
decides where each request goes (Forward, Reply, or Defer until later), RequestHooks watch each
request from start to end, and head.conn tells both about the downstream connection.
"""
