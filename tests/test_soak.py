"""No leaks: connect/send/close cycles return fds, threads, greenlets and memory to baseline.

The full soak is ``python -m hardening.soak --cycles 10000``; this runs a
reduced one (``HARDENING_SOAK_CYCLES``, 1,000 by default) on every server.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import weakref

import pytest

from hardening import app
from hardening.aioclient import close_many, open_many
from hardening.soak import run_soak
from hardening.testing import hardening_server
from tests.servers import available
from ws4py_integrations import ThreadedManager

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
        manager = handlers[0]().manager  # type: ignore[union-attr]
        if isinstance(manager, ThreadedManager):
            request.applymarker(
                pytest.mark.xfail(
                    strict=True,
                    reason=(
                        "ThreadedManager keeps closed connections in memory until their timers would have "
                        "fired: Connection.abort cancels the keepalive (ping_interval, 20 s), close "
                        "(close_timeout, 10 s) and read (read_timeout, 60 s) timers, but _Timer.cancel in "
                        "manager/threaded.py only sets a flag; the timer stays in the loop's heap until its "
                        "deadline, holding func=<bound method of the Connection> and with it the protocol, "
                        "environ, socket object and handler. A churn of R connections/s keeps ~R x 20 s dead "
                        "connections (~12 KiB each) alive: right after 10,000 soak cycles all 10,000 were "
                        "still alive. Should: drop timer.func in cancel() (and compact the heap when "
                        "cancelled timers dominate). GeventManager frees them at once"
                    ),
                )
            )
        del manager
        # Closed, and forgotten by the manager: nothing should keep them alive now.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            gc.collect()
            if all(ref() is None for ref in handlers):
                break
            time.sleep(0.1)
        alive = sum(1 for ref in handlers if ref() is not None)
        assert alive == 0, f"{alive} of 50 closed handlers still alive 5 s after closing"
