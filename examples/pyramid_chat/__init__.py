"""A Pyramid chat: ``/ws/{room}`` is a WebSocket route, guarded by a permission.

``python -m examples.pyramid_chat --server wsgiref --port 8080``, then open
http://127.0.0.1:8080/, pick a name and a room.
``config.add_websocket_route`` (from ``config.include("ws4py_integrations.pyramid")``)
adds the route and its view; the view's ``chat`` permission is checked on the
handshake by the security policy (403 without a name), and the handler, a
loop, gets the request with its ``matchdict`` and ``authenticated_userid``.
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import Allowed, Denied
from pyramid.session import SignedCookieSessionFactory

from ws4py_integrations import BlockingWebSocket

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Pyramid chat</title></head>
<body>
<h1>Pyramid chat</h1>
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


class SessionSecurityPolicy:
    """The user is the name in the session; anyone with a name may chat."""

    def identity(self, request: Request) -> str | None:
        name: str | None = request.session.get("name")
        return name

    def authenticated_userid(self, request: Request) -> str | None:
        return self.identity(request)

    def permits(self, request: Request, context: Any, permission: str) -> Allowed | Denied:
        if permission == "chat" and self.identity(request):
            return Allowed("has a name")
        return Denied("pick a name first")

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        return []


def index(request: Request) -> Response:
    return Response(PAGE.format(name=request.session.get("name", "")))


def login(request: Request) -> HTTPFound:
    request.session["name"] = request.POST.get("name", "").strip()[:40] or "anonymous"
    return HTTPFound(location="/")


def chat(ws: BlockingWebSocket, request: Request) -> None:
    room = request.matchdict["room"]
    name = request.authenticated_userid
    ws.join(room)
    ws.manager.broadcast(f"* {name} joined {room}", room)
    for message in ws:
        if isinstance(message, str):
            ws.manager.broadcast(f"{name}: {message}", room)
    ws.manager.broadcast(f"* {name} left", room)


def create_app(**options: Any) -> Any:
    """The chat application; ``options`` go to the WebSocket route (limits, ``allowed_hosts``...)."""
    secret = os.environ.get("PYRAMID_CHAT_SECRET") or os.urandom(32).hex()
    with Configurator() as config:
        config.set_session_factory(SignedCookieSessionFactory(secret))
        config.set_security_policy(SessionSecurityPolicy())
        config.include("ws4py_integrations.pyramid")
        config.add_route("index", "/")
        config.add_view(index, route_name="index")
        config.add_route("login", "/login")
        config.add_view(login, route_name="login", request_method="POST")
        config.add_websocket_route("chat", "/ws/{room}", chat, permission="chat", **options)
        return config.make_wsgi_app()
