"""The local image store: `skiff.local/<name>` images on disk. A thin shell.

A pipeline (skiff.pipelines, later) builds an app into `<home>/images/<name>/`
and writes `image.json` there: {"cmd": [...], "entrypoint": [...], "workdir":
"...", "env": {...}}. workdir is relative to the image directory unless
absolute. LocalImages.lookup reads it for images.resolve(); the node runtime
(pod.py) passes the bound method in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from skiff.node.images import LocalImage


class LocalImages:
    def __init__(self, home: Path) -> None:
        self.root = home / "images"

    def image_dir(self, name: str) -> Path | None:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts):
            return None
        return self.root.joinpath(*parts)

    def lookup(self, name: str) -> LocalImage | None:
        d = self.image_dir(name)
        if d is None:
            return None
        try:
            raw = (d / "image.json").read_bytes()
            spec: Any = json.loads(raw)
        except (OSError, ValueError):
            return None
        if not isinstance(spec, dict):
            return None
        workdir = str(spec.get("workdir") or "")
        workdir = str(d / workdir) if not workdir.startswith("/") else workdir
        env = spec.get("env") or {}
        return LocalImage(
            name=name,
            cmd=tuple(str(a) for a in spec.get("cmd") or ()),
            entrypoint=tuple(str(a) for a in spec.get("entrypoint") or ()),
            workdir=workdir,
            env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
            digest=hashlib.sha256(raw).hexdigest(),
        )
