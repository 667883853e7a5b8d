"""ws4py 0.6.0 on its own server integrations: wsgiref, cherrypy or gevent.

Echo at /ws, broadcast at /broadcast, with ws4py's stock pieces:
``ws4py.server.wsgirefserver``, ``ws4py.server.cherrypyserver`` and
``ws4py.server.geventserver``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import Any

SERVER = sys.argv[sys.argv.index("--server") + 1] if "--server" in sys.argv else "wsgiref"
if SERVER == "gevent":
    from gevent import monkey

    monkey.patch_all()

from ws4py.websocket import WebSocket  # noqa: E402

CLIENTS: set[WebSocket] = set()
CLIENTS_LOCK = threading.Lock()


class Echo(WebSocket):  # type: ignore[misc]
    def received_message(self, message: Any) -> None:
        self.send(message.data, message.is_binary)


class Broadcast(WebSocket):  # type: ignore[misc]
    def opened(self) -> None:
        with CLIENTS_LOCK:
            CLIENTS.add(self)

    def closed(self, code: int, reason: str | None = None) -> None:
        with CLIENTS_LOCK:
            CLIENTS.discard(self)

    def received_message(self, message: Any) -> None:
        with CLIENTS_LOCK:
            peers = list(CLIENTS)
        for peer in peers:
            with contextlib.suppress(Exception):
                peer.send(message.data, message.is_binary)


def dispatcher() -> Any:
    from ws4py.server.wsgiutils import WebSocketWSGIApplication

    routes = {
        "/ws": WebSocketWSGIApplication(handler_cls=Echo),
        "/broadcast": WebSocketWSGIApplication(handler_cls=Broadcast),
    }

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            return [b"not found\n"]
        return route(environ, start_response)

    return app


def wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def ready(host: str, port: int) -> None:
    print(f"ws4py on {SERVER}: http://{host}:{port}/ (WebSocket at /ws and /broadcast)", flush=True)


def run_wsgiref(host: str, port: int) -> None:
    from wsgiref.simple_server import make_server

    from ws4py.server.wsgirefserver import WebSocketWSGIRequestHandler, WSGIServer

    server = make_server(
        host, port, server_class=WSGIServer, handler_class=WebSocketWSGIRequestHandler, app=dispatcher()
    )
    server.initialize_websockets_manager()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ready(*server.server_address[:2])
    try:
        wait_for_signal()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_cherrypy(host: str, port: int) -> None:
    import cherrypy
    from ws4py.server.cherrypyserver import WebSocketPlugin, WebSocketTool

    cherrypy.config.update(
        {
            "server.socket_host": host,
            "server.socket_port": port,
            "engine.autoreload.on": False,
            "log.screen": False,
            "checker.on": False,
            # The worker count of our CherryPy example, for a like-for-like run.
            "server.thread_pool": 4,
        }
    )
    WebSocketPlugin(cherrypy.engine).subscribe()
    cherrypy.tools.websocket = WebSocketTool()

    class Root:
        @cherrypy.expose  # type: ignore[misc]
        def ws(self) -> None:
            pass

        @cherrypy.expose  # type: ignore[misc]
        def broadcast(self) -> None:
            pass

    config = {
        "/ws": {"tools.websocket.on": True, "tools.websocket.handler_cls": Echo},
        "/broadcast": {"tools.websocket.on": True, "tools.websocket.handler_cls": Broadcast},
    }
    cherrypy.tree.mount(Root(), "/", config=config)
    cherrypy.engine.signals.subscribe()
    cherrypy.engine.start()
    bound = cherrypy.server.bound_addr
    ready(bound[0], bound[1])
    cherrypy.engine.block()


def run_gevent(host: str, port: int) -> None:
    import gevent
    import gevent.event
    from ws4py.server.geventserver import WSGIServer

    server = WSGIServer((host, port), dispatcher())
    server.start()
    ready(*server.address[:2])
    stopped = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stopped.set)
    stopped.wait()
    server.stop(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("wsgiref", "cherrypy", "gevent"), default="wsgiref")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    {"wsgiref": run_wsgiref, "cherrypy": run_cherrypy, "gevent": run_gevent}[args.server](args.host, args.port)


if __name__ == "__main__":
    main()
