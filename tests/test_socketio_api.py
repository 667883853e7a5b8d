"""The Socket.IO API end to end, on real servers in this process, with python-socketio's
client: server-to-client calls, rooms, gevent-socketio namespaces with ACLs, the
handshake environ, and Socket.IO beside plain WebSocket routes."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import socketio
import websocket

from tests.support.servers import RunningServer, serve
from ws4py_integrations import Message, WebSocket, WebSocketMiddleware, WebSocketWSGIApplication
from ws4py_integrations.socketio import BaseNamespace, BroadcastMixin, RoomsMixin, Server

TIMEOUT = 10.0
BLOCKER = threading.Event()


class Echo(WebSocket):
    def received_message(self, message: Message) -> None:
        self.send(message.data)


class Lobby(BaseNamespace, RoomsMixin, BroadcastMixin):
    """Events other than login are refused until the client logged in."""

    namespace = "/lobby"

    def get_initial_acl(self) -> list[str]:
        return ["recv_connect", "on_login"]

    def on_login(self, name: str) -> str:
        self.session["name"] = name
        self.lift_acl_restrictions()
        return f"welcome {name}"

    def on_join(self, room: str) -> list[str]:
        self.join(room)
        return self.server.rooms(self.sid)

    def on_say(self, room: str, text: str) -> None:
        self.emit_to_room(room, "said", self.session["name"], text)

    def on_shout(self, text: str) -> None:
        self.broadcast_event("shout", text)


def make_app() -> Any:
    sio = Server()

    @sio.event
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        sio.session(sid)["user"] = environ.get("HTTP_X_USER", "")

    @sio.event
    def whoami(sid: str) -> list[str]:
        env = sio.get_environ(sid) or {}
        return [sio.session(sid)["user"], env.get("PATH_INFO", "")]

    @sio.event
    def quiz(sid: str, question: str) -> Any:
        # A handler waiting for its own client's acknowledgement.
        return sio.call("question", question, to=sid, timeout=TIMEOUT)

    @sio.event
    def ping_back(sid: str) -> None:
        sio.emit("pinged", "x", to=sid, callback=lambda *args: sio.emit("acked", list(args), to=sid))

    @sio.event
    def block(sid: str) -> str:
        BLOCKER.wait(TIMEOUT)  # a handler stuck on something (a lock, a slow service)
        return "unblocked"

    @sio.event
    def echo(sid: str, value: Any) -> Any:
        return value

    sio.register_namespace(Lobby)

    def index(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"page\n"]

    ws_app = WebSocketMiddleware(index, {"/ws": WebSocketWSGIApplication(Echo)})
    return sio.wsgi_app(ws_app)


@pytest.fixture(scope="module", params=["wsgiref", "cherrypy"])
def running(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve(request.param, make_app()) as server:
        yield server


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_server_calls_its_client_and_reads_the_environ(running: RunningServer, transport: str) -> None:
    client = socketio.Client()
    acked: queue.Queue[Any] = queue.Queue()
    client.on("question", lambda q: q.upper())
    client.on("pinged", lambda x: f"got {x}")
    client.on("acked", acked.put)
    client.connect(running.http_url(""), transports=[transport], headers={"X-User": "ann"}, wait_timeout=TIMEOUT)
    try:
        assert client.call("whoami", timeout=TIMEOUT) == ["ann", "/socket.io/"]
        assert client.call("quiz", "why?", timeout=TIMEOUT) == "WHY?"
        client.emit("ping_back")
        assert acked.get(timeout=TIMEOUT) == ["got x"]
    finally:
        client.disconnect()


def test_acl_rooms_and_broadcast(running: RunningServer) -> None:
    clients = [socketio.Client() for _ in range(3)]
    inbox: list[queue.Queue[Any]] = [queue.Queue() for _ in clients]
    for client, box in zip(clients, inbox, strict=True):
        client.on("said", lambda *a, box=box: box.put(("said", *a)), namespace="/lobby")
        client.on("shout", lambda *a, box=box: box.put(("shout", *a)), namespace="/lobby")
        client.connect(running.http_url(""), namespaces=["/lobby"], transports=["websocket"], wait_timeout=TIMEOUT)
    a, b, c = clients
    try:
        # before login: refused by the ACL (no acknowledgement ever comes)
        with pytest.raises(socketio.exceptions.TimeoutError):
            a.call("join", "r", namespace="/lobby", timeout=0.5)
        for client, name in zip(clients, "abc", strict=True):
            assert client.call("login", name, namespace="/lobby", timeout=TIMEOUT) == f"welcome {name}"
        rooms = a.call("join", "r", namespace="/lobby", timeout=TIMEOUT)
        assert "r" in rooms and a.get_sid("/lobby") in rooms
        b.call("join", "r", namespace="/lobby", timeout=TIMEOUT)
        a.emit("say", ("r", "hello"), namespace="/lobby")
        assert inbox[1].get(timeout=TIMEOUT) == ("said", "a", "hello")
        c.emit("shout", "all", namespace="/lobby")
        for box in inbox:
            assert box.get(timeout=TIMEOUT) == ("shout", "all")
        with pytest.raises(queue.Empty):
            inbox[0].get(timeout=0.2)  # the sender of "say" is not told
        with pytest.raises(queue.Empty):
            inbox[2].get(timeout=0.01)  # not in the room
    finally:
        for client in clients:
            client.disconnect()


def test_plain_websocket_and_pages_beside_socketio(running: RunningServer) -> None:
    ws = websocket.create_connection(running.ws_url("/ws"), timeout=TIMEOUT)
    try:
        ws.send("plain")
        assert ws.recv() == "plain"
    finally:
        ws.close()
    done = threading.Event()
    client = socketio.Client()
    client.on("connect", done.set)
    client.connect(running.http_url(""), transports=["polling"], wait_timeout=TIMEOUT)
    try:
        assert done.wait(TIMEOUT)
    finally:
        client.disconnect()


def test_a_blocked_handler_holds_up_only_its_own_client(running: RunningServer) -> None:
    BLOCKER.clear()
    stuck, other = socketio.Client(), socketio.Client()
    answers: queue.Queue[Any] = queue.Queue()
    stuck.connect(running.http_url(""), transports=["websocket"], wait_timeout=TIMEOUT)
    other.connect(running.http_url(""), transports=["polling"], wait_timeout=TIMEOUT)
    try:
        stuck.emit("block", callback=answers.put)
        stuck.emit("echo", "after", callback=answers.put)  # queued behind its own blocked handler
        for n in range(5):
            assert other.call("echo", n, timeout=TIMEOUT) == n
        with pytest.raises(queue.Empty):
            answers.get(timeout=0.1)
        BLOCKER.set()
        assert answers.get(timeout=TIMEOUT) == "unblocked"
        assert answers.get(timeout=TIMEOUT) == "after"
    finally:
        BLOCKER.set()
        stuck.disconnect()
        other.disconnect()
