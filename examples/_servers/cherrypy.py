"""Run an example on CherryPy: the WSGI app grafted on ``cherrypy.tree``, served by
CherryPy's own server (cheroot) with ``ws4py_integrations.cherrypy.WebSocketPlugin``."""

from __future__ import annotations

import logging
from typing import Any

import cherrypy

from ws4py_integrations.cherrypy import WebSocketPlugin

from . import Ready, wait_for_stop_signal


def configure(app: Any, host: str, port: int, *, tls: tuple[str, str] | None = None) -> None:
    """Graft ``app`` on ``cherrypy.tree`` and configure CherryPy's server as the examples run it
    (no WebSocket yet: :func:`run` adds the plugin)."""
    cherrypy.tree.graft(app, "")
    cherrypy.config.update(
        {
            "server.socket_host": host,
            "server.socket_port": port,
            # A worker runs one request at a time, and a WebSocket's only for
            # its handshake: with head waiting, a few workers per core serve
            # handshakes faster than CherryPy's 10 (fewer thread switches; see
            # "Sizing the thread pool" in docs/cherrypy.rst).
            "server.thread_pool": 4,
            # cheroot's default backlog of 5 drops SYNs when clients connect in bursts.
            "server.socket_queue_size": 128,
            "engine.autoreload.on": False,
            "log.screen": False,
        }
    )
    # CherryPy's own log follows the level the example was given (--log-level).
    cherrypy.log.error_log.setLevel(logging.getLogger().getEffectiveLevel())
    if tls is not None:
        cherrypy.server.ssl_module = "builtin"
        cherrypy.server.ssl_certificate, cherrypy.server.ssl_private_key = tls


def run(app: Any, host: str, port: int, *, tls: tuple[str, str] | None = None, ready: Ready | None = None) -> None:
    configure(app, host, port, tls=tls)
    WebSocketPlugin(cherrypy.engine).subscribe()
    cherrypy.engine.start()
    if tls is not None:
        # No TLS 1.3 session tickets: resumption buys little for long-lived
        # WebSockets, and a ticket arriving while a threaded client (such as
        # websockets.sync) writes its first request can make that write fail.
        cherrypy.server.httpserver.ssl_adapter.context.num_tickets = 0
    try:
        if ready is not None:
            bound_host, bound_port = cherrypy.server.bound_addr
            ready((str(bound_host), int(bound_port)))
        wait_for_stop_signal()
    finally:
        # stop: every WebSocket gets 1001, then the HTTP server stops.
        cherrypy.engine.exit()
