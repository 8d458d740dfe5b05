"""The benchmark's cases, in groups that share a server and a topology.

A Group measures all its cases in one set-up of one configuration (redis-benchmark's GET and
SET, for instance, against one redis-server) and returns {case name: value}. The driver runs
each group's configurations in alternation, round after round.
"""

import json
import os
import re
import subprocess
import sys
import time

from procs import BenchError, shim_lines, tail, wait_listen
from topology import SUITES

HERE = os.path.dirname(os.path.abspath(__file__))
NETPROBE = [sys.executable, os.path.join(HERE, "netprobe.py")]

# name: (unit, higher_is_better, what it measures)
CASES = {
    "redis-get-c1": ("ops/s", True, "redis-benchmark GET, 1 client"),
    "redis-get-c50": ("ops/s", True, "redis-benchmark GET, 50 clients"),
    "redis-set-c1": ("ops/s", True, "redis-benchmark SET, 1 client"),
    "redis-set-c50": ("ops/s", True, "redis-benchmark SET, 50 clients"),
    "nginx-keepalive-1k": ("req/s", True, "wrk, 20 kept-alive connections, 1 KiB page"),
    "nginx-1m": ("bytes/s", True, "wrk, 4 kept-alive connections, 1 MiB file"),
    "conn-per-request": ("handshakes/s", True, "wrk with Connection: close, 20 connections"),
    "bulk-stream": ("bytes/s", True, "iperf3, one stream, AES-256-GCM"),
    "bulk-stream-cpu-client": ("CPU s/GiB", False, "bulk-stream: CPU on the sending end"),
    "bulk-stream-cpu-server": ("CPU s/GiB", False, "bulk-stream: CPU on the receiving end"),
    "bulk-stream-chacha": ("bytes/s", True, "iperf3, one stream, ChaCha20-Poly1305"),
    "bulk-stream-chacha-cpu-client": ("CPU s/GiB", False, "bulk-stream-chacha: sending end"),
    "bulk-stream-chacha-cpu-server": ("CPU s/GiB", False, "bulk-stream-chacha: receiving end"),
    "rtt-small": ("us", False, "64-byte request/response round trip, median"),
    "rtt-small-p99": ("us", False, "64-byte request/response round trip, 99th percentile"),
    "passthrough-startup": ("ms", False, "start-up of /bin/true (no TCP)"),
    "passthrough-file-read": ("s", False, "dd bs=4k of a page-cached file (no TCP)"),
    "idle-conn-memory": ("bytes/conn", False, "server's resident size per idle connection"),
    "idle-conn-memory-client": ("bytes/conn", False, "client's resident size per idle connection"),
    "idle-conn-memory-400": ("bytes/conn", False, "idle-conn-memory with 400 connections"),
    "idle-conn-memory-400-client": ("bytes/conn", False, "the same, client end"),
}


class Context:
    """What a group's measurement gets: the run, this measurement's processes, the
    configuration, the sizes (quick or full) and a place for notes."""

    def __init__(self, bench, procs, config, sizes, notes):
        self.bench, self.procs, self.config, self.sizes = bench, procs, config, sizes
        self._notes = notes
        self.failures = []  # steps of this measurement that failed (see each())

    def note(self, case, text):
        self._notes.setdefault(case, {}).setdefault(self.config, []).append(text)

    def link(self, server, suite="aes"):
        return self.bench.open_link(self.procs, self.config, server, suite)

    def each(self, steps):
        """Runs STEPS ({case: function returning its value}) each on its own: a failed step is
        recorded against its case, and the others still run. Returns the values got."""
        values = {}
        for case, step in steps.items():
            try:
                values[case] = step()
            except BenchError as e:
                self.failures.append({"case": case, "error": " ".join(str(e).split())[:600]})
        return values

    def run_client(self, name, argv, timeout=300):
        return self.procs.run(name, argv, group=self.bench.client_cpu, timeout=timeout)


