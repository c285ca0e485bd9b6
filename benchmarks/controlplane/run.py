"""Control-plane benchmark: a fresh `skiff up`, measured from the outside.

    python benchmarks/controlplane/run.py [--quick] [--json results.json] [--only 123456]
                                          [--py-spy DIR] [--wrap CMD] [--keep]

Starts its own `skiff up` in a temporary home on free loopback ports (never
6443/8080/8443), drives it with the real kubectl and with an asyncio/aiohttp
HTTPS client (keep-alive pool), and prints one table:

  1. spawn -> /readyz "ok" (fresh home each time, 5 runs) and the figure the
     process prints itself ("skiff is ready in X s"); peers: `python -c pass`
     and importing what `skiff up` imports, in the same run.
  2. `kubectl apply -f` of 30 objects (ConfigMaps, Secrets, ServiceAccounts,
     Gateways, AuthorizationPolicies: nothing starts pods), client-side and
     --server-side, a fresh namespace per run; peers: `kubectl apply
     --dry-run=client` of the same file (no writes) and `kubectl version --client`.
  3. open-loop GET of one object and LIST of a 100-object namespace at a fixed
     rate; peer: GET /version (no store access) at the same rate.
  4. 10,000 ConfigMaps created through the API with concurrency; one full LIST,
     LIST paged by limit=500, and `kubectl get cm -A --no-headers | wc -l`.
  5. 100 concurrent watches; 200 writes; delivery latency from the timestamp
     the writer stored in each object to its arrival at each watcher.
  6. RSS (skiff process + children) idle after ready and after 10,000 objects;
     peers: a bare interpreter and one that only imports what skiff imports.

Every load is bounded in time and count and targets 127.0.0.1 only. The only
processes this script ends are the ones it started, by their PID. A benchmark,
never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform as pyplatform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

HOST = "127.0.0.1"


# --- small helpers -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms" if x >= 0.01 else f"{x * 1000:.2f} ms"


def secs(x: float) -> str:
    return f"{x:.2f} s" if x >= 0.1 else ms(x)


def mib(b: float) -> str:
    return f"{b / 2**20:.1f} MiB"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The environment of every Python process this benchmark times.

    Bytecode is cached under the run's temporary folder (and warmed by one
    unmeasured start) so that start-up is measured as an installed skiff runs,
    even where the shell sets PYTHONDONTWRITEBYTECODE (this one does: then every
    module without a .pyc beside it is compiled again on every start).
    """
    env = dict(os.environ, COLUMNS="250", PYTHONUNBUFFERED="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if PYCACHE:
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


PYCACHE = ""   # set by main() to a folder in the run's temporary directory


def skiff_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("skiff")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("skiff")
    return [found] if found else [sys.executable, "-m", "skiff.cli.main"]


# --- one skiff process ---------------------------------------------------------------------

@dataclass
class Skiff:
    root: Path
    wrapper: list[str] = field(default_factory=list)   # e.g. a profiler in front of `skiff`
    proc: subprocess.Popen[bytes] | None = None
    ready_cpu: float = 0.0      # CPU seconds skiff (+ children) had used when /readyz said ok

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.api_port = free_port()
        self.ports = {"--http-port": free_port(), "--https-port": free_port(),
                      "--local-gateway-port": free_port()}
        self.log_path = self.root / "skiff.log"

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def ca(self) -> Path:
        return self.home / "pki" / "ca.crt"

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start(self, timeout: float = 30) -> float:
        """Spawn `skiff up`; return seconds from spawn to /readyz answering "ok"."""
        cmd = [*self.wrapper, *skiff_cmd(), "up", "--home", str(self.home),
               "--api-port", str(self.api_port)]
        for flag, port in self.ports.items():
            cmd += [flag, str(port)]
        env = child_env()
        logf = self.log_path.open("ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        logf.close()
        deadline = t0 + timeout
        conn: http.client.HTTPSConnection | None = None
        try:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"skiff up exited {self.proc.returncode}:\n{self.log_tail()}")
                if conn is None:
                    if not self.ca.exists():
                        time.sleep(0.002)
                        continue
                    try:
                        conn = http.client.HTTPSConnection(HOST, self.api_port, timeout=2,
                                                           context=self.ssl_context())
                        conn.connect()
                    except (OSError, ssl.SSLError):
                        conn = None
                        time.sleep(0.005)
                        continue
                try:
                    conn.request("GET", "/readyz")
                    r = conn.getresponse()
                    body = r.read()
                    if r.status == 200 and body == b"ok":
                        wall = time.perf_counter() - t0
                        self.ready_cpu = self.cpu_seconds()
                        return wall
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = None
                time.sleep(0.005)
        finally:
            if conn is not None:
                conn.close()
        raise TimeoutError(f"skiff up not ready in {timeout}s:\n{self.log_tail()}")

    def self_reported_ready(self, timeout: float = 3) -> float | None:
        """The "skiff is ready in X s" figure the process printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"skiff is ready\s+in\s+([0-9.]+)\s*s", self.log_text())
            if m:
                return float(m.group(1))
            time.sleep(0.02)
        return None

    def steps(self) -> list[tuple[str, float]]:
        """The per-step lines `skiff up` prints: ('store ...', 65.0 ms)."""
        return [(m.group(1).strip(), float(m.group(2)))
                for m in re.finditer(r"✓ (.+?) \((\d+) ms\)", self.log_text())]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self) -> str:
        return self.log_text()[-3000:]

    def stop(self, timeout: float = 30) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)       # our own child, by its PID
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def rss(self) -> dict[str, Any]:
        """Memory of the skiff process and all its children: summed RSS, USS and PSS (bytes),
        and each process's own figures."""
        assert self.proc is not None
        top = psutil.Process(self.proc.pid)
        out: dict[str, Any] = {"rss": 0, "uss": 0, "pss": 0, "procs": []}
        for p in [top, *top.children(recursive=True)]:
            try:
                info = p.memory_full_info()
                cmd = " ".join(a for a in p.cmdline()[1:4] if not a.startswith("/"))
            except psutil.Error:
                continue
            out["rss"] += info.rss
            out["uss"] += info.uss
            out["pss"] += info.pss
            out["procs"].append({"pid": p.pid, "cmd": cmd, "rss": info.rss, "uss": info.uss,
                                 "pss": info.pss})
        return out

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        top = psutil.Process(self.proc.pid)
        total = 0.0
        for p in [top, *top.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    # --- kubectl and a synchronous API helper for set-up ------------------------------------
    def kubectl(self, *args: str, input: str | None = None, timeout: float = 300,
                check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig),
               "--cache-dir", str(self.home / "kubectl-cache"), *args]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return wall, r

    def kubectl_count_all(self) -> tuple[float, int]:
        """Wall time of `kubectl get cm -A --no-headers | wc -l`, and the count it printed."""
        cmd = (f"kubectl --kubeconfig {shlex.quote(str(self.kubeconfig))} "
               f"--cache-dir {shlex.quote(str(self.home / 'kubectl-cache'))} get cm -A --no-headers | wc -l")
        t0 = time.perf_counter()
        r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                           timeout=300, check=True)
        return time.perf_counter() - t0, int(r.stdout.strip())

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(HOST, self.api_port, timeout=60, context=self.ssl_context())
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={
                "Authorization": f"Bearer {self.token}", "Accept": "application/json",
                "Content-Type": "application/json"})
            r = conn.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        finally:
            conn.close()

    def create_namespace(self, name: str) -> None:
        code, body = self.api("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        if code not in (200, 201):
            raise RuntimeError(f"create namespace {name}: {code} {body}")


# --- optional sampling profiles of the skiff process ------------------------------------

class Spy:
    """`py-spy record --pid` on the skiff process around one section (with --py-spy DIR)."""

    def __init__(self, out_dir: Path | None, s: Skiff, name: str) -> None:
        self.out_dir, self.s, self.name = out_dir, s, name
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Spy:
        if self.out_dir is None or self.s.proc is None:
            return self
        self.path = self.out_dir / f"{self.name}.txt"
        self.proc = subprocess.Popen(["py-spy", "record", "--pid", str(self.s.proc.pid), "-r", "200",
                                      "--nonblocking", "-f", "raw", "-o", str(self.path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)     # py-spy writes its file on Ctrl-C
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.path.exists():
            print(f"\n--- py-spy: {self.name} (inclusive share of samples, skiff frames and leaves) ---")
            print(summarize_spy(self.path))


_SPY_WRAPPERS = ("up (skiff/cli/main.py", "ApiServer._auth", "ApiServer._errors", "ApiServer.dispatch")


def summarize_spy(path: Path, top: int = 14) -> str:
    incl: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        frames = [re.sub(r" \(\S*?/(?:site-packages|python3\.\d+|src)/", " (", f) for f in stack.split(";")]
        for f in set(frames):
            if "skiff/" in f and not any(w in f for w in _SPY_WRAPPERS):
                incl[f] = incl.get(f, 0) + int(n)
        if frames:
            leaf[frames[-1]] = leaf.get(frames[-1], 0) + int(n)
    if not total:
        return "(no samples)"
    out = [f"{total} samples"]
    for name, d in (("skiff frames", incl), ("leaves", leaf)):
        out.append(f"  {name}:")
        for f, n in sorted(d.items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"    {100 * n / total:5.1f}%  {f}")
    return "\n".join(out)


# --- the figures ---------------------------------------------------------------------------

@dataclass
class Row:
    section: str
    metric: str
    value: str
    goal: str = ""
    verdict: str = ""   # "met" | "MISSED" | ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, section: str, metric: str, value: str, goal: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "MISSED")
        self.rows.append(Row(section, metric, value, goal, verdict))
        print(f"  {metric:<58} {value:>22}  {goal} {verdict}", file=sys.stderr, flush=True)

    def table(self) -> str:
        if not self.rows:
            return "(no figures)"
        w_m = max(len(r.metric) for r in self.rows)
        w_v = max(len(r.value) for r in self.rows)
        w_g = max(max(len(r.goal) for r in self.rows), 4)
        lines: list[str] = []
        section = ""
        for r in self.rows:
            if r.section != section:
                section = r.section
                lines.append("")
                lines.append(section)
            lines.append(f"  {r.metric:<{w_m}}  {r.value:>{w_v}}  {r.goal:<{w_g}}  {r.verdict}".rstrip())
        return "\n".join(lines)


def median_minmax(xs: list[float], fmt: Any = secs) -> str:
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}..{fmt(max(xs))})"


# --- 1. startup ----------------------------------------------------------------------------

def _spawn_wall(cmd: list[str], reps: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (user + system) of running `cmd` to completion, `reps` times."""
    walls, cpus = [], []
    for _ in range(reps):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, timeout=60, stdout=subprocess.DEVNULL, env=child_env())
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    return walls, cpus


IMPORTS_OF_UP = ("import skiff.cli.main, skiff.platform, uvloop; "
                 "from skiff.platform import domain_kinds, domain_installers; "
                 "domain_kinds(); domain_installers()")


def bench_startup(res: Results, tmp: Path, reps: int) -> None:
    log(f"1. startup: 1 warm-up + {reps} fresh `skiff up` runs")
    sec = "1. startup (spawn -> /readyz ok)"
    walls, cpus, selfs, warm, warm_cpus = [], [], [], [], []
    steps: list[list[tuple[str, float]]] = []
    for i in range(-1, reps):                # run -1 only fills the bytecode cache
        s = Skiff(tmp / f"start{i + 1}")
        s.root.mkdir()
        try:
            wall = s.start()
            if i >= 0:
                walls.append(wall)
                cpus.append(s.ready_cpu)
                sr = s.self_reported_ready()
                if sr is not None:
                    selfs.append(sr)
                steps.append(s.steps())
        finally:
            s.stop()
        if i >= 0:
            # the same home again: certificates and the database already exist
            s2 = Skiff(s.root)
            s2.log_path = s.root / "skiff-restart.log"
            try:
                warm.append(s2.start())
                warm_cpus.append(s2.ready_cpu)
            finally:
                s2.stop()
        shutil.rmtree(s.root, ignore_errors=True)
    bare, bare_cpu = _spawn_wall([sys.executable, "-c", "pass"], 5)
    imports, imports_cpu = _spawn_wall([sys.executable, "-c", IMPORTS_OF_UP], 5)
    med = statistics.median(walls)
    res.add(sec, f"spawn -> ready, fresh home: wall, median (min..max) of {reps}", median_minmax(walls),
            "<= 1 s", med <= 1.0)
    res.add(sec, "  CPU used by skiff until ready (user+sys), median (min..max)", median_minmax(cpus))
    if selfs:
        res.add(sec, "  as printed by skiff (\"skiff is ready in X s\")", median_minmax(selfs))
    res.add(sec, f"spawn -> ready, restart on the same home: wall; CPU (medians of {reps})",
            f"{secs(statistics.median(warm))}; {secs(statistics.median(warm_cpus))}")
    res.add(sec, "  peer: `python -c pass`: wall; CPU (medians of 5)",
            f"{secs(statistics.median(bare))}; {secs(statistics.median(bare_cpu))}")
    res.add(sec, "  peer: python importing what `skiff up` imports: wall; CPU",
            f"{secs(statistics.median(imports))}; {secs(statistics.median(imports_cpu))}")
    res.add(sec, "  ready / import-only peer: wall; CPU",
            f"{med / statistics.median(imports):.2f}x; "
            f"{statistics.median(cpus) / statistics.median(imports_cpu):.2f}x")
    if steps and steps[0]:
        # median per step, as printed (ms since the CLI's t0, cumulative)
        names = [n for n, _ in steps[0]]
        for j, name in enumerate(names):
            vals = [st[j][1] for st in steps if len(st) > j]
            short = re.sub(r"/\S+", "...", name)
            res.add(sec, f"  step printed by skiff (cumulative): {short[:34]}",
                    f"{statistics.median(vals):.0f} ms")
    res.raw["startup"] = {"fresh_s": walls, "fresh_cpu_s": cpus, "self_reported_s": selfs,
                          "restart_s": warm, "restart_cpu_s": warm_cpus, "python_pass_s": bare,
                          "python_pass_cpu_s": bare_cpu, "imports_s": imports,
                          "imports_cpu_s": imports_cpu, "steps_ms": steps}


# --- 2. kubectl apply ----------------------------------------------------------------------

def manifest_30() -> str:
    docs: list[str] = []
    for i in range(8):
        docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg-{i}
  labels: {{app: bench, tier: t{i % 3}}}
data:
  key: value-{i}
  config.yaml: |
    server:
      port: {8000 + i}
      workers: 4
""")
    for i in range(6):
        docs.append(f"""apiVersion: v1
kind: Secret
metadata:
  name: sec-{i}
  labels: {{app: bench}}
type: Opaque
stringData:
  username: user{i}
  password: p4ssw0rd-{i}
""")
    for i in range(6):
        docs.append(f"""apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa-{i}
  labels: {{app: bench}}
""")
    for i in range(5):
        docs.append(f"""apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: gw-{i}
  labels: {{app: bench}}
spec:
  selector:
    istio: ingressgateway
  servers:
    - port: {{number: {9000 + i}, name: http-{i}, protocol: HTTP}}
      hosts: ["bench-{i}.example.com"]
""")
    for i in range(5):
        docs.append(f"""apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: allow-{i}
  labels: {{app: bench}}
spec:
  selector:
    matchLabels: {{app: svc-{i}}}
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ["cluster.local/ns/tenant-{i}/sa/default"]
      to:
        - operation:
            methods: ["GET", "POST"]
            paths: ["/api/*"]
""")
    assert len(docs) == 30
    return "---\n".join(docs)


def bench_apply(res: Results, s: Skiff, reps: int) -> None:
    log(f"2. kubectl apply of 30 objects, {reps} runs each")
    sec = "2. kubectl apply -f (30 objects: 8 cm, 6 secret, 6 sa, 5 gw, 5 authz)"
    path = s.root / "thirty.yaml"
    path.write_text(manifest_30())
    s.kubectl("api-resources")              # fill kubectl's discovery cache first
    s.create_namespace("apply-warm")
    s.kubectl("apply", "-n", "apply-warm", "-f", str(path))   # and its openapi cache
    client_only = [s.kubectl("version", "--client")[0] for _ in range(reps)]
    dry: list[float] = []
    csa: list[float] = []
    ssa: list[float] = []
    for i in range(reps):
        s.create_namespace(f"apply-dry-{i}")
        w, r = s.kubectl("apply", "-n", f"apply-dry-{i}", "--dry-run=client", "-f", str(path))
        dry.append(w)
    for i in range(reps):
        s.create_namespace(f"apply-csa-{i}")
        w, r = s.kubectl("apply", "-n", f"apply-csa-{i}", "-f", str(path))
        assert r.stdout.count(" created") == 30, r.stdout
        csa.append(w)
    for i in range(reps):
        s.create_namespace(f"apply-ssa-{i}")
        w, r = s.kubectl("apply", "--server-side", "-n", f"apply-ssa-{i}", "-f", str(path))
        assert r.stdout.count("serverside-applied") == 30, r.stdout
        ssa.append(w)
    # unchanged re-apply into a populated namespace: reads and diffs, no writes
    w_unch = [s.kubectl("apply", "-n", "apply-csa-0", "-f", str(path))[0] for _ in range(reps)]
    m_dry = statistics.median(dry)
    res.add(sec, f"kubectl apply (client-side), fresh ns, median of {reps}", median_minmax(csa))
    res.add(sec, f"kubectl apply --server-side, fresh ns, median of {reps}", median_minmax(ssa))
    res.add(sec, f"kubectl apply, unchanged re-apply, median of {reps}", median_minmax(w_unch))
    res.add(sec, "  peer: kubectl apply --dry-run=client (GETs, no writes)", median_minmax(dry))
    res.add(sec, "  peer: kubectl version --client (process floor)", median_minmax(client_only))
    res.add(sec, "  client-side apply / dry-run peer", f"{statistics.median(csa) / m_dry:.2f}x")
    res.add(sec, "  server-side apply / dry-run peer", f"{statistics.median(ssa) / m_dry:.2f}x")
    res.add(sec, "  server share of client-side apply: (apply - client floor) / 30",
            ms((statistics.median(csa) - statistics.median(client_only)) / 30) + "/obj")
    res.raw["apply"] = {"client_side_s": csa, "server_side_s": ssa, "unchanged_s": w_unch,
                        "dry_run_client_s": dry, "version_client_s": client_only}


# --- async HTTP client pieces --------------------------------------------------------------

def new_session(s: Skiff, limit: int) -> aiohttp.ClientSession:
    conn = aiohttp.TCPConnector(limit=limit, ssl=s.ssl_context(), keepalive_timeout=60)
    return aiohttp.ClientSession(
        base_url=f"https://{HOST}:{s.api_port}", connector=conn,
        headers={"Authorization": f"Bearer {s.token}", "Accept": "application/json"},
        timeout=aiohttp.ClientTimeout(total=60))


async def open_loop(session: aiohttp.ClientSession, path: str, rate: float, duration: float
                    ) -> dict[str, Any]:
    """Issue GET `path` at a fixed rate for `duration` seconds, whatever the answers do."""
    n = int(rate * duration)
    lat: list[float] = []        # from the moment the request was issued
    lag: list[float] = []        # how late the client issued it (its own scheduling lag)
    errors = 0
    tasks: list[asyncio.Task[None]] = []

    async def one(t_sched: float) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        lag.append(t0 - t_sched)
        try:
            async with session.get(path) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
                    return
        except (TimeoutError, aiohttp.ClientError):
            errors += 1
            return
        lat.append(time.perf_counter() - t0)

    start = time.perf_counter() + 0.05
    for i in range(n):
        t = start + i / rate
        d = t - time.perf_counter()
        if d > 0:
            await asyncio.sleep(d)
        tasks.append(asyncio.create_task(one(t)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return {"n": n, "lat": lat, "lag": lag, "errors": errors}


def cm_body(name: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": "bench", "shard": name[-1]}},
            "data": data or {"key": f"value-of-{name}", "settings.ini": "[main]\nretries = 3\n"
                                                                         "timeout = 30s\n"}}


async def create_many(s: Skiff, namespaces: list[str], per_ns: int, concurrency: int) -> tuple[float, int]:
    """POST per_ns ConfigMaps into each namespace; return (seconds, errors)."""
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for ns in namespaces:
        for i in range(per_ns):
            queue.put_nowait((ns, f"cm-{i:05d}"))
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while True:
            try:
                ns, name = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            async with session.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm_body(name)) as r:
                await r.read()
                if r.status != 201:
                    errors += 1

    async with new_session(s, concurrency) as session:
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker(session) for _ in range(concurrency))), 600)
        return time.perf_counter() - t0, errors


