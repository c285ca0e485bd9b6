"""Wires the mesh domain into the platform: admission hooks, reconcilers and components.

platform.py calls install(platform) once the store, registry and in-process
client exist; nothing here runs before that.
"""

from __future__ import annotations

from typing import Any


def install(platform: Any) -> None:
    """Register the mesh domain's admission hooks, reconcilers and components on `platform`."""