class Server:
    """A server program: ARGV(bench, port, native_suite) gives its command (native_suite set:
    with its own TLS in that suite)."""

    def __init__(self, name, argv):
        self.name, self.argv = name, argv

    def start(self, bench, procs, port, group, wrap, native_suite):
        argv = self.argv(bench, port, native_suite)
        proc = procs.start(self.name, wrap(argv) if wrap else argv, group=group)
        wait_listen(port, proc, self.name)
        return proc


# --- redis ----------------------------------------------------------------------------------------
def redis_argv(bench, port, native):
    d = os.path.join(bench.work, "redis")
    os.makedirs(d, exist_ok=True)
    argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", "", "--dir", d]
    if not native:
        return argv + ["--port", str(port)]
    return argv + ["--port", "0", "--tls-port", str(port), "--tls-cert-file", bench.pem("server"),
                   "--tls-key-file", bench.key("server"), "--tls-ca-cert-file", bench.ca,
                   "--tls-auth-clients", "yes", "--tls-protocols", "TLSv1.3",
                   "--tls-ciphersuites", SUITES[native]["tls"]]


def measure_redis(ctx):
    link = ctx.link(Server("redis-server", redis_argv))
    values = {}
    for clients in (1, 50):
        argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(link.port), "-c", str(clients),
                "-n", str(ctx.sizes[f"redis_n_c{clients}"]), "-t", "set,get", "--csv"]
        if link.tls:
            argv += ["--tls", "--cert", ctx.bench.pem("alice"), "--key", ctx.bench.key("alice"),
                     "--cacert", ctx.bench.ca]
        out = ctx.run_client(f"redis-benchmark-c{clients}", link.wrap(argv))
        for row in re.finditer(r'^"(GET|SET)","([0-9.]+)"', out, re.M):
            values[f"redis-{row[1].lower()}-c{clients}"] = float(row[2])
    if len(values) != 4:
        raise BenchError(f"redis-benchmark printed {len(values)} of 4 results")
    return values


