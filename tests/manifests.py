"""Manifests shared by integration tests and benchmarks (both import from tests/).

SHORT_WINDOWS: a KnativeServing whose config-autoscaler has the shortest stable window and
scale-to-zero grace period upstream accepts (6 s), so a revision reaches zero pods in
seconds rather than a minute and a half.
"""

SHORT_WINDOWS = """
apiVersion: operator.knative.dev/v1beta1
kind: KnativeServing
metadata: {name: knative-serving, namespace: knative-serving}
spec:
  config:
    autoscaler:
      stable-window: "6s"
      scale-to-zero-grace-period: "6s"
"""
