"""A Flask app wrapped by the middleware, as a Flask developer writes it, for werkzeug's server.

``flask --app tests.support.flask_app run --port 0`` or
``python -m tests.support.flask_app [--debug] [--reloader] [--tls CERT KEY]``
(``app.run()`` on port 0). Logging goes to stderr at INFO, so that any
error or traceback our code or werkzeug logs shows up for the tests.

Routes: ``/`` (plain), ``/threads`` (the process's thread count), ``/ws``
(echo; ``"close:CODE"`` closes with CODE).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from flask import Flask

from ws4py_integrations import Message, WebSocket, WebSocketMiddleware

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _exit(signum: int, frame: object) -> None:
    sys.exit(0)


# The tests stop the server with SIGTERM: exit as on Ctrl-C, running the atexit
# hooks (the WebSockets' 1001, coverage's data) rather than dying on the signal.
signal.signal(signal.SIGTERM, _exit)


class Echo(WebSocket):
    def received_message(self, message: Message) -> None:
        if isinstance(message.data, str) and message.data.startswith("close:"):
            self.close(int(message.data[6:]))
            return
        self.send(message.data)


app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "hello from flask"


@app.get("/threads")
def threads() -> str:
    return str(threading.active_count())


app.wsgi_app = WebSocketMiddleware(app.wsgi_app, {"/ws": Echo})  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--debug", action="store_true", help="werkzeug's debugger")
    parser.add_argument("--reloader", action="store_true")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--extra-file", action="append", default=[], help="reload when it changes")
    args = parser.parse_args()
    app.run(
        host="127.0.0.1",
        port=0,
        debug=args.debug,
        use_reloader=args.reloader,
        ssl_context=tuple(args.tls) if args.tls else None,
        extra_files=args.extra_file,
    )


if __name__ == "__main__":
    main()
