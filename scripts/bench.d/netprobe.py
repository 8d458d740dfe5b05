#!/usr/bin/env python3
"""Small network programs the benchmark seals like any other (run as their own processes, so
the shim can be preloaded into them):

  netprobe.py echo-server PORT          echoes every connection (a thread each)
  netprobe.py rtt HOST PORT COUNT SIZE  COUNT round trips of SIZE bytes on one connection;
                                        prints {"median_us": .., "p99_us": ..}
  netprobe.py hold-server PORT          accepts and keeps connections, answers each byte
  netprobe.py hold HOST PORT WARM N     opens WARM connections, says "warm", waits for a line
                                        on stdin, opens the rest up to N, says "full", waits
                                        for a line, exits. Every connection makes one round
                                        trip before the next opens (so both ends are set up).
"""

import json
import selectors
import socket
import sys
import threading
import time


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    return s


def echo_server(port):
    def serve(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    s = listener(port)
    while True:
        conn, _ = s.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def recv_exact(conn, n):
    got = b""
    while len(got) < n:
        chunk = conn.recv(n - len(got))
        if not chunk:
            raise SystemExit("connection closed early")
        got += chunk
    return got


def rtt(host, port, count, size):
    conn = socket.create_connection((host, port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * size
    for _ in range(min(100, count)):  # warm-up
        conn.sendall(msg)
        recv_exact(conn, size)
    times = []
    for _ in range(count):
        t = time.perf_counter_ns()
        conn.sendall(msg)
        recv_exact(conn, size)
        times.append(time.perf_counter_ns() - t)
    conn.close()
    times.sort()
    print(json.dumps({"median_us": times[len(times) // 2] / 1000,
                      "p99_us": times[int(len(times) * 0.99)] / 1000}))


def hold_server(port):
    s = listener(port)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    held = []
    while True:
        for key, _ in sel.select():
            if key.fileobj is s:
                conn, _ = s.accept()
                held.append(conn)
                sel.register(conn, selectors.EVENT_READ)
            elif key.fileobj.recv(1):
                key.fileobj.sendall(b"!")
            else:
                sel.unregister(key.fileobj)


def hold(host, port, warm, total):
    held = []

    def open_until(n):
        while len(held) < n:
            conn = socket.create_connection((host, port))
            conn.sendall(b"?")
            recv_exact(conn, 1)
            held.append(conn)

    open_until(warm)
    print("warm", flush=True)
    sys.stdin.readline()
    open_until(total)
    print("full", flush=True)
    sys.stdin.readline()


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "echo-server":
        echo_server(int(args[0]))
    elif cmd == "rtt":
        rtt(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "hold-server":
        hold_server(int(args[0]))
    elif cmd == "hold":
        hold(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
