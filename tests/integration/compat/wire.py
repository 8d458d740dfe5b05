#!/usr/bin/env python3
"""A recording TCP relay for the compat rows, never preloaded: it sees exactly what is on the wire.

session/relay.py relays one connection; real programs open many (redis-benchmark, pgbench, a
browser-like curl, a forking sshd), so this one relays every connection it accepts until it is
stopped, each in its own pair of threads.

  wire.py relay PORT_FILE TARGET_HOST TARGET_PORT CAPTURE_PREFIX
      Listens on 127.0.0.1 (port written to PORT_FILE) and relays each connection to
      TARGET_HOST:TARGET_PORT, recording connection N's directions to CAPTURE_PREFIX.N.c2s and
      .N.s2c. A clean EOF is passed on as a half-close, a reset as a reset (and noted in
      CAPTURE_PREFIX.N.reset). Runs until SIGTERM.
  wire.py check CAPTURE_PREFIX MARKER
      Every recorded direction is a TLS 1.3 record stream from the first byte to the last
      (session/relay.py's `records` check), and MARKER, plaintext the programs sent, appears in
      none of them. A connection that was reset may end in the middle of a record (the rest was
      thrown away with the reset, as without the relay): that record is left out of the check
      (and counted as `cut by a reset`). Prints `connections N, records M, bytes B`; exits 1
      with the reason otherwise.
"""
import contextlib
import glob
import importlib.util
import io
import os
import signal
import socket
import struct
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))


def session_relay():
    spec = importlib.util.spec_from_file_location(
        "session_relay", os.path.join(HERE, "..", "session", "relay.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pump(src, dst, log):
    """Copies src to dst and into log until EOF (True) or an error, then resets both (False)."""
    try:
        while True:
            chunk = src.recv(262144)
            if not chunk:
                dst.shutdown(socket.SHUT_WR)
                return True
            log.write(chunk)
            dst.sendall(chunk)
    except OSError:
        # A reset on one side becomes a reset on the other, as it would without the relay.
        for s in (src, dst):
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return False
    finally:
        log.flush()


def serve(client, target, prefix, n):
    try:
        server = socket.create_connection(target)
    except OSError as e:
        print(f"connection {n}: cannot reach the target: {e}", flush=True)
        client.close()
        return
    logs = [open(f"{prefix}.{n}.c2s", "wb", buffering=0), open(f"{prefix}.{n}.s2c", "wb", buffering=0)]
    clean = []  # one entry per direction: it ended in EOF
    ways = [threading.Thread(target=lambda *a: clean.append(pump(*a)), args=way)
            for way in ((client, server, logs[0]), (server, client, logs[1]))]
    for t in ways:
        t.start()
    for t in ways:
        t.join()
    if not all(clean):
        open(f"{prefix}.{n}.reset", "w").close()
    for f in logs:
        f.close()
    client.close()
    server.close()


def relay(port_file, host, port, prefix):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{listener.getsockname()[1]}\n")
    os.rename(port_file + ".tmp", port_file)
    n = 0
    while True:
        client, _ = listener.accept()
        n += 1
        threading.Thread(target=serve, args=(client, (host, port), prefix, n), daemon=True).start()


def whole_records(data):
    """The length of data's longest prefix of whole records (by their headers' lengths alone)."""
    at = 0
    while len(data) - at >= 5 and at + 5 + struct.unpack(">H", data[at + 3:at + 5])[0] <= len(data):
        at += 5 + struct.unpack(">H", data[at + 3:at + 5])[0]
    return at


def check(prefix, marker):
    records = session_relay().records
    files = sorted(glob.glob(f"{prefix}.*.c2s") + glob.glob(f"{prefix}.*.s2c"))
    if not files:
        return "no connection crossed the relay"
    total_records = total_bytes = cut = 0
    needle = marker.encode()
    for path in files:
        data = open(path, "rb").read()
        if needle in data:
            return f"{os.path.basename(path)}: the plaintext marker is on the wire"
        checked = path
        if os.path.exists(path.rsplit(".", 1)[0] + ".reset") and whole_records(data) < len(data):
            # The record the reset cut short: the whole ones before it are checked.
            checked = path + ".whole"
            with open(checked, "wb") as f:
                f.write(data[:whole_records(data)])
            cut += 1
        # records() prints `records N` when the stream is good; keep the count, not the line.
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            problem = records(checked)
        if problem:
            return f"{os.path.basename(path)} ({len(data)} bytes): {problem}"
        total_records += int(out.getvalue().split()[1])
        total_bytes += len(data)
    print(f"connections {len(files) // 2}, records {total_records}, bytes {total_bytes}"
          + (f", {cut} cut by a reset" if cut else ""))
    return None


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        problem = check(sys.argv[2], sys.argv[3])
        if problem:
            print(problem)
            sys.exit(1)
        return
    if len(sys.argv) == 6 and sys.argv[1] == "relay":
        relay(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
