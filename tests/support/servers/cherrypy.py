"""The CherryPy adapter under test: the app grafted on ``cherrypy.tree``, served by
CherryPy's own server (cheroot) through ``cherrypy.engine`` with the plugin.

CherryPy has one engine, one ``cherrypy.server`` and one ``cherrypy.tree`` per
process, so one CherryPy server runs at a time; :func:`run_cherrypy` refuses
to nest rather than share them.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cherrypy

from ws4py_integrations.cherrypy import WebSocketPlugin

from . import RunningServer, TLSFiles, no_session_tickets

_running = threading.Lock()


def _exit_engine() -> None:
    # CherryPy warns at interpreter exit about an engine that was stopped but
    # never exited; the harness only stops it (so it can start again).
    if cherrypy.engine.state == cherrypy.engine.states.STOPPED:
        cherrypy.engine.exit()


@contextmanager
def run_cherrypy(
    mount: Callable[[], None],
    tls: TLSFiles | None = None,
    *,
    thread_pool: int = 10,
    config: dict[str, Any] | None = None,
    plugin: WebSocketPlugin | None = None,
) -> Iterator[RunningServer]:
    """Start ``cherrypy.engine`` with what ``mount()`` put on ``cherrypy.tree``, on 127.0.0.1 port 0."""
    if not _running.acquire(blocking=False):
        raise RuntimeError("a CherryPy server is already running in this process")
    subscribed = False
    started = False
    try:
        cherrypy.tree.apps.clear()
        mount()
        cherrypy.config.update(
            {
                "server.socket_host": "127.0.0.1",
                "server.socket_port": 0,
                "server.thread_pool": thread_pool,
                "server.socket_timeout": 10,
                "server.ssl_module": "builtin",
                "server.ssl_certificate": tls.certfile if tls else None,
                "server.ssl_private_key": tls.keyfile if tls else None,
                "engine.autoreload.on": False,
                "checker.on": False,
                "log.screen": False,
                **(config or {}),
            }
        )
        # A fresh HTTP server for this configuration (TLS or not, new port),
        # created here as cherrypy.server would at start, so that it stops in
        # 50 ms rather than 500 (cheroot's keep-alive selector wakes up this
        # often). The plugin gives it the WebSocket gateway at engine start.
        cherrypy.server.httpserver, cherrypy.server.bind_addr = cherrypy.server.httpserver_from_self()
        cherrypy.server.httpserver.expiration_interval = 0.05
        if tls is not None:
            no_session_tickets(cherrypy.server.httpserver.ssl_adapter.context)
        if plugin is None:
            plugin = WebSocketPlugin(cherrypy.engine)
        plugin.subscribe()
        subscribed = True
        cherrypy.engine.start()
        started = True
        host, port = cherrypy.server.bound_addr
        stopped = False

        def stop() -> None:
            nonlocal stopped
            if not stopped:
                stopped = True
                cherrypy.engine.stop()

        yield RunningServer(
            "cherrypy", str(host), int(port), tls is not None, plugin.manager, stop, extra={"plugin": plugin}
        )
    finally:
        try:
            if started:
                cherrypy.engine.stop()
        finally:
            if subscribed and plugin is not None:
                plugin.unsubscribe()
            cherrypy.server.httpserver = None
            cherrypy.tree.apps.clear()
            # After the engine's own exit check (each start registers one), so it runs first.
            atexit.unregister(_exit_engine)
            atexit.register(_exit_engine)
            _running.release()


@contextmanager
def serve(app: Any, tls: TLSFiles | None = None) -> Iterator[RunningServer]:
    with run_cherrypy(lambda: cherrypy.tree.graft(app, ""), tls) as running:
        yield running
