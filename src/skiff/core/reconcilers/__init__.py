"""Reconcilers for the built-in kinds (Deployment, garbage collection, namespaces)."""
