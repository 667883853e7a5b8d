"""A stand-in Engine.IO session for testing the Socket.IO layer alone.

It records what the server sends and feeds it what a client would; the
real transport and independent clients are tested in
tests/test_socketio_clients.py.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import pytest

from ws4py_integrations.socketio import Server

__all__ = ["TIMEOUT", "FakeEngine"]

TIMEOUT = 5.0


class FakeEngine:
    """An Engine.IO session as the Socket.IO layer sees it."""

    count = 0

    def __init__(self, server: Server, environ: dict[str, Any] | None = None) -> None:
        FakeEngine.count += 1
        self.server = server
        self.sid = f"eio{FakeEngine.count}"
        self.environ = environ or {"PATH_INFO": "/socket.io/", "HTTP_COOKIE": "user=ann"}
        self.transport = "websocket"
        self.closed = False
        self.outbox: queue.Queue[str | bytes] = queue.Queue()
        self.closed_event = threading.Event()
        server.engine_handler.connect(self)

    def send(self, data: str | bytes) -> None:
        assert not self.closed
        self.outbox.put(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.closed_event.set()
            self.server.engine_handler.disconnect(self, "forced close")

    def feed(self, *messages: str | bytes) -> None:
        for message in messages:
            self.server.engine_handler.message(self, message)

    def recv(self, timeout: float = TIMEOUT) -> str | bytes:
        return self.outbox.get(timeout=timeout)

    def nothing(self, wait: float = 0.2) -> None:
        with pytest.raises(queue.Empty):
            got = self.outbox.get(timeout=wait)
            pytest.fail(f"unexpected {got!r}")

    def connect(self, namespace: str = "/", auth: Any = None) -> str:
        prefix = "" if namespace == "/" else namespace + ","
        self.feed("0" + prefix + ("" if auth is None else json.dumps(auth)))
        answer = self.recv()
        assert isinstance(answer, str) and answer.startswith("0" + prefix), answer
        sid: str = json.loads(answer[1 + len(prefix) :])["sid"]
        return sid
