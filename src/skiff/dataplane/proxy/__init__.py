"""Shared HTTP proxy primitives for the data plane (gateway, router; later sidecar, activator).

http1.py: httptools-based HTTP/1.1 server protocol, upstream connections and their keep-alive
pool, the Exchange that streams one request/response between them. h2.py: HTTP/2 downstream on
the `h2` library and ALPN switching. tls.py: ClientHello (SNI) peeking and ssl contexts from PEM.
listener.py: accept, peek, then terminate TLS, splice or serve plain. alloc.py: glibc tuning that
keeps uvloop's per-read TLS buffers off mmap(). No policy lives here: a
dispatch function (mesh/gateway/proxy.py) decides where each request goes.
"""