# --- nginx ----------------------------------------------------------------------------------------
def nginx_argv(bench, port, native):
    ng = os.path.join(bench.work, "nginx")
    www = os.path.join(ng, "www")
    if not os.path.exists(www):
        os.makedirs(os.path.join(ng, "tmp"))
        os.makedirs(www)
        with open(os.path.join(www, "small.bin"), "wb") as f:
            f.write(os.urandom(1024))
        with open(os.path.join(www, "big.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
    tls = ""
    if native:
        tls = (f"ssl_certificate {bench.pem('server')}; ssl_certificate_key {bench.key('server')};"
               f" ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites {SUITES[native]['tls']};"
               " ssl_session_tickets off; ssl_session_cache off;")
    conf = os.path.join(ng, f"nginx-{port}.conf")
    with open(conf, "w") as f:
        # As in tests/integration/compat/programs/nginx.sh: workers run as root (the agent
        # serves its own uid), two workers, epoll, sendfile, long keepalive.
        f.write(f"""user root;
worker_processes 2;
daemon off;
pid {ng}/nginx-{port}.pid;
error_log stderr warn;
events {{ use epoll; multi_accept on; worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 60;
    keepalive_requests 1000000;
    client_body_temp_path {ng}/tmp/body;
    proxy_temp_path {ng}/tmp/proxy;
    fastcgi_temp_path {ng}/tmp/fastcgi;
    uwsgi_temp_path {ng}/tmp/uwsgi;
    scgi_temp_path {ng}/tmp/scgi;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port}{' ssl' if native else ''};
        {tls}
        root {www};
    }}
}}
""")
    return ["nginx", "-e", "stderr", "-p", ng, "-c", conf]


_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def wrk(ctx, link, name, path, connections, extra=()):
    scheme = "https" if link.tls else "http"
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{ctx.sizes['seconds']}s",
            *extra, f"{scheme}://127.0.0.1:{link.port}/{path}"]
    log = os.path.join(ctx.bench.logs, f"wrk-{name}.log")
    start = os.path.getsize(log) if os.path.exists(log) else 0
    out = ctx.run_client(f"wrk-{name}", link.wrap(argv))
    with open(log, errors="replace") as f:
        f.seek(start)
        for line in shim_lines(f.readlines())[:3]:
            ctx.note(name, f"wrk's stderr: {line}")
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    transfer = re.search(r"Transfer/sec:\s+([0-9.]+)([KMGT]?B)", out)
    if not rate or not transfer:
        raise BenchError(f"wrk printed no rate: {out.strip()[-300:]}")
    errors = re.search(r"Socket errors:.*|Non-2xx.*", out)
    if errors:
        ctx.note(name, f"wrk: {errors[0].strip()}")
    return float(rate[1]), float(transfer[1]) * _UNITS[transfer[2]]


def measure_nginx(ctx):
    link = ctx.link(Server("nginx", nginx_argv))
    return ctx.each({
        "nginx-keepalive-1k": lambda: wrk(ctx, link, "nginx-keepalive-1k", "small.bin", 20)[0],
        "nginx-1m": lambda: wrk(ctx, link, "nginx-1m", "big.bin", 4)[1],
        "conn-per-request": lambda: wrk(ctx, link, "conn-per-request", "small.bin", 20,
                                        ("-H", "Connection: close"))[0],
    })


# --- bulk -----------------------------------------------------------------------------------------
def measure_bulk(suite, case):
    def measure(ctx):
        link = ctx.link(Server("iperf3", lambda b, port, n: ["iperf3", "-s", "-1", "-p",
                                                              str(port)]), suite)
        b = ctx.bench
        before = (b.client_cpu.seconds(), b.server_cpu.seconds())
        out = ctx.run_client("iperf3", link.wrap(["iperf3", "-c", "127.0.0.1", "-p",
                                                  str(link.port), "-t",
                                                  str(ctx.sizes["seconds"]), "-J"]))
        after = (b.client_cpu.seconds(), b.server_cpu.seconds())
        got = json.loads(out)["end"]["sum_received"]
        values = {case: got["bytes"] / got["seconds"]}
        if before[0] is not None:
            gib = got["bytes"] / (1 << 30)
            values[f"{case}-cpu-client"] = (after[0] - before[0]) / gib
            values[f"{case}-cpu-server"] = (after[1] - before[1]) / gib
        return values
    return measure


# --- round trip -----------------------------------------------------------------------------------
def measure_rtt(ctx):
    link = ctx.link(Server("echo-server", lambda b, port, n: NETPROBE + ["echo-server",
                                                                        str(port)]))
    out = ctx.run_client("rtt", link.wrap(NETPROBE + ["rtt", "127.0.0.1", str(link.port),
                                                      str(ctx.sizes["rtt_count"]), "64"]))
    got = json.loads(out)
    return {"rtt-small": got["median_us"], "rtt-small-p99": got["p99_us"]}


# --- programs that seal nothing -------------------------------------------------------------------
def spawn_seconds(argv, env, times):
    """Wall seconds for TIMES runs of ARGV, one after another."""
    start = time.perf_counter()
    for _ in range(times):
        pid = os.posix_spawn(argv[0], argv, env)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise BenchError(f"{argv} failed ({status})")
    return time.perf_counter() - start


def measure_passthrough(ctx):
    if ctx.config == "sealsock":
        env = ctx.bench.preload_env()
    else:
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "SEALSOCK_CONFIG")}
    n = ctx.sizes["startup_runs"]
    startup_ms = spawn_seconds(["/bin/true"], env, n) / n * 1000
    big = os.path.join(ctx.bench.work, "passthrough.bin")
    if not os.path.exists(big):
        with open(big, "wb") as f:
            for _ in range(ctx.sizes["file_mib"]):
                f.write(os.urandom(1 << 20))
    dd = ["/bin/dd", f"if={big}", "of=/dev/null", "bs=4k", "status=none"]
    spawn_seconds(dd, env, 1)  # into the page cache
    read_s = spawn_seconds(dd, env, 3) / 3
    return {"passthrough-startup": startup_ms, "passthrough-file-read": read_s}