# --- 3. get/list latency -------------------------------------------------------------------

def bench_latency(res: Results, s: Skiff, rate: float, duration: float) -> None:
    """The three targets take turns in slices of 5 s (20 s each in all), so that a noisy
    neighbour on a shared machine hits the peer as much as the figures it is compared with."""
    slices = max(1, round(duration / 5))
    log(f"3. open-loop latency: {rate:.0f} req/s for {duration:.0f} s per target, in {slices} turns")
    sec = (f"3. API latency, open loop at {rate:.0f} req/s, {duration:.0f} s per target in {slices} "
           "interleaved turns (HTTPS keep-alive)")
    s.create_namespace("bench-list")

    async def run() -> dict[str, Any]:
        await create_many(s, ["bench-list"], 100, 8)
        out: dict[str, Any] = {}
        async with new_session(s, 32) as session:
            for path in ("/version", "/api/v1/namespaces/bench-list/configmaps/cm-00050"):
                await open_loop(session, path, rate, 1.0)    # warm the pool and code paths
            targets = {"version": "/version",
                       "get": "/api/v1/namespaces/bench-list/configmaps/cm-00050",
                       "list": "/api/v1/namespaces/bench-list/configmaps"}
            for key in targets:
                out[key] = {"n": 0, "lat": [], "lag": [], "errors": 0, "server_cpu_s": 0.0}
            order = list(targets)
            for turn in range(slices):
                for key in order[turn % 3:] + order[:turn % 3]:   # rotate who goes first
                    path = targets[key]
                    c0 = s.cpu_seconds()
                    r = await open_loop(session, path, rate, duration / slices)
                    o = out[key]
                    o["server_cpu_s"] += s.cpu_seconds() - c0
                    o["n"] += r["n"]
                    o["errors"] += r["errors"]
                    o["lat"] += r["lat"]
                    o["lag"] += r["lag"]
        return out

    r = asyncio.run(run())
    floor50, floor99 = pct(r["version"]["lat"], 50), pct(r["version"]["lat"], 99)
    for key, label in (("version", "peer: GET /version (no store)"), ("get", "GET one ConfigMap"),
                       ("list", "LIST a namespace of 100 ConfigMaps")):
        x = r[key]
        p50, p99, mx = pct(x["lat"], 50), pct(x["lat"], 99), max(x["lat"])
        goal, met = ("p99 <= 5 ms", p99 <= 0.005) if key == "get" else ("", None)
        res.add(sec, f"{label}: p50 / p99 / max",
                f"{ms(p50)} / {ms(p99)} / {ms(mx)}", goal, met)
        cpu_us = x["server_cpu_s"] / x["n"] * 1e6
        res.add(sec, "  server CPU per request; errors; client lag p99",
                f"{cpu_us:.0f} us; {x['errors']}; {ms(pct(x['lag'], 99))}")
        if key != "version":
            res.add(sec, "  p50 / peer p50; p99 / peer p99",
                    f"{p50 / floor50:.2f}x; {p99 / floor99:.2f}x")
        res.raw.setdefault("latency", {})[key] = {
            "n": x["n"], "errors": x["errors"], "p50_s": p50, "p99_s": p99, "max_s": mx,
            "server_cpu_s": x["server_cpu_s"], "client_lag_p99_s": pct(x["lag"], 99)}


