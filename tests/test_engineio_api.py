"""The Engine.IO server's API: refusing sessions, options, the fallback for servers
without a handover, the send buffer bound, and per-session callback order."""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from websockets.sync.client import connect
from webtest import TestApp

from tests.support.servers import serve
from ws4py_integrations import ThreadedManager
from ws4py_integrations.adapter import HANDOVER_KEY
from ws4py_integrations.engineio import (
    EchoHandler,
    EngineIOServer,
    EngineIOSocket,
    ErrorCode,
    PacketError,
    PacketType,
    Refuse,
)
from ws4py_integrations.engineio.packets import decode_payload, decode_text_packet
from ws4py_integrations.engineio.session import BlockingPoll

TIMEOUT = 5.0


class Refusing(EchoHandler):
    def connect(self, socket: EngineIOSocket) -> None:
        if "token=good" not in socket.environ.get("QUERY_STRING", ""):
            raise Refuse("no token")


class Broken(EchoHandler):
    def connect(self, socket: EngineIOSocket) -> None:
        raise RuntimeError("bug")


def test_refuse_answers_403_with_the_reference_body() -> None:
    app = TestApp(EngineIOServer(Refusing()))
    response = app.get("/engine.io/?EIO=4&transport=polling", status=403)
    assert response.json == {"code": ErrorCode.FORBIDDEN, "message": "no token"}
    assert app.get("/engine.io/?EIO=4&transport=polling&token=good").text.startswith("0{")


def test_refuse_with_another_status() -> None:
    class Unauthorized(EchoHandler):
        def connect(self, socket: EngineIOSocket) -> None:
            raise Refuse("log in first", status=401)

    response = TestApp(EngineIOServer(Unauthorized())).get("/engine.io/?EIO=4&transport=polling", status=401)
    assert response.json == {"code": 4, "message": "log in first"}


def test_connect_that_raises_is_a_500() -> None:
    TestApp(EngineIOServer(Broken())).get("/engine.io/?EIO=4&transport=polling", status=500)


def test_refused_websocket_session_gets_403_before_the_upgrade() -> None:
    with serve("wsgiref", EngineIOServer(Refusing())) as running:
        conn = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        conn.request(
            "GET",
            "/engine.io/?EIO=4&transport=websocket",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
        )
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())) == (403, {"code": 4, "message": "no token"})
        conn.close()


def test_path_none_answers_every_path_and_app_gets_the_rest() -> None:
    app = TestApp(EngineIOServer(EchoHandler(), path=None))
    assert app.get("/anything/?EIO=4&transport=polling").text.startswith("0{")
    assert TestApp(EngineIOServer(EchoHandler())).get("/other", status=404).text == "not found"


def test_polling_only_announces_no_upgrade() -> None:
    app = TestApp(EngineIOServer(EchoHandler(), transports=["polling"]))
    assert json.loads(app.get("/engine.io/?EIO=4&transport=polling").text[1:])["upgrades"] == []
    assert app.get("/engine.io/?EIO=4&transport=websocket", status=400).json["code"] == 0


