"""At the dependency floors, what the rest of the suite checks with newer client-side APIs.

A few tests elsewhere use test-side features that the oldest supported versions
lack, although the library itself works there:

- ``connect(..., ping_interval=None)`` and ``ClientConnection.close_code``:
  websockets' sync client has them since 15.0 (the floor is 14.0);
- ``gunicorn --no-control-socket``: since gunicorn 25.1 (the floor is 21).

``scripts/min-versions.sh`` deselects those tests when the installed versions
lack the feature; the tests here check the same behaviour with what every
supported version has. Each is skipped where the original can run.

``ClientConnection.close_code`` / ``close_reason`` alone need no deselection:
the script loads ``tests.support.floors_plugin``, which gives websockets 14's
client those two shortcuts of ``connection.protocol.close_code`` / ``close_reason``
(checked below).
"""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.version import Version
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.process import gunicorn_worker
from tests.support.servers import RunningServer

ROOT = Path(__file__).resolve().parent.parent


def _installed(name: str) -> Version | None:
    try:
        return Version(version(name))
    except PackageNotFoundError:
        return None


WEBSOCKETS = _installed("websockets")
GUNICORN = _installed("gunicorn")
OLD_WEBSOCKETS_CLIENT = WEBSOCKETS is not None and WEBSOCKETS.release < (15,)
GUNICORN_WITHOUT_CONTROL_SOCKET_FLAG = GUNICORN is not None and GUNICORN.release < (25, 1)


@pytest.mark.skipif(not OLD_WEBSOCKETS_CLIENT, reason="websockets >= 15: test_behaviour checks this")
def test_peer_that_answers_pings_stays_open(server: RunningServer) -> None:
    # websockets 14's sync client sends no pings of its own and answers the server's.
    url = server.ws_url("/keepalive")
    with connect(url, ssl=server.extra["client_ssl"], open_timeout=10, close_timeout=10) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=2.0)
        ws.send("still open")
        assert ws.recv(timeout=10) == "still open"


def _connect(port: int, path: str) -> ClientConnection:
    # The worker is forked after "Booting worker": retry until it serves.
    deadline = time.monotonic() + 30
    while True:
        try:
            return connect(f"ws://127.0.0.1:{port}{path}", open_timeout=10, close_timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.skipif(
    not GUNICORN_WITHOUT_CONTROL_SOCKET_FLAG, reason="gunicorn absent, or >= 25.1: test_gevent checks this"
)
def test_gunicorn_worker_echo_broadcast_and_graceful_stop_with_1001() -> None:
    with gunicorn_worker() as (proc, port), ExitStack() as stack:
        echo = stack.enter_context(_connect(port, "/echo"))
        echo.send("mode")
        assert echo.recv(timeout=10) == "greenlets patched=True"
        for message in ["hello", b"\x00\x01", "x" * 100_000]:
            echo.send(message)
            assert echo.recv(timeout=10) == message
        conns = [stack.enter_context(_connect(port, "/broadcast")) for _ in range(2)]
        for ws in conns:
            assert ws.recv(timeout=10) == "joined"
        conns[0].send("hello everyone")
        for ws in conns:
            assert ws.recv(timeout=10) == "hello everyone"
        proc.signal(signal.SIGTERM)
        for ws in [*conns, echo]:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert proc.wait(timeout=20) == 0


@pytest.mark.skipif(not OLD_WEBSOCKETS_CLIENT, reason="websockets >= 15 has close_code on its client")
def test_the_floors_plugin_gives_the_client_its_close_code(server: RunningServer) -> None:
    import tests.support.floors_plugin  # noqa: F401 - the shortcuts, as min-versions.sh loads them

    url = server.ws_url("/keepalive")
    with connect(url, ssl=server.extra["client_ssl"], open_timeout=10, close_timeout=10) as ws:
        assert ws.close_code is None  # type: ignore[attr-defined]
        ws.close(1000, "bye")
    assert ws.close_code is not None and ws.close_code == ws.protocol.close_code  # type: ignore[attr-defined]
    assert ws.close_reason == ws.protocol.close_reason  # type: ignore[attr-defined]
