"""How the examples run an application on each server.

Each module here defines ``run(app, host, port, *, tls=None, ready=None)``:
serve ``app`` until SIGINT or SIGTERM, then stop gracefully (WebSockets get
1001). ``tls`` is an optional ``(certfile, keyfile)`` pair; ``ready`` is
called with the bound ``(host, port)`` once the server accepts connections.
"""

from __future__ import annotations

import importlib
import signal
import threading
from collections.abc import Callable
from typing import Any

SERVERS = ("wsgiref", "cherrypy", "gevent")

Ready = Callable[[tuple[str, int]], None]


def run(
    server: str, app: Any, host: str, port: int, *, tls: tuple[str, str] | None = None, ready: Ready | None = None
) -> None:
    """Run ``app`` on the named server until a stop signal."""
    if server not in SERVERS:
        raise SystemExit(f"unknown server {server!r}; choose one of {', '.join(SERVERS)}")
    try:
        module = importlib.import_module(f"examples._servers.{server}")
    except ImportError as exc:
        raise SystemExit(f"the {server} server is not available: {exc}") from exc
    module.run(app, host, port, tls=tls, ready=ready)


def wait_for_stop_signal() -> None:
    """Block the main thread until SIGINT or SIGTERM."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
