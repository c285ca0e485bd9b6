"""Istio AuthorizationPolicy for skiff's mesh: compile once, decide purely, validate at apply.

request.py (the attributes a decision reads), normalize.py (Istio's path
normalization), model.py (policy -> matcher tree, per-workload selection),
evaluate.py (decide: CUSTOM -> DENY -> ALLOW, naming the deciding policy and
rule), validate.py (Istio's ValidateAuthorizationPolicy messages). The data
plane's sidecars and `skiff authz check` call these; nothing here does I/O.
"""

from skiff.mesh.authz.evaluate import (
    DENIED_BODY,
    DENIED_CONTENT_TYPE,
    DENIED_STATUS,
    Decision,
    DryRunResult,
    decide,
)
from skiff.mesh.authz.model import PolicySet, compile_policies, compile_policy
from skiff.mesh.authz.normalize import Normalized, PathRejected, normalize_path
from skiff.mesh.authz.request import Request, Workload, principal_for

__all__ = [
    "DENIED_BODY", "DENIED_CONTENT_TYPE", "DENIED_STATUS", "Decision", "DryRunResult",
    "Normalized", "PathRejected", "PolicySet", "Request", "Workload", "compile_policies",
    "compile_policy", "decide", "normalize_path", "principal_for",
]
