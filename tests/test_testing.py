"""The in-process test kit (ws4py_integrations.testing) with WebTest, through the real middleware."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from webtest import TestApp

from ws4py_integrations import (
    HandshakeRejected,
    Message,
    ThreadedManager,
    WebSocket,
    WebSocketMiddleware,
    WebSocketWSGIApplication,
)
from ws4py_integrations.testing import (
    HandshakeRefused,
    RefusedResponse,
    SocketPairHandover,
    websocket_connect,
    websocket_request,
)

TIMEOUT = 5.0
closed_codes: list[int] = []
closed_event = threading.Event()


class Echo(WebSocket):
    def opened(self) -> None:
        self.send(f"hello {self.environ.get('QUERY_STRING', '')}".strip())

    def received_message(self, message: Message) -> None:
        if message.data == "bye":
            self.close(4000, "asked to")
        else:
            self.send(message.data)

    def closed(self, code: int, reason: str = "") -> None:
        closed_codes.append(code)
        closed_event.set()


def authorize(environ: Any) -> bool:
    if environ.get("HTTP_AUTHORIZATION") != "Bearer ok":
        raise HandshakeRejected(401, "Unauthorized", [("WWW-Authenticate", "Bearer")])
    return True


class Broken(WebSocket):
    def __init__(self, *args: Any) -> None:
        raise RuntimeError("no")


def index(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"index"]


@pytest.fixture
def manager() -> Iterator[ThreadedManager]:
    manager = ThreadedManager(name="test-kit")
    yield manager
    manager.stop(5)
    assert len(manager) == 0


@pytest.fixture
def app(manager: ThreadedManager) -> TestApp:
    routes: dict[str, Any] = {
        "/ws": WebSocketWSGIApplication(Echo, manager=manager, protocols=["chat"]),
        "/private": WebSocketWSGIApplication(Echo, manager=manager, authorize=authorize),
        "/broken": WebSocketWSGIApplication(Broken, manager=manager),
    }
    return TestApp(WebSocketMiddleware(index, routes))


def test_http_and_websocket_side_by_side(app: TestApp, manager: ThreadedManager) -> None:
    assert app.get("/").text == "index"
    closed_event.clear()
    with websocket_connect(app, "/ws?x=1", protocols=["chat"], manager=manager) as ws:
        assert ws.subprotocol == "chat"
        assert ws.extensions == ["permessage-deflate"]
        greeting = ws.receive(TIMEOUT)
        assert greeting is not None and greeting.data == "hello x=1"
        ws.send("ping")
        ws.send(b"\x01\x02")
        assert [m.data for m in (ws.receive(TIMEOUT), ws.receive(TIMEOUT)) if m] == ["ping", b"\x01\x02"]
    assert ws.close_code == 1000
    assert closed_event.wait(TIMEOUT) and closed_codes[-1] == 1000


def test_server_side_close_reaches_the_client(app: TestApp, manager: ThreadedManager) -> None:
    ws = websocket_connect(app, "/ws", compression=False, manager=manager)
    assert ws.extensions == []
    ws.send("bye")
    assert [m.data for m in ws] == [
        "hello",
    ]
    assert (ws.close_code, ws.close_reason) == (4000, "asked to")


def test_refusal_is_a_webtest_response(app: TestApp, manager: ThreadedManager) -> None:
    response = websocket_request(app, "/private", manager=manager)
    assert response.status_int == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    with pytest.raises(HandshakeRefused) as info:
        websocket_connect(app, "/private", manager=manager)
    assert info.value.status == 401 and info.value.response.status_int == 401
    with websocket_connect(app, "/private", headers=[("Authorization", "Bearer ok")], manager=manager) as ws:
        assert ws.state == "open"


def test_extra_environ_of_the_testapp_applies(manager: ThreadedManager) -> None:
    app = TestApp(
        WebSocketWSGIApplication(Echo, manager=manager, authorize=authorize),
        extra_environ={"HTTP_AUTHORIZATION": "Bearer ok"},
    )
    with websocket_connect(app, "/", manager=manager) as ws:
        assert ws.receive(TIMEOUT) is not None


def test_bad_handshakes_and_plain_http(app: TestApp, manager: ThreadedManager) -> None:
    # Offering a subprotocol the route does not speak is fine (none chosen);
    # a cross-site Origin is refused with 403 by the default policy.
    response = websocket_request(app, "/ws", headers=[("Origin", "http://evil.example")], manager=manager)
    assert response.status_int == 403
    # A route outside the middleware answers as HTTP.
    response = websocket_request(app, "/", manager=manager)
    assert response.status_int == 200 and response.text == "index"
    # The handler cannot be built: the middleware's 500 comes through the socket.
    broken = websocket_request(app, "/broken", manager=manager)
    assert broken.status_int == 500


def test_plain_wsgi_app_without_webtest(manager: ThreadedManager, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "webtest", None)
    app = WebSocketWSGIApplication(Echo, manager=manager, authorize=authorize)
    response = websocket_request(app, "/", manager=manager)
    assert isinstance(response, RefusedResponse)
    assert (response.status_int, response.headers["Www-Authenticate"]) == (401, "Bearer")
    assert "Unauthorized" in response.text


def test_socket_pair_handover_counts_detaches() -> None:
    import socket

    a, b = socket.socketpair()
    try:
        handover = SocketPairHandover(a, b"buffered")
        assert handover.detach() == (a, b"buffered") and handover.detached == 1
    finally:
        a.close()
        b.close()


def test_app_results_with_close_and_apps_that_raise(manager: ThreadedManager) -> None:
    closed: list[bool] = []

    class Result:
        def __iter__(self) -> Any:
            return iter([b"plain"])

        def close(self) -> None:
            closed.append(True)

    def plain(environ: Any, start_response: Any) -> Result:
        assert environ["CONTENT_TYPE"] == "text/plain"
        start_response("200 OK", [])
        return Result()

    response = websocket_request(plain, "/", headers=[("Content-Type", "text/plain")], manager=manager)
    assert response.status_int == 200 and response.text == "plain" and closed == [True]

    def failing(environ: Any, start_response: Any) -> list[bytes]:
        raise LookupError("the application failed")

    with pytest.raises(LookupError, match="application failed"):
        websocket_request(failing, "/", manager=manager)
