"""Echo at ``/ws`` with Flask-Sock (tools/bench/gthread.py; runs in its own venv).

``gunicorn -k gthread --threads N tools.bench.servers.flask_sock_app:app``, or
``python -m tools.bench.servers.flask_sock_app`` for werkzeug's server (threaded, port 0).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_sock import Sock  # type: ignore[import-not-found]

app = Flask(__name__)
sock = Sock(app)


@app.get("/")
def index() -> str:
    return "ok"


@sock.route("/ws")  # type: ignore[untyped-decorator]
def echo(ws: Any) -> None:
    while True:
        ws.send(ws.receive())


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=0, threaded=True)
