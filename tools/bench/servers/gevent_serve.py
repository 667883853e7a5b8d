"""The ending the gevent competitor scripts share: start, print the ready line, serve until a signal, stop.

Imported by its bare name (``from gevent_serve import serve_until_signal``):
the scripts run as files, with this directory first on ``sys.path``, each in
its own virtualenv, where gevent is all this needs.
"""

from __future__ import annotations

import signal
from typing import Any

import gevent
import gevent.event


def serve_until_signal(server: Any, ready: str) -> None:
    """Start the gevent ``server``, print ``{ready}`` with ``{url}`` filled in, serve until SIGINT or SIGTERM, stop.

    ``ready`` is the script's ready line, for example ``"gevent-websocket: {url} (WebSocket at /ws)"``;
    the benchmark finds the port in it.
    """
    server.start()
    host, port = server.address[:2]
    print(ready.format(url=f"http://{host}:{port}/"), flush=True)
    stopped = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stopped.set)
    stopped.wait()
    server.stop(timeout=5)
