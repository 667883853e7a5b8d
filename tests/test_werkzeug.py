"""A Flask app wrapped by the middleware on werkzeug's development server, as developers run it.

Real ``app.run()`` and ``flask run`` processes (threaded; with and without the
reloader and the debugger) on port 0; clients are websockets' sync client,
websocket-client and raw sockets. Everything either server process logs is
checked: a normal close, and werkzeug finishing the request, log no error.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import trustme
import websocket as wsclient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.process import ServerProcess

READY = r"Running on https?://127\.0\.0\.1:(?P<port>\d+)"

MODES = {
    "app.run": [sys.executable, "-m", "tests.support.flask_app"],
    "app.run-debug-reloader": [sys.executable, "-m", "tests.support.flask_app", "--debug", "--reloader"],
    "flask-run": [sys.executable, "-m", "flask", "--app", "tests.support.flask_app", "run", "--port", "0"],
    "flask-run-debug": [
        sys.executable, "-m", "flask", "--app", "tests.support.flask_app", "run", "--port", "0", "--debug",
    ],
}  # fmt: skip


def _serves(proc: ServerProcess) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/", timeout=2) as response:
            return bool(response.read() == b"hello from flask")
    except OSError:
        return False


def flask_server(command: list[str], log_path: Path) -> ServerProcess:
    return ServerProcess(command, ready=READY, ready_stream="stderr", probe=_serves, log_path=log_path, name="flask")


@pytest.fixture(params=list(MODES))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    with flask_server(MODES[request.param], tmp_path / "server.log") as proc:
        yield proc


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with flask_server(MODES["app.run"], tmp_path / "server.log") as proc:
        yield proc


def assert_no_errors(proc: ServerProcess) -> None:
    # Give werkzeug's request threads a moment to finish (and log, if they would).
    time.sleep(0.3)
    log = proc.log()
    for marker in ("Traceback", "ERROR", "Error on request", "Exception", "Broken pipe"):
        assert marker not in log, log[-3000:]


def ws_connect(proc: ServerProcess, path: str = "/ws") -> ClientConnection:
    return connect(f"ws://127.0.0.1:{proc.port}{path}", open_timeout=10, close_timeout=10)


def raw_upgrade(port: int, path: str = "/ws", after: bytes = b"") -> tuple[socket.socket, bytes]:
    """A handshake written in one packet with ``after`` (frames); the response head and what followed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    sock.sendall(head + after)
    data = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return sock, data


def masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_exactly(sock: socket.socket, data: bytes, size: int) -> bytes:
    deadline = time.monotonic() + 10
    while len(data) < size and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_echo_and_normal_close_log_no_error(server: ServerProcess) -> None:
    with ws_connect(server) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        ws.send(b"\x00\x01" * 1000)
        assert ws.recv(timeout=10) == b"\x00\x01" * 1000
    assert ws.close_code == 1000
    # websocket-client, an independent implementation, and a server-initiated close.
    other = wsclient.create_connection(f"ws://127.0.0.1:{server.port}/ws", timeout=10)
    other.send("close:4001")
    opcode, frame = other.recv_data_frame(True)
    assert opcode == wsclient.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 4001
    other.close()
    # Plain requests still answer, after the upgrades.
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=10) as response:
        assert response.read() == b"hello from flask"
    assert_no_errors(server)
    assert '"GET /ws HTTP/1.1" 101' in re.sub(r"\x1b\[[0-9;]*m", "", server.log())


def test_frames_sent_with_the_handshake_are_not_lost_and_the_101_is_bare(plain_server: ServerProcess) -> None:
    frames = masked(0x1, b"first") + masked(0x1, b"second") + masked(0x2, b"\xff" * 100)
    sock, data = raw_upgrade(plain_server.port, after=frames)
    with sock:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").lower().split("\r\n")
        assert lines[0] == "http/1.1 101 switching protocols"
        assert not [line for line in lines if line.startswith(("content-length", "transfer-encoding"))]
        expected = b"\x81\x05first" + b"\x81\x06second" + b"\x82\x64" + b"\xff" * 100
        assert read_exactly(sock, rest, len(expected)) == expected
        sock.sendall(masked(0x8, (1000).to_bytes(2, "big")))
        assert read_exactly(sock, b"", 4)[:4] == b"\x88\x02\x03\xe8"
    assert_no_errors(plain_server)


def test_websockets_hold_no_request_thread(plain_server: ServerProcess) -> None:
    def threads() -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{plain_server.port}/threads", timeout=10) as response:
            return int(response.read())

    before = threads()
    count = 40
    with ExitStack() as stack:
        conns = [stack.enter_context(ws_connect(plain_server)) for _ in range(count)]
        for n, ws in enumerate(conns):
            ws.send(f"m{n}")
        assert [ws.recv(timeout=10) for ws in conns] == [f"m{n}" for n in range(count)]
        # The manager's few threads, not one per WebSocket; plain requests answer meanwhile.
        assert threads() < before + 10
    assert_no_errors(plain_server)


def test_the_reloader_closes_websockets_with_1001(tmp_path: Path) -> None:
    watched = tmp_path / "watched.txt"
    watched.write_text("1")
    command = [*MODES["app.run-debug-reloader"], "--extra-file", str(watched)]
    with flask_server(command, tmp_path / "server.log") as proc, ws_connect(proc) as ws:
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        # The stat reloader compares modification times once a second.
        os.utime(watched, (time.time() + 10, time.time() + 10))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=20)
        assert ws.close_code == 1001
        assert "Restarting" in proc.log() or "Detected change" in proc.log()


def test_tls_is_refused_with_501_naming_the_fix(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    command = [*MODES["app.run"], "--tls", str(certfile), str(keyfile)]

    def serves(proc: ServerProcess) -> bool:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{proc.port}/", timeout=2, context=context) as response:
                return bool(response.read() == b"hello from flask")
        except OSError:
            return False

    proc = ServerProcess(command, ready=READY, ready_stream="stderr", probe=serves, log_path=tmp_path / "s.log")
    with proc:
        with pytest.raises(wsclient.WebSocketBadStatusException) as refused:
            wsclient.create_connection(f"wss://127.0.0.1:{proc.port}/ws", timeout=10, sslopt={"context": context})
        assert refused.value.status_code == 501
        assert b"TLS" in (refused.value.resp_body or b"")
        assert b"proxy" in (refused.value.resp_body or b"")
        time.sleep(0.3)
        assert "cannot upgrade /ws: werkzeug's server cannot hand over a TLS connection" in proc.log()
