"""The chat example over Socket.IO: events, rooms, and acknowledgements for delivery.

``python -m examples.chat_socketio --server NAME --port 8080`` serves a page
using the official ``socket.io-client`` (``bash scripts/setup-node.sh``
installs it into ``examples/chat_socketio/node_modules``). A user connects
with ``auth: {nick}``, lands in ``lobby``, may ``join`` another room, and
``say`` something: the server sends it to the room's other members and
acknowledges it to the sender (the page marks it delivered). With
``--redis URL`` several processes share their rooms.
"""

from __future__ import annotations

import mimetypes
import threading
from pathlib import Path
from typing import Any

from ws4py_integrations.socketio import ConnectionRefusedError, Server, SocketIOMiddleware

HERE = Path(__file__).parent
STATIC = HERE / "static"
CLIENT = HERE / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
MAX_NICK = 24
MAX_ROOM = 32
MAX_TEXT = 2000
LOBBY = "lobby"

SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


def _clean(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= limit and value.isprintable() else None


class Chat:
    """The chat's handlers on ``sio``; members are tracked per room in this process."""

    def __init__(self, sio: Server) -> None:
        self.sio = sio
        self.lock = threading.Lock()
        self.members: dict[str, dict[str, str]] = {}  # room -> sid -> nick
        self.where: dict[str, str] = {}  # sid -> room
        self.count = 0
        sio.on("connect", self.connect)
        sio.on("join", self.join)
        sio.on("say", self.say)
        sio.on("disconnect", self.disconnect)

    def connect(self, sid: str, environ: Any, auth: Any) -> None:
        nick = _clean(auth.get("nick") if isinstance(auth, dict) else None, MAX_NICK)
        if nick is None:
            raise ConnectionRefusedError("invalid nickname", {"max": MAX_NICK})
        self.sio.session(sid)["nick"] = nick
        self._enter(sid, LOBBY)

    def join(self, sid: str, room: Any) -> dict[str, Any]:
        name = _clean(room, MAX_ROOM)
        if name is None:
            return {"error": "invalid room name"}
        self._leave(sid)
        return self._enter(sid, name)

    def say(self, sid: str, text: Any) -> dict[str, Any]:
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
            return {"error": "invalid message"}
        with self.lock:
            room = self.where.get(sid)
            self.count += 1
            number = self.count
        if room is None:
            return {"error": "not in a room"}
        nick = self.sio.session(sid)["nick"]
        self.sio.emit("said", {"nick": nick, "text": text, "room": room}, to=room, skip_sid=sid)
        return {"delivered": True, "id": number}

    def disconnect(self, sid: str) -> None:
        self._leave(sid)

    def _enter(self, sid: str, room: str) -> dict[str, Any]:
        nick = self.sio.session(sid)["nick"]
        self.sio.enter_room(sid, room)
        with self.lock:
            self.where[sid] = room
            self.members.setdefault(room, {})[sid] = nick
            members = sorted(self.members[room].values())
        self.sio.emit("members", {"room": room, "members": members}, to=room)
        self.sio.emit("notice", f"{nick} joined.", to=room, skip_sid=sid)
        return {"room": room, "members": members}

    def _leave(self, sid: str) -> None:
        with self.lock:
            room = self.where.pop(sid, None)
            if room is None:
                return
            nick = self.members.get(room, {}).pop(sid, "?")
            members = sorted(self.members.get(room, {}).values())
            if not members:
                self.members.pop(room, None)
        self.sio.leave_room(sid, room)
        self.sio.emit("members", {"room": room, "members": members}, to=room)
        self.sio.emit("notice", f"{nick} left.", to=room)


def static_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The page, its script and style, and the socket.io client."""
    path = environ.get("PATH_INFO", "/")
    files = {
        "/": STATIC / "index.html",
        "/static/chat.js": STATIC / "chat.js",
        "/static/chat.css": STATIC / "chat.css",
        "/static/socket.io.min.js": CLIENT,
    }
    target = files.get(path)
    if target is None or environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        body = b"not found\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if not target.exists():
        body = b"socket.io-client is not installed: run bash scripts/setup-node.sh\n"
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    body = target.read_bytes()
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind.endswith("javascript"):
        kind += "; charset=utf-8"
    headers = [("Content-Type", kind), ("Content-Length", str(len(body))), *SECURITY_HEADERS]
    start_response("200 OK", headers)
    return [body]


def make_app(
    *, broker: Any = None, allowed_hosts: list[str] | None = None, **engineio_options: Any
) -> SocketIOMiddleware:
    """The chat WSGI application (same-origin Socket.IO at ``/socket.io/``)."""
    sio = Server(broker=broker, allowed_hosts=allowed_hosts, **engineio_options)
    Chat(sio)
    return sio.wsgi_app(static_app)
