"""Run an example on ``ws4py_integrations.wsgiref``."""

from __future__ import annotations

import ssl
from typing import Any

from ws4py_integrations.wsgiref import make_server

from . import Ready


def run(app: Any, host: str, port: int, *, tls: tuple[str, str] | None = None, ready: Ready | None = None) -> None:
    server = make_server(host, port, app)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        # No TLS 1.3 session tickets: resumption buys little for long-lived
        # WebSockets, and a ticket arriving while a threaded client (such as
        # websockets.sync) writes its first request can make that write fail.
        context.num_tickets = 0
        server.socket = context.wrap_socket(server.socket, server_side=True)
    if ready is not None:
        ready(server.server_address[:2])
    # Until SIGTERM or Ctrl-C; then every WebSocket gets 1001.
    server.run()