# --- 4. 10,000 objects ---------------------------------------------------------------------

def bench_big_list(res: Results, s: Skiff, total: int, reps: int) -> None:
    sec = f"4. {total:,} ConfigMaps (10 namespaces)"
    per_ns = total // 10
    namespaces = [f"bulk-{i}" for i in range(10)]
    for ns in namespaces:
        s.create_namespace(ns)
    log(f"4. creating {total} ConfigMaps through the API (32 concurrent)")
    c0 = s.cpu_seconds()
    took, errors = asyncio.run(create_many(s, namespaces, per_ns, 32))
    create_cpu = s.cpu_seconds() - c0
    rss_after_create = s.rss()
    res.add(sec, f"create {total:,} via POST, 32 concurrent: wall; rate; errors",
            f"{took:.1f} s; {total / took:.0f}/s; {errors}")
    res.add(sec, "  server CPU per create", f"{create_cpu / total * 1e6:.0f} us")

    async def lists() -> dict[str, Any]:
        out: dict[str, list[float]] = {"full": [], "full_parse": [], "paged": [], "pages": [],
                                       "size": [], "full_cpu": [], "paged_cpu": []}
        async with new_session(s, 4) as session:
            for _ in range(reps):
                c0 = s.cpu_seconds()
                t0 = time.perf_counter()
                async with session.get("/api/v1/configmaps") as r:
                    raw = await r.read()
                t1 = time.perf_counter()
                out["full_cpu"].append(s.cpu_seconds() - c0)
                n = len(json.loads(raw)["items"])
                out["full"].append(t1 - t0)
                out["full_parse"].append(time.perf_counter() - t1)
                out["size"].append(len(raw))
                assert n >= total, n
                c0 = s.cpu_seconds()
                t0 = time.perf_counter()
                cont, pages, n = "", 0, 0
                while True:
                    params = {"limit": "500"}
                    if cont:
                        params["continue"] = cont
                    async with session.get("/api/v1/configmaps", params=params) as r:
                        body = await r.json()
                    pages += 1
                    n += len(body["items"])
                    cont = body["metadata"].get("continue", "")
                    if not cont or pages > 1000:
                        break
                out["paged"].append(time.perf_counter() - t0)
                out["paged_cpu"].append(s.cpu_seconds() - c0)
                out["pages"].append(pages)
                assert n >= total, n
        return out

    log("4. full LIST, paged LIST, kubectl get -A")
    lo = asyncio.run(lists())
    kube = [s.kubectl_count_all() for _ in range(reps)]
    kfloor = statistics.median([s.kubectl("version", "--client")[0] for _ in range(3)])
    res.add(sec, f"one full LIST /api/v1/configmaps (JSON), median of {reps}",
            f"{median_minmax(lo['full'])}")
    res.add(sec, "  response size; client json.loads of it",
            f"{mib(lo['size'][0])}; {ms(statistics.median(lo['full_parse']))}")
    res.add(sec, f"LIST limit=500 through all pages ({lo['pages'][0]} pages), median of {reps}",
            median_minmax(lo["paged"]))
    res.add(sec, "  paged / full: wall; server CPU",
            f"{statistics.median(lo['paged']) / statistics.median(lo['full']):.2f}x; "
            f"{statistics.median(lo['paged_cpu']) / statistics.median(lo['full_cpu']):.2f}x")
    res.add(sec, f"kubectl get cm -A --no-headers | wc -l, median of {reps}",
            median_minmax([k[0] for k in kube]) + f" ({kube[0][1]} lines)")
    res.add(sec, "  peer: kubectl version --client", secs(kfloor))
    res.raw["big_list"] = {"total": total, "create_s": took, "create_errors": errors,
                           "create_server_cpu_s": create_cpu, **lo,
                           "kubectl_get_all_s": [k[0] for k in kube], "kubectl_lines": kube[0][1],
                           "rss_after_create": rss_after_create}


