"""The one WSGI application the tests, the hardening tools and the fan-out benchmark run.

Handlers record what the server saw in :data:`events` as ``(kind, path,
details)``, so tests can assert on the server's view with a timeout.

Endpoints (see :data:`ENDPOINTS`):

- behaviour suite: ``/echo`` (text commands, see :class:`Commands`), ``/record``,
  ``/room``, ``/keepalive``, ``/small``, ``/auth``, ``/slowreader``;
- hardening: ``/load``, ``/strict``, ``/small-deflate``, ``/stuck``, ``/stall``,
  ``/shutdown``, ``/fail-{opened,message,closed,ponged,init}``;
- gunicorn: ``/broadcast``;
- rooms across processes: ``/rooms`` (see :class:`RoomCommands`).

Anything else goes to ``fallback``: :func:`plain_app` (200, for the behaviour
suite's plain-HTTP checks) or :func:`not_found` (404, for the hardening tests,
which expect 101 or 4xx from every request).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Iterable
from typing import Any

from ws4py_integrations import (
    HandshakeRejected,
    Manager,
    Message,
    WebSocket,
    WebSocketClosed,
    WebSocketMiddleware,
    WebSocketWSGIApplication,
)
from ws4py_integrations.broker import BrokerError
from ws4py_integrations.middleware import WSGIApp

__all__ = [
    "ENDPOINTS",
    "Commands",
    "RoomCommands",
    "drain_events",
    "events",
    "make_app",
    "managers",
    "not_found",
    "plain_app",
    "wait_event",
    "wait_event_in",
]

#: What handlers observed, for tests to assert on: (event, path, details).
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
    """The next ``kind`` event recorded by a handler on ``path``."""
    return wait_event_in(events, kind, path, timeout)


def wait_event_in(events: queue.Queue[tuple[str, str, Any]], kind: str, path: str, timeout: float = 10.0) -> Any:
    """The next ``kind`` event on ``path`` in ``events`` (other events are dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {kind!r} event on {path} within {timeout}s")
        try:
            got_kind, got_path, details = events.get(timeout=remaining)
        except queue.Empty:
            continue
        if (got_kind, got_path) == (kind, path):
            return details


def drain_events() -> None:
    """Forget every recorded event."""
    while True:
        try:
            events.get_nowait()
        except queue.Empty:
            return


class Recording(WebSocket):
    """Echoes, and records opened (with the subprotocol) and closed (with code, reason)."""

    def opened(self) -> None:
        with _managers_lock:
            managers[id(self.manager)] = self.manager
        _record("opened", self.environ["PATH_INFO"], self.subprotocol)

    def received_message(self, message: Message) -> None:
        self.send(message.data)

    def closed(self, code: int, reason: str = "") -> None:
        _record("closed", self.environ["PATH_INFO"], (code, reason))


class Commands(Recording):
    """Text commands drive server-side behaviour; anything else is echoed.

    ``opened`` records the handler itself (the hardening tests inspect it and
    check that it is collected). Commands: ``close:CODE:REASON``,
    ``block:SECONDS``, ``sleep:SECONDS``, ``ping:DATA``, ``burst:THREADS,COUNT,SIZE``,
    ``fragments:A,B``, ``raise:...``, ``flood:COUNT,SIZE``, ``broadcast:COUNT,SIZE``
    and ``mode`` (the gevent handler mode and whether sockets are patched).
    """

    def opened(self) -> None:
        with _managers_lock:
            managers[id(self.manager)] = self.manager
        _record("opened", self.environ["PATH_INFO"], self)

    def received_message(self, message: Message) -> None:
        data = message.data
        if data == "mode":
            from gevent import monkey

            self.send(f"{getattr(self.manager, 'handlers', None)} patched={monkey.is_module_patched('socket')}")
            return
        if not isinstance(data, str) or ":" not in data:
            self.send(data)
            return
        command, _, arg = data.partition(":")
        if command == "close":
            code, _, reason = arg.partition(":")
            self.close(int(code), reason)
        elif command == "block":
            self.send("blocking")
            time.sleep(float(arg))
            self.send("unblocked")
        elif command == "sleep":
            time.sleep(float(arg))
            self.send(f"slept:{arg}")
        elif command == "ping":
            self.ping(arg.encode())
        elif command == "burst":
            self._burst(*(int(x) for x in arg.split(",")))
        elif command == "fragments":
            self.send(part for part in arg.split(","))
        elif command == "raise":
            raise RuntimeError("handler failure requested by the test")
        elif command == "flood":
            self._flood(*(int(x) for x in arg.split(",")))
        elif command == "broadcast":
            count, size = (int(x) for x in arg.split(","))
            payload = b"x" * size
            reached = [self.manager.broadcast(payload) for _ in range(count)]
            _record("broadcast-done", self.environ["PATH_INFO"], reached)
        else:
            self.send(data)

    def _burst(self, threads: int, count: int, size: int) -> None:
        """Several threads send large messages at once on this connection."""

        def sender(index: int) -> None:
            try:
                for n in range(count):
                    self.send(bytes([index * 16 + n % 16]) * size)
            except WebSocketClosed:
                return  # the slow-reader test: the server gave up on this peer

        workers = [threading.Thread(target=sender, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        with contextlib.suppress(WebSocketClosed):
            self.send("burst-done")

    def _flood(self, count: int, size: int) -> None:
        payload = b"x" * size
        sent = 0
        try:
            for _ in range(min(count, _FLOOD_MAX_MESSAGES)):
                self.send(payload)
                sent += 1
        except WebSocketClosed:
            _record("flood-stopped", self.environ["PATH_INFO"], sent)
            return
        _record("flood-done", self.environ["PATH_INFO"], sent)

    def ponged(self, data: bytes) -> None:
        self.send(f"ponged:{data.decode()}")


class QuietPongs(Commands):
    """Commands that say nothing about pongs: keepalive tests expect silence from the server."""

    def ponged(self, data: bytes) -> None:
        return


class FailOpened(Commands):
    def opened(self) -> None:
        super().opened()
        raise RuntimeError("hardening: opened() failed on purpose")


class FailMessage(Commands):
    def received_message(self, message: Message) -> None:
        if message.data == "raise":
            raise RuntimeError("hardening: received_message() failed on purpose")
        super().received_message(message)


class FailClosed(Commands):
    def closed(self, code: int, reason: str = "") -> None:
        super().closed(code, reason)
        raise RuntimeError("hardening: closed() failed on purpose")


class FailPonged(Commands):
    def ponged(self, data: bytes) -> None:
        raise RuntimeError("hardening: ponged() failed on purpose")


class FailInit(Commands):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("hardening: __init__() failed on purpose")


class Room(WebSocket):
    """Joins ``room``; every message goes to the room."""

    def opened(self) -> None:
        self.join("room")
        _record("opened", self.environ["PATH_INFO"], None)

    def received_message(self, message: Message) -> None:
        self.manager.broadcast(message.data, "room")


class Broadcast(WebSocket):
    """Joins ``all`` and says ``joined``; every message goes to ``all``."""

    def opened(self) -> None:
        self.join("all")
        self.send("joined")

    def received_message(self, message: Message) -> None:
        self.manager.broadcast(message.data, "all")


class RoomCommands(WebSocket):
    """Rooms driven by the client, in one process or several (through a broker).

    Commands (text messages)::

        join:ROOM            join, answer "joined:ROOM"
        leave:ROOM           leave, answer "left:ROOM"
        pub:ROOM:TEXT        publish TEXT to ROOM (no answer unless it fails)
        pubn:ROOM:TEXT       same, answer "published:N" (N: connections of this process that got it)
        pubx:ROOM:TEXT       publish to ROOM but not to this connection
        frag:ROOM:A,B,C      publish one message sent as fragments A, B, C
        all:TEXT             broadcast TEXT to every connection
        count:ROOM           answer "count:ROOM:N" (members in this process)
        rooms                answer "rooms:" + JSON {room: count} (this process)
        myrooms              answer "myrooms:" + JSON [rooms of this connection]
        status               answer "status:" + JSON {"pid": ..., "broker": ...}

    A binary message ``ROOM\\n`` + payload publishes the payload, as binary. A
    publish the broker cannot hand on answers ``error:<exception class>:<message>``.
    """

    def received_message(self, message: Message) -> None:
        data = message.data
        if isinstance(data, bytes):
            name, _, payload = data.partition(b"\n")
            self._publish(name.decode(), payload)
            return
        command, _, arg = data.partition(":")
        if command == "join":
            self.join(arg)
            self.send(f"joined:{arg}")
        elif command == "leave":
            self.leave(arg)
            self.send(f"left:{arg}")
        elif command in ("pub", "pubn", "pubx"):
            room, _, text = arg.partition(":")
            count = self._publish(room, text, exclude=[self] if command == "pubx" else ())
            if command == "pubn" and count is not None:
                self.send(f"published:{count}")
        elif command == "frag":
            room, _, parts = arg.partition(":")
            self._publish(room, parts.split(","))
        elif command == "all":
            self._publish(None, arg)
        elif command == "count":
            self.send(f"count:{arg}:{self.manager.count(arg)}")
        elif command == "rooms":
            self.send("rooms:" + json.dumps(self.manager.rooms(), sort_keys=True))
        elif command == "myrooms":
            self.send("myrooms:" + json.dumps(sorted(self.rooms)))
        elif command == "status":
            broker = self.manager.broker
            self.send("status:" + json.dumps({"pid": os.getpid(), "broker": type(broker).__name__}))
        else:
            self.send(f"unknown:{command}")

    def _publish(
        self, room: str | None, data: str | bytes | list[str], exclude: Iterable[WebSocket] = ()
    ) -> int | None:
        try:
            return self.manager.broadcast(data, room, exclude=exclude)
        except BrokerError as exc:
            self.send(f"error:{type(exc).__name__}:{exc}")
            return None


def authorize(environ: dict[str, Any]) -> bool:
    cookie = environ.get("HTTP_COOKIE", "")
    if "token=good" in cookie:
        return True
    if "token=" in cookie:
        return False
    raise HandshakeRejected(401, "authentication required", [("WWW-Authenticate", 'Cookie realm="test"')])


def plain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = f"plain {environ['REQUEST_METHOD']} {environ.get('PATH_INFO')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("X-Plain", "yes")])
    return [body]


def not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"no WebSocket endpoint here\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


#: Path -> (handler, options) of every endpoint.
ENDPOINTS: dict[str, tuple[type[WebSocket], dict[str, Any]]] = {
    # Defaults: what a production endpoint gets.
    "/echo": (Commands, {}),
    "/load": (Commands, {}),
    "/record": (Recording, {}),
    "/room": (Room, {}),
    "/broadcast": (Broadcast, {}),
    "/rooms": (RoomCommands, {}),
    "/strict": (Commands, {"origins": ["https://good.example"], "protocols": ["chat", "superchat"]}),
    "/auth": (Recording, {"authorize": authorize, "protocols": ["chat", "superchat"]}),
    # Keepalive alone (no read timeout): vanished and stalled peers.
    "/keepalive": (QuietPongs, {"ping_interval": 0.5, "ping_timeout": 0.5, "read_timeout": None, "close_timeout": 1.0}),
    # Small limits: 1009 without compression; decompression bombs with it.
    "/small": (Recording, {"max_message_size": 1024, "compression": False}),
    "/small-deflate": (Commands, {"max_message_size": 64 * 1024, "close_timeout": 2.0}),
    # Small send buffers: slow readers.
    "/slowreader": (Commands, {"max_send_buffer": 256 * 1024}),
    "/stuck": (Commands, {"max_send_buffer": 256 * 1024, "close_timeout": 2.0, "compression": False}),
    # Stalls inside a frame: the read timeout alone (no keepalive).
    "/stall": (Commands, {"ping_interval": None, "read_timeout": 1.0, "close_timeout": 1.0}),
    "/shutdown": (Commands, {"close_timeout": 3.0, "ping_interval": None}),
    "/fail-opened": (FailOpened, {"close_timeout": 2.0}),
    "/fail-message": (FailMessage, {"close_timeout": 2.0}),
    "/fail-closed": (FailClosed, {"close_timeout": 2.0}),
    "/fail-ponged": (FailPonged, {"close_timeout": 2.0}),
    "/fail-init": (FailInit, {"close_timeout": 2.0}),
}


def make_app(fallback: WSGIApp = plain_app, *, manager: Manager | None = None, **overrides: Any) -> WSGIApp:
    """Every endpoint of :data:`ENDPOINTS` (on ``manager``, or the server's); ``overrides``
    apply to every endpoint's options; other paths go to ``fallback``."""
    # The manager goes to each endpoint: the middleware's applies only to bare handler classes.
    endpoints = {
        path: WebSocketWSGIApplication(cls, manager=manager, **{**options, **overrides})
        for path, (cls, options) in ENDPOINTS.items()
    }
    return WebSocketMiddleware(fallback, endpoints)
