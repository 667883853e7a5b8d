"""The Pyramid directive and view on real servers, with the real Pyramid."""

from __future__ import annotations

import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytest.importorskip("pyramid")

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.security import Allowed, Denied
from pyramid.threadlocal import get_current_request

from tests.support.frameworks import example, post_form, refused_at
from tests.support.servers import RunningServer, available, serve
from ws4py_integrations import BlockingWebSocket
from ws4py_integrations.pyramid import websocket_view

SERVERS = available()
finished: queue.Queue[tuple[str, str]] = queue.Queue()


class HeaderPolicy:
    """The user is the X-User header; "chat" is allowed to anyone but "mallory"."""

    def identity(self, request: Request) -> str | None:
        user: str | None = request.headers.get("X-User")
        return user

    def authenticated_userid(self, request: Request) -> str | None:
        return self.identity(request)

    def permits(self, request: Request, context: Any, permission: str) -> Allowed | Denied:
        user = self.identity(request)
        return Allowed("ok") if user and user != "mallory" else Denied("no")

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        return []


def room(ws: BlockingWebSocket, request: Request) -> None:
    request.add_finished_callback(lambda r: finished.put((r.path, threading.current_thread().name)))
    ws.send(
        f"room={request.matchdict['room']} user={request.authenticated_userid} route={request.matched_route.name} "
        f"current={get_current_request() is request} shout={request.shout('hi')} q={request.params.get('q')}"
    )
    for message in ws:
        if message == "raise":
            raise RuntimeError("handler failure requested by the test")
        ws.send(message)


def open_room(ws: BlockingWebSocket, request: Request) -> None:
    ws.send(f"open {request.matchdict['name']}")
    # Stay open until the client closes: websockets 14's sync client (the floor)
    # can lose a message that arrives together with the close that follows it.
    ws.receive(timeout=10)


def create_app() -> Any:
    with Configurator() as config:
        config.set_security_policy(HeaderPolicy())
        config.add_request_method(lambda request, text: text.upper(), "shout")
        config.include("ws4py_integrations.pyramid")
        config.add_websocket_route("room", "/ws/{room}", room, permission="chat", max_message_size=64)
        # The view helper alone, on a route of one's own.
        config.add_route("open", "/open/{name}")
        config.add_view(websocket_view(open_room), route_name="open")
        return config.make_wsgi_app()


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve(request.param, create_app()) as running:
        yield running


def client(server: RunningServer, path: str, user: str | None = "ada") -> ClientConnection:
    headers = {"X-User": user} if user else None
    return connect(server.ws_url(path), open_timeout=10, close_timeout=10, additional_headers=headers)


def test_matchdict_identity_request_extensions_and_finished_callbacks(server: RunningServer) -> None:
    while not finished.empty():
        finished.get_nowait()
    with client(server, "/ws/garden?q=7") as ws:
        assert ws.recv(timeout=10) == "room=garden user=ada route=room current=True shout=HI q=7"
        ws.send("x" * 64)
        assert ws.recv(timeout=10) == "x" * 64
    # The handler's request finished like a request: its callbacks ran, on the worker.
    path, thread = finished.get(timeout=10)
    assert path == "/ws/garden" and thread.startswith("ws4py-handler")


def test_permission_is_checked_on_the_handshake(server: RunningServer) -> None:
    assert refused_at(server.host, server.port, "/ws/garden", {"X-User": "mallory"})[0] == 403
    assert refused_at(server.host, server.port, "/ws/garden")[0] == 403
    with client(server, "/open/door", user=None) as ws:
        assert ws.recv(timeout=10) == "open door"


def test_handshake_errors_are_pyramid_responses(server: RunningServer) -> None:
    status, headers, body = refused_at(
        server.host, server.port, "/ws/garden", {"X-User": "ada", "Sec-WebSocket-Version": "12"}
    )
    assert (status, headers["sec-websocket-version"]) == (426, "13")
    assert body.strip()
    request = urllib.request.Request(server.http_url("/ws/garden"), headers={"X-User": "ada"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400
    assert refused_at(server.host, server.port, "/nowhere")[0] == 404


def test_limits_and_handler_failure(server: RunningServer) -> None:
    with client(server, "/ws/limits") as ws:
        ws.recv(timeout=10)
        ws.send("x" * 65)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    with client(server, "/ws/err") as ws:
        ws.recv(timeout=10)
        ws.send("raise")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


@pytest.mark.parametrize("server_name", [name for name in ("cherrypy", "gevent") if name in SERVERS])
def test_pyramid_chat_example(server_name: str, tmp_path: Path) -> None:
    with example("pyramid_chat", server_name, log_path=tmp_path / "server.log") as process:
        base = f"http://{process.host}:{process.port}"
        with urllib.request.urlopen(base + "/", timeout=10) as response:
            assert b"Pyramid chat" in response.read()
        assert refused_at(process.host, process.port, "/ws/lobby")[0] == 403
        status, ada = post_form(base + "/login", {"name": "ada"})
        assert status == 302 and ada is not None
        _, bob = post_form(base + "/login", {"name": "bob"})
        url = f"ws://{process.host}:{process.port}/ws/lobby"
        with connect(url, additional_headers={"Cookie": ada}, open_timeout=10) as first:
            assert first.recv(timeout=10) == "* ada joined lobby"
            with connect(url, additional_headers={"Cookie": bob}, open_timeout=10) as second:
                assert second.recv(timeout=10) == "* bob joined lobby"
                assert first.recv(timeout=10) == "* bob joined lobby"
                second.send("hi all")
                assert (first.recv(timeout=10), second.recv(timeout=10)) == ("bob: hi all", "bob: hi all")
            assert first.recv(timeout=10) == "* bob left"
