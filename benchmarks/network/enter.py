"""What joining a pod's sandbox costs a freshly forked child: fork -> child ready, without and
with skiff's sandbox.enter() (setns into the pod's network namespace, unshare of a mount and a
UTS namespace, make / rslave, bind resolv.conf and hosts, sethostname), alternating one by one.
Part of the breakdown of podstart.py's difference; the fork server does exactly this per
container (forkserver._setup_child).

Not part of the test suite (needs root):

    python benchmarks/network/enter.py             # ~10 s
    python benchmarks/network/enter.py --n 50      # quicker

It makes one network namespace of its own, /run/netns/skbench-<hex> (a name skiff never uses,
so it neither needs nor touches the pod network's lock), and removes it at the end; the bind
mounts live in the children's own mount namespaces and go with them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from skiff.node.network import sandbox  # noqa: E402


def once(sb: dict[str, str] | None) -> float:
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            if sb:
                sandbox.enter(sb)
            os.write(w, b"x")
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    got = os.read(r, 1)
    t = time.perf_counter() - t0
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if got != b"x" or status != 0:
        raise RuntimeError("the child failed to enter the sandbox")
    return t * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    n = max(10, min(args.n, 5000))
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    name = f"skbench-{secrets.token_hex(5)}"
    path = sandbox.create_netns(name)
    tmp = Path(tempfile.mkdtemp(prefix="skiff-bench-enter-"))
    try:
        (tmp / "resolv.conf").write_text("nameserver 10.244.0.1\n")
        (tmp / "hosts").write_text(sandbox.hosts_file("10.244.9.9", "bench"))
        sb = {"netns": path, "resolv_conf": str(tmp / "resolv.conf"),
              "hosts": str(tmp / "hosts"), "hostname": "bench", "ip": "10.244.9.9", "id": name}
        for _ in range(10):        # warm-up: libc loaded, pages touched
            once(None)
            once(sb)
        plain: list[float] = []
        entered: list[float] = []
        for _ in range(n):
            plain.append(once(None))
            entered.append(once(sb))
    finally:
        sandbox.remove_netns(name)
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    p50 = statistics.median
    print(f"fork -> child ready, {n} each, alternating; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[int(p * (len(xs) - 1))]
    print(f"  plain fork:            p50 {p50(plain):7.0f} us, p90 {q(plain, 0.9):7.0f} us")
    print(f"  fork + sandbox.enter:  p50 {p50(entered):7.0f} us, p90 {q(entered, 0.9):7.0f} us")
    print(f"  enter() costs          p50 {p50(entered) - p50(plain):+7.0f} us")


if __name__ == "__main__":
    main()