# --- memory ---------------------------------------------------------------------------------------
def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for {pid}")


def measure_memory(case, total):
    """CASE: per-connection resident size between 32 and TOTAL idle connections (TOTAL a key
    of the sizes or a number)."""
    return lambda ctx: hold_connections(ctx, case, ctx.sizes.get(total, total))


# A process here may hold at most 20,000 descriptors (the hard limit, which even root cannot
# raise on this machine), and a sealed connection holds two: the program's socket and the shim's
# anchor. So at most this many connections are held by one process; more are spread evenly over
# several server and client pairs, the same in every configuration.
CONNS_PER_PROCESS = 5000


def hold_connections(ctx, case, total):
    pairs = -(-total // CONNS_PER_PROCESS)
    warm = 32
    holders = []  # (server pid, client)
    for i in range(pairs):
        server = Server(f"hold-server-{i}",
                        lambda b, port, n: NETPROBE + ["hold-server", str(port)])
        link = ctx.link(server)
        srv_pid = ctx.procs.started[-1].pid
        share = total // pairs + (1 if i < total % pairs else 0)
        client = ctx.procs.start(f"hold-{i}", link.wrap(
            NETPROBE + ["hold", "127.0.0.1", str(link.port), str(warm), str(share)]),
            group=ctx.bench.client_cpu, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        holders.append((srv_pid, client))
    samples = []
    for step in ("warm", "full"):
        for _, client in holders:
            line = client.stdout.readline().decode().strip()
            if line != step:
                raise BenchError(f"the holding client said {line!r}, not {step!r}: "
                                 f"{tail(client.log, 1)}")
        time.sleep(0.5)
        samples.append((sum(rss_bytes(pid) for pid, _ in holders),
                        sum(rss_bytes(client.pid) for _, client in holders)))
        for _, client in holders:
            client.stdin.write(b"next\n")
            client.stdin.flush()
    n = total - warm * pairs
    return {case: (samples[1][0] - samples[0][0]) / n,
            f"{case}-client": (samples[1][1] - samples[0][1]) / n}


class Group:
    def __init__(self, name, configs, measure):
        self.name, self.configs, self.measure = name, configs, measure


TLS4 = ("plaintext", "sealsock", "native_tls", "stunnel")
GROUPS = [
    Group("redis", TLS4, measure_redis),
    Group("nginx", TLS4 + ("gateway",), measure_nginx),
    Group("bulk", ("plaintext", "sealsock", "stunnel", "spiped", "ssh", "gateway"),
          measure_bulk("aes", "bulk-stream")),
    Group("bulk-chacha", ("plaintext", "sealsock", "stunnel", "ssh"),
          measure_bulk("chacha", "bulk-stream-chacha")),
    Group("rtt", ("plaintext", "sealsock", "stunnel", "ssh"), measure_rtt),
    Group("passthrough", ("plaintext", "sealsock"), measure_passthrough),
    Group("memory", ("plaintext", "sealsock"), measure_memory("idle-conn-memory", "idle_conns")),
    # A second count: the cost per connection must not depend on how many are open.
    Group("memory-400", ("plaintext", "sealsock"), measure_memory("idle-conn-memory-400", 400)),
]

SIZES = {
    "quick": {"rounds": 3, "seconds": 3, "redis_n_c1": 20000, "redis_n_c50": 100000,
              "rtt_count": 3000, "startup_runs": 200, "file_mib": 256, "idle_conns": 2000,
              "memory_rounds": 1},
    "full": {"rounds": 5, "seconds": 8, "redis_n_c1": 50000, "redis_n_c50": 300000,
             "rtt_count": 20000, "startup_runs": 1000, "file_mib": 1024, "idle_conns": 10000,
             "memory_rounds": 2},
}
