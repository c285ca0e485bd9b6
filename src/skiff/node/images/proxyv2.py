"""The built-in proxyv2 image (registry.redhat.io/openshift-service-mesh/proxyv2-rhel8, istio/proxyv2).

Istio's image runs pilot-agent; the injected pod (mesh/sidecar/inject.py) uses
it twice, and so does this stand-in, run by the node as
`python3 -m skiff.node.images.proxyv2 ARGS...` (images/__init__.py):

- `istio-iptables ...` (the istio-init container): the arguments become
  the pod's capture table (node/network/capture.py) and are applied in the
  current network namespace, which is the pod's: the node starts init
  containers inside it. One line says what was done; exit 0. A bad argument
  or an nft refusal: one line on stderr, exit 1 (the pod shows Init:Error, as
  with Istio). Where the pod shares the node's network (skiff's loopback
  fallback) nothing is applied, and the line says so: capturing the host's
  traffic would break the machine.
- `proxy sidecar ...` (the istio-proxy container): the proxying itself is
  done by skiff's node-side data plane, so this process only keeps the
  container's lifecycle as pilot-agent does: it waits for SIGTERM/SIGINT,
  then stays up TERMINATION_DRAIN_DURATION_SECONDS (default 5) so the sidecar
  outlives the app's drain, then exits 0. It imports nothing heavy, to stay
  small in every meshed pod.
- `wait` (pilot-agent wait, the holdApplicationUntilProxyStarts hook): exit 0.
"""

from __future__ import annotations

import os
import signal
import sys
import time

USAGE = "usage: pilot-agent (istio-iptables ARGS... | proxy sidecar|router ARGS... | wait)"
DEFAULT_DRAIN_S = 5.0


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def _in_host_netns() -> bool | None:
    """Whether this process shares the node's network namespace (None: cannot tell). An
    ancestor in another namespace (the node's runtime, its fork server, the kubelet side of an
    exec) means this one was moved into a pod's; /proc/1 itself may be unreadable, even to
    root, inside a VM's or container's sandbox, so the ancestors are asked one by one."""
    try:
        mine = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None
    pid = os.getpid()
    for _ in range(64):
        try:
            pid = _ppid(pid)
        except (OSError, ValueError, IndexError):
            break
        if pid <= 0:
            break
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != mine:
                return False
        except OSError:
            continue
    return True


def iptables(args: list[str]) -> int:
    from skiff.node.network import capture  # only the init container needs it
    try:
        parsed = capture.parse_args(args)
        script = capture.capture_ruleset(parsed)
    except ValueError as e:
        print(f"istio-iptables: error: {e}", file=sys.stderr)
        return 1
    if parsed.dry_run:
        print(script, end="")
        return 0
    host = _in_host_netns()
    if host is not False:
        print("istio-iptables: capture not applied: this pod shares the node's network "
              "namespace (no pod network), so its traffic is not redirected to the sidecar")
        return 0
    try:
        capture.apply_capture(script)
    except (OSError, RuntimeError) as e:       # NftError is a RuntimeError
        print(f"istio-iptables: error: applying table inet {capture.TABLE}: "
              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 1
    inbound = ("no inbound capture" if parsed.include_inbound == () else
               f"inbound TCP -> :{parsed.inbound_port} (ports "
               f"{parsed.include_inbound if parsed.include_inbound == '*' else ','.join(map(str, parsed.include_inbound))}"
               f", except {','.join(map(str, parsed.exclude_inbound)) or 'none'})")
    print(f"istio-iptables: table inet {capture.TABLE} applied: {inbound}; outbound TCP -> "
          f":{parsed.proxy_port} (except mark/uid {','.join(map(str, parsed.proxy_uids))}, "
          f"loopback, ports {','.join(map(str, parsed.exclude_outbound)) or 'none'}); "
          "UDP not captured")
    return 0


def drain_seconds(env: dict[str, str] | os._Environ[str]) -> float:
    try:
        value = float(env.get("TERMINATION_DRAIN_DURATION_SECONDS", DEFAULT_DRAIN_S))
    except ValueError:
        return DEFAULT_DRAIN_S
    return max(0.0, value)


def proxy(args: list[str]) -> int:
    """pilot-agent's lifecycle: up until told to stop, then the drain, then exit 0."""
    stops = {signal.SIGTERM, signal.SIGINT}
    for s in stops:
        signal.signal(s, signal.SIG_DFL)       # a forked child may inherit other handlers
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    drain = drain_seconds(os.environ)
    print(f"pilot-agent: {' '.join(['proxy', *args])}: started (traffic is served by skiff's "
          f"data plane; drain {drain:g}s)", flush=True)
    got = signal.sigwait(stops)
    print(f"pilot-agent: {signal.Signals(got).name} received, draining for {drain:g}s",
          flush=True)
    # Further signals stay blocked: the drain always runs to its end (the kubelet's SIGKILL
    # after the grace period still ends it, as it ends Istio's).
    time.sleep(drain)
    print("pilot-agent: drained, exiting", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(f"pilot-agent: error: {USAGE}", file=sys.stderr)
        return 1
    if args[0] == "istio-iptables":
        return iptables(args[1:])
    if args[0] == "proxy" and len(args) >= 2 and args[1] in ("sidecar", "router"):
        return proxy(args[1:])
    if args[0] == "wait":
        return 0
    print(f"pilot-agent: error: unknown command {args[0]!r}; {USAGE}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
