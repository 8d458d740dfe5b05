#!/usr/bin/env python3
"""An on-path attacker for the security scenarios (tests/security/70-attacks.sh), never preloaded.

  attacker.py PORT_FILE TARGET_PORT CAPTURE_PREFIX ATTACK c2s|s2c [--foreign PORT] [--after N]

Listens on 127.0.0.1 (port written to PORT_FILE), relays one connection to 127.0.0.1:TARGET_PORT
and records what it receives from each side in CAPTURE_PREFIX.c2s / .s2c. Both directions are
cut into TLS records and passed on whole; in the direction given, the first application_data
record (type 23) that starts at or after stream offset N (default 4096: past the client's
handshake flight, so the attack hits records under the application traffic keys) is attacked
once, and the relay prints `attack ATTACK DIR at OFFSET`:

  none       nothing (the baseline: the same relay must carry a clean exchange)
  flip       one bit in the middle of the record's body
  drop       the record is not passed on
  insert     a forged record (random body, the same length) goes before it
  truncate   half of the record, then FIN; nothing more in that direction
  reorder    the record is held back and passed on after the next one
  replay     the record is passed on twice
  plaintext  `PLAINTEXT-INJECTED ...` in the clear goes before it
  foreign    application_data records of another TLS 1.3 session go before it: the relay runs
             its own handshake with `openssl s_server -rev` on --foreign PORT, sends a line, and
             splices in the records that server sent back (its tickets and the reversed line)

A reset on either side becomes a reset on the other. The relay ends when both directions are
closed, or after 30 s without traffic.
"""
import os
import select
import socket
import ssl
import struct
import sys

# The reset-on-reset behaviour is relay.py's (tests/integration/session), the relay 50-sealed uses.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration",
                                "session"))
from relay import reset  # noqa: E402

ATTACKS = ("none", "flip", "drop", "insert", "truncate", "reorder", "replay", "plaintext",
           "foreign")
PLAINTEXT = b"PLAINTEXT-INJECTED GET /admin HTTP/1.0\r\n\r\n"


def foreign_records(port):
    """Application-data records of a TLS 1.3 session between us and openssl s_server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    raw = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        def pump():
            out = outgoing.read()
            if out:
                sock.sendall(out)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
                incoming.write(sock.recv(65536))
        pump()
        tls.write(b"a line from another TLS session\n")
        pump()
        # Everything the server sends from here on is under its application keys.
        while len([r for r in split(raw) if r[0] == 23]) < 3:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    found = [r for r in split(raw) if r[0] == 23]
    if not found:
        sys.exit("attacker: the foreign server sent no application data record")
    return b"".join(found)


def split(data):
    """The complete records at the start of data."""
    out, at = [], 0
    while len(data) - at >= 5:
        end = at + 5 + struct.unpack(">H", data[at + 3:at + 5])[0]
        if end > len(data):
            break
        out.append(data[at:end])
        at = end
    return out


class Way:
    """One direction: the bytes received, cut into records, each passed on (or attacked)."""

    def __init__(self, src, dst, log, attack, after, foreign):
        self.src, self.dst, self.log = src, dst, log
        self.attack, self.after, self.foreign = attack, after, foreign
        self.pending = b""   # received, not yet a whole record
        self.out = b""       # to be sent to dst
        self.pos = 0         # stream offset of the first byte of `pending`
        self.held = None     # reorder: the record held back
        self.done = False    # the attack happened
        self.cut = False     # truncate: nothing more is passed on
        self.eof = False      # nothing more goes to dst (the source ended, or truncate)
        self.src_eof = False  # the source ended
        self.shut = False

    def take(self, chunk):
        self.log.write(chunk)
        if self.cut:
            return
        self.pending += chunk
        while len(self.pending) >= 5:
            length = struct.unpack(">H", self.pending[3:5])[0]
            if len(self.pending) < 5 + length:
                break
            record, self.pending = self.pending[:5 + length], self.pending[5 + length:]
            self.pass_on(record)
            self.pos += 5 + length
            if self.cut:
                self.pending = b""
                return

    def pass_on(self, record):
        if self.held is not None:
            self.out += record + self.held
            self.held = None
            return
        if self.done or self.attack == "none" or record[0] != 23 or self.pos < self.after:
            self.out += record
            return
        self.done = True
        print(f"attack {self.attack} at {self.pos}", flush=True)
        body = record[5:]
        if self.attack == "flip":
            mid = 5 + len(body) // 2
            self.out += record[:mid] + bytes([record[mid] ^ 0x01]) + record[mid + 1:]
        elif self.attack == "drop":
            pass
        elif self.attack == "insert":
            self.out += record[:5] + os.urandom(len(body)) + record
        elif self.attack == "truncate":
            self.out += record[:5 + len(body) // 2]
            self.cut = True
            self.eof = True
        elif self.attack == "reorder":
            self.held = record
        elif self.attack == "replay":
            self.out += record + record
        elif self.attack == "plaintext":
            self.out += PLAINTEXT + record
        elif self.attack == "foreign":
            self.out += self.foreign + record

    def finish(self):
        """At EOF: a record held back for reordering goes out last, a partial record as is."""
        if self.held is not None:
            self.out += self.held
            self.held = None
        if not self.cut:
            self.out += self.pending
            self.pending = b""
        self.eof = True


def wanted(sock, ways):
    """The poll events to wait for on sock: input while its direction has room, output while
    the other direction has bytes for it."""
    events = 0
    for w in ways:
        if w.src is sock and not w.src_eof and len(w.out) < 1 << 20:
            events |= select.POLLIN
        if w.dst is sock and w.out:
            events |= select.POLLOUT
    return events


def accept_and_connect(port_file, target):
    """The client's connection (our port published in port_file, whole), then ours to target."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        tmp = f"{port_file}.tmp"
        with open(tmp, "w") as f:
            print(listener.getsockname()[1], file=f)
        os.replace(tmp, port_file)
        accepted = listener.accept()[0]
    return accepted, socket.create_connection(("127.0.0.1", target))


