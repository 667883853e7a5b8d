"""python-socketio on gevent's pywsgi with gevent-websocket's handler, as its docs show.

``python tools/bench/servers/psio_gevent.py --host H --port P`` (the ``python-socketio``
bench venv); prints ``python-socketio gevent: http://H:P/`` once listening.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402
from gevent_serve import serve_until_signal  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402
from psio_app import make_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = WSGIServer((args.host, args.port), make_app("gevent"), handler_class=WebSocketHandler, log=None)
    serve_until_signal(server, "python-socketio gevent: {url} (Socket.IO at /socket.io/)")


if __name__ == "__main__":
    main()