@pytest.mark.parametrize(
    "options",
    [
        {"ping_interval": 0},
        {"ping_timeout": -1},
        {"max_payload": 0},
        {"transports": []},
        {"transports": "polling"},
        {"transports": ["polling", "flash"]},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EngineIOServer(EchoHandler(), **options)


def test_without_a_handover_the_get_holds_its_thread() -> None:
    # WebTest offers no handover: the GET waits on its thread for the ping.
    eio = EngineIOServer(EchoHandler(), ping_interval=0.1, ping_timeout=1)
    app = TestApp(eio)
    sid = json.loads(app.get("/engine.io/?EIO=4&transport=polling").text[1:])["sid"]
    assert app.get(f"/engine.io/?EIO=4&transport=polling&sid={sid}").text == "2"
    eio.close()


def test_without_a_handover_a_message_answers_the_held_get() -> None:
    eio = EngineIOServer(EchoHandler(), ping_interval=30, ping_timeout=30)

    def no_handover(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.pop(HANDOVER_KEY, None)
        return eio(environ, start_response)

    with serve("wsgiref", no_handover) as running:

        def request(method: str, query: str, body: bytes | None = None) -> bytes:
            conn = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
            conn.request(method, f"/engine.io/?EIO=4&transport=polling{query}", body=body)
            data = conn.getresponse().read()
            conn.close()
            return data

        sid = json.loads(request("GET", "")[1:])["sid"]
        answers: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: answers.put(request("GET", f"&sid={sid}")), daemon=True).start()
        session = eio.get(sid)
        assert session is not None
        deadline = time.monotonic() + TIMEOUT
        while session._poll is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert request("POST", f"&sid={sid}", b"4held") == b"ok"
        assert answers.get(timeout=TIMEOUT) == b"4held"
        eio.close()


def test_send_buffer_is_bounded() -> None:
    eio = EngineIOServer(EchoHandler(), max_buffer=100)
    app = TestApp(eio)
    sid = json.loads(app.get("/engine.io/?EIO=4&transport=polling").text[1:])["sid"]
    session = eio.get(sid)
    assert session is not None and repr(session).endswith("polling>")
    session.send("x" * 50)
    assert not session.closed
    session.send(bytearray(b"y" * 60))
    assert session.closed and eio.get(sid) is None
    assert repr(session).endswith("closed>")


def test_a_blocking_handler_delays_only_its_own_session() -> None:
    release = threading.Event()
    order: queue.Queue[tuple[str, str | bytes]] = queue.Queue()

    class Blocking(EchoHandler):
        def message(self, socket: EngineIOSocket, data: str | bytes) -> None:
            if data == "block":
                release.wait(TIMEOUT)
            order.put((socket.sid, data))

    eio = EngineIOServer(Blocking(), ping_interval=30, ping_timeout=30)
    with serve("wsgiref", eio) as running:

        def request(method: str, query: str, body: bytes | None = None) -> bytes:
            conn = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
            conn.request(method, f"/engine.io/?EIO=4&transport=polling{query}", body=body)
            data = conn.getresponse().read()
            conn.close()
            return data

        first = json.loads(request("GET", "")[1:])["sid"]
        second = json.loads(request("GET", "")[1:])["sid"]
        assert request("POST", f"&sid={first}", b"4block\x1e4after") == b"ok"
        assert request("POST", f"&sid={second}", b"4free") == b"ok"
        assert order.get(timeout=TIMEOUT) == (second, "free")
        release.set()
        assert order.get(timeout=TIMEOUT) == (first, "block")
        assert order.get(timeout=TIMEOUT) == (first, "after")
        eio.close()


def test_server_close_closes_every_session() -> None:
    reasons: queue.Queue[str] = queue.Queue()

    class Recording(EchoHandler):
        def disconnect(self, socket: EngineIOSocket, reason: str) -> None:
            reasons.put(reason)

    eio = EngineIOServer(Recording())
    app = TestApp(eio)
    for _ in range(3):
        app.get("/engine.io/?EIO=4&transport=polling")
    assert len(eio.sockets) == 3
    eio.close()
    assert eio.sockets == []
    assert [reasons.get(timeout=TIMEOUT) for _ in range(3)] == ["server shutting down"] * 3


def test_packets() -> None:
    assert decode_text_packet("4hi") == (PacketType.MESSAGE, "hi")
    assert decode_payload(b"2\x1ebAA==\x1e4\xc3\xa9") == [
        (PacketType.PING, ""),
        (PacketType.MESSAGE, b"\x00"),
        (PacketType.MESSAGE, "é"),
    ]
    assert decode_text_packet("6") == (PacketType.NOOP, "")
    for bad in ("", "7", "x", "\u0664hi"):  # an Arabic-Indic four is no packet type
        with pytest.raises(PacketError):
            decode_text_packet(bad)


def test_blocking_poll_answers_once() -> None:
    poll = BlockingPoll()
    poll.wait(0.01)
    assert poll.finish() == b"6"  # nothing came: a noop
    poll.respond(b"4late")
    assert poll.finish() == b"6"
    answered = BlockingPoll()
    answered.respond(b"4first")
    answered.respond(b"4second")
    answered.wait(TIMEOUT)
    assert answered.finish() == b"4first"


def test_unusual_refusal_status_and_own_manager() -> None:
    class Odd(EchoHandler):
        def connect(self, socket: EngineIOSocket) -> None:
            raise Refuse("odd", status=499)

    manager = ThreadedManager(name="eio-test")
    try:
        response = TestApp(EngineIOServer(Odd(), manager=manager)).get(
            "/engine.io/?EIO=4&transport=polling", status=499
        )
        assert response.status == "499 Error"
        eio = EngineIOServer(EchoHandler(), manager=manager)
        sid = json.loads(TestApp(eio).get("/engine.io/?EIO=4&transport=polling").text[1:])["sid"]
        session = eio.get(sid)
        assert session is not None and session.manager is manager
        eio.close()
    finally:
        manager.stop(1.0)


def test_preflight_without_requested_headers() -> None:
    app = TestApp(EngineIOServer(EchoHandler(), cors_allowed_origins="*"))
    response = app.options("/engine.io/", headers={"Origin": "http://a.example"}, status=204)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Headers" not in response.headers


def test_concurrent_posts_close_the_session() -> None:
    eio = EngineIOServer(EchoHandler(), ping_interval=30, ping_timeout=30)
    with serve("wsgiref", eio) as running:
        conn = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        conn.request("GET", "/engine.io/?EIO=4&transport=polling")
        sid = json.loads(conn.getresponse().read()[1:])["sid"]
        conn.close()
        session = eio.get(sid)
        assert session is not None
        slow = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
        slow.sendall(
            f"POST /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Length: 6\r\n\r\n4h".encode()
        )
        deadline = time.monotonic() + TIMEOUT
        while not session._posting:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        conn = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        conn.request("POST", f"/engine.io/?EIO=4&transport=polling&sid={sid}", body=b"4x")
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["code"]) == (400, 3)
        conn.close()
        assert session.closed
        slow.sendall(b"ello")
        answer = bytearray()
        while chunk := slow.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.0 400") and b'"code":1' in answer
        slow.close()


def test_messages_sent_in_connect_follow_the_open_packet() -> None:
    class Welcoming(EchoHandler):
        def connect(self, socket: EngineIOSocket) -> None:
            socket.send("welcome")

    eio = EngineIOServer(Welcoming(), ping_interval=30, ping_timeout=30)
    app = TestApp(eio)
    sid = json.loads(app.get("/engine.io/?EIO=4&transport=polling").text[1:])["sid"]
    assert app.get(f"/engine.io/?EIO=4&transport=polling&sid={sid}").text == "4welcome"
    with serve("wsgiref", eio) as running:
        url = f"ws://{running.host}:{running.port}/engine.io/?EIO=4&transport=websocket"
        with connect(url, open_timeout=TIMEOUT) as ws:
            assert str(ws.recv(TIMEOUT)).startswith("0{")
            assert ws.recv(TIMEOUT) == "4welcome"
        eio.close()
