"""Processes, ports and CPU accounting for the benchmark (scripts/bench).

Every program the benchmark starts runs in a process group of its own (so a forking server and
its workers stop together) and, when the machine allows it, in one of two cpuacct cgroups, one
per end of the connection, so "CPU seconds on each end" counts the program and any tunnel
process on that end.
"""

import os
import re
import resource
import signal
import socket
import subprocess
import time


class BenchError(Exception):
    """A measurement that could not be made; its message goes into the report."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """True when something listens on 127.0.0.1:PORT (read from /proc, never by connecting:
    a plain probe connection would be a failed handshake for a sealed server)."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "0A":
                        return True
        except FileNotFoundError:
            continue
    return False


def wait_listen(port, proc, what, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if listening(port):
            return
        if proc.poll() is not None:
            raise BenchError(f"{what} exited ({proc.returncode}) before listening on {port}: "
                             f"{tail(proc.log)}")
        time.sleep(0.05)
    raise BenchError(f"{what}: nothing listens on port {port} after {limit:.0f} s")


def tail(path, lines=6):
    """The end of a log for an error message: the shim's own lines (`sealsock: ...`) first,
    counted by kind, since they say why a sealed program failed."""
    try:
        with open(path, errors="replace") as f:
            text = f.readlines()
    except OSError:
        return ""
    shim = shim_lines(text)
    return " | ".join(shim[:3] + [line.strip() for line in text[-lines:]])


def shim_lines(text):
    """The distinct `sealsock:` lines in TEXT (lines), addresses blanked, each with its count."""
    counts = {}
    for line in text:
        if line.startswith("sealsock: "):
            key = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line.strip())
            counts[key] = counts.get(key, 0) + 1
    return [f"{n} x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])]


class CpuGroup:
    """A cpuacct cgroup (v1, else v2) whose CPU time can be read; `available` is False when the
    machine allows neither, and CPU figures are then left out of the report."""

    def __init__(self, name):
        self.path = None
        for root, stat in (("/sys/fs/cgroup/cpuacct", "cpuacct.usage"),
                           ("/sys/fs/cgroup/unified", "cpu.stat"),
                           ("/sys/fs/cgroup", "cpu.stat")):
            path = os.path.join(root, name)
            try:
                os.makedirs(path, exist_ok=True)
                if os.path.exists(os.path.join(path, stat)):
                    self.path, self.stat = path, stat
                    break
                os.rmdir(path)
            except OSError:
                continue

    @property
    def available(self):
        return self.path is not None

    def join(self, pid):
        if self.path:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def seconds(self):
        """CPU seconds used by everything ever in the group."""
        if not self.path:
            return None
        with open(os.path.join(self.path, self.stat)) as f:
            text = f.read()
        if self.stat == "cpuacct.usage":
            return int(text) / 1e9
        usage = dict(line.split() for line in text.splitlines())
        return int(usage["usage_usec"]) / 1e6

    def remove(self):
        if self.path:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


def _child_setup(group):
    def setup():
        # Room for the idle-connection case's 10,000 sockets: raise the hard limit if allowed.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (65536, max(hard, 65536)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if group is not None:
            group.join(os.getpid())
    return setup


class Procs:
    """The processes of one measurement: started in their own process groups, stopped (TERM,
    then KILL) when the measurement ends."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.started = []

    def start(self, name, argv, group=None, env=None, stdin=subprocess.DEVNULL,
              stdout=None):
        log = os.path.join(self.logdir, f"{name}.log")
        logf = open(log, "ab")
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout or logf, stderr=logf,
                                env=env, start_new_session=True,
                                preexec_fn=_child_setup(group))
        logf.close()
        proc.log = log
        proc.name = name
        self.started.append(proc)
        return proc

    def run(self, name, argv, group=None, env=None, timeout=300):
        """Runs ARGV to its end; returns its stdout. A non-zero exit is a BenchError."""
        log = os.path.join(self.logdir, f"{name}.log")
        with open(log, "ab") as logf:
            try:
                out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=logf, env=env, timeout=timeout, check=False,
                                     preexec_fn=_child_setup(group))
            except subprocess.TimeoutExpired:
                raise BenchError(f"{name} did not finish in {timeout} s: {tail(log)}")
        text = out.stdout.decode(errors="replace")
        if out.returncode != 0:
            raise BenchError(f"{name} exited {out.returncode}: {text.strip()[-300:]} "
                             f"{tail(log)}")
        return text

    def stop_all(self):
        for proc in reversed(self.started):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in reversed(self.started):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
        self.started = []


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
