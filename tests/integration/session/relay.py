#!/usr/bin/env python3
"""A TCP relay for 50-sealed.sh, never preloaded: it sees exactly what is on the wire.

  relay.py relay PORT_FILE TARGET_PORT CAPTURE_PREFIX [--flip]
      Listens on 127.0.0.1 (port written to PORT_FILE), relays one connection to
      127.0.0.1:TARGET_PORT and records each direction to CAPTURE_PREFIX.c2s / .s2c. A clean EOF
      is passed on as a half-close (shutdown SHUT_WR), a reset as a reset. With --flip it flips
      one byte in the middle of the first client-to-server TLS record that starts at or after
      offset 4096 (past the client's handshake flight), and prints `flipped OFFSET`.
  relay.py records FILE
      Checks that FILE is a TLS 1.3 record stream as a peer sends it: a handshake record first,
      at most one ChangeCipherSpec, then only application_data records (TLS 1.3 encrypts
      everything else inside them), framed exactly to the end of the file. Prints `records N`
      and exits 0, or prints what is wrong and exits 1.
"""
import os
import selectors
import socket
import struct
import sys

FLIP_AFTER = 4096


def records(path):
    data = open(path, "rb").read()
    at, types = 0, []
    while at < len(data):
        if len(data) - at < 5:
            return f"{len(data) - at} bytes after the last record are not a record header"
        kind, length = data[at], struct.unpack(">H", data[at + 3:at + 5])[0]
        if data[at + 1] != 3 or data[at + 2] not in (1, 3):
            return f"record at {at}: version {data[at + 1]}.{data[at + 2]} is not TLS"
        if at + 5 + length > len(data):
            return f"record at {at}: {length} bytes announced, {len(data) - at - 5} present"
        types.append(kind)
        at += 5 + length
    if not types or types[0] != 22:
        return "the stream does not start with a handshake record (22)"
    rest = types[1:]
    if rest.count(20) > 1 or any(t not in (20, 23) for t in rest):
        return f"record types after the first: {sorted(set(rest))} (only 20 once and 23 allowed)"
    print(f"records {len(types)}")
    return None


class Flipper:
    """Follows the record framing of one direction and flips one byte of a later record."""

    def __init__(self):
        self.pos = 0          # stream offset of the next byte fed
        self.header = b""     # the record header being collected
        self.body_end = 0     # stream offset where the current record's body ends
        self.flip_at = None

    def feed(self, data):
        data = bytearray(data)
        i = 0
        while i < len(data):
            at = self.pos + i
            if at < self.body_end:
                i = self.body_end - self.pos
                continue
            self.header += data[i:i + 1]
            i += 1
            if len(self.header) == 5:
                length = struct.unpack(">H", self.header[3:5])[0]
                start = at - 4
                if self.flip_at is None and self.header[0] == 23 and start >= FLIP_AFTER:
                    self.flip_at = at + 1 + length // 2
                    print(f"flipped {self.flip_at}", flush=True)
                self.body_end = at + 1 + length
                self.header = b""
        if self.flip_at is not None and self.pos <= self.flip_at < self.pos + len(data):
            data[self.flip_at - self.pos] ^= 0x01
        self.pos += len(data)
        return bytes(data)


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def relay(port_file, target, prefix, flip):
    listener = socket.create_server(("127.0.0.1", 0))
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{listener.getsockname()[1]}\n")
    os.rename(port_file + ".tmp", port_file)
    client, _ = listener.accept()
    server = socket.create_connection(("127.0.0.1", target))
    # One direction: source socket, destination socket, capture, bytes not yet passed on, EOF seen.
    ways = [
        {"src": client, "dst": server, "log": open(prefix + ".c2s", "wb"), "buf": b"",
         "eof": False, "shut": False, "tamper": Flipper() if flip else None},
        {"src": server, "dst": client, "log": open(prefix + ".s2c", "wb"), "buf": b"",
         "eof": False, "shut": False, "tamper": None},
    ]
    for s in (client, server):
        s.setblocking(False)
    sel = selectors.DefaultSelector()
    try:
        while not all(w["shut"] for w in ways):
            interest = {client: 0, server: 0}
            for w in ways:
                if not w["eof"] and len(w["buf"]) < 1 << 20:
                    interest[w["src"]] |= selectors.EVENT_READ
                if w["buf"]:
                    interest[w["dst"]] |= selectors.EVENT_WRITE
            for s, ev in interest.items():
                if ev:
                    sel.register(s, ev)
            ready = {key.fileobj: mask for key, mask in sel.select(timeout=30)}
            for s in interest:
                if interest[s]:
                    sel.unregister(s)
            if not ready:
                raise TimeoutError("relay: nothing moved for 30 s")
            for w in ways:
                if ready.get(w["src"], 0) & selectors.EVENT_READ:
                    chunk = w["src"].recv(65536)
                    if not chunk:
                        w["eof"] = True
                    else:
                        w["log"].write(chunk)
                        w["buf"] += w["tamper"].feed(chunk) if w["tamper"] else chunk
                if ready.get(w["dst"], 0) & selectors.EVENT_WRITE and w["buf"]:
                    sent = w["dst"].send(w["buf"])
                    w["buf"] = w["buf"][sent:]
                if w["eof"] and not w["buf"] and not w["shut"]:
                    w["dst"].shutdown(socket.SHUT_WR)
                    w["shut"] = True
    except ConnectionError as e:
        # A reset on one side becomes a reset on the other, as it would without the relay.
        print(f"reset: {e}", flush=True)
        reset(client)
        reset(server)
        return
    finally:
        for w in ways:
            w["log"].close()
    client.close()
    server.close()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "records":
        problem = records(sys.argv[2])
        if problem:
            print(problem)
            sys.exit(1)
        return
    if len(sys.argv) in (5, 6) and sys.argv[1] == "relay":
        relay(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:] == ["--flip"])
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
