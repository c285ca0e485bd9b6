"""Serving's reconcilers, one per kind: service, configuration, revision, route (base: shared)."""
