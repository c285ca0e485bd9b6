"""Authentication and RBAC authorization for the API server (kube-apiserver's filters).

Pure cores: rbac.py (PolicyRules + request attributes -> allow/deny with the
upstream reason, the subject-indexed policy kept from watch events, ClusterRole
aggregation), requestinfo.py (method + path -> verb, resource, namespace),
tokens.py (ServiceAccount JWTs, `now` passed in), reviews.py (TokenRequest,
SelfSubjectAccessReview, SubjectAccessReview, SelfSubjectRulesReview),
bootstrap.py (the default cluster roles as data), kinds.py (the rbac,
authorization and authentication kinds). Shells: gate.py (what the server's
auth middleware calls: authenticate, impersonate, authorize) and
controllers.py (the watches that feed the policy, the `default`
ServiceAccount and aggregation controllers, writing the defaults at start).
"""
