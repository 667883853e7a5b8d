"""Load: one server process holds N idle WebSockets, broadcasts to all, then stops.

    python -m tools.hardening.load --connections 10000 [--server wsgiref] [--json]

The server runs in a process of its own (``hardening.serverproc``) so that its
RSS is measured without the clients; the clients are asyncio streams in this
process. Reports the server's RSS per connection, the broadcast's reach and
the graceful stop (every client must get 1001).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from websockets.frames import Close, Opcode

from tools.hardening.aioclient import WSClient, open_many
from tools.hardening.metrics import raise_fd_limit
from tools.hardening.serverproc import HardeningServer

__all__ = ["LoadResult", "main", "run_load"]


@dataclass
class LoadResult:
    server: str
    requested: int
    connected: int = 0
    connect_errors: list[str] = field(default_factory=list)
    server_connections: int = 0
    open_seconds: float = 0.0
    rss_baseline_kib: int = 0
    rss_loaded_kib: int = 0
    kib_per_connection: float = 0.0
    server_threads_loaded: int = 0
    server_fds_loaded: int = 0
    broadcast_sent: int = 0
    broadcast_received: int = 0
    broadcast_seconds: float = 0.0
    stop_seconds: float = 0.0
    got_1001: int = 0
    client_fd_limit: int = 0

    def summary(self) -> str:
        return (
            f"{self.server}: {self.connected}/{self.requested} connected in {self.open_seconds:.1f}s; "
            f"server RSS {self.rss_baseline_kib} -> {self.rss_loaded_kib} KiB = "
            f"{self.kib_per_connection:.1f} KiB/connection ({self.server_threads_loaded} threads, "
            f"{self.server_fds_loaded} fds); broadcast {self.broadcast_received}/{self.broadcast_sent} "
            f"in {self.broadcast_seconds:.2f}s; stop {self.stop_seconds:.2f}s, {self.got_1001} got 1001"
        )


async def _wait_connections(proc: HardeningServer, expected: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        figures = await proc.command("figures")
        if figures["connections"] == expected or time.monotonic() > deadline:
            return figures
        await asyncio.sleep(0.2)


async def _first_data(client: WSClient, timeout: float) -> bytes | None:
    with contextlib.suppress(TimeoutError):
        frame = await client.recv_data(timeout)
        if frame is not None and frame.opcode is Opcode.TEXT:
            return bytes(frame.data)
    return None


async def _close_code(client: WSClient, timeout: float) -> int | None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while True:
                frame = await client.recv_frame(timeout)
                if frame is None:
                    return client.close_rcvd.code if client.close_rcvd else None
                if frame.opcode is Opcode.CLOSE:
                    return Close.parse(frame.data).code
    return None


async def run_load(
    connections: int, server: str = "wsgiref", *, concurrency: int = 8, timeout: float = 600.0
) -> LoadResult:
    result = LoadResult(server, connections, client_fd_limit=raise_fd_limit())
    proc = HardeningServer(server)
    clients: list[WSClient] = []
    try:
        await proc.start()
        host, port = "127.0.0.1", proc.port
        # Warm up: thread pools and caches exist before the baseline.
        warm, _ = await open_many(min(64, connections), host, port, "/load", concurrency=concurrency)
        for client in warm:
            client.close()
        await asyncio.gather(*(c.wait_closed(30) for c in warm), return_exceptions=True)
        baseline = await _wait_connections(proc, 0, 30)
        result.rss_baseline_kib = baseline["rss_kib"]

        started = time.monotonic()
        clients, errors = await asyncio.wait_for(
            open_many(connections, host, port, "/load", concurrency=concurrency, timeout=60), timeout
        )
        result.open_seconds = time.monotonic() - started
        result.connected = len(clients)
        result.connect_errors = sorted({f"{type(e).__name__}: {e}" for e in errors})[:10]

        loaded = await _wait_connections(proc, len(clients), 60)
        result.server_connections = loaded["connections"]
        result.rss_loaded_kib = loaded["rss_kib"]
        result.server_threads_loaded = loaded["os_threads"]
        result.server_fds_loaded = loaded["fds"]
        if clients:
            result.kib_per_connection = (result.rss_loaded_kib - result.rss_baseline_kib) / len(clients)

        started = time.monotonic()
        result.broadcast_sent = (await proc.command("broadcast", text="load-broadcast"))["sent"]
        received = await asyncio.gather(*(_first_data(c, 60) for c in clients))
        result.broadcast_seconds = time.monotonic() - started
        result.broadcast_received = sum(1 for data in received if data == b"load-broadcast")

        # Graceful stop with every connection open: each must get 1001.
        codes_task = asyncio.gather(*(_close_code(c, 120) for c in clients))
        stopped = await proc.stop(timeout=120)
        result.stop_seconds = stopped["stop_seconds"]
        codes = await codes_task
        result.got_1001 = sum(1 for code in codes if code == 1001)
    finally:
        for client in clients:
            if not client.eof:
                client.writer.transport.abort()
        await proc.kill()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Hold N idle WebSockets on one server process and broadcast.")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--server", action="append", help="server adapter (repeatable); default: every available one")
    parser.add_argument("--concurrency", type=int, default=8, help="handshakes in flight at once")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    from tests.support.servers import available

    servers = args.server or available()
    ok = True
    results = []
    for name in servers:
        result = asyncio.run(run_load(args.connections, name, concurrency=args.concurrency))
        results.append(asdict(result))
        print(result.summary(), flush=True)
        if result.connect_errors:
            print(f"  connect errors: {result.connect_errors}", flush=True)
        ok = ok and result.connected == result.broadcast_received == result.got_1001 == args.connections
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
