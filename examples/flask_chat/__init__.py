"""A Flask chat: rooms in Flask's router, the user from the session.

``python -m examples.flask_chat --server wsgiref --port 8080``, then open
http://127.0.0.1:8080/, pick a name and a room. ``/ws/<room>`` is a
WebSocket route of :class:`ws4py_integrations.flask.WebSockets`: its
handshake goes through ``before_request`` (which refuses anyone without a
name with 401), and the handler, a loop, sees ``g`` and ``session``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, redirect, request, session

from ws4py_integrations import BlockingWebSocket
from ws4py_integrations.flask import WebSockets

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Flask chat</title></head>
<body>
<h1>Flask chat</h1>
<form method="post" action="/login"><input name="name" placeholder="your name" value="{name}">
<button>use this name</button></form>
<form id="join"><input id="room" value="lobby"><button>join room</button></form>
<form id="say"><input id="text" autocomplete="off"><button>say</button></form>
<pre id="log"></pre>
<script>
let ws = null;
const log = (t) => {{ document.getElementById("log").textContent += t + "\\n"; }};
document.getElementById("join").onsubmit = (e) => {{
  e.preventDefault();
  if (ws) ws.close();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(scheme + "//" + location.host + "/ws/" + encodeURIComponent(document.getElementById("room").value));
  ws.onmessage = (m) => log(m.data);
  ws.onclose = (c) => log("closed " + c.code);
}};
document.getElementById("say").onsubmit = (e) => {{
  e.preventDefault(); if (ws) ws.send(document.getElementById("text").value);
  document.getElementById("text").value = "";
}};
</script>
</body></html>
"""


def create_app(**options: Any) -> Flask:
    """The chat application; ``options`` go to the WebSocket routes (limits, ``allowed_hosts``...)."""
    app = Flask(__name__)
    # A fixed key keeps sessions across restarts; a random one is fine for a demo.
    app.secret_key = os.environ.get("FLASK_CHAT_SECRET_KEY") or os.urandom(32)
    sockets = WebSockets(app, **options)

    @app.before_request
    def load_user() -> Any:
        g.name = session.get("name")
        if request.path.startswith("/ws/") and not g.name:
            return "pick a name first\n", 401
        return None

    @app.get("/")
    def index() -> str:
        return PAGE.format(name=g.name or "")

    @app.post("/login")
    def login() -> Any:
        session["name"] = request.form.get("name", "").strip()[:40] or "anonymous"
        return redirect("/")

    @sockets.route("/ws/<room>")
    def chat(ws: BlockingWebSocket, room: str) -> None:
        ws.join(room)
        ws.manager.broadcast(f"* {g.name} joined {room}", room)
        for message in ws:
            if isinstance(message, str):
                ws.manager.broadcast(f"{g.name}: {message}", room)
        # Closed: this connection has left the room already.
        ws.manager.broadcast(f"* {g.name} left", room)

    return app
