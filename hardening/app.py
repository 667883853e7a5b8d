"""The WSGI application every hardening test and command runs.

Handlers record what the server saw (``opened``/``closed`` with code) in
:data:`events`, so tests can assert on the server's view with a timeout.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from tests.apps import wait_event_in
from ws4py_integrations import (
    Manager,
    Message,
    WebSocket,
    WebSocketClosed,
    WebSocketMiddleware,
    WebSocketWSGIApplication,
)

__all__ = ["ENDPOINTS", "events", "make_app", "managers", "wait_event"]

#: (kind, path, details): ``("opened", path, websocket)``, ``("closed", path, (code, reason))``.
events: queue.Queue[tuple[str, str, Any]] = queue.Queue()

#: Set to ``False`` where nobody reads :data:`events` (it holds the handlers).
record_events = True

#: Every manager that ran one of our handlers (for broadcast and stats).
managers: dict[int, Manager] = {}
_managers_lock = threading.Lock()

# Bounds for the server-side flood command.
_FLOOD_MAX_MESSAGES = 100_000


def _record(kind: str, path: str, details: Any) -> None:
    if record_events:
        events.put((kind, path, details))


def wait_event(kind: str, path: str, timeout: float = 10.0) -> Any:
    """The next ``kind`` event recorded on ``path`` (other events are dropped)."""
    return wait_event_in(events, kind, path, timeout)


def drain_events() -> None:
    while True:
        try:
            events.get_nowait()
        except queue.Empty:
            return


class Hostile(WebSocket):
    """Echo plus commands: ``flood:<count>,<size>`` and ``broadcast:<count>,<size>``."""

    def opened(self) -> None:
        with _managers_lock:
            managers[id(self.manager)] = self.manager
        _record("opened", self.environ["PATH_INFO"], self)

    def received_message(self, message: Message) -> None:
        data = message.data
        if isinstance(data, str) and data.startswith(("flood:", "broadcast:")):
            command, _, arg = data.partition(":")
            count, size = (int(x) for x in arg.split(","))
            payload = b"x" * size
            if command == "flood":
                sent = 0
                try:
                    for _ in range(min(count, _FLOOD_MAX_MESSAGES)):
                        self.send(payload)
                        sent += 1
                except WebSocketClosed:
                    _record("flood-stopped", self.environ["PATH_INFO"], sent)
                    return
                _record("flood-done", self.environ["PATH_INFO"], sent)
            else:
                reached = [self.manager.broadcast(payload) for _ in range(count)]
                _record("broadcast-done", self.environ["PATH_INFO"], reached)
            return
        self.send(data)

    def closed(self, code: int, reason: str = "") -> None:
        _record("closed", self.environ["PATH_INFO"], (code, reason))


class FailOpened(Hostile):
    def opened(self) -> None:
        super().opened()
        raise RuntimeError("hardening: opened() failed on purpose")


class FailMessage(Hostile):
    def received_message(self, message: Message) -> None:
        if message.data == "raise":
            raise RuntimeError("hardening: received_message() failed on purpose")
        super().received_message(message)


class FailClosed(Hostile):
    def closed(self, code: int, reason: str = "") -> None:
        super().closed(code, reason)
        raise RuntimeError("hardening: closed() failed on purpose")


class FailPonged(Hostile):
    def ponged(self, data: bytes) -> None:
        raise RuntimeError("hardening: ponged() failed on purpose")


class FailInit(Hostile):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("hardening: __init__() failed on purpose")


def not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"no WebSocket endpoint here\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


#: Path -> (handler, options) of every endpoint.
ENDPOINTS: dict[str, tuple[type[WebSocket], dict[str, Any]]] = {
    # Defaults: what a production endpoint gets.
    "/echo": (Hostile, {}),
    "/load": (Hostile, {}),
    "/strict": (Hostile, {"origins": ["https://good.example"], "protocols": ["chat", "superchat"]}),
    # A compressing endpoint with a small limit: decompression bombs.
    "/small": (Hostile, {"max_message_size": 64 * 1024, "close_timeout": 2.0}),
    # A small send buffer: slow readers.
    "/stuck": (Hostile, {"max_send_buffer": 256 * 1024, "close_timeout": 2.0, "compression": False}),
    # Stalls inside a frame: the read timeout alone (no keepalive).
    "/stall": (Hostile, {"ping_interval": None, "read_timeout": 1.0, "close_timeout": 1.0}),
    # Keepalive alone (no read timeout): vanished and stalled peers.
    "/keepalive": (Hostile, {"ping_interval": 0.5, "ping_timeout": 0.5, "read_timeout": None, "close_timeout": 1.0}),
    "/shutdown": (Hostile, {"close_timeout": 3.0, "ping_interval": None}),
    "/fail-opened": (FailOpened, {"close_timeout": 2.0}),
    "/fail-message": (FailMessage, {"close_timeout": 2.0}),
    "/fail-closed": (FailClosed, {"close_timeout": 2.0}),
    "/fail-ponged": (FailPonged, {"close_timeout": 2.0}),
    "/fail-init": (FailInit, {"close_timeout": 2.0}),
}


def make_app(**overrides: Any) -> WebSocketMiddleware:
    """The hardening app; ``overrides`` apply to every endpoint's options."""
    return WebSocketMiddleware(
        not_found,
        {path: WebSocketWSGIApplication(cls, **{**options, **overrides}) for path, (cls, options) in ENDPOINTS.items()},
    )
