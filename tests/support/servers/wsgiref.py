"""The wsgiref adapter under test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ws4py_integrations import Manager
from ws4py_integrations.wsgiref import make_server

from . import RunningServer, TLSFiles


@contextmanager
def serve(app: Any, tls: TLSFiles | None = None, manager: Manager | None = None) -> Iterator[RunningServer]:
    server = make_server("127.0.0.1", 0, app, manager=manager)
    if tls is not None:
        # Nothing else: the adapter tells the application the scheme is https.
        server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            server.shutdown()
            server.server_close()
            thread.join(10)

    host, port = server.server_address[:2]
    try:
        yield RunningServer("wsgiref", str(host), int(port), tls is not None, server.manager, stop)
    finally:
        stop()
