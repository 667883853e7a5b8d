"""Echo at ``/ws`` in a Flask app wrapped by our middleware (tools/bench/gthread.py).

``gunicorn -k ws4py_integrations.gunicorn.ThreadWorker tools.bench.servers.flask_ours:app``, or
``python -m tools.bench.servers.flask_ours`` for werkzeug's server (threaded, port 0).
"""

from __future__ import annotations

from flask import Flask

from ws4py_integrations import Message, WebSocket, WebSocketMiddleware


class Echo(WebSocket):
    def received_message(self, message: Message) -> None:
        self.send(message.data)


app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "ok"


app.wsgi_app = WebSocketMiddleware(app.wsgi_app, {"/ws": Echo})  # type: ignore[method-assign]

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=0, threaded=True)
