"""A held long-polling GET pins no server thread: CherryPy with its 10 threads
keeps many polling-only clients connected, exchanging messages, while plain
pages still answer (200 clients by default, 1,000 under ``-m slow``)."""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from tests.support.process import ServerProcess
from tools.conformance.engineio_echo import READY

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def cherrypy_echo() -> Iterator[ServerProcess]:
    command = [sys.executable, "-m", "tools.conformance.engineio_echo", "--server", "cherrypy", "--port", "0"]
    # Long heartbeats: nothing answers the held GETs but the messages.
    with ServerProcess([*command, "--ping-interval", "60", "--ping-timeout", "60"], ready=READY) as server:
        yield server


def _open_sessions(server: ServerProcess, count: int) -> list[str]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    sids = []
    for _ in range(count):
        conn.request("GET", "/engine.io/?EIO=4&transport=polling")
        body = conn.getresponse().read()
        sids.append(json.loads(body[1:])["sid"])
    conn.close()
    return sids


def _hold_gets(server: ServerProcess, sids: list[str]) -> dict[socket.socket, str]:
    """One raw GET per session, sent and not read."""
    held = {}
    for sid in sids:
        sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        request = f"GET /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: {server.host}\r\n\r\n"
        sock.sendall(request.encode())
        held[sock] = sid
    return held


def _plain_page(server: ServerProcess) -> bytes:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    conn.request("GET", "/")
    body = conn.getresponse().read()
    conn.close()
    return body


def _read_answers(held: dict[socket.socket, str]) -> dict[str, bytes]:
    """Each held GET's body, read until the server closes (``Connection: close``)."""
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}
    for sock in held:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        buffers[sock] = bytearray()
    answers = {}
    deadline = time.monotonic() + TIMEOUT
    while len(answers) < len(held):
        assert time.monotonic() < deadline, f"{len(held) - len(answers)} GETs unanswered"
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(65536)
            if data:
                buffers[sock] += data
                continue
            selector.unregister(sock)
            sock.close()
            head, _, body = bytes(buffers[sock]).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in head
            answers[held[sock]] = body
    selector.close()
    return answers


def _exchange(server: ServerProcess, count: int) -> None:
    sids = _open_sessions(server, count)
    for round_ in range(2):
        held = _hold_gets(server, sids)
        # Nothing is answered yet: every GET waits, and none holds a thread.
        readable = selectors.DefaultSelector()
        for sock in held:
            readable.register(sock, selectors.EVENT_READ)
        assert readable.select(0.2) == []
        readable.close()
        started = time.monotonic()
        assert _plain_page(server) == b"plain page\n"
        assert time.monotonic() - started < 2.0
        conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
        for sid in sids:
            conn.request("POST", f"/engine.io/?EIO=4&transport=polling&sid={sid}", body=f"4{sid}-{round_}".encode())
            assert conn.getresponse().read() == b"ok"
        conn.close()
        answers = _read_answers(held)
        assert answers == {sid: f"4{sid}-{round_}".encode() for sid in sids}


def test_polling_clients_pin_no_thread(cherrypy_echo: ServerProcess) -> None:
    _exchange(cherrypy_echo, 200)


@pytest.mark.slow
def test_thousand_polling_clients_on_ten_threads(cherrypy_echo: ServerProcess) -> None:
    _exchange(cherrypy_echo, 1000)