# --- 5. watch fan-out ----------------------------------------------------------------------

def bench_watch(res: Results, s: Skiff, watchers: int, writes: int, write_rate: float) -> None:
    sec = f"5. watch fan-out: {watchers} watchers, {writes} writes at {write_rate:.0f}/s"
    ns = "bench-watch"
    s.create_namespace(ns)
    log(f"5. {watchers} watches, {writes} writes")

    async def run() -> dict[str, Any]:
        async with new_session(s, 8) as writer:
            async with writer.get(f"/api/v1/namespaces/{ns}/configmaps") as r:
                rv = (await r.json())["metadata"]["resourceVersion"]
            conn = aiohttp.TCPConnector(limit=0, ssl=s.ssl_context())
            received: list[list[tuple[float, bytes]]] = [[] for _ in range(watchers)]
            done = [asyncio.Event() for _ in range(watchers)]
            async with aiohttp.ClientSession(
                    base_url=f"https://{HOST}:{s.api_port}", connector=conn,
                    headers={"Authorization": f"Bearer {s.token}"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as ws:
                opened: list[aiohttp.ClientResponse] = []

                async def open_one() -> aiohttp.ClientResponse:
                    r = await ws.get(f"/api/v1/namespaces/{ns}/configmaps",
                                     params={"watch": "true", "resourceVersion": rv,
                                             "timeoutSeconds": "120"})
                    assert r.status == 200, r.status
                    return r

                opened = list(await asyncio.wait_for(
                    asyncio.gather(*(open_one() for _ in range(watchers))), 60))

                async def reader(i: int, r: aiohttp.ClientResponse) -> None:
                    got = received[i]
                    while len(got) < writes:
                        line = await r.content.readline()
                        if not line:
                            break
                        got.append((time.time(), line))
                    done[i].set()

                readers = [asyncio.create_task(reader(i, r)) for i, r in enumerate(opened)]
                post_rtt: list[float] = []
                c0 = s.cpu_seconds()
                start = time.perf_counter()
                for j in range(writes):
                    d = start + j / write_rate - time.perf_counter()
                    if d > 0:
                        await asyncio.sleep(d)
                    t0 = time.perf_counter()
                    body = cm_body(f"w-{j:04d}", {"t": repr(time.time())})
                    async with writer.post(f"/api/v1/namespaces/{ns}/configmaps", json=body) as r:
                        await r.read()
                        assert r.status == 201, r.status
                    post_rtt.append(time.perf_counter() - t0)
                try:
                    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done)), 30)
                except TimeoutError:
                    pass
                cpu = s.cpu_seconds() - c0
                for t in readers:
                    t.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                for r in opened:
                    r.close()
        return {"received": received, "post_rtt": post_rtt, "server_cpu_s": cpu}

    r = asyncio.run(run())
    lat: list[float] = []
    complete = 0
    in_order = 0
    for got in r["received"]:
        names = []
        rvs = []
        for t_recv, line in got:
            ev = json.loads(line)
            obj = ev["object"]
            names.append(obj["metadata"]["name"])
            rvs.append(int(obj["metadata"]["resourceVersion"]))
            lat.append(t_recv - float(obj["data"]["t"]))
        if sorted(set(names)) == [f"w-{j:04d}" for j in range(writes)] and len(names) == writes:
            complete += 1
        if rvs == sorted(rvs):
            in_order += 1
    total = watchers * writes
    res.add(sec, "delivery latency (writer's timestamp -> watcher): p50 / p99 / max",
            f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))} / {ms(max(lat))}" if lat else "none")
    res.add(sec, "events delivered / expected; watchers with every event, in order",
            f"{len(lat)} / {total}; {complete}/{watchers}, {in_order}/{watchers}",
            "all", complete == watchers and len(lat) == total)
    res.add(sec, "  peer: the writer's own POST round trip p50 / p99",
            f"{ms(pct(r['post_rtt'], 50))} / {ms(pct(r['post_rtt'], 99))}")
    res.add(sec, "  server CPU per delivered event", f"{r['server_cpu_s'] / max(1, len(lat)) * 1e6:.0f} us")
    res.raw["watch"] = {"watchers": watchers, "writes": writes, "delivered": len(lat),
                        "complete_watchers": complete, "p50_s": pct(lat, 50), "p99_s": pct(lat, 99),
                        "max_s": max(lat) if lat else None, "server_cpu_s": r["server_cpu_s"],
                        "post_rtt_p50_s": pct(r["post_rtt"], 50)}


