"""examples.socketio_echo on wsgiref, CherryPy and gevent, with python-socketio's clients
(long-polling only, WebSocket only, and the upgrade) and raw packets for malformed input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
import websocket

from tests.support import in_ci
from tests.support.process import ServerProcess, _gunicorn_has_control_socket

TIMEOUT = 10.0
SERVERS = ("wsgiref", "cherrypy", "gevent")
TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": ["polling", "websocket"]}


def socketio_echo(server: str, *args: str) -> ServerProcess:
    """``python -m examples.socketio_echo --server SERVER`` on port 0."""
    command = [sys.executable, "-m", "examples.socketio_echo", "--server", server, "--port", "0", *args]
    ready = rf"socketio_echo example on {server}.*://[^/\s]+:(?P<port>\d+)"
    return ServerProcess(command, ready=ready, name=f"socketio_echo on {server}")


@pytest.fixture(scope="module", params=SERVERS)
def echo(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    process = socketio_echo(request.param, "--ping-interval", "0.5", "--ping-timeout", "2", "--connect-timeout", "1")
    with process:
        yield process


def url(echo: ServerProcess) -> str:
    return f"http://{echo.host}:{echo.port}"


@pytest.mark.parametrize("mode", TRANSPORTS)
def test_simple_client_events_acks_and_binary(echo: ServerProcess, mode: str) -> None:
    with socketio.SimpleClient() as client:
        client.connect(url(echo), transports=TRANSPORTS[mode], auth={"token": "123"}, wait_timeout=TIMEOUT)
        assert client.receive(timeout=TIMEOUT) == ["auth", {"token": "123"}]
        client.emit("message", [1, "2", {"3": [True]}])
        assert client.receive(timeout=TIMEOUT) == ["message-back", [1, "2", {"3": [True]}]]
        assert client.call("message-with-ack", {"é": "ü"}, timeout=TIMEOUT) == {"é": "ü"}
        client.emit("message", b"\x00\x01\xff")
        assert client.receive(timeout=TIMEOUT) == ["message-back", b"\x00\x01\xff"]
        assert client.call("message-with-ack", {"bin": b"\x02"}, timeout=TIMEOUT) == {"bin": b"\x02"}
        if mode == "upgrade":
            for _ in range(100):
                if client.client is not None and client.client.transport() == "websocket":
                    break
                threading.Event().wait(0.05)
        assert client.client is not None
        assert client.client.transport() == ("polling" if mode == "polling" else "websocket")
        if mode != "upgrade":
            # survives several heartbeats (0.5s apart)
            threading.Event().wait(1.2)
            assert client.call("message-with-ack", "still", timeout=TIMEOUT) == "still"


def test_client_namespaces(echo: ServerProcess) -> None:
    client = socketio.Client()
    got: dict[str, list[Any]] = {"/": [], "/custom": []}
    ready = threading.Event()

    @client.on("auth", namespace="/custom")
    def on_auth(data: Any) -> None:
        got["/custom"].append(data)
        ready.set()

    @client.on("message-back", namespace="/custom")
    def on_back(*args: Any) -> None:
        got["/custom"].append(list(args))
        ready.set()

    client.connect(url(echo), namespaces=["/", "/custom"], auth={"k": 1}, wait_timeout=TIMEOUT)
    try:
        assert ready.wait(TIMEOUT)
        assert got["/custom"] == [{"k": 1}]
        ready.clear()
        client.emit("message", ("a", 2), namespace="/custom")
        assert ready.wait(TIMEOUT)
        assert got["/custom"][-1] == ["a", 2]
        assert client.call("message-with-ack", "x", namespace="/custom", timeout=TIMEOUT) == "x"
        assert client.get_sid("/") != client.get_sid("/custom")
    finally:
        client.disconnect()


def test_unknown_namespace_refused(echo: ServerProcess) -> None:
    client = socketio.Client()
    errors: list[Any] = []
    client.on("connect_error", lambda data: errors.append(data), namespace="/random")
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(url(echo), namespaces=["/random"], transports=["websocket"], wait_timeout=TIMEOUT)
    client.disconnect()
    assert errors == [{"message": "Invalid namespace"}]


def _raw(echo: ServerProcess) -> websocket.WebSocket:
    ws = websocket.create_connection(
        f"ws://{echo.host}:{echo.port}/socket.io/?EIO=4&transport=websocket", timeout=TIMEOUT
    )
    opening = ws.recv()
    assert isinstance(opening, str) and opening.startswith("0{")
    return ws


def _recv_not_ping(ws: websocket.WebSocket) -> str | bytes:
    for _ in range(20):
        data = ws.recv()
        if data == "2":
            ws.send("3")
            continue
        return data  # type: ignore[no-any-return]
    raise AssertionError("only pings")


def _release(ws: websocket.WebSocket) -> None:
    """Close ``ws`` and its socket: after the server's close frame, websocket-client's
    ``close()`` leaves the socket open, and the server waits for its FIN."""
    ws.close()
    ws.shutdown()


def _closed(ws: websocket.WebSocket) -> bool:
    """Whether the server closes ``ws`` (answering its pings meanwhile)."""
    try:
        for _ in range(50):
            data = ws.recv()
            if data == "2":
                ws.send("3")
            elif data in ("", b""):
                return True
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return True
    return False


def test_raw_packets_as_the_specification_test_suite(echo: ServerProcess) -> None:
    ws = _raw(echo)
    ws.send("40/random")
    assert _recv_not_ping(ws) == '44/random,{"message":"Invalid namespace"}'
    ws.send('40{"token":"123"}')
    connected = _recv_not_ping(ws)
    assert isinstance(connected, str) and set(json.loads(connected[2:])) == {"sid"}
    assert _recv_not_ping(ws) == '42["auth",{"token":"123"}]'
    ws.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    ws.send_binary(b"\x01\x02\x03")
    ws.send_binary(b"\x04\x05\x06")
    assert _recv_not_ping(ws) == '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    assert _recv_not_ping(ws) == b"\x01\x02\x03"
    assert _recv_not_ping(ws) == b"\x04\x05\x06"
    ws.send("41")
    ws.send('42["message","after disconnect"]')  # the namespace is gone: ignored
    ws.send("40")
    assert _recv_not_ping(ws).startswith("40{")  # type: ignore[union-attr]
    assert _recv_not_ping(ws) == '42["auth",{}]'
    ws.close()


@pytest.mark.parametrize("bad", ["4abc", "42{}", '42abc["message-with-ack",1]', "49", "4"])
def test_malformed_packet_closes_only_that_session(echo: ServerProcess, bad: str) -> None:
    with socketio.SimpleClient() as bystander:
        bystander.connect(url(echo), transports=["websocket"], wait_timeout=TIMEOUT)
        bystander.receive(timeout=TIMEOUT)
        ws = _raw(echo)
        ws.send("40")
        _recv_not_ping(ws)
        _recv_not_ping(ws)
        ws.send(bad)
        try:
            assert _closed(ws)
        finally:
            _release(ws)
        assert bystander.call("message-with-ack", "fine", timeout=TIMEOUT) == "fine"


def test_no_connect_packet_closes_after_connect_timeout(echo: ServerProcess) -> None:
    ws = _raw(echo)
    try:
        assert _closed(ws)
    finally:
        _release(ws)


def test_polling_handshake_and_plain_pages(echo: ServerProcess) -> None:
    with urllib.request.urlopen(f"{url(echo)}/socket.io/?EIO=4&transport=polling", timeout=TIMEOUT) as response:
        body = response.read().decode()
        assert response.headers["Access-Control-Allow-Origin"] in ("*", None)
    assert body.startswith("0")
    handshake = json.loads(body[1:])
    assert handshake["pingInterval"] == 500
    with urllib.request.urlopen(f"{url(echo)}/", timeout=TIMEOUT) as response:
        assert b"Socket.IO echo" in response.read()


def test_bare_engineio_echo(echo: ServerProcess) -> None:
    ws = websocket.create_connection(
        f"ws://{echo.host}:{echo.port}/engine.io/?EIO=4&transport=websocket", timeout=TIMEOUT
    )
    try:
        assert ws.recv().startswith("0{")
        ws.send("4hello")
        assert _recv_not_ping(ws) == "4hello"
        ws.send_binary(b"\x07")
        assert _recv_not_ping(ws) == b"\x07"
    finally:
        ws.close()


NODE_CLIENT = Path(__file__).parent / "support" / "socketio_node_client.js"
NODE_MODULES = Path(__file__).parent.parent / "examples" / "chat_socketio" / "node_modules"


@pytest.mark.parametrize("transports", ["polling", "websocket", "polling,websocket"])
def test_official_node_client(echo: ServerProcess, transports: str) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "socket.io-client").is_dir():
        message = "node and socket.io-client are needed (bash scripts/setup-node.sh)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    done = subprocess.run(
        [node, str(NODE_CLIENT), url(echo), transports], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results == {
        "error": None,
        "auth": {"token": "node"},
        "back": [1, "2", {"3": [True]}],
        "ack": "x",
        "binary": [1, 2, 3],
        "custom": True,
        "refused": "Invalid namespace",
        "transport": transports.split(",")[-1],
    }


def _echo_page(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return b"Socket.IO echo" in response.read()
    except OSError:
        return False


@pytest.fixture(scope="module")
def gunicorn_echo() -> Iterator[ServerProcess]:
    """examples.socketio_echo under gunicorn's gevent worker (ours)."""
    command = [
        sys.executable, "-m", "gunicorn", "-k", "ws4py_integrations.gevent.GunicornWorker",
        "-b", "127.0.0.1:0", "-w", "1", "--graceful-timeout", "5",
        *(["--no-control-socket"] if _gunicorn_has_control_socket() else []),
        "examples.socketio_echo:make_app(ping_interval=0.5, connect_timeout=1)",
    ]  # fmt: skip
    process = ServerProcess(
        command,
        ready=r"Listening at: http://127\.0\.0\.1:(?P<port>\d+)",
        ready_stream="stderr",
        probe=lambda p: _echo_page(p.port),
        name="gunicorn socketio_echo",
    )
    with process:
        yield process


@pytest.mark.parametrize("mode", TRANSPORTS)
def test_gunicorn_gevent_worker(gunicorn_echo: ServerProcess, mode: str) -> None:
    with socketio.SimpleClient() as client:
        client.connect(url(gunicorn_echo), transports=TRANSPORTS[mode], auth={"w": 1}, wait_timeout=TIMEOUT)
        assert client.receive(timeout=TIMEOUT) == ["auth", {"w": 1}]
        client.emit("message", b"\x01")
        assert client.receive(timeout=TIMEOUT) == ["message-back", b"\x01"]
        assert client.call("message-with-ack", [1, {"a": None}], timeout=TIMEOUT) == [1, {"a": None}]
