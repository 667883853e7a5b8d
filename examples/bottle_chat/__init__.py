"""A Bottle chat: ``/ws/<room>`` is a WebSocket route of Bottle's router.

``python -m examples.bottle_chat --server wsgiref --port 8080``, then open
http://127.0.0.1:8080/. :class:`ws4py_integrations.bottle.WebSocketPlugin`
makes every route declared with ``websocket=True`` a WebSocket endpoint; the
handshake passes through Bottle's hooks (here: a name is required, 401
otherwise), and the route's callback is a loop.
"""

from __future__ import annotations

from typing import Any

import bottle

from ws4py_integrations import BlockingWebSocket
from ws4py_integrations.bottle import WebSocketPlugin

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Bottle chat</title></head>
<body>
<h1>Bottle chat</h1>
<form id="join"><input id="name" placeholder="your name"> in <input id="room" value="lobby">
<button>join</button></form>
<form id="say"><input id="text" autocomplete="off"><button>say</button></form>
<pre id="log"></pre>
<script>
let ws = null;
const value = (id) => encodeURIComponent(document.getElementById(id).value);
const log = (t) => { document.getElementById("log").textContent += t + "\\n"; };
document.getElementById("join").onsubmit = (e) => {
  e.preventDefault();
  if (ws) ws.close();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/ws/${value("room")}?name=${value("name")}`);
  ws.onmessage = (m) => log(m.data);
  ws.onclose = (c) => log("closed " + c.code);
};
document.getElementById("say").onsubmit = (e) => {
  e.preventDefault(); if (ws) ws.send(document.getElementById("text").value);
  document.getElementById("text").value = "";
};
</script>
</body></html>
"""


def create_app(**options: Any) -> bottle.Bottle:
    """The chat application; ``options`` go to the WebSocket routes (limits, ``allowed_hosts``...)."""
    app = bottle.Bottle()
    app.install(WebSocketPlugin(**options))

    @app.hook("before_request")
    def require_a_name() -> None:
        if bottle.request.path.startswith("/ws/") and not bottle.request.query.get("name"):
            bottle.abort(401, "pick a name first")

    @app.route("/")
    def index() -> str:
        return PAGE

    @app.route("/ws/<room>", websocket=True)
    def chat(ws: BlockingWebSocket, room: str) -> None:
        # bottle.request is the handshake's, rebuilt on this worker.
        name = bottle.request.query.name[:40]
        ws.join(room)
        ws.manager.broadcast(f"* {name} joined {room}", room)
        for message in ws:
            if isinstance(message, str):
                ws.manager.broadcast(f"{name}: {message}", room)
        ws.manager.broadcast(f"* {name} left", room)

    return app
