"""Images: what a pod's image reference means on this machine. Pure.

skiff has no container engine; an image name picks one of three kinds of
local program:

- builtin: a sample app shipped inside skiff and run with skiff's own Python
  (docker.io/openshift/hello-openshift -> images/hello_openshift.py; Istio's
  proxyv2 -> images/proxyv2.py, the injected istio-init and istio-proxy;
  Knative's queue -> serving/queue/main.py, the revision pod's queue-proxy);
- host: a tool image (curl, busybox, ubi-minimal...) whose commands run as
  host commands; with no command/args it sleeps, so `kubectl exec` works;
- local: `skiff.local/<name>` images, built by a pipeline into
  `<home>/images/<name>/image.json` (read by images/local.py, passed here as
  a lookup function).

resolve() turns a reference into an Image or an ImageError; argv() applies
Kubernetes' command/args rules to it. The node runtime (pod.py) calls both;
nothing here touches the file system.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

HELLO_OPENSHIFT = "docker.io/openshift/hello-openshift"
HELLO_OPENSHIFT_MODULE = "skiff.node.images.hello_openshift"
# Istio's proxy image (pilot-agent): istio-init's capture rules and istio-proxy's lifecycle,
# played by images/proxyv2.py; any tag.
PROXYV2_IMAGES = ("registry.redhat.io/openshift-service-mesh/proxyv2-rhel8",
                  "docker.io/istio/proxyv2")
PROXYV2_MODULE = "skiff.node.images.proxyv2"
# Knative's queue-proxy image (the revision pod's queue-proxy container; config-deployment's
# queue-sidecar-image), played by serving/queue/main.py; any tag or digest.
QUEUE_IMAGES = ("gcr.io/knative-releases/knative.dev/serving/cmd/queue",
                "registry.redhat.io/openshift-serverless-1/serving-queue-rhel8",
                "registry.ci.openshift.org/openshift/knative-serving-queue")
QUEUE_MODULE = "skiff.serving.queue.main"
LOCAL_PREFIX = "skiff.local/"

# Host-tool images: canonical name -> entrypoint (args alone run ENTRYPOINT ARGS).
HOST_IMAGES: Mapping[str, tuple[str, ...]] = {
    "docker.io/curlimages/curl": ("curl",),
    "quay.io/curl/curl": ("curl",),
    "docker.io/library/busybox": (),
    "docker.io/library/alpine": (),
    "docker.io/library/fedora": (),
    "docker.io/nicolaka/netshoot": (),
    "registry.access.redhat.com/ubi8/ubi-minimal": (),
    "registry.access.redhat.com/ubi9/ubi-minimal": (),
    "registry.access.redhat.com/ubi8/ubi": (),
    "registry.access.redhat.com/ubi9/ubi": (),
}
SLEEP_FOREVER: tuple[str, ...] = ("sleep", "infinity")

ImageKind = Literal["builtin", "host", "local"]


@dataclass(frozen=True)
class LocalImage:
    """The contents of `<home>/images/<name>/image.json`, already read."""
    name: str
    cmd: tuple[str, ...]
    workdir: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    digest: str = ""              # sha256 hex of image.json


LocalLookup = Callable[[str], LocalImage | None]


@dataclass(frozen=True)
class Image:
    ref: str                      # as written in the pod spec
    name: str                     # canonical name, no tag or digest
    kind: ImageKind
    image_id: str                 # containerStatuses[].imageID
    entrypoint: tuple[str, ...]   # ENTRYPOINT: prefixed to args when only args are given
    default_argv: tuple[str, ...]  # what runs when neither command nor args is given
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = ""             # host directory to run in ("" = the container's scratch dir)
    own_python: bool = False      # argv[0] python/python3 means skiff's interpreter
    serves_port: bool = False     # listens on $PORT by itself


@dataclass(frozen=True)
class ImageError:
    ref: str
    message: str                  # ImagePullBackOff message (kubelet's "Back-off pulling image ...")

    @property
    def pull_message(self) -> str:
        """ErrImagePull message: the first failed attempt."""
        return self.message.replace("Back-off pulling image", "failed to pull image", 1)


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"


def parse_ref(ref: str) -> ImageRef:
    """Split an image reference the docker way: registry, repository, tag, digest."""
    rest, _, digest = ref.partition("@")
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = "docker.io", rest
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = "docker.io"
    if registry == "docker.io" and "/" not in repository:
        repository = "library/" + repository
    return ImageRef(registry, repository, tag or ("" if digest else "latest"), digest)


def known_images() -> list[str]:
    """Names for error messages, in the short form people write."""
    short = [HELLO_OPENSHIFT]
    for name in HOST_IMAGES:
        short.append(name.removeprefix("docker.io/").removeprefix("library/"))
    return short + [LOCAL_PREFIX + "<name>"]


def _image_id(name: str, salt: str) -> str:
    return f"{name}@sha256:{hashlib.sha256((name + salt).encode()).hexdigest()}"


def resolve(image: str, local: LocalLookup | None = None) -> Image | ImageError:
    """What `image` runs here, or why it cannot be had."""
    ref = image.strip()
    if not ref:
        return ImageError(image, "Back-off pulling image \"\": image name is empty")
    if ref.startswith(LOCAL_PREFIX):
        name = parse_ref(ref[len(LOCAL_PREFIX):]).repository.removeprefix("library/")
        found = local(name) if local is not None else None
        if found is None:
            return ImageError(ref, f'Back-off pulling image "{ref}": image not found in skiff\'s '
                                   f'local images (no {LOCAL_PREFIX}{name} has been built; '
                                   f'build one with a pipeline)')
        return Image(ref=ref, name=LOCAL_PREFIX + name, kind="local",
                     image_id=f"{LOCAL_PREFIX}{name}@sha256:{found.digest or '0' * 64}",
                     entrypoint=found.entrypoint, default_argv=found.entrypoint + found.cmd,
                     env=dict(found.env), workdir=found.workdir, own_python=True)
    parsed = parse_ref(ref)
    if parsed.name == HELLO_OPENSHIFT:
        argv = ("python3", "-m", HELLO_OPENSHIFT_MODULE)
        return Image(ref=ref, name=parsed.name, kind="builtin",
                     image_id=_image_id(parsed.name, "builtin"), entrypoint=argv,
                     default_argv=argv, own_python=True, serves_port=True)
    if parsed.name in PROXYV2_IMAGES:
        # No serves_port: the sidecar listens on Istio's fixed ports, not on $PORT.
        argv = ("python3", "-m", PROXYV2_MODULE)
        return Image(ref=ref, name=parsed.name, kind="builtin",
                     image_id=_image_id(parsed.name, "builtin"), entrypoint=argv,
                     default_argv=argv, own_python=True)
    if parsed.name in QUEUE_IMAGES:
        # No serves_port either: queue-proxy reads its ports from its env, as upstream's.
        argv = ("python3", "-m", QUEUE_MODULE)
        return Image(ref=ref, name=parsed.name, kind="builtin",
                     image_id=_image_id(parsed.name, "builtin"), entrypoint=argv,
                     default_argv=argv, own_python=True)
    entrypoint = HOST_IMAGES.get(parsed.name)
    if entrypoint is not None:
        return Image(ref=ref, name=parsed.name, kind="host",
                     image_id=_image_id(parsed.name, "host"), entrypoint=entrypoint,
                     default_argv=SLEEP_FOREVER)
    return ImageError(ref, f'Back-off pulling image "{ref}": image not found in skiff\'s local '
                           f'images (known: {", ".join(known_images())}; build one with a pipeline)')


def argv(img: Image, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
    """Kubernetes' rule: command replaces ENTRYPOINT, args replace CMD."""
    if command:
        return [*command, *(args or [])]
    if args:
        return [*img.entrypoint, *args]
    return list(img.default_argv)
