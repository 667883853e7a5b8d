"""Load and shutdown on every server.

- Many idle WebSockets held by one server process, a broadcast that reaches
  all of them, and a graceful stop that sends each 1001. The full run is
  ``python -m tools.hardening.load --connections 10000``; this one holds
  ``HARDENING_LOAD_CONNECTIONS`` (2,000 by default).
- Stopping a server with 1,000 open WebSockets sends 1001 to all and finishes
  within the close timeout, even when some clients never answer.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from websockets.frames import Opcode

from tests.support.hardening import hardening_server
from tests.support.servers import available
from tools.hardening.aioclient import WSClient, open_many
from tools.hardening.load import run_load
from tools.hardening.metrics import raise_fd_limit

CONNECTIONS = int(os.environ.get("HARDENING_LOAD_CONNECTIONS", "2000"))
SHUTDOWN_CONNECTIONS = 1000
CLOSE_TIMEOUT = 3.0  # /shutdown's close_timeout
SLACK = 10.0


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", available())
def test_idle_connections_and_broadcast(name: str) -> None:
    result = asyncio.run(run_load(CONNECTIONS, name))
    print(result.summary())
    assert result.connected == CONNECTIONS, result.connect_errors
    assert result.server_connections == CONNECTIONS
    assert result.broadcast_sent == result.broadcast_received == CONNECTIONS
    assert result.got_1001 == CONNECTIONS


async def _close_code(client: WSClient, timeout: float) -> int | None:
    async with asyncio.timeout(timeout):
        while True:
            frame = await client.recv_frame(timeout)
            if frame is None:
                return None
            if frame.opcode is Opcode.CLOSE:
                return int.from_bytes(frame.data[:2], "big")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("silent", [0, 100], ids=["all-answer", "100-silent"])
@pytest.mark.parametrize("name", available())
def test_stop_with_1000_open_websockets(name: str, silent: int) -> None:
    raise_fd_limit()
    with hardening_server(name) as running:

        async def scenario() -> tuple[float, list[int | None]]:
            clients, errors = await open_many(
                SHUTDOWN_CONNECTIONS, running.host, running.port, "/shutdown", concurrency=8, timeout=30
            )
            assert not errors, errors[:3]
            # Silent clients read nothing from now on: they never answer the close.
            for client in clients[:silent]:
                client.writer.transport.pause_reading()  # type: ignore[attr-defined]
            answering = clients[silent:]
            codes = asyncio.gather(*(_close_code(c, CLOSE_TIMEOUT + SLACK + 30) for c in answering))
            started = time.monotonic()
            await asyncio.to_thread(running.stop)
            elapsed = time.monotonic() - started
            result = await codes
            for client in clients:
                client.writer.transport.abort()
            return elapsed, result

        elapsed, codes = asyncio.run(scenario())
    assert codes.count(1001) == SHUTDOWN_CONNECTIONS - silent, {code: codes.count(code) for code in set(codes)}
    assert elapsed < CLOSE_TIMEOUT + SLACK, f"stop took {elapsed:.1f}s"
