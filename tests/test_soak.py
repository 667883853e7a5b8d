"""No leaks: connect/send/close cycles return fds, threads, greenlets and memory to baseline.

The full soak is ``python -m tools.hardening.soak --cycles 10000``; this runs a
reduced one (``HARDENING_SOAK_CYCLES``, 1,000 by default) on every server.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import weakref

import pytest

from tests.support import app
from tests.support.hardening import hardening_server
from tests.support.servers import available
from tools.hardening.aioclient import close_many, open_many
from tools.hardening.soak import run_soak

CYCLES = int(os.environ.get("HARDENING_SOAK_CYCLES", "1000"))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", available())
def test_soak_returns_to_baseline(name: str) -> None:
    # Short ping_interval and close_timeout: closed connections are held until
    # their cancelled timers are due (see the test below), which slows settling.
    result = asyncio.run(run_soak(CYCLES, name, options={"ping_interval": 2.0, "close_timeout": 2.0}))
    print(result.summary())
    assert result.completed == CYCLES, result.failures[:5]
    assert not result.problems(), result.problems()


@pytest.mark.parametrize("server_name", available())
def test_closed_connections_are_freed_without_waiting_for_keepalive(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    with hardening_server(server_name) as running:
        app.drain_events()

        async def churn() -> None:
            clients, errors = await open_many(50, running.host, running.port, "/echo", concurrency=8, timeout=30)
            assert not errors
            assert await close_many(clients) == 50

        asyncio.run(churn())
        handlers = [weakref.ref(app.wait_event("opened", "/echo")) for _ in range(50)]
        for _ in range(50):
            app.wait_event("closed", "/echo")
        # Closed, and forgotten by the manager: nothing should keep them alive now.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            gc.collect()
            if all(ref() is None for ref in handlers):
                break
            time.sleep(0.1)
        alive = sum(1 for ref in handlers if ref() is not None)
        assert alive == 0, f"{alive} of 50 closed handlers still alive 5 s after closing"
