#!/usr/bin/env python3
"""An asyncio streams echo pair for the compat `python` row: plain Python, no sealsock in sight.

  asyncio_echo.py server PORT_FILE
      Listens on 127.0.0.1 (port written to PORT_FILE); echoes each connection to its EOF, then
      half-closes. Stops after SIGTERM.
  asyncio_echo.py client PORT CONNECTIONS SIZE MARKER
      Opens CONNECTIONS connections at once; on each sends SIZE random bytes with MARKER in them,
      half-closes, reads the echo to EOF and compares SHA-256. Prints `verified N of M, B bytes`
      and exits 0 only when every connection came back intact.
"""
import asyncio
import hashlib
import os
import sys


async def echo(reader, writer):
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def server(port_file):
    srv = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=1024)
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{srv.sockets[0].getsockname()[1]}\n")
    os.rename(port_file + ".tmp", port_file)
    async with srv:
        await srv.serve_forever()


async def one(port, size, marker):
    payload = os.urandom(size // 2) + marker + os.urandom(size - size // 2 - len(marker))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send():
        for at in range(0, len(payload), 4096):
            writer.write(payload[at:at + 4096])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    received = await reader.read(-1)
    await sender
    writer.close()
    await writer.wait_closed()
    return hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


async def client(port, connections, size, marker):
    outcomes = await asyncio.gather(*(one(port, size, marker) for _ in range(connections)),
                                    return_exceptions=True)
    good = sum(1 for o in outcomes if o is True)
    for o in outcomes:
        if isinstance(o, BaseException):
            print(f"error: {o!r}")
            break
    print(f"verified {good} of {connections}, {good * size * 2} bytes")
    return good == connections


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "server":
        asyncio.run(server(sys.argv[2]))
    elif len(sys.argv) == 6 and sys.argv[1] == "client":
        ok = asyncio.run(client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                sys.argv[5].encode()))
        sys.exit(0 if ok else 1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
