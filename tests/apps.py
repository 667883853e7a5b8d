"""The WSGI application every server runs in the behaviour suite."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Any

from ws4py_integrations import (
    HandshakeRejected,
    Message,
    WebSocket,
    WebSocketClosed,
    WebSocketMiddleware,
    WebSocketWSGIApplication,
)

#: What handlers observed, for tests to assert on: (event, path, details).
events: queue.Queue[tuple[str, str, Any]] = queue.Queue()


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


class Recording(WebSocket):
    """Echoes, and records opened/closed so tests can see the server's view."""

    def opened(self) -> None:
        events.put(("opened", self.environ["PATH_INFO"], self.subprotocol))

    def received_message(self, message: Message) -> None:
        self.send(message.data)

    def closed(self, code: int, reason: str = "") -> None:
        events.put(("closed", self.environ["PATH_INFO"], (code, reason)))


class Commands(Recording):
    """Text commands drive server-side behaviour; anything else is echoed."""

    def received_message(self, message: Message) -> None:
        data = message.data
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
            # Several threads send large messages at once on this connection.
            threads, count, size = (int(x) for x in arg.split(","))

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
        elif command == "fragments":
            self.send(part for part in arg.split(","))
        elif command == "raise":
            raise RuntimeError("handler failure requested by the test")
        else:
            self.send(data)

    def ponged(self, data: bytes) -> None:
        self.send(f"ponged:{data.decode()}")


class Room(WebSocket):
    def opened(self) -> None:
        self.join("room")
        events.put(("opened", self.environ["PATH_INFO"], None))

    def received_message(self, message: Message) -> None:
        self.manager.broadcast(message.data, "room")


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


def make_app() -> WebSocketMiddleware:
    return WebSocketMiddleware(
        plain_app,
        {
            "/echo": Commands,
            "/record": Recording,
            "/room": Room,
            "/keepalive": WebSocketWSGIApplication(Recording, ping_interval=0.5, ping_timeout=0.5),
            "/small": WebSocketWSGIApplication(Recording, max_message_size=1024, compression=False),
            "/auth": WebSocketWSGIApplication(Recording, authorize=authorize, protocols=["chat", "superchat"]),
            "/slowreader": WebSocketWSGIApplication(Commands, max_send_buffer=256 * 1024),
        },
    )
