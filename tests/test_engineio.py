"""Engine.IO v4 on every server: every protocol rule and error answer, over raw
HTTP (http.client) and raw WebSocket (websockets' sync client), plus
python-engineio's client as an independent peer."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import engineio
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.servers import SERVER_NAMES, RunningServer, available, serve
from ws4py_integrations.engineio import EchoHandler, EngineIOServer, EngineIOSocket
from ws4py_integrations.engineio import session as session_module

SERVERS = available()
PING_INTERVAL = 0.4
PING_TIMEOUT = 0.4
MAX_PAYLOAD = 1000
TIMEOUT = 5.0


def plain_page(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"plain\n"]


class Recorder(EchoHandler):
    """Echoes, and records every callback (thread-safe)."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, str, Any]] = queue.Queue()

    def connect(self, socket: EngineIOSocket) -> None:
        self.events.put(("connect", socket.sid, socket.environ.get("QUERY_STRING")))

    def message(self, socket: EngineIOSocket, data: str | bytes) -> None:
        self.events.put(("message", socket.sid, data))
        super().message(socket, data)

    def disconnect(self, socket: EngineIOSocket, reason: str) -> None:
        self.events.put(("disconnect", socket.sid, reason))

    def wait_for(self, kind: str, sid: str, timeout: float = TIMEOUT) -> tuple[str, str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {kind} event for {sid}"
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event[0] == kind and event[1] == sid:
                return event


class Endpoint:
    def __init__(self, running: RunningServer, eio: EngineIOServer, recorder: Recorder) -> None:
        self.running = running
        self.eio = eio
        self.recorder = recorder
        self.host = running.host
        self.port = running.port

    def request(
        self, method: str, query: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            conn.request(method, f"/engine.io/?{query}", body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def handshake(self) -> str:
        status, _, body = self.request("GET", "EIO=4&transport=polling")
        assert status == 200, body
        sid: str = json.loads(body[1:])["sid"]
        return sid

    def get(self, sid: str) -> tuple[int, bytes]:
        status, _, body = self.request("GET", f"EIO=4&transport=polling&sid={sid}")
        return status, body

    def post(self, sid: str, body: bytes) -> tuple[int, bytes]:
        status, _, answer = self.request("POST", f"EIO=4&transport=polling&sid={sid}", body)
        return status, answer

    def ws(self, sid: str | None = None, **kwargs: Any) -> ClientConnection:
        query = "EIO=4&transport=websocket" + (f"&sid={sid}" if sid else "")
        return connect(f"ws://{self.host}:{self.port}/engine.io/?{query}", open_timeout=TIMEOUT, **kwargs)


def error(body: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(body)
    return value


@pytest.fixture(scope="module", params=SERVERS)
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    recorder = Recorder()
    # A second endpoint with a forgiving ping timeout, for python-engineio's
    # client (its threads may answer late on a loaded machine).
    relaxed = EngineIOServer(recorder, plain_page, path="/relaxed.io/", ping_interval=PING_INTERVAL, ping_timeout=2)
    eio = EngineIOServer(
        recorder, relaxed, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, max_payload=MAX_PAYLOAD
    )
    with serve(request.param, eio) as running:
        yield Endpoint(running, eio, recorder)
        eio.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def wait_held(endpoint: Endpoint, sid: str) -> None:
    """Wait until the server holds a GET for ``sid``."""
    deadline = time.monotonic() + TIMEOUT
    session = endpoint.eio.get(sid)
    assert session is not None
    while session._poll is None:
        assert time.monotonic() < deadline, "the GET was never held"
        time.sleep(0.005)


def test_servers_under_test() -> None:
    assert set(SERVERS) <= set(SERVER_NAMES) and SERVERS


# -- handshake ---------------------------------------------------------------------------


def test_polling_handshake(endpoint: Endpoint) -> None:
    status, headers, body = endpoint.request("GET", "EIO=4&transport=polling&t=x")
    assert status == 200
    assert headers["content-type"] == "text/plain; charset=UTF-8"
    assert body.startswith(b"0")
    value = json.loads(body[1:])
    assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert value["upgrades"] == ["websocket"]
    # Sub-second settings are announced exactly, in milliseconds.
    assert (value["pingInterval"], value["pingTimeout"], value["maxPayload"]) == (400, 400, MAX_PAYLOAD)
    assert endpoint.recorder.wait_for("connect", value["sid"])[2] == "EIO=4&transport=polling&t=x"


def test_websocket_handshake(endpoint: Endpoint) -> None:
    with endpoint.ws() as ws:
        data = ws.recv(TIMEOUT)
        assert isinstance(data, str) and data.startswith("0")
        value = json.loads(data[1:])
        assert value["upgrades"] == []
        assert (value["pingInterval"], value["pingTimeout"], value["maxPayload"]) == (400, 400, MAX_PAYLOAD)


@pytest.mark.parametrize(
    ("method", "query", "code", "message"),
    [
        ("GET", "transport=polling", 5, "Unsupported protocol version"),
        ("GET", "EIO=abc&transport=polling", 5, "Unsupported protocol version"),
        ("GET", "EIO=3&transport=polling", 5, "Unsupported protocol version"),
        ("GET", "EIO=4", 0, "Transport unknown"),
        ("GET", "EIO=4&transport=abc", 0, "Transport unknown"),
        ("POST", "EIO=4&transport=polling", 2, "Bad handshake method"),
        ("PUT", "EIO=4&transport=polling", 2, "Bad handshake method"),
        ("GET", "EIO=4&transport=polling&sid=nope", 1, "Session ID unknown"),
        ("GET", "EIO=4&transport=websocket&sid=nope", 1, "Session ID unknown"),
        ("GET", "EIO=4&transport=websocket", 3, "Bad request"),
    ],
)
def test_error_answers(endpoint: Endpoint, method: str, query: str, code: int, message: str) -> None:
    status, headers, body = endpoint.request(method, query)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert error(body) == {"code": code, "message": message}


def test_unsupported_method_with_sid(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    status, _, body = endpoint.request("PUT", f"EIO=4&transport=polling&sid={sid}")
    assert (status, error(body)["code"]) == (400, 3)


UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def test_websocket_upgrade_of_unknown_session_refused_before_101(endpoint: Endpoint) -> None:
    # (Raw HTTP: wsgiref answers HTTP/1.0, which WebSocket clients do not parse.)
    status, _, body = endpoint.request("GET", "EIO=4&transport=websocket&sid=nope", headers=UPGRADE)
    assert (status, error(body)) == (400, {"code": 1, "message": "Session ID unknown"})


def test_plain_pages_pass_through(endpoint: Endpoint) -> None:
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=TIMEOUT)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"plain\n"
    conn.close()


# -- long polling ----------------------------------------------------------------------------


def test_polling_messages_text_and_binary(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    status, headers, body = endpoint.request("POST", f"EIO=4&transport=polling&sid={sid}", b"4hello\x1ebAQIDBA==")
    assert (status, body, headers["content-type"]) == (200, b"ok", "text/html")
    assert endpoint.get(sid) == (200, b"4hello\x1ebAQIDBA==")
    assert endpoint.recorder.wait_for("message", sid)[2] == "hello"
    assert endpoint.recorder.wait_for("message", sid)[2] == b"\x01\x02\x03\x04"


def test_held_get_answered_when_a_message_comes(endpoint: Endpoint, pool: ThreadPoolExecutor) -> None:
    sid = endpoint.handshake()
    held = pool.submit(endpoint.get, sid)
    wait_held(endpoint, sid)
    assert endpoint.post(sid, b"4late") == (200, b"ok")
    assert held.result(TIMEOUT) == (200, b"4late")


def test_invalid_packet_closes_the_session(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    status, body = endpoint.post(sid, b"abc")
    assert (status, error(body)["code"]) == (400, 3)
    assert endpoint.recorder.wait_for("disconnect", sid)[2] == "parse error"
    assert endpoint.get(sid)[0] == 400


@pytest.mark.parametrize("body", [b"\xff\xfe", b"b!!notbase64", b"", b"2", b"0{}"])
def test_other_invalid_payloads(endpoint: Endpoint, body: bytes) -> None:
    sid = endpoint.handshake()
    assert endpoint.post(sid, body)[0] == 400
    assert endpoint.get(sid)[0] == 400


def test_payload_too_large(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    status, _ = endpoint.post(sid, b"4" + b"x" * MAX_PAYLOAD)
    assert status == 413
    assert endpoint.post(sid, b"4" + b"x" * (MAX_PAYLOAD - 1)) == (200, b"ok")


def test_post_without_length(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    status, _, _ = endpoint.request("POST", f"EIO=4&transport=polling&sid={sid}", None, {"Content-Length": "nope"})
    # Refused by us ({"code": 3}) or by a server that checks the header itself.
    assert status == 400


def test_duplicate_get_closes_the_session(endpoint: Endpoint, pool: ThreadPoolExecutor) -> None:
    sid = endpoint.handshake()
    first = pool.submit(endpoint.get, sid)
    wait_held(endpoint, sid)
    status, body = endpoint.get(sid)
    assert (status, error(body)["code"]) == (400, 3)
    assert first.result(TIMEOUT) == (200, b"1")
    assert endpoint.get(sid)[0] == 400
    assert endpoint.recorder.wait_for("disconnect", sid)[2] == "transport error"


def test_client_close_ends_the_pending_get_with_a_noop(endpoint: Endpoint, pool: ThreadPoolExecutor) -> None:
    sid = endpoint.handshake()
    held = pool.submit(endpoint.get, sid)
    wait_held(endpoint, sid)
    assert endpoint.post(sid, b"1") == (200, b"ok")
    assert held.result(TIMEOUT) == (200, b"6")
    assert endpoint.get(sid)[0] == 400
    assert endpoint.recorder.wait_for("disconnect", sid)[2] == "transport close"


def test_server_close_sends_a_close_packet(endpoint: Endpoint, pool: ThreadPoolExecutor) -> None:
    sid = endpoint.handshake()
    held = pool.submit(endpoint.get, sid)
    wait_held(endpoint, sid)
    session = endpoint.eio.get(sid)
    assert session is not None
    session.close()
    assert session.closed
    assert held.result(TIMEOUT) == (200, b"1")
    assert endpoint.recorder.wait_for("disconnect", sid)[2] == "forced close"
    session.send("ignored once closed")


def test_polling_heartbeat(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    for _ in range(2):
        assert endpoint.get(sid) == (200, b"2")
        assert endpoint.post(sid, b"3") == (200, b"ok")
    assert endpoint.eio.get(sid) is not None


def test_polling_ping_timeout(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    assert endpoint.recorder.wait_for("disconnect", sid)[2] == "ping timeout"
    assert endpoint.get(sid)[0] == 400


def test_send_from_another_thread_answers_the_held_get(endpoint: Endpoint, pool: ThreadPoolExecutor) -> None:
    sid = endpoint.handshake()
    held = pool.submit(endpoint.get, sid)
    wait_held(endpoint, sid)
    session = endpoint.eio.get(sid)
    assert session is not None
    threading.Thread(target=session.send, args=(b"\x00bin",)).start()
    assert held.result(TIMEOUT) == (200, b"b" + base64.b64encode(b"\x00bin"))
    with pytest.raises(TypeError):
        session.send(42)  # type: ignore[arg-type]


# -- WebSocket -------------------------------------------------------------------------------


def test_websocket_messages(endpoint: Endpoint) -> None:
    with endpoint.ws() as ws:
        ws.recv(TIMEOUT)
        ws.send("4hello")
        assert ws.recv(TIMEOUT) == "4hello"
        ws.send(b"\x01\x02")
        assert ws.recv(TIMEOUT) == b"\x01\x02"


def test_websocket_heartbeat(endpoint: Endpoint) -> None:
    with endpoint.ws() as ws:
        ws.recv(TIMEOUT)
        for _ in range(2):
            assert ws.recv(TIMEOUT) == "2"
            ws.send("3")


def test_websocket_ping_timeout(endpoint: Endpoint) -> None:
    with endpoint.ws() as ws:
        ws.recv(TIMEOUT)
        assert ws.recv(TIMEOUT) == "2"
        assert ws.recv(TIMEOUT) == "1"
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)


@pytest.mark.parametrize("packet", ["abc", "", "2", "5", "0"])
def test_websocket_invalid_packet_closes(endpoint: Endpoint, packet: str) -> None:
    with endpoint.ws() as ws:
        sid = json.loads(ws.recv(TIMEOUT)[1:])["sid"]
        ws.send(packet)
        with pytest.raises(ConnectionClosed):
            while True:
                assert ws.recv(TIMEOUT) in ("1", "2")
        assert endpoint.recorder.wait_for("disconnect", sid)[2] == "parse error"


def test_websocket_client_close(endpoint: Endpoint) -> None:
    with endpoint.ws() as ws:
        sid = json.loads(ws.recv(TIMEOUT)[1:])["sid"]
        ws.send("1")
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert endpoint.recorder.wait_for("disconnect", sid)[2] == "transport close"


def test_websocket_too_large_message(endpoint: Endpoint) -> None:
    with endpoint.ws() as ws:
        ws.recv(TIMEOUT)
        ws.send("4" + "x" * MAX_PAYLOAD)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(TIMEOUT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


# -- upgrade -------------------------------------------------------------------------------


def test_upgrade(endpoint: Endpoint, pool: ThreadPoolExecutor) -> None:
    sid = endpoint.handshake()
    held = pool.submit(endpoint.get, sid)
    wait_held(endpoint, sid)
    with endpoint.ws(sid) as ws:
        ws.send("2probe")
        assert ws.recv(TIMEOUT) == "3probe"
        # The pending GET ends with a noop; so do GETs until the upgrade.
        assert held.result(TIMEOUT) == (200, b"6")
        assert endpoint.get(sid) == (200, b"6")
        session = endpoint.eio.get(sid)
        assert session is not None
        session.send("queued during the upgrade")
        ws.send("5")
        assert ws.recv(TIMEOUT) == "4queued during the upgrade"
        assert session.transport == "websocket"
        # A polling request for an upgraded session is refused.
        status, body = endpoint.get(sid)
        assert (status, error(body)["code"]) == (400, 3)
        assert endpoint.post(sid, b"4x")[0] == 400
        # No stray noop after the upgrade: the next frame is the echo.
        ws.send("4hello")
        assert ws.recv(TIMEOUT) == "4hello"
        # A second WebSocket for the upgraded session is closed at once.
        with endpoint.ws(sid) as second, pytest.raises(ConnectionClosed):
            second.recv(TIMEOUT)
        ws.send("4still")
        assert ws.recv(TIMEOUT) == "4still"
        assert ws.recv(TIMEOUT) == "2"
        ws.send("3")


def test_upgrade_abandoned(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    with endpoint.ws(sid) as ws:
        ws.send("2probe")
        assert ws.recv(TIMEOUT) == "3probe"
    deadline = time.monotonic() + TIMEOUT
    session = endpoint.eio.get(sid)
    assert session is not None
    while session._upgrading:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Polling goes on: the next GET waits for (and gets) the ping.
    assert endpoint.get(sid) == (200, b"2")


def test_invalid_packet_during_upgrade_drops_the_probe(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    with endpoint.ws(sid) as ws:
        ws.send("4not a probe")
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert endpoint.post(sid, b"4still polling") == (200, b"ok")
    assert endpoint.get(sid) == (200, b"4still polling")


# -- origins and CORS -----------------------------------------------------------------------


def test_same_origin_default(endpoint: Endpoint) -> None:
    own = f"http://{endpoint.host}:{endpoint.port}"
    status, _, _ = endpoint.request("GET", "EIO=4&transport=polling", headers={"Origin": own})
    assert status == 200
    status, _, body = endpoint.request("GET", "EIO=4&transport=polling", headers={"Origin": "http://evil.example"})
    assert (status, error(body)) == (403, {"code": 4, "message": "Forbidden"})
    status, _, body = endpoint.request("GET", "EIO=4&transport=polling", headers={"Host": "evil.example"})
    assert status == 403
    # The WebSocket upgrade too.
    status, _, body = endpoint.request(
        "GET", "EIO=4&transport=websocket", headers={**UPGRADE, "Origin": "http://evil.example"}
    )
    assert (status, error(body)["code"]) == (403, 4)
    with endpoint.ws(origin=own) as ws:  # type: ignore[arg-type]
        assert ws.recv(TIMEOUT).startswith("0")


@pytest.fixture(scope="module")
def cors_endpoint() -> Iterator[Endpoint]:
    recorder = Recorder()
    eio = EngineIOServer(
        recorder,
        cors_allowed_origins=["http://app.example"],
        cors_credentials=True,
        allowed_hosts=["127.0.0.1"],
        path="/engine.io",
    )
    with serve("wsgiref", eio) as running:
        yield Endpoint(running, eio, recorder)


def test_cors(cors_endpoint: Endpoint) -> None:
    allowed = {"Origin": "http://app.example"}
    status, headers, _ = cors_endpoint.request(
        "OPTIONS", "EIO=4&transport=polling", headers={**allowed, "Access-Control-Request-Headers": "content-type"}
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "http://app.example"
    assert headers["access-control-allow-credentials"] == "true"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "content-type"
    status, headers, body = cors_endpoint.request("GET", "EIO=4&transport=polling", headers=allowed)
    assert status == 200 and headers["access-control-allow-origin"] == "http://app.example"
    # A held GET's answer, written by the manager, carries them too.
    sid = json.loads(body[1:])["sid"]
    with ThreadPoolExecutor(1) as executor:
        held = executor.submit(cors_endpoint.request, "GET", f"EIO=4&transport=polling&sid={sid}", None, allowed)
        wait_held(cors_endpoint, sid)
        session = cors_endpoint.eio.get(sid)
        assert session is not None
        session.send("x")
        status, headers, body = held.result(TIMEOUT)
    assert (status, body, headers["connection"]) == (200, b"4x", "close")
    assert headers["access-control-allow-origin"] == "http://app.example"
    assert headers["access-control-allow-credentials"] == "true"
    status, headers, body = cors_endpoint.request("OPTIONS", "", headers={"Origin": "http://other.example"})
    assert (status, error(body)["code"]) == (403, 4)
    assert "access-control-allow-origin" not in headers
    conn = http.client.HTTPConnection(cors_endpoint.host, cors_endpoint.port, timeout=TIMEOUT)
    conn.request("GET", "/elsewhere")
    assert conn.getresponse().status == 404
    conn.close()


def test_cors_any_origin() -> None:
    eio = EngineIOServer(EchoHandler(), cors_allowed_origins="*")
    with serve("wsgiref", eio) as running:
        endpoint = Endpoint(running, eio, Recorder())
        status, headers, _ = endpoint.request(
            "GET", "EIO=4&transport=polling", headers={"Origin": "http://any.example"}
        )
        assert status == 200 and headers["access-control-allow-origin"] == "*"
        eio.close()


# -- python-engineio's client -------------------------------------------------------------


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
def test_python_engineio_client(endpoint: Endpoint, transports: list[str]) -> None:
    client = engineio.Client()
    received: queue.Queue[Any] = queue.Queue()
    client.on("message", received.put)
    client.connect(f"http://{endpoint.host}:{endpoint.port}", transports=transports, engineio_path="relaxed.io")
    sid = client.sid
    try:
        for payload in ("text", b"\x00\xffbinary"):
            client.send(payload)
            assert received.get(timeout=TIMEOUT) == payload
        # Long enough for a few heartbeats: the session stays up.
        time.sleep(PING_INTERVAL * 1.5)
        client.send("after heartbeats")
        assert received.get(timeout=TIMEOUT) == "after heartbeats"
        assert client.transport() == transports[-1]
        relaxed = endpoint.eio.app
        assert isinstance(relaxed, EngineIOServer)
        session = relaxed.get(sid)
        assert session is not None and session.transport == transports[-1]
    finally:
        client.disconnect()
    # Its polling write loop may end before it sends the close packet (a race
    # in python-engineio's client): the heartbeat then ends the session.
    reason = endpoint.recorder.wait_for("disconnect", sid, TIMEOUT + 3)[2]
    assert reason == "transport close" or (transports == ["polling"] and reason == "ping timeout")


# -- edges ---------------------------------------------------------------------------------


def test_packets_the_client_may_send_anytime(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    # A pong nobody asked for, a noop and an upgrade packet on polling are ignored.
    assert endpoint.post(sid, b"3\x1e6\x1e5\x1e4still") == (200, b"ok")
    assert endpoint.get(sid) == (200, b"4still")


def test_a_get_racing_the_client_close_gets_a_noop(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    assert endpoint.post(sid, b"1") == (200, b"ok")
    # A GET sent before the close (arriving after it) gets the noop, once.
    assert endpoint.get(sid) == (200, b"6")
    assert endpoint.get(sid)[0] == 400


def test_a_second_probe_is_closed(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    with endpoint.ws(sid) as probe:
        with endpoint.ws(sid) as second, pytest.raises(ConnectionClosed):
            second.recv(TIMEOUT)
        probe.send("2probe")
        assert probe.recv(TIMEOUT) == "3probe"
        session = endpoint.eio.get(sid)
        assert session is not None
        session.close()
        session.close()
        with pytest.raises(ConnectionClosed):
            probe.recv(TIMEOUT)


def test_a_client_that_leaves_its_get_keeps_its_session(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=TIMEOUT)
    sock.sendall(f"GET /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    wait_held(endpoint, sid)
    session = endpoint.eio.get(sid)
    assert session is not None
    poll = session._poll
    sock.close()
    deadline = time.monotonic() + TIMEOUT
    while session._poll is not None:
        assert time.monotonic() < deadline, "the server never noticed"
        time.sleep(0.01)
    # Answering it now is a no-op; the session goes on.
    assert poll is not None
    poll.respond(b"4lost")
    assert endpoint.post(sid, b"4kept") == (200, b"ok")
    assert endpoint.get(sid) == (200, b"4kept")


def test_large_answer_to_a_slow_reader(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect((endpoint.host, endpoint.port))
    sock.sendall(f"GET /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    wait_held(endpoint, sid)
    session = endpoint.eio.get(sid)
    assert session is not None
    big = "x" * 3_000_000
    session.send(big)
    time.sleep(0.1)  # let the server fill the socket and wait for it to drain
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    assert bytes(data).partition(b"\r\n\r\n")[2] == b"4" + big.encode()


def test_refused_websocket_handshake_keeps_its_reason(endpoint: Endpoint) -> None:
    status, _, body = endpoint.request(
        "GET", "EIO=4&transport=websocket", headers={**UPGRADE, "Sec-WebSocket-Version": "8"}
    )
    assert status in (400, 426) and b"version" in body.lower()


def test_a_client_that_sends_junk_on_its_get_is_dropped(endpoint: Endpoint) -> None:
    sid = endpoint.handshake()
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=TIMEOUT)
    sock.sendall(f"GET /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    wait_held(endpoint, sid)
    session = endpoint.eio.get(sid)
    assert session is not None
    with contextlib.suppress(OSError):
        for _ in range(20):
            sock.sendall(b"x" * 8192)
    try:
        data = sock.recv(100)
    except ConnectionResetError:  # closed with our junk unread: a reset
        data = b""
    assert data == b""  # closed by the server, unanswered
    sock.close()
    deadline = time.monotonic() + TIMEOUT
    while session._poll is not None:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_an_answer_nobody_reads_is_dropped(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "_WRITE_TIMEOUT", 0.3)
    sid = endpoint.handshake()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect((endpoint.host, endpoint.port))
    sock.sendall(f"GET /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    wait_held(endpoint, sid)
    session = endpoint.eio.get(sid)
    assert session is not None
    poll = session._poll
    assert isinstance(poll, session_module.HeldPoll)
    session.send("x" * 3_000_000)
    deadline = time.monotonic() + TIMEOUT
    while not poll.finalized:
        assert time.monotonic() < deadline, "the unread answer was kept"
        time.sleep(0.02)
    sock.close()
