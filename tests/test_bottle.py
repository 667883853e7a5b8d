"""The Bottle plugin on real servers, with the real Bottle."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

bottle = pytest.importorskip("bottle")

from tests.support.frameworks import example, refused_at  # noqa: E402
from tests.support.servers import RunningServer, available, serve  # noqa: E402
from ws4py_integrations import BlockingWebSocket  # noqa: E402
from ws4py_integrations.bottle import WebSocketPlugin  # noqa: E402

SERVERS = available()


def create_app() -> bottle.Bottle:
    app = bottle.Bottle()
    app.install(WebSocketPlugin(max_message_size=1024))

    @app.hook("before_request")
    def guard() -> None:
        if bottle.request.path.startswith("/ws/private"):
            bottle.abort(401, "members only")

    @app.route("/plain")
    def plain() -> str:
        return "plain page"

    @app.route("/ws/<room>/<number:int>", websocket=True)
    def room(ws: BlockingWebSocket, room: str, number: int) -> None:
        request = bottle.request
        ws.send(
            f"room={room} number={number + 1} path={request.path} q={request.query.get('q')} "
            f"cookie={request.get_cookie('flavour')} worker={threading.current_thread().name.startswith('ws4py-handler')}"
        )
        for message in ws:
            if message == "raise":
                raise RuntimeError("handler failure requested by the test")
            ws.send(message)

    @app.route("/ws/private/<name>", websocket=True)
    def private(ws: BlockingWebSocket, name: str) -> None:
        ws.send("never")

    @app.route("/ws/small", websocket={"max_message_size": 64, "compression": False})
    def small(ws: BlockingWebSocket) -> None:
        for message in ws:
            ws.send(message)

    return app


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve(request.param, create_app()) as running:
        yield running


def client(server: RunningServer, path: str, **headers: str) -> ClientConnection:
    return connect(server.ws_url(path), open_timeout=10, close_timeout=10, additional_headers=headers or None)


def test_url_arguments_and_the_request_in_the_handler(server: RunningServer) -> None:
    with client(server, "/ws/garden/41?q=x", Cookie="flavour=mint") as ws:
        assert ws.recv(timeout=10) == "room=garden number=42 path=/ws/garden/41 q=x cookie=mint worker=True"
        ws.send(b"\x01\x02")
        assert ws.recv(timeout=10) == b"\x01\x02"


def test_hooks_refuse_the_handshake(server: RunningServer) -> None:
    status, _, body = refused_at(server.host, server.port, "/ws/private/ada")
    assert status == 401 and b"members only" in body
    # A URL no route matches (the int filter) is Bottle's 404.
    assert refused_at(server.host, server.port, "/ws/garden/not-a-number")[0] == 404


def test_handshake_errors_are_bottle_responses(server: RunningServer) -> None:
    status, headers, body = refused_at(server.host, server.port, "/ws/garden/1", {"Sec-WebSocket-Version": "12"})
    assert (status, headers["sec-websocket-version"]) == (426, "13")
    assert body.strip()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.http_url("/ws/garden/1"), timeout=10)
    assert info.value.code == 400
    with urllib.request.urlopen(server.http_url("/plain"), timeout=10) as response:
        assert response.read() == b"plain page"


def test_per_route_options(server: RunningServer) -> None:
    with client(server, "/ws/small") as ws:
        ws.send("x" * 64)
        assert ws.recv(timeout=10) == "x" * 64
        ws.send("x" * 65)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_handler_exception_closes_with_1011(server: RunningServer) -> None:
    with client(server, "/ws/err/1") as ws:
        ws.recv(timeout=10)
        ws.send("raise")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


def test_misuse() -> None:
    app = bottle.Bottle()
    app.install(WebSocketPlugin())
    with pytest.raises(bottle.PluginError):
        app.install(WebSocketPlugin())

    @app.route("/ws", websocket="yes")
    def bad(ws: BlockingWebSocket) -> None:
        return None

    with pytest.raises(TypeError, match="websocket= takes True or a dict"):
        app.routes[-1].call  # noqa: B018  (the plugin applies when the route is first prepared)


@pytest.mark.parametrize("server_name", [name for name in ("wsgiref", "cherrypy") if name in SERVERS])
def test_bottle_chat_example(server_name: str, tmp_path: Path) -> None:
    with example("bottle_chat", server_name, log_path=tmp_path / "server.log") as process:
        with urllib.request.urlopen(f"http://{process.host}:{process.port}/", timeout=10) as response:
            assert b"Bottle chat" in response.read()
        assert refused_at(process.host, process.port, "/ws/lobby")[0] == 401
        url = f"ws://{process.host}:{process.port}/ws/lobby"
        with connect(url + "?name=ada", open_timeout=10) as first:
            assert first.recv(timeout=10) == "* ada joined lobby"
            with connect(url + "?name=bob", open_timeout=10) as second:
                assert second.recv(timeout=10) == "* bob joined lobby"
                assert first.recv(timeout=10) == "* bob joined lobby"
                second.send("hi all")
                assert (first.recv(timeout=10), second.recv(timeout=10)) == ("bob: hi all", "bob: hi all")
            assert first.recv(timeout=10) == "* bob left"
