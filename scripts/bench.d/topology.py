"""The configurations the benchmark compares, as client/server topologies on loopback.

A measurement opens a Link: the server program is started on a fresh port, with whatever the
configuration puts around it (the shim, its own TLS, a tunnel), and the Link says where the
client connects and how its command is wrapped. Both ends present certificates from one
throwaway CA (`sealsock pki`): sealsock, stunnel and redis's own TLS authenticate the client;
wrk cannot present a certificate, so nginx's own TLS authenticates the server only.
"""

import os
import subprocess

from procs import BenchError, CpuGroup, Procs, free_port, wait_listen

# Configuration keys, in the order of the report's columns.
CONFIGS = ("plaintext", "sealsock", "native_tls", "stunnel", "spiped", "ssh", "gateway")

# Cipher of each suite name, per tool.
SUITES = {
    "aes": {"tls": "TLS_AES_256_GCM_SHA384", "ssh": "aes256-gcm@openssh.com",
            "openssl": "aes-256-gcm"},
    "chacha": {"tls": "TLS_CHACHA20_POLY1305_SHA256", "ssh": "chacha20-poly1305@openssh.com",
               "openssl": "chacha20-poly1305"},
}


class Link:
    """Where a measurement's client connects and how its command runs."""

    def __init__(self, port, wrap=None, tls=False):
        self.port = port
        self.wrap = wrap or (lambda argv: argv)
        self.tls = tls  # the server speaks its own TLS (the client must too)


