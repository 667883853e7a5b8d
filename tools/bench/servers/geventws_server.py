"""gevent-websocket on gevent's pywsgi: echo at /ws, broadcast at /broadcast."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
from typing import Any  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402
from gevent_serve import serve_until_signal  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

CLIENTS: set[Any] = set()


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
    path = environ.get("PATH_INFO")
    if path == "/broadcast":
        CLIENTS.add(ws)
        try:
            while True:
                message = ws.receive()
                if message is None:
                    break
                binary = not isinstance(message, str)
                for peer in list(CLIENTS):
                    try:
                        peer.send(message, binary=binary)
                    except Exception:
                        CLIENTS.discard(peer)
        finally:
            CLIENTS.discard(ws)
    else:
        while True:
            message = ws.receive()
            if message is None:
                break
            ws.send(message, binary=not isinstance(message, str))
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler, log=None)
    serve_until_signal(server, "gevent-websocket: {url} (WebSocket at /ws and /broadcast)")


if __name__ == "__main__":
    main()
