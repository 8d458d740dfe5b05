#!/usr/bin/env python3
"""Plaintext peers of the gateway tests (never preloaded unless a test says so).

  gw_peer.py echo PORT_FILE LOG [--proxy-v2]
      Listens on 127.0.0.1 (port written to PORT_FILE); for each connection appends one line to
      LOG when it ends: `conn N bytes B sha256 H` (what it received, after the PROXY header),
      echoing everything back and passing the client's half-close on. With --proxy-v2 each
      connection must start with a PROXY protocol v2 header; its fields go to LOG as one JSON
      line `proxy {...}` first (a connection without a valid header is logged `proxy-error
      REASON` and closed, nothing echoed).
  gw_peer.py send HOST PORT FILE OUT [--no-half-close]
      Connects, sends FILE, shuts down its write side, reads until EOF into OUT. Exit 0; 3 when
      the connection fails or is reset. With --no-half-close it reads back as many bytes as it
      sent before it closes (for paths that end a tunnel at the first EOF, as tinyproxy does).
  gw_peer.py http PORT_FILE COUNT_FILE
      A small HTTP/1.1 origin: every request increments the number in COUNT_FILE and gets a
      64 KiB body (bytes 0..255 repeated) with Cache-Control: max-age=300.
"""
import hashlib
import json
import os
import socket
import struct
import sys
import threading

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
lock = threading.Lock()


def publish(listener, port_file):
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{listener.getsockname()[1]}\n")
    os.rename(port_file + ".tmp", port_file)


def log(path, line):
    with lock, open(path, "a") as f:
        f.write(line + "\n")


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"end of stream after {len(data)} of {n} header bytes")
        data += chunk
    return data


def parse_tlvs(data):
    out = []
    at = 0
    while at < len(data):
        if len(data) - at < 3:
            raise ValueError("truncated TLV")
        kind, length = data[at], struct.unpack(">H", data[at + 1:at + 3])[0]
        value = data[at + 3:at + 3 + length]
        if len(value) != length:
            raise ValueError(f"TLV 0x{kind:02x} runs past the header")
        out.append((kind, value))
        at += 3 + length
    return out


def proxy_v2(sock):
    """Reads and decodes one PROXY v2 header (haproxy's proxy-protocol.txt, section 2.2)."""
    head = recv_exact(sock, 16)
    if head[:12] != SIG:
        raise ValueError(f"no PROXY v2 signature: first bytes {head[:12].hex()}")
    if head[12] != 0x21:
        raise ValueError(f"version/command 0x{head[12]:02x}, expected 0x21")
    family, length = head[13], struct.unpack(">H", head[14:16])[0]
    body = recv_exact(sock, length)
    info = {"family": family}
    if family == 0x11:
        src, dst = socket.inet_ntop(socket.AF_INET, body[0:4]), socket.inet_ntop(socket.AF_INET, body[4:8])
        sport, dport = struct.unpack(">HH", body[8:12])
        rest = body[12:]
    elif family == 0x21:
        src, dst = socket.inet_ntop(socket.AF_INET6, body[0:16]), socket.inet_ntop(socket.AF_INET6, body[16:32])
        sport, dport = struct.unpack(">HH", body[32:36])
        rest = body[36:]
    else:
        raise ValueError(f"family 0x{family:02x}")
    info.update(src=src, sport=sport, dst=dst, dport=dport)
    for kind, value in parse_tlvs(rest):
        if kind == 0x20:
            info["ssl_client"] = value[0]
            info["ssl_verify"] = struct.unpack(">I", value[1:5])[0]
            for sub, sv in parse_tlvs(value[5:]):
                name = {0x21: "ssl_version", 0x22: "ssl_cn", 0x23: "ssl_cipher"}.get(sub, f"ssl_0x{sub:02x}")
                info[name] = sv.decode()
        elif kind == 0xE0:
            info["subject"] = value.decode()
        elif kind == 0xE1:
            info["fingerprint"] = value.decode()
        elif kind == 0xE2:
            info["rule"] = value.decode()
        else:
            info[f"tlv_0x{kind:02x}"] = value.hex()
    return info


def echo_conn(conn, n, path, with_proxy):
    digest, total = hashlib.sha256(), 0
    try:
        if with_proxy:
            try:
                log(path, "proxy " + json.dumps(proxy_v2(conn), sort_keys=True))
            except (ValueError, EOFError) as e:
                log(path, f"proxy-error {e}")
                return
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        log(path, f"conn {n} error {e}")
    finally:
        log(path, f"conn {n} bytes {total} sha256 {digest.hexdigest()}")
        conn.close()


def echo(port_file, path, with_proxy):
    listener = socket.create_server(("127.0.0.1", 0))
    publish(listener, port_file)
    n = 0
    while True:
        conn, _ = listener.accept()
        n += 1
        log(path, f"accept {n}")
        threading.Thread(target=echo_conn, args=(conn, n, path, with_proxy), daemon=True).start()


def send(host, port, path, out, half_close=True):
    data = open(path, "rb").read()
    try:
        sock = socket.create_connection((host, int(port)), timeout=60)
        writer = threading.Thread(target=lambda: (
            sock.sendall(data), half_close and sock.shutdown(socket.SHUT_WR)))
        writer.start()
        got = 0
        with open(out, "wb") as f:
            while half_close or got < len(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                f.write(chunk)
                got += len(chunk)
        writer.join()
        sock.close()
    except OSError as e:
        print(f"send: {e}", file=sys.stderr)
        sys.exit(3)


def http(port_file, count_file):
    body = bytes(range(256)) * 256
    listener = socket.create_server(("127.0.0.1", 0))
    publish(listener, port_file)
    with open(count_file, "w") as f:
        f.write("0\n")
    while True:
        conn, _ = listener.accept()
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if b"\r\n\r\n" not in buf:
                    break
                buf = buf.split(b"\r\n\r\n", 1)[1]
                with lock:
                    count = int(open(count_file).read()) + 1
                    with open(count_file, "w") as f:
                        f.write(f"{count}\n")
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Cache-Control: max-age=300\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)


def main():
    a = sys.argv[1:]
    if len(a) in (3, 4) and a[0] == "echo":
        echo(a[1], a[2], a[3:] == ["--proxy-v2"])
    elif len(a) in (5, 6) and a[0] == "send":
        send(*a[1:5], half_close=a[5:] != ["--no-half-close"])
    elif len(a) == 3 and a[0] == "http":
        http(a[1], a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