class Bench:
    """The run's fixed pieces: the work directory, the PKI, both agents, the config files, the
    keys of the other tunnels and the two CPU groups (client end, server end)."""

    def __init__(self, root, work, sealsock_script):
        self.root = root
        self.work = work
        self.sealsock = sealsock_script
        self.shim = os.path.join(os.environ.get("SEALSOCK_BUILD", os.path.join(root, "build")),
                                 "release", "shim", "libsealsock.so")
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.procs = Procs(self.logs)  # lives for the whole run: the agents
        tag = f"sealsock-bench-{os.getpid()}"
        self.client_cpu = CpuGroup(f"{tag}-client")
        self.server_cpu = CpuGroup(f"{tag}-server")

    # --- set-up ---------------------------------------------------------------------------------
    def setup(self):
        self.pki = os.path.join(self.work, "pki")
        quiet = {"stdout": subprocess.DEVNULL}
        subprocess.run([self.sealsock, "pki", "init", self.pki], check=True, **quiet)
        subprocess.run([self.sealsock, "pki", "issue", self.pki, "--service", "server", "--dns",
                        "localhost", "--ip", "127.0.0.1"], check=True, **quiet)
        subprocess.run([self.sealsock, "pki", "issue", self.pki, "--user", "alice"], check=True,
                       **quiet)
        self.ca = os.path.join(self.pki, "ca.pem")
        run = os.path.join(self.work, "run")
        os.makedirs(run, mode=0o700, exist_ok=True)
        self.agent_sock = {}
        for side, ident, group in (("client", "alice", self.client_cpu),
                                   ("server", "server", self.server_cpu)):
            sock = os.path.join(run, f"{side}.sock")
            proc = self.procs.start(f"agent-{side}", [
                self.sealsock, "agent", "--foreground", "--socket", sock, "--trust", self.ca,
                "--identity", ident, "--cert", self.pem(ident), "--key", self.key(ident)],
                group=group)
            self.agent_sock[side] = sock
            _wait_socket(sock, proc)
        for suite in SUITES:
            self._write_configs(suite)
        self._tunnel_keys()

    def pem(self, name):
        return os.path.join(self.pki, f"{name}.crt")

    def key(self, name):
        return os.path.join(self.pki, f"{name}.key")

    def config(self, side, suite):
        return os.path.join(self.work, f"{side}-{suite}.toml")

    def _write_configs(self, suite):
        tls = SUITES[suite]["tls"]
        audit = os.path.join(self.work, f"audit-{suite}")
        with open(self.config("client", suite), "w") as f:
            f.write(f'agent_socket = "{self.agent_sock["client"]}"\n'
                    f'audit_log = "{audit}-client.log"\n\n'
                    '[[outbound]]\nname = "bench"\ndestinations = ["127.0.0.1"]\n'
                    f'identity = "alice"\nexpect = "name:localhost"\nsuites = ["{tls}"]\n')
        with open(self.config("server", suite), "w") as f:
            f.write(f'agent_socket = "{self.agent_sock["server"]}"\n'
                    f'audit_log = "{audit}-server.log"\n\n'
                    '[[inbound]]\nname = "bench"\nidentity = "server"\nallow = ["cn:alice"]\n'
                    f'suites = ["{tls}"]\n')

    def _tunnel_keys(self):
        self.spiped_key = os.path.join(self.work, "spiped.key")
        with open(self.spiped_key, "wb") as f:
            f.write(os.urandom(32))
        self.ssh_dir = os.path.join(self.work, "ssh")
        os.makedirs(self.ssh_dir, mode=0o700, exist_ok=True)
        for name in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(self.ssh_dir, name)], check=True)
        os.replace(os.path.join(self.ssh_dir, "user.pub"),
                   os.path.join(self.ssh_dir, "authorized_keys"))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation

    def close(self):
        self.procs.stop_all()
        self.client_cpu.remove()
        self.server_cpu.remove()

    # --- wrapping -------------------------------------------------------------------------------
    def sealed(self, side, suite):
        """A wrapper that runs a command sealed by SIDE's config for SUITE (`sealsock run`)."""
        conf = self.config(side, suite)
        return lambda argv: [self.sealsock, "run", "--config", conf, "--"] + list(argv)

    def preload_env(self, suite="aes"):
        """The environment `sealsock run` gives a program, without the wrapper's own checks."""
        env = dict(os.environ)
        env["LD_PRELOAD"] = self.shim
        env["SEALSOCK_CONFIG"] = self.config("client", suite)
        return env

    # --- topologies -----------------------------------------------------------------------------
    def open_link(self, procs, config, server, suite):
        """Starts SERVER (a case's server: .start(bench, procs, port, group, wrap, native)) in
        CONFIG for SUITE; returns the client's Link."""
        port = free_port()
        srv = self.server_cpu
        if config == "plaintext":
            server.start(self, procs, port, srv, None, None)
            return Link(port)
        if config == "sealsock":
            server.start(self, procs, port, srv, self.sealed("server", suite), None)
            return Link(port, wrap=self.sealed("client", suite))
        if config == "native_tls":
            server.start(self, procs, port, srv, None, suite)
            return Link(port, tls=True)
        server.start(self, procs, port, srv, None, None)
        tunnel = {"stunnel": self._stunnel, "spiped": self._spiped, "ssh": self._ssh,
                  "gateway": self._gateway}[config]
        return Link(tunnel(procs, port, suite))

    def _stunnel(self, procs, port, suite):
        tls = SUITES[suite]["tls"]
        front, back = free_port(), free_port()
        common = ("foreground = yes\npid =\ndebug = 3\nsslVersionMin = TLSv1.3\n"
                  f"ciphersuites = {tls}\nCAfile = {self.ca}\n")
        ends = {
            "server": (back, f"[bench]\naccept = 127.0.0.1:{back}\nconnect = 127.0.0.1:{port}\n"
                             f"cert = {self.pem('server')}\nkey = {self.key('server')}\n"
                             "verifyChain = yes\nrequireCert = yes\n", self.server_cpu),
            "client": (front, f"client = yes\n[bench]\naccept = 127.0.0.1:{front}\n"
                              f"connect = 127.0.0.1:{back}\ncert = {self.pem('alice')}\n"
                              f"key = {self.key('alice')}\nverifyChain = yes\n"
                              "checkHost = localhost\n", self.client_cpu),
        }
        for side in ("server", "client"):
            listen, text, group = ends[side]
            conf = os.path.join(self.work, f"stunnel-{side}.conf")
            with open(conf, "w") as f:
                f.write(common + text)
            wait_listen(listen, procs.start(f"stunnel-{side}", ["stunnel4", conf], group=group),
                        f"stunnel ({side})")
        return front

    def _gateway(self, procs, port, suite):
        """sealsock-gateway at both ends, like stunnel: outbound (client side) -> inbound."""
        tls = SUITES[suite]["tls"]
        front, back = free_port(), free_port()
        self._build_gateway()
        ends = {
            "server": (back, f'agent_socket = "{self.agent_sock["server"]}"\n'
                             f'audit_log = "{self.work}/gateway-audit-server.log"\n\n'
                             f'[[inbound]]\nname = "bench"\nlisten = "127.0.0.1:{back}"\n'
                             f'backend = "127.0.0.1:{port}"\nidentity = "server"\n'
                             f'allow = ["cn:alice"]\nsuites = ["{tls}"]\n', self.server_cpu),
            "client": (front, f'agent_socket = "{self.agent_sock["client"]}"\n'
                              f'audit_log = "{self.work}/gateway-audit-client.log"\n\n'
                              f'[[outbound]]\nname = "bench"\nlisten = "127.0.0.1:{front}"\n'
                              f'destination = "127.0.0.1:{back}"\nidentity = "alice"\n'
                              f'expect = "name:localhost"\nsuites = ["{tls}"]\n', self.client_cpu),
        }
        for side in ("server", "client"):
            listen, text, group = ends[side]
            conf = os.path.join(self.work, f"gateway-{side}.toml")
            with open(conf, "w") as f:
                f.write(text)
            wait_listen(listen, procs.start(f"gateway-{side}", [
                self.sealsock, "gateway", "--config", conf], group=group), f"gateway ({side})")
        return front

    def _build_gateway(self):
        """scripts/bench builds the shim, the agent and the checker; the gateway too, here."""
        tree = os.path.dirname(os.path.dirname(self.shim))
        if not os.path.exists(os.path.join(tree, "shim", "gateway", "sealsock-gateway")):
            subprocess.run(["cmake", "--build", tree, "--target", "sealsock-gateway"],
                           check=True, stdout=subprocess.DEVNULL)

    def _spiped(self, procs, port, suite):
        front, back = free_port(), free_port()
        for side, mode, src, dst, group in (("server", "-d", back, port, self.server_cpu),
                                            ("client", "-e", front, back, self.client_cpu)):
            proc = procs.start(f"spiped-{side}", [
                "spiped", mode, "-F", "-s", f"[127.0.0.1]:{src}", "-t", f"[127.0.0.1]:{dst}",
                "-k", self.spiped_key, "-p", os.path.join(self.work, f"spiped-{side}.pid")],
                group=group)
            wait_listen(src, proc, f"spiped ({side})")
        return front

    def _ssh(self, procs, port, suite):
        cipher = SUITES[suite]["ssh"]
        front, sshd_port = free_port(), free_port()
        d = self.ssh_dir
        sshd = procs.start("sshd", [
            "/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-p", str(sshd_port),
            "-o", "ListenAddress=127.0.0.1", "-o", f"HostKey={d}/host",
            "-o", f"AuthorizedKeysFile={d}/authorized_keys", "-o", "PermitRootLogin=yes",
            "-o", "UsePAM=no", "-o", "StrictModes=no", "-o", "PidFile=none",
            "-o", f"Ciphers={cipher}", "-o", "AllowTcpForwarding=yes"], group=self.server_cpu)
        wait_listen(sshd_port, sshd, "sshd")
        ssh = procs.start("ssh", [
            "ssh", "-N", "-p", str(sshd_port), "-i", f"{d}/user", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", f"Ciphers={cipher}", "-o", "ExitOnForwardFailure=yes",
            "-L", f"127.0.0.1:{front}:127.0.0.1:{port}", "root@127.0.0.1"],
            group=self.client_cpu)
        wait_listen(front, ssh, "ssh -L")
        return front


def _wait_socket(path, proc):
    import time
    for _ in range(200):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise BenchError(f"the agent did not start on {path}")
