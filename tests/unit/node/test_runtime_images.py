"""images.resolve and images.argv: image reference -> what runs (table tests)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skiff.node import images
from skiff.node.images import Image, ImageError, LocalImage

SLEEP = ["sleep", "infinity"]
HELLO = ["python3", "-m", "skiff.node.images.hello_openshift"]


@pytest.mark.parametrize("ref, kind, name", [
    ("docker.io/openshift/hello-openshift", "builtin", "docker.io/openshift/hello-openshift"),
    ("openshift/hello-openshift", "builtin", "docker.io/openshift/hello-openshift"),
    ("openshift/hello-openshift:latest", "builtin", "docker.io/openshift/hello-openshift"),
    ("docker.io/openshift/hello-openshift@sha256:" + "a" * 64, "builtin",
     "docker.io/openshift/hello-openshift"),
    ("curlimages/curl", "host", "docker.io/curlimages/curl"),
    ("docker.io/curlimages/curl:8.5.0", "host", "docker.io/curlimages/curl"),
    ("busybox", "host", "docker.io/library/busybox"),
    ("busybox:1.36", "host", "docker.io/library/busybox"),
    ("docker.io/library/busybox", "host", "docker.io/library/busybox"),
    ("alpine:3", "host", "docker.io/library/alpine"),
    ("registry.access.redhat.com/ubi8/ubi-minimal", "host",
     "registry.access.redhat.com/ubi8/ubi-minimal"),
    ("registry.access.redhat.com/ubi9/ubi-minimal:latest", "host",
     "registry.access.redhat.com/ubi9/ubi-minimal"),
    ("quay.io/curl/curl:latest", "host", "quay.io/curl/curl"),
    ("nicolaka/netshoot", "host", "docker.io/nicolaka/netshoot"),
    ("fedora:40", "host", "docker.io/library/fedora"),
])
def test_known_images(ref: str, kind: str, name: str) -> None:
    img = images.resolve(ref)
    assert isinstance(img, Image)
    assert (img.kind, img.name, img.ref) == (kind, name, ref)
    assert img.image_id.startswith(name + "@sha256:")


@pytest.mark.parametrize("ref, command, args, argv", [
    ("busybox", None, None, SLEEP),
    ("busybox", ["sh", "-c", "exit 3"], None, ["sh", "-c", "exit 3"]),
    ("busybox", None, ["sh", "-c", "true"], ["sh", "-c", "true"]),
    ("busybox", ["sleep"], ["3600"], ["sleep", "3600"]),
    ("curlimages/curl", None, None, SLEEP),
    ("curlimages/curl", None, ["-s", "http://x"], ["curl", "-s", "http://x"]),
    ("curlimages/curl", ["sleep", "3600"], None, ["sleep", "3600"]),
    ("quay.io/curl/curl", None, ["-v", "u"], ["curl", "-v", "u"]),
    ("openshift/hello-openshift", None, None, HELLO),
    ("openshift/hello-openshift", None, ["--x"], [*HELLO, "--x"]),
])
def test_argv(ref: str, command: list[str] | None, args: list[str] | None,
              argv: list[str]) -> None:
    img = images.resolve(ref)
    assert isinstance(img, Image)
    assert images.argv(img, command, args) == argv


def test_builtin_runs_with_skiffs_python_and_serves_port() -> None:
    img = images.resolve("openshift/hello-openshift")
    assert isinstance(img, Image) and img.own_python and img.serves_port


@pytest.mark.parametrize("ref", ["foo/bar", "nginx", "quay.io/someone/app:v1", ""])
def test_unknown_image_is_an_error(ref: str) -> None:
    err = images.resolve(ref)
    assert isinstance(err, ImageError)
    assert "image not found in skiff's local images" in err.message or ref == ""
    if ref:
        assert err.message.startswith(f'Back-off pulling image "{ref}": ')
        assert "known: docker.io/openshift/hello-openshift, curlimages/curl" in err.message
        assert err.message.endswith("build one with a pipeline)")
        assert err.pull_message.startswith(f'failed to pull image "{ref}"')


def test_local_images_come_from_the_lookup() -> None:
    built = LocalImage(name="team/app", cmd=("python", "app.py"), workdir="/srv/app",
                       env={"A": "1"}, digest="ab" * 32)
    seen: list[str] = []

    def lookup(name: str) -> LocalImage | None:
        seen.append(name)
        return built if name == "team/app" else None

    img = images.resolve("skiff.local/team/app:v2", lookup)
    assert isinstance(img, Image)
    assert (img.kind, img.name, img.workdir, dict(img.env)) == (
        "local", "skiff.local/team/app", "/srv/app", {"A": "1"})
    assert img.image_id == "skiff.local/team/app@sha256:" + "ab" * 32
    assert images.argv(img, None, None) == ["python", "app.py"]
    assert img.own_python
    missing = images.resolve("skiff.local/other", lookup)
    assert isinstance(missing, ImageError) and "build one with a pipeline" in missing.message
    assert seen == ["team/app", "other"]
    assert isinstance(images.resolve("skiff.local/team/app"), ImageError)  # no lookup given


@pytest.mark.parametrize("ref, registry, repository, tag, digest", [
    ("busybox", "docker.io", "library/busybox", "latest", ""),
    ("localhost:5000/a/b:1", "localhost:5000", "a/b", "1", ""),
    ("quay.io/x/y@sha256:00", "quay.io", "x/y", "", "sha256:00"),
    ("index.docker.io/library/alpine:3", "docker.io", "library/alpine", "3", ""),
])
def test_parse_ref(ref: str, registry: str, repository: str, tag: str, digest: str) -> None:
    assert images.parse_ref(ref) == images.ImageRef(registry, repository, tag, digest)


def test_local_image_store_reads_image_json(tmp_path: Any) -> None:
    from skiff.node.images.local import LocalImages

    d = tmp_path / "images" / "team" / "app"
    d.mkdir(parents=True)
    (d / "image.json").write_text(json.dumps(
        {"cmd": ["python", "app.py"], "workdir": "src", "env": {"MODE": "prod"}}))
    store = LocalImages(tmp_path)
    found = store.lookup("team/app")
    assert found is not None
    assert (found.cmd, found.workdir, dict(found.env)) == (
        ("python", "app.py"), str(d / "src"), {"MODE": "prod"})
    assert len(found.digest) == 64
    assert store.lookup("team/other") is None
    assert store.lookup("../etc") is None
    img = images.resolve("skiff.local/team/app:latest", store.lookup)
    assert isinstance(img, Image) and img.kind == "local"
