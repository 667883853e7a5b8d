"""Helpers shared by the hardening tests: the test app with a 404 fallback, bystanders, log capture."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support import app
from tests.support.client import RawClient
from tests.support.servers import RunningServer, serve
from ws4py_integrations import WebSocketMiddleware

__all__ = ["LogWatcher", "assert_serving", "hardening_server", "raw", "ws_client"]


@contextmanager
def hardening_server(name: str, routes: dict[str, Any] | None = None, **overrides: Any) -> Iterator[RunningServer]:
    """The hardening app on server adapter ``name`` (plain ws, 127.0.0.1, port 0);
    ``routes`` (path: endpoint) come before the app's own."""
    app.drain_events()
    application = app.make_app(app.not_found, **overrides)
    if routes:
        application = WebSocketMiddleware(application, routes)
    with serve(name, application) as running:
        running.extra["client_ssl"] = None
        yield running
    app.drain_events()


@contextmanager
def ws_client(server: RunningServer, path: str = "/echo", **kwargs: Any) -> Iterator[ClientConnection]:
    """An independent client (websockets' sync client)."""
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 10)
    kwargs.setdefault("max_size", None)
    with connect(f"ws://{server.host}:{server.port}{path}", **kwargs) as ws:
        yield ws


def raw(server: RunningServer, timeout: float = 10.0) -> RawClient:
    return RawClient(server.host, server.port, None, timeout=timeout)


def assert_serving(server: RunningServer, *bystanders: ClientConnection) -> None:
    """Every bystander still echoes, and a newcomer is served."""
    for index, ws in enumerate(bystanders):
        ws.send(f"bystander {index}")
        assert ws.recv(timeout=10) == f"bystander {index}"
    with ws_client(server) as newcomer:
        newcomer.send("newcomer")
        assert newcomer.recv(timeout=10) == "newcomer"


class LogWatcher(logging.Handler):
    """Collects records of the library's loggers; tests wait for one with a timeout."""

    def __init__(self, logger: str = "ws4py_integrations") -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()
        self._logger = logging.getLogger(logger)
        self._old_level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def __enter__(self) -> LogWatcher:
        self._logger.addHandler(self)
        if self._logger.getEffectiveLevel() > logging.INFO:
            self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)

    def wait_for(self, predicate: Callable[[logging.LogRecord], bool], timeout: float = 10.0) -> logging.LogRecord:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for record in self.records:
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching log record within {timeout}s")
                self._changed.wait(remaining)


def frame_bytes(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, rsv2: bool = False, rsv3: bool = False
) -> bytes:
    """A masked client frame, serialized by hand: no validity checks at all."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | (0x10 if rsv3 else 0) | opcode
    length = len(payload)
    if length < 126:
        head = bytes([first, 0x80 | length])
    elif length < 2**16:
        head = bytes([first, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + length.to_bytes(8, "big")
    mask = b"\x5a\xa5\x3c\xc3"
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def exchange(server: RunningServer, request: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send ``request``; the status and body of the answer (``None``: closed with no answer)."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may refuse before reading everything
            sock.sendall(request)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/"):
                # Nothing, or an HTTP/0.9-style error body with no status line (http.server
                # answers a request line it cannot parse like that).
                return None, data
            status = int(head.split(b"\r\n", 1)[0].split()[1])
            match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            length = int(match[1]) if match else 0
            while status != 101 and len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except ConnectionResetError:
            return (int(data.split()[1]), b"") if data.startswith(b"HTTP/") else (None, data)
        return status, body
