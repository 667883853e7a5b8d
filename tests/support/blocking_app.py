"""The behaviour-suite application again, with every handler a blocking function.

Same endpoints, options and commands as :mod:`tests.support.app` (see
:class:`~tests.support.app.Commands`), written as loops over
:class:`~ws4py_integrations.BlockingWebSocket`, so the behaviour suite runs
unchanged on both styles. Events go to the same :data:`tests.support.app.events`.
"""

from __future__ import annotations

import time
from typing import Any

from tests.support import app as apps
from ws4py_integrations import (
    BlockingWebSocket,
    Manager,
    WebSocketMiddleware,
    WebSocketWSGIApplication,
    function_handler,
)
from ws4py_integrations.blocking import FunctionWebSocket, HandlerFunction
from ws4py_integrations.middleware import WSGIApp

__all__ = ["ENDPOINTS", "make_app"]


def _opened(ws: BlockingWebSocket, details: Any) -> str:
    with apps._managers_lock:
        apps.managers[id(ws.manager)] = ws.manager
    path: str = ws.environ["PATH_INFO"]
    apps._record("opened", path, details)
    return path


def _closed(ws: BlockingWebSocket, path: str) -> None:
    apps._record("closed", path, (ws.close_code, ws.close_reason))


def recording(ws: BlockingWebSocket) -> None:
    """Echoes; records opened (with the subprotocol) and closed (with code, reason)."""
    path = _opened(ws, ws.subprotocol)
    for message in ws:
        ws.send(message)
    _closed(ws, path)


def commands(ws: BlockingWebSocket) -> None:
    """The commands of :class:`tests.support.app.Commands`, in a loop."""
    path = _opened(ws, ws)
    # The callback class carries out each command on the connection's
    # WebSocket: the same code, called from this loop.
    helper = ws.websocket
    for data in ws:
        if not isinstance(data, str) or ":" not in data or data == "mode":
            if data == "mode":
                from gevent import monkey

                ws.send(f"{getattr(ws.manager, 'handlers', None)} patched={monkey.is_module_patched('socket')}")
            else:
                ws.send(data)
            continue
        command, _, arg = data.partition(":")
        if command == "close":
            code, _, reason = arg.partition(":")
            ws.close(int(code), reason)
        elif command == "block":
            ws.send("blocking")
            time.sleep(float(arg))
            ws.send("unblocked")
        elif command == "sleep":
            time.sleep(float(arg))
            ws.send(f"slept:{arg}")
        elif command == "ping":
            ws.ping(arg.encode())
        elif command == "burst":
            apps.Commands._burst(helper, *(int(x) for x in arg.split(",")))  # type: ignore[arg-type]
        elif command == "fragments":
            ws.send(part for part in arg.split(","))
        elif command == "raise":
            raise RuntimeError("handler failure requested by the test")
        elif command == "flood":
            apps.Commands._flood(helper, *(int(x) for x in arg.split(",")))  # type: ignore[arg-type]
        elif command == "broadcast":
            count, size = (int(x) for x in arg.split(","))
            payload = b"x" * size
            reached = [ws.manager.broadcast(payload) for _ in range(count)]
            apps._record("broadcast-done", path, reached)
        else:
            ws.send(data)
    _closed(ws, path)


def room(ws: BlockingWebSocket) -> None:
    ws.join("room")
    _opened(ws, None)
    for message in ws:
        ws.manager.broadcast(message, "room")


def broadcast(ws: BlockingWebSocket) -> None:
    ws.join("all")
    ws.send("joined")
    for message in ws:
        ws.manager.broadcast(message, "all")


class _Commands(FunctionWebSocket):
    """Pongs are callbacks in both styles (receive() returns messages only)."""

    handler = staticmethod(commands)

    def ponged(self, data: bytes) -> None:
        self.send(f"ponged:{data.decode()}")


def _handler(func: HandlerFunction) -> type[FunctionWebSocket]:
    return function_handler(func)


_commands = _Commands
_quiet = _handler(commands)
_recording = _handler(recording)

#: Path -> (handler, options), as :data:`tests.support.app.ENDPOINTS`.
ENDPOINTS: dict[str, tuple[type[FunctionWebSocket], dict[str, Any]]] = {
    path: (
        {
            apps.Commands: _commands,
            apps.QuietPongs: _quiet,
            apps.Recording: _recording,
            apps.Room: _handler(room),
            apps.Broadcast: _handler(broadcast),
        }[cls],
        options,
    )
    for path, (cls, options) in apps.ENDPOINTS.items()
    if cls in (apps.Commands, apps.QuietPongs, apps.Recording, apps.Room, apps.Broadcast)
}


def make_app(fallback: WSGIApp = apps.plain_app, *, manager: Manager | None = None, **overrides: Any) -> WSGIApp:
    """The behaviour-suite endpoints with blocking handlers."""
    endpoints = {
        path: WebSocketWSGIApplication(cls, manager=manager, **{**options, **overrides})
        for path, (cls, options) in ENDPOINTS.items()
    }
    return WebSocketMiddleware(fallback, endpoints)
