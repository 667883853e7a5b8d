"""Run an example on ``ws4py_integrations.wsgiref``."""

from __future__ import annotations

import ssl
import threading
from typing import Any

from ws4py_integrations.wsgiref import make_server

from . import Ready, wait_for_stop_signal


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
        server.base_environ["wsgi.url_scheme"] = "https"
    thread = threading.Thread(target=server.serve_forever, name="wsgiref-serve", daemon=True)
    thread.start()
    if ready is not None:
        ready(server.server_address[:2])
    try:
        wait_for_stop_signal()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
