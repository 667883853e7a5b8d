"""An HTTP server alone, answering every upgrade request with a 101 of its own.

``--server cherrypy``: CherryPy (cheroot) configured by the examples' own
``examples._servers.cherrypy.configure`` (the app grafted on ``cherrypy.tree``,
``server.thread_pool`` 4, backlog 128), without the WebSocket plugin.
``--server gevent``: ``gevent.pywsgi``, monkey-patched first, as
``examples/_servers/gevent.py`` runs it.

The WSGI application computes ``Sec-WebSocket-Accept`` and answers 101; the
connection then stays with the HTTP server as a kept-alive HTTP connection
(no WebSocket, no manager, no handler). Only the idle scenarios apply. The
figures are what one request costs the HTTP server as shipped: the reference
for our handshakes on it. It is not a strict floor: our adapters change some
of the server's own request handling (cheroot's head reading, for example),
and this server goes on reading the connection for a next request.
"""

from __future__ import annotations

import argparse
import sys

if __name__ == "__main__" and "--server" in sys.argv and "gevent" in sys.argv:
    # Before anything else imports socket or threading, as gevent wants.
    from gevent import monkey

    monkey.patch_all()

import base64
import hashlib
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# The project root, for the examples' own CherryPy configuration.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY")
    if environ.get("HTTP_UPGRADE", "").lower() != "websocket" or not key:
        start_response("426 Upgrade Required", [("Content-Length", "0")])
        return []
    accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")
    start_response(
        "101 Switching Protocols",
        [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)],
    )
    return []


READY = "{name} alone: {url} (101 by hand, no WebSocket)"


def run_cherrypy(host: str, port: int) -> None:
    import cherrypy

    from examples._servers.cherrypy import configure

    # Exactly as the examples configure it; they then add the WebSocket plugin, not done here.
    configure(app, host, port)
    cherrypy.engine.start()
    bound_host, bound_port = cherrypy.server.bound_addr
    print(READY.format(name="cherrypy", url=f"http://{bound_host}:{bound_port}/"), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        cherrypy.engine.exit()


def run_gevent(host: str, port: int) -> None:
    from gevent import pywsgi
    from gevent_serve import serve_until_signal

    serve_until_signal(pywsgi.WSGIServer((host, port), app, log=None), READY.replace("{name}", "gevent"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("cherrypy", "gevent"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    (run_cherrypy if args.server == "cherrypy" else run_gevent)(args.host, args.port)
