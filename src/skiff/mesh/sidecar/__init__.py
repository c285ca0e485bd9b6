"""The mesh's sidecar: injection (inject.py, Istio's webhook as OpenShift Service Mesh 2.4 runs
it) and, next, the per-pod data plane. The capture rules the injected istio-init container
programs live on the node side (node/network/capture.py, run by node/images/proxyv2.py)."""
