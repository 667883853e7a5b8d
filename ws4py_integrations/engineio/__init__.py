"""Engine.IO v4 (the transport under Socket.IO v5) as a WSGI application.

::

    from ws4py_integrations.engineio import EngineIOServer, EngineIOSocket

    class Echo:
        def connect(self, socket: EngineIOSocket) -> None: ...
        def message(self, socket: EngineIOSocket, data: str | bytes) -> None:
            socket.send(data)
        def disconnect(self, socket: EngineIOSocket, reason: str) -> None: ...

    app = EngineIOServer(Echo(), app=my_wsgi_app, path="/engine.io/")

Long polling, WebSocket and the upgrade between them, on every server
adapter; a held long-polling GET occupies no server thread. See
``docs/engineio.rst``.

For a layer on top (Socket.IO): implement :class:`EngineIOHandler` and
mount ``EngineIOServer(handler, app, path="/socket.io/")``; requests outside
``path`` go to ``app``, so a bare echo endpoint can sit in front at
``/engine.io/``: ``EngineIOServer(EchoHandler(), socketio_server, ...)``.
"""

from __future__ import annotations

from .packets import PacketError, PacketType
from .server import EchoHandler, EngineIOServer, ErrorCode
from .session import EngineIOHandler, EngineIOSocket, Refuse

__all__ = [
    "EchoHandler",
    "EngineIOHandler",
    "EngineIOServer",
    "EngineIOSocket",
    "ErrorCode",
    "PacketError",
    "PacketType",
    "Refuse",
]
