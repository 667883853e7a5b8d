"""Exceptions of the Socket.IO server."""

from __future__ import annotations

import builtins
from typing import Any

from ..exceptions import WebSocketError

__all__ = ["ConnectionRefusedError", "SocketIOError", "SocketIOTimeout"]


class SocketIOError(WebSocketError):
    """Base class of the Socket.IO errors."""


class SocketIOTimeout(SocketIOError, TimeoutError):
    """:meth:`Server.call <ws4py_integrations.socketio.Server.call>` got no
    acknowledgement in time, or the client went away first."""


# python-socketio's name; a subclass of the builtin, so `except ConnectionRefusedError` catches both.
class ConnectionRefusedError(builtins.ConnectionRefusedError):
    """Raised by a connect handler to refuse a client.

    ``ConnectionRefusedError("not authorized")`` sends the client a
    CONNECT_ERROR ``{"message": "not authorized"}``; a second argument is
    sent as ``data`` (``{"message": ..., "data": ...}``); more arguments are
    sent as a list in ``data``.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.message: str = str(args[0]) if args else "Connection rejected by server"
        self.data: Any = args[1] if len(args) == 2 else list(args[1:]) if len(args) > 2 else None

    def error_args(self) -> dict[str, Any]:
        """The CONNECT_ERROR payload."""
        payload: dict[str, Any] = {"message": self.message}
        if self.data is not None:
            payload["data"] = self.data
        return payload
