#!/usr/bin/env python3
"""Records the TCP payload crossing one network interface, for the lossy-network test.

    sniff.py IFACE PORT OUT_PREFIX READY_FILE

Writes OUT_PREFIX.c2s and OUT_PREFIX.s2c: every TCP payload to and from PORT, in the order the
interface saw it (retransmissions and duplicates included: the files are for searching, not for
reassembly), at most 64 MiB each (a sample: the disk stays free on long runs), and
OUT_PREFIX.first: the first payload byte of each direction in hex. Runs until SIGTERM. Needs
CAP_NET_RAW (the tests run as root).
"""
import signal
import socket
import struct
import sys

iface, port, prefix, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ETH_P_ALL = 0x0003
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
try:  # SO_RCVBUFFORCE (33 on Linux): a big buffer, so a busy machine drops fewer packets here
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 64 << 20)
except OSError:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
s.bind((iface, 0))
out = {"c2s": open(prefix + ".c2s", "wb"), "s2c": open(prefix + ".s2c", "wb")}
first = {}
written = {"c2s": 0, "s2c": 0}
LIMIT = 64 << 20
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
s.settimeout(0.2)
open(ready, "w").close()
while not stop:
    try:
        frame = s.recv(65536)
    except socket.timeout:
        continue
    except InterruptedError:
        continue
    if len(frame) < 14 + 20 or struct.unpack("!H", frame[12:14])[0] != 0x0800:
        continue
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 6:  # TCP
        continue
    total = struct.unpack("!H", ip[2:4])[0]
    tcp = ip[ihl:total]
    sport, dport = struct.unpack("!HH", tcp[:4])
    payload = tcp[(tcp[12] >> 4) * 4:]
    if not payload or port not in (sport, dport):
        continue
    way = "c2s" if dport == port else "s2c"
    first.setdefault(way, payload[0])
    if written[way] < LIMIT:
        out[way].write(payload)
        written[way] += len(payload)
for f in out.values():
    f.close()
with open(prefix + ".first", "w") as f:
    for way in ("c2s", "s2c"):
        f.write(f"{way} {first.get(way, -1):02x}\n" if way in first else f"{way} none\n")
