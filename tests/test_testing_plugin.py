"""The pytest plugin's fixtures (ws4py_integrations.pytest_plugin): real servers, leak checks."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from ws4py_integrations import Message, WebSocket, WebSocketMiddleware
from ws4py_integrations.client import InvalidStatus, WebSocketClient
from ws4py_integrations.pytest_plugin import LeakCheck, ServedApp, serve_app

pytest_plugins = ["pytester"]
TIMEOUT = 5.0


class Echo(WebSocket):
    def received_message(self, message: Message) -> None:
        self.send(message.data)


def index(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"index"]


APP = WebSocketMiddleware(index, {"/ws": Echo})


@pytest.mark.parametrize("server", ["wsgiref", "cherrypy", "gevent"])
def test_fixtures_serve_and_connect(
    server: str, ws_server: Callable[..., ServedApp], ws_client: Callable[..., WebSocketClient]
) -> None:
    served = ws_server(APP, server=server)
    assert served.url.startswith("ws://127.0.0.1:") and served.port > 0
    ws = ws_client(served, "/ws")
    ws.send("hi")
    message = ws.receive(TIMEOUT)
    assert message is not None and message.data == "hi"
    second = ws_client(f"{served.url}/ws", compression=False)
    second.send(b"\x00")
    message = second.receive(TIMEOUT)
    assert message is not None and message.data == b"\x00"
    with pytest.raises(InvalidStatus) as info:
        ws_client(served, "/")
    assert (info.value.status, info.value.body) == (200, b"index")  # not a WebSocket route


def test_serve_app_rejects_an_unknown_server() -> None:
    with pytest.raises(ValueError, match="wsgiref"), serve_app(APP, "tornado"):
        pass


def test_leak_check_reports_descriptors_and_connections() -> None:
    check = LeakCheck()
    sock = socket.socket()
    try:
        assert any("file descriptor" in problem for problem in check.problems())
        with pytest.raises(pytest.fail.Exception, match="leak after the test"):
            check.verify(timeout=0.1)
    finally:
        sock.close()
    assert check.problems() == []


def test_a_leaking_test_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading

        def test_leaks_a_thread(ws_leak_check):
            stop = threading.Event()
            threading.Thread(target=stop.wait, args=(30,), name="leaky", daemon=True).start()
            test_leaks_a_thread.stop = stop

        def test_clean(ws_leak_check):
            assert True
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "addopts=", "-o", "ws4py_leak_wait=0.3")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*threads left running: leaky*"])


def test_leak_check_reports_open_connections() -> None:
    class Busy:
        def __len__(self) -> int:
            return 2

    check = LeakCheck()
    check.managers.append(Busy())  # type: ignore[arg-type]
    assert any("2 WebSocket connection(s) still open" in problem for problem in check.problems())


def test_served_app_urls(ws_server: Callable[..., ServedApp]) -> None:
    served = ws_server(APP)
    assert served.http_url == f"http://127.0.0.1:{served.port}"
    import urllib.request

    with urllib.request.urlopen(served.http_url + "/", timeout=TIMEOUT) as reply:
        assert reply.read() == b"index"
