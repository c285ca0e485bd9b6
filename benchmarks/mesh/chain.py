"""The mesh chain against an nginx mTLS chain and the direct call, from inside a meshed pod.

Not part of the test suite. Needs root (network namespaces, `ip netns exec`), wrk and nginx,
which this script does not install:

    apt-get install -y wrk nginx
    python benchmarks/mesh/chain.py                  # ~3 minutes
    python benchmarks/mesh/chain.py --quick          # ~1.5 minutes, a smoke test of the benchmark
    python benchmarks/mesh/chain.py --rounds 5 --duration 6 --json /tmp/chain.json

What runs: one `skiff up --pod-network namespaces` of this tree (PYTHONPATH=src) in a fresh
home on free loopback ports, waiting (--lock-wait) while another skiff owns the pod network.
A mesh (SMCP with mTLS, so PeerAuthentication STRICT; an SMMR with the namespace mesh-bench),
and in it two meshed pods (sidecar.istio.io/inject: "true"):
  - web: docker.io/openshift/hello-openshift on 8080 (the built-in app, uvloop + httptools);
    inbound 8444 and 8081 are not captured (excludeInboundPorts);
  - load: the client pod (sleep); outbound 8444 and 8081 are not captured
    (excludeOutboundPorts). Every load generator but one runs in ITS network namespace
    (`ip netns exec`), so what it sends to the web pod's 8080 is captured by its sidecar.
The paths, all ending at the same app, all but direct-lo starting in the load pod:
  - mesh: load generator -> web-IP:8080, captured -> the load pod's sidecar (15001) -> mTLS
    with the load pod's SPIFFE certificate -> the web pod's sidecar (15006: mTLS terminated,
    AuthorizationPolicy decided) -> 127.0.0.1:8080 in the web pod. Both sidecars are the node
    proxy in skiff's data-plane process (one process, one core at most);
  - nginx: load generator -> nginx A (127.0.0.1 in the load pod; proxy_pass https to a
    keep-alive upstream, proxy_ssl_certificate/key, proxy_ssl_verify on) -> web-IP:8444 ->
    nginx B (in the web pod; ssl_verify_client on) -> keep-alive upstream 127.0.0.1:8080.
    Certificates from the cryptography library (a CA, a server and a client certificate,
    P-256). One worker each, as each sidecar of a pod would be one Envoy;
  - direct-net: load generator -> web-IP:8081, a second hello-openshift process of the same
    code started by this script in the web pod's namespace (not captured): the network floor;
  - direct-lo: load generator in the web pod's namespace -> 127.0.0.1:8080, the pod's own app.
Two kinds of run:
  - throughput: wrk -t1 -c<conns> for <duration> s per path, in interleaved rounds (the order
    rotates every round); the ratio is the median over rounds of each round's mesh/nginx;
    proxy CPU per request from /proc (the data-plane process; nginx A's and B's workers);
  - latency: a fixed rate (default 1,000 requests/s) for <seconds> over 8 keep-alive
    connections (this folder's _common.py, an open-loop asyncio client, run in the same
    namespace), p50/p99 per path; added per hop = (chain p50 - direct-net p50) / 2.
Goals (mesh issue): mesh >= 0.7x the nginx mTLS chain's requests/s; <= +0.5 ms p50 added
per hop at about 1,000 requests/s. Only loopback and the pods' addresses receive traffic.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    SRC,
    Skiff,
    fixed_rate_in,
    log,
    mesh_manifest,
    netns_of_ip,
    pod_ips,
    skiff_cli,
    wait_rollout,
    wrk_in,
)

NS = "mesh-bench"
NGINX_A_PORT = 18080
NGINX_B_PORT = 8444          # the SMCP excludes inbound 8444 (the guide's metrics port)
DIRECT_PORT = 8081
SERVER_NAME = f"web.{NS}.svc.cluster.local"

PODS = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations:
        sidecar.istio.io/inject: "true"
        traffic.sidecar.istio.io/excludeInboundPorts: "{NGINX_B_PORT},{DIRECT_PORT},8022"
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: docker.io/openshift/hello-openshift
          # declared: without it the app's $PORT is the pod's first declared port, which
          # is the injected istio-proxy's 15090 (skiff node/ports.py container_port)
          ports: [{{containerPort: 8080}}]
          readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: load, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: load}}}}
  template:
    metadata:
      labels: {{app: load}}
      annotations:
        sidecar.istio.io/inject: "true"
        traffic.sidecar.istio.io/excludeOutboundPorts: "{NGINX_B_PORT},{DIRECT_PORT}"
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: load
          image: docker.io/curlimages/curl
          command: [sleep, infinity]
"""

