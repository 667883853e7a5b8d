"""The gevent adapter under test: ``ws4py_integrations.gevent.WSGIServer`` in a thread of its own.

The test process is not monkey-patched (other servers run in it on threads):
the server runs on the hub of a dedicated OS thread, so the manager picks
``handlers="threads"`` unless told otherwise. The test thread never touches
gevent objects: stopping is requested into the hub's thread with
``loop.run_callback_threadsafe``.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import gevent.ssl

from ws4py_integrations.gevent import GeventManager, HandlerMode, WSGIServer

from . import RunningServer, TLSFiles, no_session_tickets


@contextmanager
def serve(app: Any, tls: TLSFiles | None = None, *, handlers: HandlerMode = "auto") -> Iterator[RunningServer]:
    manager = GeventManager(handlers=handlers, name="ws4py-gevent-test")
    started = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            ssl_args: dict[str, Any] = {}
            if tls is not None:
                # gevent's SSLContext: its sockets cooperate with the hub without monkey-patching.
                context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(tls.certfile, tls.keyfile)
                no_session_tickets(context)
                ssl_args["ssl_context"] = context
            # SERVER_NAME given: pywsgi would otherwise resolve it with a reverse DNS lookup.
            environ = {"SERVER_NAME": "127.0.0.1"}
            server = WSGIServer(("127.0.0.1", 0), app, manager=manager, log=None, environ=environ, **ssl_args)
            server.start()
            box["server"] = server
            box["loop"] = gevent.get_hub().loop
        except BaseException as exc:
            box["error"] = exc
            raise
        finally:
            started.set()
        try:
            server.serve_forever()
        finally:
            gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=run, name="gevent-hub", daemon=True)
    thread.start()
    if not started.wait(10):
        raise TimeoutError("the gevent server did not start in 10 s")
    if "error" in box:
        raise RuntimeError("the gevent server failed to start") from box["error"]
    server: WSGIServer = box["server"]
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            # serve_forever() returns after close(); its stop() closes the WebSockets with 1001.
            box["loop"].run_callback_threadsafe(server.close)
            thread.join(20)
            if thread.is_alive():
                raise TimeoutError("the gevent server did not stop in 20 s")

    host, port = server.address[:2]
    running = RunningServer("gevent", str(host), int(port), tls is not None, manager, stop)
    running.extra["handlers"] = handlers
    try:
        yield running
    finally:
        stop()
