"""``WebSocketPlugin``: the engine plugin that owns the WebSockets of a CherryPy process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .._extras import missing_extra
from ..manager import Manager, ThreadedManager

try:
    import cheroot.server
    import cheroot.wsgi
    import cherrypy
    from cherrypy.process import plugins
except ImportError as exc:
    raise missing_extra("ws4py_integrations.cherrypy.WebSocketPlugin", "cherrypy", exc) from exc

from .server import install_gateway
from .tool import WebSocketTool

__all__ = ["WebSocketPlugin"]

logger = logging.getLogger("ws4py_integrations.cherrypy")


class WebSocketPlugin(plugins.SimplePlugin):  # type: ignore[misc]
    """Runs the WebSockets of CherryPy's HTTP servers; ``subscribe()`` it to the engine.

    On engine ``start`` it makes every HTTP server subscribed to the engine
    (``cherrypy.server`` and any other ``cherrypy._cpserver.Server``) able to
    hand connections over, through a cheroot gateway: no stack frames, nothing
    patched process-wide. ``servers`` limits this to the given server
    adapters. Engine ``stop`` and ``graceful`` close every WebSocket with 1001
    and stop the manager; after ``graceful`` or a restart new WebSockets go to
    a fresh manager.

    ``manager_factory`` creates the managers (by default a
    :class:`~ws4py_integrations.ThreadedManager`). ``subscribe()`` also
    registers :class:`WebSocketTool` as ``cherrypy.tools.websocket`` when no
    tool has that name, and listens on the ``websocket-broadcast`` channel, as
    ws4py did: ``cherrypy.engine.publish('websocket-broadcast', 'hello')``
    sends to every WebSocket.
    """

    def __init__(
        self,
        bus: Any,
        *,
        servers: Iterable[Any] | None = None,
        manager_factory: Callable[[], Manager] | None = None,
    ) -> None:
        super().__init__(bus)
        self._servers = list(servers) if servers is not None else None
        self._factory: Callable[[], Manager] = manager_factory or (lambda: ThreadedManager(name="ws4py-cherrypy"))
        self._lock = threading.Lock()
        self._manager: Manager | None = None
        self._manager_stopped = False

    # -- the manager ---------------------------------------------------------------

    @property
    def manager(self) -> Manager:
        """The manager running this process's WebSockets now."""
        with self._lock:
            if self._manager is None:
                self._manager = self._factory()
                self._manager_stopped = False
            return self._manager

    def _retire(self) -> None:
        """Stop the current manager (1001 to every WebSocket); the next start gets a new one."""
        with self._lock:
            manager, stopped = self._manager, self._manager_stopped
            self._manager_stopped = True
        if manager is not None and not stopped:
            manager.stop()

    def _renew(self) -> None:
        with self._lock:
            if self._manager is not None and self._manager_stopped:
                self._manager = None

    # -- bus channels ---------------------------------------------------------------

    def subscribe(self) -> None:
        super().subscribe()
        self.bus.subscribe("websocket-broadcast", self.broadcast)
        if self.bus is cherrypy.engine and not isinstance(getattr(cherrypy.tools, "websocket", None), WebSocketTool):
            if hasattr(cherrypy.tools, "websocket"):
                logger.warning("cherrypy.tools.websocket is not a WebSocketTool; leaving it as is")
            else:
                cherrypy.tools.websocket = WebSocketTool()
        if self.bus.state == self.bus.states.STARTED:
            # Subscribed to a running engine: its servers need the gateway now.
            self.start()

    def unsubscribe(self) -> None:
        super().unsubscribe()
        self.bus.unsubscribe("websocket-broadcast", self.broadcast)

    def start(self) -> None:
        """Give the engine's HTTP servers the WebSocket gateway (before they start)."""
        self._renew()
        for adapter in self._server_adapters():
            httpserver = getattr(adapter, "httpserver", None)
            if httpserver is None and hasattr(adapter, "httpserver_from_self"):
                # What cherrypy.server does at start, done first so the server
                # serves its first request with the gateway in place.
                adapter.httpserver, adapter.bind_addr = adapter.httpserver_from_self()
                httpserver = adapter.httpserver
            if (
                isinstance(httpserver, cheroot.server.HTTPServer)
                and isinstance(httpserver.gateway, type)
                and issubclass(httpserver.gateway, cheroot.wsgi.Gateway)
            ):
                install_gateway(httpserver, self._current_manager)
            else:
                logger.info(
                    "%r is not a cheroot WSGI server; its WebSocket upgrades need a "
                    "ws4py_integrations adapter of their own",
                    httpserver,
                )

    # Before the HTTP servers start (priority 75).
    start.priority = 70  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Close every WebSocket with 1001 and stop the manager."""
        self._retire()

    # Before the HTTP servers stop, so WebSockets get their 1001 promptly.
    stop.priority = 40  # type: ignore[attr-defined]

    def graceful(self) -> None:
        """Close every WebSocket with 1001; new ones go to a fresh manager."""
        self._retire()
        self._renew()

    def broadcast(self, message: Any, binary: bool = False) -> int:
        """Send ``message`` (str, bytes, or an object with ``.data``) to every WebSocket."""
        data = getattr(message, "data", message)
        if binary and isinstance(data, str):
            data = data.encode()
        with self._lock:
            manager = None if self._manager_stopped else self._manager
        return manager.broadcast(data) if manager is not None else 0

    # -- helpers ---------------------------------------------------------------------

    def _current_manager(self) -> Manager:
        return self.manager

    def _server_adapters(self) -> list[Any]:
        if self._servers is not None:
            return self._servers
        adapters: list[Any] = []
        for listener in list(self.bus.listeners.get("start", ())):
            adapter = getattr(listener, "__self__", None)
            if adapter is not None and hasattr(adapter, "httpserver") and adapter not in adapters:
                adapters.append(adapter)
        return adapters