NGINX_COMMON = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
{body}
}}
"""

NGINX_A = """
  upstream peer {{ server {web_ip}:{b_port}; keepalive 256; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{a_port};
    keepalive_requests 10000000;
    location / {{
      proxy_pass https://peer;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_ssl_certificate {pki}/client.crt;
      proxy_ssl_certificate_key {pki}/client.key;
      proxy_ssl_trusted_certificate {pki}/ca.crt;
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      proxy_ssl_name {server_name};
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      proxy_ssl_protocols TLSv1.2 TLSv1.3;
    }}
  }}
"""

NGINX_B = """
  upstream app {{ server 127.0.0.1:8080; keepalive 256; keepalive_requests 10000000; }}
  server {{
    listen 0.0.0.0:{b_port} ssl;
    keepalive_requests 10000000;
    ssl_certificate {pki}/server.crt;
    ssl_certificate_key {pki}/server.key;
    ssl_client_certificate {pki}/ca.crt;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-Client-Cert "Subject=$ssl_client_s_dn";
    }}
  }}
"""


# --- certificates -------------------------------------------------------------------------

def make_pki(d: Path, server_name: str, server_ip: str) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write(name: str, k: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        (d / f"{name}.key").write_bytes(k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mesh-bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write("ca", ca_key, ca)

    def leaf(name: str, sans: list[x509.GeneralName], eku: Any) -> None:
        k = key()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(k.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        write(name, k, cert)

    leaf("server", [x509.DNSName(server_name),
                    x509.IPAddress(ipaddress.ip_address(server_ip)),
                    x509.UniformResourceIdentifier(f"spiffe://cluster.local/ns/{NS}/sa/web")],
         ExtendedKeyUsageOID.SERVER_AUTH)
    leaf("client", [x509.UniformResourceIdentifier(f"spiffe://cluster.local/ns/{NS}/sa/load")],
         ExtendedKeyUsageOID.CLIENT_AUTH)


# --- helpers ------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    import psutil
    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def curl_in(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, "curl", "-sS", "-m", "5", *args],
                          capture_output=True, text=True, timeout=15)


def stop_proc(p: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM) -> None:
    if p is None or p.poll() is not None:
        return
    p.send_signal(sig)             # our own child, by its PID
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def wait_http(netns: str, url: str, what: str, timeout: float = 15) -> str:
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        r = curl_in(netns, "-i", url)
        if r.returncode == 0 and " 200 " in r.stdout.split("\r\n", 1)[0]:
            return r.stdout
        last = r.stdout + r.stderr
        time.sleep(0.2)
    raise RuntimeError(f"{what}: {url} from {netns} did not answer 200: {last[-500:]}")


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# --- main ---------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16, help="wrk -c")
    ap.add_argument("--rate", type=float, default=1000, help="fixed-rate requests/s")
    ap.add_argument("--rate-seconds", type=float, default=8)
    ap.add_argument("--rate-rounds", type=int, default=2)
    ap.add_argument("--lock-wait", type=float, default=600)
    ap.add_argument("--dataplane-workers", type=int, default=1,
                    help="skiff up --dataplane-workers (the sidecars' listeners use SO_REUSEPORT)")
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s, 3 s fixed rate")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--perf", type=Path, metavar="DIR",
                    help="after the runs, `perf record -g` of the data plane during a mesh run "
                         "and of nginx A and B during an nginx run (perf.data files; "
                         "`perf report -i` them)")
    ap.add_argument("--strace", type=Path, metavar="DIR",
                    help="after the runs, `strace -f -c` of the data plane during a mesh run and "
                         "of nginx A and B during an nginx run: system calls per request "
                         "(<name>.strace.txt; strace slows the traced processes, so only the "
                         "counts mean anything)")
    ap.add_argument("--py-spy", type=Path, metavar="DIR",
                    help="after the runs, a py-spy profile (raw folded stacks) of the data-plane "
                         "process during one more mesh run")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration, args.rate_seconds, args.rate_rounds = 1, 3, 3, 1
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    for tool in ("wrk", "nginx", "curl"):
        if not shutil.which(tool):
            print(f"{tool} is missing: apt-get install -y wrk nginx curl", file=sys.stderr)
            return 2

    tmp = Path(tempfile.mkdtemp(prefix="skiff-mesh-chain-"))
    s = Skiff("namespaces", root=tmp)
    if args.dataplane_workers > 1:
        s.ports["--dataplane-workers"] = args.dataplane_workers   # one more `skiff up` flag
    procs: list[subprocess.Popen[Any]] = []
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "machine": {"nproc": os.cpu_count(),
                                          "python": platform.python_version(),
                                          "load_start": os.getloadavg()},
                              "args": {k: (str(v) if isinstance(v, Path) else v)
                                       for k, v in vars(args).items()}}
    try:
        log("starting skiff (namespaces) ...")
        s.start(lock_deadline_s=args.lock_wait)
        skiff_cli(s, "apply", "-f", "-", input=mesh_manifest(NS))
        s.kubectl("apply", "-f", "-", input=PODS)
        for d in ("web", "load"):
            wait_rollout(s, NS, d)
        web_ip = pod_ips(s, NS, "app=web")[0]
        load_ip = pod_ips(s, NS, "app=load")[0]
        web_ns, load_ns = netns_of_ip(web_ip), netns_of_ip(load_ip)
        if not web_ns or not load_ns:
            raise RuntimeError(f"no netns for {web_ip} / {load_ip}")
        ready = s.kubectl("get", "pods", "-n", NS, "--no-headers")
        log(f"pods:\n{ready.strip()}\nweb {web_ip} ({web_ns}), load {load_ip} ({load_ns})")
        dp_pids = [int(f.read_text().split()[0]) for f in sorted(s.home.glob("dataplane*.pid"))]
        dp_pid = dp_pids[0]

        # the mesh path is the mesh: captured, mTLS, server: envoy
        mesh_url = f"http://{web_ip}:8080/"
        head = wait_http(load_ns, mesh_url, "mesh path", 30)
        if "server: envoy" not in head.lower():
            raise RuntimeError(f"the mesh path did not go through the sidecar:\n{head}")
        log(f"mesh path ok ({head.splitlines()[0].strip()}, server: envoy)")

        # the direct-net app: same code, a second process in the web pod's namespace
        env = dict(os.environ, PORT=str(DIRECT_PORT),
                   PYTHONPATH=f"{SRC}:{os.environ.get('PYTHONPATH', '')}".rstrip(":"))
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", web_ns, sys.executable, "-m",
             "skiff.node.images.hello_openshift"], env=env,
            stdout=(tmp / "direct.log").open("ab"), stderr=subprocess.STDOUT))
        direct_url = f"http://{web_ip}:{DIRECT_PORT}/"
        head = wait_http(load_ns, direct_url, "direct-net app")
        if "server: envoy" in head.lower():
            raise RuntimeError("the direct-net path went through the sidecar")

        # the nginx mTLS chain
        pki = tmp / "pki"
        pki.mkdir()
        make_pki(pki, SERVER_NAME, web_ip)
        ngx: dict[str, subprocess.Popen[Any]] = {}
        for name, netns, body in (("b", web_ns, NGINX_B), ("a", load_ns, NGINX_A)):
            d = tmp / f"nginx-{name}"
            d.mkdir()
            (d / "nginx.conf").write_text(NGINX_COMMON.format(dir=d, body=body.format(
                web_ip=web_ip, a_port=NGINX_A_PORT, b_port=NGINX_B_PORT, pki=pki,
                server_name=SERVER_NAME)))
            p = subprocess.Popen(["ip", "netns", "exec", netns, "nginx", "-c",
                                  str(d / "nginx.conf"), "-p", str(d)],
                                 stdout=(d / "out.log").open("ab"), stderr=subprocess.STDOUT)
            procs.append(p)
            ngx[name] = p
        nginx_url = f"http://127.0.0.1:{NGINX_A_PORT}/"
        head = wait_http(load_ns, nginx_url, "nginx chain")
        nocert = curl_in(load_ns, "-k", "-o", "/dev/null", "-w", "%{http_code}",
                         f"https://{web_ip}:{NGINX_B_PORT}/")
        log(f"nginx chain ok; nginx B without a client certificate -> {nocert.stdout}")
        ngx_workers = children(ngx["a"].pid) + children(ngx["b"].pid)

        paths: dict[str, tuple[str, str, list[int]]] = {
            "direct-lo": (web_ns, "http://127.0.0.1:8080/", []),
            "direct-net": (load_ns, direct_url, []),
            "nginx mTLS chain": (load_ns, nginx_url, ngx_workers),
            "mesh chain": (load_ns, mesh_url, dp_pids),
        }
        # warm-up (one second each: TLS sessions, keep-alive pools, caches)
        for netns, url, _ in paths.values():
            wrk_in(netns, url, 1, args.connections)

        names = list(paths)
        rounds: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            if r % 2:
                order.reverse()
            for name in order:
                netns, url, pids = paths[name]
                cpu0 = sum(cpu_seconds(p) for p in pids)
                res = wrk_in(netns, url, args.duration, args.connections)
                cpu1 = sum(cpu_seconds(p) for p in pids)
                if pids:
                    res["proxy_cpu_us"] = (cpu1 - cpu0) / res["requests"] * 1e6
                rounds[name].append(res)
                log(f"round {r + 1} {name}: {res['rps']:,.0f} req/s p50 {res['p50_ms']:.3f} "
                    f"p99 {res['p99_ms']:.3f} ms"
                    + (f", proxy CPU {res['proxy_cpu_us']:.1f} us/req" if pids else "")
                    + (f", socket errors {res['socket_errors']}" if res["socket_errors"] else ""))
        ratios = [m["rps"] / n["rps"] for m, n in zip(rounds["mesh chain"],
                                                      rounds["nginx mTLS chain"], strict=True)]

        fixed: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for r in range(args.rate_rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                netns, url, _ = paths[name]
                hostport = url.split("//", 1)[1].rstrip("/")
                host, port = hostport.rsplit(":", 1)
                res = fixed_rate_in(netns, host, int(port), args.rate, args.rate_seconds)
                fixed[name].append(res)
                log(f"fixed rate {r + 1} {name}: {res['rate']:.0f}/s p50 {res['p50_ms']:.3f} "
                    f"p99 {res['p99_ms']:.3f} max {res['max_ms']:.1f} ms late {res['late']} "
                    f"non-200 {res['non_200']}")
        if args.py_spy:
            args.py_spy.mkdir(parents=True, exist_ok=True)
            netns, url, _ = paths["mesh chain"]
            out = args.py_spy / "dataplane-mesh-chain.txt"
            spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "-r", "200", "-d",
                                    str(args.duration), "-p", str(dp_pid), "-f", "raw", "-o",
                                    str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            procs.append(spy)
            res = wrk_in(netns, url, args.duration, args.connections)
            spy.wait(30)
            log(f"py-spy of the data plane during a mesh run ({res['rps']:,.0f} req/s): {out}")
        if args.perf:
            args.perf.mkdir(parents=True, exist_ok=True)
            for name, pids in (("mesh chain", dp_pids), ("nginx mTLS chain", ngx_workers)):
                netns, url, _ = paths[name]
                out = args.perf / f"{name.split()[0]}.perf.data"
                rec = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", str(out),
                                        "-p", ",".join(map(str, pids)), "--", "sleep",
                                        str(args.duration)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(rec)
                res = wrk_in(netns, url, args.duration, args.connections)
                rec.wait(60)
                log(f"perf of {name} ({res['rps']:,.0f} req/s, {res['requests']:,} requests): "
                    f"{out}")
        if args.strace:
            args.strace.mkdir(parents=True, exist_ok=True)
            for name, pids in (("mesh chain", dp_pids), ("nginx mTLS chain", ngx_workers)):
                netns, url, _ = paths[name]
                out = args.strace / f"{name.split()[0]}.strace.txt"
                cmd = ["strace", "-f", "-c", "-o", str(out)]
                for p in pids:
                    cmd += ["-p", str(p)]
                tr = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(tr)
                time.sleep(0.5)                 # attached before the first request
                res = wrk_in(netns, url, args.duration, args.connections)
                stop_proc(tr, signal.SIGINT)    # strace -c writes its table on SIGINT
                log(f"strace of {name} ({res['rps']:,.0f} req/s, {res['requests']:,} requests): "
                    f"{out}")
                (args.strace / f"{name.split()[0]}.requests").write_text(str(res["requests"]))
        result.update(web_ip=web_ip, load_ip=load_ip, rounds=rounds, ratios=ratios,
                      fixed=fixed)
        result["machine"]["load_end"] = os.getloadavg()
    finally:
        for p in reversed(procs):
            stop_proc(p)
        s.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def print_report(r: dict[str, Any]) -> None:
    rounds, fixed = r["rounds"], r["fixed"]
    print(f"\nmesh chain benchmark, {r['started']}, nproc {r['machine']['nproc']}, Python "
          f"{r['machine']['python']}, load {r['machine']['load_start'][0]:.2f} -> "
          f"{r['machine']['load_end'][0]:.2f}; data-plane workers "
          f"{r['args']['dataplane_workers']}; wrk -c{r['args']['connections']} "
          f"{r['args']['duration']} s x {r['args']['rounds']} rounds (median)")
    print(f"{'path':<18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'proxy CPU us/req':>17}"
          f"   | fixed {r['args']['rate']:.0f}/s: {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for name in rounds:
        rs = rounds[name]
        cpu = [x["proxy_cpu_us"] for x in rs if "proxy_cpu_us" in x]
        fr = fixed[name]
        print(f"{name:<18} {med([x['rps'] for x in rs]):>9,.0f} "
              f"{med([x['p50_ms'] for x in rs]):>8.3f} {med([x['p99_ms'] for x in rs]):>8.3f} "
              f"{(f'{med(cpu):.1f}' if cpu else ''):>17}   |        "
              f"{med([x['p50_ms'] for x in fr]):>7.3f} {med([x['p99_ms'] for x in fr]):>7.3f} "
              f"{max(x['max_ms'] for x in fr):>7.1f}")
    ratio = med(r["ratios"])
    print(f"\nratio mesh / nginx mTLS chain req/s: {ratio:.2f}x (per round "
          f"{', '.join(f'{x:.2f}' for x in r['ratios'])}); goal >= 0.7x: "
          f"{'met' if ratio >= 0.7 else 'MISSED'}")
    base = med([x["p50_ms"] for x in fixed["direct-net"]])
    for name in ("mesh chain", "nginx mTLS chain"):
        hop = (med([x["p50_ms"] for x in fixed[name]]) - base) / 2
        goal = f"; goal <= +0.5 ms: {'met' if hop <= 0.5 else 'MISSED'}" \
            if name == "mesh chain" else ""
        print(f"added p50 per hop at {r['args']['rate']:.0f}/s, {name}: +{hop:.3f} ms "
              f"((chain p50 - direct-net p50) / 2){goal}")


if __name__ == "__main__":
    sys.exit(main())
