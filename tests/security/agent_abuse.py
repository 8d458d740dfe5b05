#!/usr/bin/env python3
"""Abuses sealsock-agent's socket for 72-agent-abuse.sh, speaking docs/agent-protocol.md by hand.

  agent_abuse.py hold SOCK N          N connections that send nothing; prints `holding N`, then
                                      waits to be killed
  agent_abuse.py malformed SOCK       bad frame lengths (0, 9, 65537, 2^32-1) end the connection;
                                      bodies that do not decode (version 9, unknown type, unknown
                                      tag, a field past the end, garbage) get `bad_request` and
                                      the connection goes on (a status request still answers)
  agent_abuse.py notsock SOCK         a handshake carrying a pipe, /dev/null, a UDP socket or a
                                      listening TCP socket gets `not_a_socket`; a handshake with
                                      no descriptor too; 70 descriptors with no request end the
                                      connection
  agent_abuse.py stall SOCK N         N handshakes on TCP sockets whose peer never answers, with a
                                      300 ms timeout: each gets `timeout`
  agent_abuse.py otheruid SOCK        (run as another uid) a status request is never answered:
                                      the connection is closed before a byte is read
Each prints one line per case and exits 1 if any case went otherwise.
"""
import array
import os
import socket
import struct
import sys
import time

ERRORS = {1: "bad_request", 6: "not_a_socket", 12: "timeout"}
failures = []


def field(tag, value):
    return bytes([tag]) + struct.pack(">H", len(value)) + value


def frame(kind, fields=b"", version=1, request=1):
    body = bytes([version, kind]) + struct.pack(">Q", request) + fields
    return struct.pack(">I", len(body)) + body


def handshake(timeout_ms=10000):
    return frame(0x01, field(1, b"\x01") + field(2, b"localhost") +
                 field(8, struct.pack(">I", timeout_ms)))


STATUS = frame(0x04)


def connect(path):
    """A connection; a full listen backlog (EAGAIN on a Unix socket) is waited out, as the shim
    would."""
    for _ in range(500):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            time.sleep(0.01)
    raise TimeoutError("the agent's listen backlog stayed full for 5 s")


def reply(s):
    """(type, error code or None), or None when the agent closed the connection."""
    head = b""
    try:
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        length = struct.unpack(">I", head)[0]
        body = b""
        while len(body) < length:
            chunk = s.recv(length - len(body))
            if not chunk:
                return None
            body += chunk
    except ConnectionResetError:
        return None
    code = None
    if body[1] == 0x82 and body[10] == 1:
        code = ERRORS.get(struct.unpack(">H", body[13:15])[0], body[13:15].hex())
    return body[1], code


def expect(name, got, want):
    ok = got == want
    print(f"{'ok' if ok else 'FAIL'} {name}: {got}", flush=True)
    if not ok:
        failures.append(name)


def malformed(path):
    for name, data in [("length 0", b"\0\0\0\0"), ("length 9", b"\0\0\0\x09" + b"x" * 9),
                       ("length 65537", struct.pack(">I", 65537) + b"x" * 100),
                       ("length 2^32-1", b"\xff\xff\xff\xff")]:
        s = connect(path)
        s.sendall(data)
        expect(f"frame {name}: connection ended", reply(s), None)
        s.close()
    s = connect(path)
    good_fields = field(1, b"\x01") + field(2, b"localhost")
    for name, data in [("version 9", frame(0x01, good_fields, version=9)),
                       ("unknown type", frame(0x7f)),
                       ("unknown tag", frame(0x01, good_fields + field(99, b"x"))),
                       ("field past the end", frame(0x01, bytes([2]) + b"\xff\xff" + b"abc")),
                       ("garbage", frame(0x01, os.urandom(200)))]:
        s.sendall(data)
        expect(f"body {name}: bad_request, connection kept", reply(s), (0x82, "bad_request"))
    s.sendall(STATUS)
    expect("status after the malformed bodies", (reply(s) or (None,))[0], 0x84)
    s.close()


def with_fd(s, data, fd):
    s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def notsock(path):
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_RDWR)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listening = socket.create_server(("127.0.0.1", 0))
    s = connect(path)
    for name, fd in [("a pipe", r), ("/dev/null", null), ("a UDP socket", udp.fileno()),
                     ("a listening TCP socket", listening.fileno())]:
        with_fd(s, handshake(), fd)
        expect(f"handshake with {name}: not_a_socket", reply(s), (0x82, "not_a_socket"))
    s.sendall(handshake())
    expect("handshake without a descriptor: not_a_socket", reply(s), (0x82, "not_a_socket"))
    s.close()
    s = connect(path)
    try:
        for _ in range(70):
            with_fd(s, b"\0", w)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the agent may end the connection before all 70 are sent
    expect("70 descriptors without requests: connection ended", reply(s), None)
    for fd in (r, w, null):
        os.close(fd)


def stall(path, n):
    silent = socket.create_server(("127.0.0.1", 0))
    peers = [socket.create_connection(silent.getsockname()) for _ in range(n)]
    s = connect(path)
    for i, p in enumerate(peers):
        with_fd(s, frame(0x01, field(1, b"\x01") + field(2, b"localhost") +
                         field(8, struct.pack(">I", 300)), request=i + 1), p.fileno())
    got = [reply(s) for _ in peers]
    expect(f"{n} handshakes with a silent peer: each times out", set(got), {(0x82, "timeout")})


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "hold":
        held = [connect(path) for _ in range(int(sys.argv[3]))]
        print(f"holding {len(held)}", flush=True)
        while True:
            time.sleep(3600)
    elif cmd == "malformed":
        malformed(path)
    elif cmd == "notsock":
        notsock(path)
    elif cmd == "stall":
        stall(path, int(sys.argv[3]))
    elif cmd == "otheruid":
        s = connect(path)
        try:
            s.sendall(STATUS)
        except (BrokenPipeError, ConnectionResetError):
            pass
        expect(f"uid {os.getuid()}: no answer, connection closed", reply(s), None)
    else:
        sys.exit(__doc__)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