def relay(port_file, target, prefix, attack, direction, after, foreign):
    client, server = accept_and_connect(port_file, target)
    ways = [Way(client, server, open(prefix + ".c2s", "wb"),
                attack if direction == "c2s" else "none", after, foreign),
            Way(server, client, open(prefix + ".s2c", "wb"),
                attack if direction == "s2c" else "none", after, foreign)]
    by_fd = {client.fileno(): client, server.fileno(): server}
    poller = select.poll()
    try:
        while not (ways[0].shut and ways[1].shut):
            for sock in by_fd.values():
                poller.register(sock, wanted(sock, ways))  # registers again: a modify
            events = poller.poll(30000)
            if not events:
                raise TimeoutError("attacker: nothing moved for 30 s")
            ready = {by_fd[fd]: ev for fd, ev in events}
            for w in ways:
                if ready.get(w.src, 0) & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    chunk = w.src.recv(65536)
                    if chunk:
                        w.take(chunk)
                    else:
                        w.src_eof = True
                        w.finish()
                if w.out and ready.get(w.dst, 0) & select.POLLOUT:
                    w.out = w.out[w.dst.send(w.out, socket.MSG_DONTWAIT):]
                if w.eof and not w.out and not w.shut:
                    w.dst.shutdown(socket.SHUT_WR)
                    w.shut = True
    except OSError as e:
        # A reset on one side becomes a reset on the other (a shutdown of a socket the peer has
        # reset says ENOTCONN; 30 s without traffic ends the relay the same way).
        print(f"reset: {e}", flush=True)
        end = reset
    else:
        end = socket.socket.close
    for w in ways:
        w.log.close()
    if attack != "none" and not any(w.done for w in ways):
        print("attack never applied", flush=True)
    end(client)
    end(server)


def main():
    args = sys.argv[1:]
    opts = {"--foreign": None, "--after": "4096"}
    while len(args) > 5 and args[-2] in opts:
        opts[args[-2]] = args[-1]
        args = args[:-2]
    if len(args) != 5 or args[3] not in ATTACKS or args[4] not in ("c2s", "s2c"):
        sys.exit(__doc__)
    foreign = b""
    if args[3] == "foreign":
        if opts["--foreign"] is None:
            sys.exit("attacker: foreign needs --foreign PORT")
        foreign = foreign_records(int(opts["--foreign"]))
        print(f"foreign records {len(foreign)} bytes", flush=True)
    relay(args[0], int(args[1]), args[2], args[3], args[4], int(opts["--after"]), foreign)


if __name__ == "__main__":
    main()