# --- 6. memory -----------------------------------------------------------------------------

def _peer_rss(code: str) -> int:
    p = subprocess.Popen([sys.executable, "-c", code + "; import sys, time; print('ok', flush=True); "
                          "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=child_env())
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"ok"
        return int(psutil.Process(p.pid).memory_info().rss)
    finally:
        assert p.stdin is not None
        p.stdin.close()
        p.wait(10)


def bench_memory(res: Results, idle: dict[str, Any], after: dict[str, Any] | None,
                 after_lists: dict[str, Any] | None, total: int) -> None:
    sec = "6. memory (skiff process + children)"

    def fmt(m: dict[str, Any]) -> str:
        return f"{mib(m['rss'])} ({mib(m['pss'])}; {mib(m['uss'])})"

    res.add(sec, "idle RSS after ready, nothing deployed (PSS; USS)", fmt(idle), "<= 80 MB",
            idle["rss"] <= 80e6)
    for p in idle["procs"]:
        res.add(sec, f"  of which pid {p['pid']} {p['cmd'][:40]}",
                f"{mib(p['rss'])} ({mib(p['pss'])}; {mib(p['uss'])})")
    if after is not None:
        res.add(sec, f"RSS after creating {total:,} ConfigMaps (PSS; USS)", fmt(after))
    if after_lists is not None:
        res.add(sec, "RSS after the LIST and watch runs too (PSS; USS)", fmt(after_lists))
    bare = _peer_rss("pass")
    imports = _peer_rss(IMPORTS_OF_UP)
    res.add(sec, "  peer: bare python interpreter RSS", mib(bare))
    res.add(sec, "  peer: python with what `skiff up` imports, RSS", mib(imports))
    res.add(sec, "  idle RSS of the skiff process alone / import-only peer",
            f"{idle['procs'][0]['rss'] / imports:.2f}x")
    res.raw["memory"] = {"idle": idle, "after_create": after, "after_lists": after_lists,
                         "python_bare": bare, "python_imports": imports}


# --- main ----------------------------------------------------------------------------------

def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} CPUs ({model or 'unknown'}), {mem:.0f} GiB RAM, load avg "
            f"{os.getloadavg()[0]:.2f}, Python {pyplatform.python_version()}, "
            f"kubectl {kubectl_version()}; skiff {skiff_revision()}")


