#!/usr/bin/env python3
"""Soak load for sealed connections: an echo server, and a client that keeps N connections busy.

    soak.py server PORT_FILE
    soak.py client PORT CONNECTIONS SECONDS MARKER STATS_FILE

The server echoes every byte. Each client connection sends chunks of varying size (seeded per
connection, each carrying MARKER so a plaintext wire would show it), reads the echo back, and
checks it byte for byte; it runs until SECONDS have passed. STATS_FILE gets, a quarter into the run
and again near its end, the client's and the server's open fd count and resident
size (the server's pid comes from the server's port file). Prints "connections N rounds R bytes B
mismatches 0" and exits 0 only if every connection ran to the end without a mismatch or error.
"""
import asyncio
import os
import random
import sys


def usage():
    sys.exit(__doc__)


def process_stats(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return fds, rss


async def serve(port_file):
    async def echo(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{port} {os.getpid()}\n")
    os.rename(port_file + ".tmp", port_file)
    async with server:
        await server.serve_forever()


async def client(port, n, seconds, marker, stats_file, server_pid):
    loop = asyncio.get_running_loop()
    up = asyncio.Event()
    opened = 0
    totals = {"rounds": 0, "bytes": 0, "mismatches": 0, "errors": 0}
    waiting = {}  # connection -> (local port, what it waits for), while it runs

    async def one(i):
        nonlocal opened
        rng = random.Random(i)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            totals["errors"] += 1
            print(f"connection {i}: {e}", file=sys.stderr)
            opened += 1
            if opened == n:
                up.set()
            return
        opened += 1
        if opened == n:
            up.set()
        await up.wait()
        end = loop.time() + seconds
        local_port = writer.get_extra_info("sockname")[1]
        try:
            while loop.time() < end:
                size = rng.choice((1, 100, 1500, 16384, 70000))
                body = (marker.encode() + rng.randbytes(max(size - len(marker), 0)))[:size]
                waiting[i] = (local_port, f"drain of {size} bytes")
                writer.write(body)
                await writer.drain()
                waiting[i] = (local_port, f"echo of {size} bytes")
                back = await reader.readexactly(size)
                if back != body:
                    totals["mismatches"] += 1
                    break
                totals["rounds"] += 1
                totals["bytes"] += size
        except (OSError, asyncio.IncompleteReadError) as e:
            totals["errors"] += 1
            print(f"connection {i}: {e!r}", file=sys.stderr)
        waiting.pop(i, None)
        writer.close()

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await up.wait()
    # A quarter in (buffers and allocator arenas warmed up), and near the end, while every
    # connection is still busy.
    await asyncio.sleep(seconds / 4)
    with open(stats_file, "w") as f:
        f.write("start client %d %d server %d %d\n" % (*process_stats(os.getpid()),
                                                       *process_stats(server_pid)))
    await asyncio.sleep(seconds * 3 / 4 - 1)
    with open(stats_file, "a") as f:
        f.write("end client %d %d server %d %d\n" % (*process_stats(os.getpid()),
                                                     *process_stats(server_pid)))
    # Every connection stops by itself at the end; one still running a minute later waits for
    # bytes that do not come: name it and fail, rather than hang until the test's time limit.
    done, pending = await asyncio.wait(tasks, timeout=60)
    if pending:
        for i, (port, what) in sorted(waiting.items()):
            print(f"connection {i} (local port {port}) still waits for the {what}",
                  file=sys.stderr)
        totals["errors"] += len(pending)
    print(f"connections {n} rounds {totals['rounds']} bytes {totals['bytes']} "
          f"mismatches {totals['mismatches']} errors {totals['errors']}")
    return totals["mismatches"] == 0 and totals["errors"] == 0


def main():
    if len(sys.argv) < 3:
        usage()
    if sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2]))
    elif sys.argv[1] == "client" and len(sys.argv) == 8:
        port, n, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        ok = asyncio.run(client(port, n, seconds, sys.argv[5], sys.argv[6], int(sys.argv[7])))
        sys.exit(0 if ok else 1)
    else:
        usage()


main()