def skiff_revision() -> str:
    """The commit of the skiff tree being measured, and whether it has uncommitted changes."""
    import skiff
    root = Path(skiff.__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}" if head else "?"


def kubectl_version() -> str:
    try:
        out = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True,
                             text=True, timeout=30).stdout
        return str(json.loads(out)["clientVersion"]["gitVersion"])
    except Exception:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smaller counts and shorter runs (a smoke test of the benchmark itself)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--only", default="123456", help="sections to run, e.g. 36 (default: all)")
    ap.add_argument("--wrap", default="",
                    help="a command put in front of the benchmarked `skiff up` (sections 2-6), e.g. "
                         f"'{sys.executable} -m cProfile -o /tmp/up.prof' to profile it (skews the figures)")
    ap.add_argument("--py-spy", type=Path, metavar="DIR",
                    help="record a py-spy profile of skiff during sections 3, 4 and 5 into DIR "
                         "(raw collapsed stacks) and print their top frames; skews the figures")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home (its log) afterwards")
    a = ap.parse_args()
    if shutil.which("kubectl") is None:
        print("kubectl is not on PATH", file=sys.stderr)
        return 2
    q = a.quick
    cfg = {"start_reps": 2 if q else 5, "apply_reps": 1 if q else 3, "rate": 200.0,
           "duration": 3.0 if q else 20.0, "total": 1000 if q else 10000, "list_reps": 1 if q else 3,
           "watchers": 20 if q else 100, "writes": 50 if q else 200, "write_rate": 100.0}
    res = Results()
    res.raw["config"] = cfg
    res.raw["machine"] = machine()
    res.raw["date"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    log(f"machine: {res.raw['machine']}")
    tmp = Path(tempfile.mkdtemp(prefix="skiff-bench-cp-"))
    global PYCACHE
    PYCACHE = str(tmp / "pycache")
    s: Skiff | None = None
    t_all = time.perf_counter()
    try:
        if "1" in a.only:
            bench_startup(res, tmp, cfg["start_reps"])
        if set(a.only) & set("23456"):
            s = Skiff(tmp / "main", wrapper=shlex.split(a.wrap))
            s.root.mkdir()
            s.start(timeout=60)
            time.sleep(2.0)                      # let start-up work settle before idle RSS
            idle = s.rss()
            after = after_lists = None
            if "2" in a.only:
                bench_apply(res, s, cfg["apply_reps"])
            if a.py_spy:
                a.py_spy.mkdir(parents=True, exist_ok=True)
            if "3" in a.only:
                with Spy(a.py_spy, s, "3-latency"):
                    bench_latency(res, s, cfg["rate"], cfg["duration"])
            if "4" in a.only:
                with Spy(a.py_spy, s, "4-big-list"):
                    bench_big_list(res, s, cfg["total"], cfg["list_reps"])
                after = res.raw["big_list"]["rss_after_create"]
            if "5" in a.only:
                with Spy(a.py_spy, s, "5-watch"):
                    bench_watch(res, s, cfg["watchers"], cfg["writes"], cfg["write_rate"])
            if "4" in a.only:
                after_lists = s.rss()
            if "6" in a.only:
                bench_memory(res, idle, after, after_lists, cfg["total"])
    finally:
        if s is not None:
            s.stop()
        if a.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"skiff control-plane benchmark ({'quick' if q else 'full'}), {res.raw['date']}")
    print(f"machine: {res.raw['machine']}")
    print(res.table())
    print(f"\n(total {time.perf_counter() - t_all:.0f} s)")
    if a.json:
        a.json.write_text(json.dumps(res.raw, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
