"""The behaviour suite: every server adapter, over ws and wss, with independent clients."""

from __future__ import annotations

import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
import websocket as wsclient  # websocket-client
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.sync.client import ClientConnection, connect

from tests.support import app as apps
from tests.support.client import RawClient
from tests.support.servers import RunningServer
from ws4py_integrations.client import WebSocketClient


@contextmanager
def client(server: RunningServer, path: str, **kwargs: Any) -> Iterator[ClientConnection]:
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 10)
    kwargs.setdefault("max_size", None)
    with connect(server.ws_url(path), ssl=server.extra["client_ssl"], **kwargs) as ws:
        yield ws


def raw(server: RunningServer) -> RawClient:
    return RawClient(server.host, server.port, server.extra["client_ssl"])


# -- echo ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
def test_echo_text_binary_empty(server: RunningServer, compression: str | None) -> None:
    with client(server, "/echo", compression=compression) as ws:
        for message in ["hello", "", "é€𝄞", b"\x00\xff" * 10, b""]:
            ws.send(message)
            assert ws.recv(timeout=10) == message
        assert ("permessage-deflate" in str(ws.response.headers.get("Sec-WebSocket-Extensions"))) == bool(compression)


def test_echo_one_mebibyte(server: RunningServer) -> None:
    payload = bytes(range(256)) * 4096
    with client(server, "/echo") as ws:
        ws.send(payload)
        assert ws.recv(timeout=30) == payload
        text = "x" * 2**20
        ws.send(text)
        assert ws.recv(timeout=30) == text


def test_fragmented_messages_both_ways(server: RunningServer) -> None:
    with client(server, "/echo") as ws:
        ws.send(["frag", "mented", " text"])
        assert ws.recv(timeout=10) == "fragmented text"
        ws.send([b"\x01", b"\x02\x03", b""])
        assert ws.recv(timeout=10) == b"\x01\x02\x03"
        # The server sends a fragmented message: the client reassembles it.
        ws.send("fragments:a,b,c")
        assert ws.recv(timeout=10) == "abc"


def test_websocket_client_library(server: RunningServer) -> None:
    """A second independent client implementation (websocket-client)."""
    sslopt = {"context": server.extra["client_ssl"]} if server.tls else None
    ws = wsclient.create_connection(server.ws_url("/echo"), timeout=10, sslopt=sslopt)
    try:
        ws.send("from websocket-client")
        assert ws.recv() == "from websocket-client"
        ws.send_binary(b"\x01\x02")
        assert ws.recv() == b"\x01\x02"
    finally:
        ws.close()


def test_our_client_on_every_server(server: RunningServer) -> None:
    """ws4py_integrations' own client, ws and wss, beside the independent ones above."""
    ssl_context = server.extra["client_ssl"] if server.tls else None
    with WebSocketClient(server.ws_url("/echo"), ssl_context=ssl_context, max_message_size=None) as ws:
        assert ws.extensions == ["permessage-deflate"]
        for message in ["from our client", b"\x01\x02" * 40_000, ""]:
            ws.send(message)
            echoed = ws.receive(10)
            assert echoed is not None and echoed.data == message
    assert ws.close_code == 1000


# -- ping/pong and close ----------------------------------------------------------


def test_client_ping_gets_pong(server: RunningServer) -> None:
    with client(server, "/echo") as ws:
        pong = ws.ping(b"are you there")
        assert pong.wait(10)


def test_server_ping_and_ponged_callback(server: RunningServer) -> None:
    with client(server, "/echo") as ws:
        ws.send("ping:xyz")
        assert ws.recv(timeout=10) == "ponged:xyz"


def test_client_close_code_and_reason_reach_handler(server: RunningServer) -> None:
    with client(server, "/record") as ws:
        apps.wait_event("opened", "/record")
        ws.close(4001, "client says bye")
    assert apps.wait_event("closed", "/record") == (4001, "client says bye")


def test_server_close_code_and_reason_reach_client(server: RunningServer) -> None:
    with client(server, "/echo") as ws:
        ws.send("close:4002:server says bye")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "server says bye")


def test_close_without_status(server: RunningServer) -> None:
    peer = raw(server)
    try:
        assert peer.upgrade("/record") == 101
        peer.send_frame(Opcode.CLOSE, b"")
        assert peer.recv_close().code == 1005
        peer.wait_eof()
    finally:
        peer.close()
    assert apps.wait_event("closed", "/record")[0] == 1005


# -- bytes around the handshake -------------------------------------------------


def test_frame_sent_with_the_handshake_is_delivered(server: RunningServer) -> None:
    from websockets.frames import Frame

    peer = raw(server)
    try:
        frames = Frame(Opcode.TEXT, b"early bird").serialize(mask=True) + Frame(Opcode.BINARY, b"\x07").serialize(
            mask=True
        )
        assert peer.upgrade("/echo", extra=frames) == 101
        first, second = peer.recv_frame(), peer.recv_frame()
        assert first is not None and (first.opcode, first.data) == (Opcode.TEXT, b"early bird")
        assert second is not None and (second.opcode, second.data) == (Opcode.BINARY, b"\x07")
    finally:
        peer.close()


def test_101_has_no_body_headers(server: RunningServer) -> None:
    peer = raw(server)
    try:
        from tests.support.client import handshake_request

        peer.send(handshake_request(server.host, server.port, "/echo"))
        status, headers, _ = peer.read_response_head()
        assert status == 101
        assert headers["upgrade"].lower() == "websocket"
        assert "content-length" not in headers
        assert "content-type" not in headers
        assert "transfer-encoding" not in headers
    finally:
        peer.close()


# -- concurrency ------------------------------------------------------------------


def test_concurrent_sends_on_one_connection_never_interleave(server: RunningServer) -> None:
    threads, count, size = 4, 8, 256 * 1024
    with client(server, "/echo") as ws:
        ws.send(f"burst:{threads},{count},{size}")
        seen: dict[int, int] = {}
        while True:
            message = ws.recv(timeout=60)
            if message == "burst-done":
                break
            assert isinstance(message, bytes) and len(message) == size
            # Every byte of a message carries the same value: interleaving would mix them.
            assert message == bytes([message[0]]) * size
            seen[message[0] // 16] = seen.get(message[0] // 16, 0) + 1
    assert seen == {index: count for index in range(threads)}


def test_several_clients_broadcasting_at_once(server: RunningServer) -> None:
    clients, per_client = 4, 25
    with ExitStack() as stack:
        conns = [stack.enter_context(client(server, "/room")) for _ in range(clients)]
        for _ in range(clients):
            apps.wait_event("opened", "/room")
        barrier = threading.Barrier(clients)

        def talk(index: int) -> None:
            barrier.wait(10)
            for n in range(per_client):
                conns[index].send(f"{index}:{n}:" + "p" * 1000)

        senders = [threading.Thread(target=talk, args=(i,)) for i in range(clients)]
        for sender in senders:
            sender.start()
        for conn in conns:
            got = [conn.recv(timeout=30) for _ in range(clients * per_client)]
            assert all(isinstance(m, str) and m.endswith(":" + "p" * 1000) for m in got)
            assert sorted(got) == sorted(f"{i}:{n}:" + "p" * 1000 for i in range(clients) for n in range(per_client))
            # Messages from one sender arrive in the order it sent them.
            for i in range(clients):
                mine = [int(m.split(":")[1]) for m in got if m.startswith(f"{i}:")]
                assert mine == sorted(mine)
        for sender in senders:
            sender.join(10)


def test_sleeping_handler_does_not_delay_other_connections(server: RunningServer) -> None:
    with client(server, "/echo") as sleeper, client(server, "/echo") as other:
        sleeper.send("sleep:2")
        for n in range(20):
            other.send(f"quick {n}")
            assert other.recv(timeout=10) == f"quick {n}"
        # All 20 round trips completed while the first handler was still asleep.
        with pytest.raises(TimeoutError):
            sleeper.recv(timeout=0)
        assert sleeper.recv(timeout=10) == "slept:2"


def test_callbacks_of_one_connection_stay_in_order(server: RunningServer) -> None:
    with client(server, "/echo") as ws:
        ws.send("sleep:0.3")
        for n in range(50):
            ws.send(f"m{n}")
        assert ws.recv(timeout=10) == "slept:0.3"
        assert [ws.recv(timeout=10) for _ in range(50)] == [f"m{n}" for n in range(50)]


# -- limits and protocol errors ------------------------------------------------------


def test_oversized_message_closes_with_1009(server: RunningServer) -> None:
    with client(server, "/small") as ws:
        ws.send("x" * 1024)
        assert ws.recv(timeout=10) == "x" * 1024
        ws.send("x" * 1025)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_default_limit_is_one_mebibyte(server: RunningServer) -> None:
    with client(server, "/record") as ws:
        ws.send(b"x" * (2**20 + 1))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_invalid_utf8_closes_with_1007(server: RunningServer) -> None:
    peer = raw(server)
    try:
        assert peer.upgrade("/echo") == 101
        peer.send_frame(Opcode.TEXT, b"caf\xc3")
        assert peer.recv_close().code == 1007
        peer.wait_eof()
    finally:
        peer.close()


def test_invalid_utf8_fails_at_the_first_bad_fragment(server: RunningServer) -> None:
    peer = raw(server)
    try:
        assert peer.upgrade("/echo") == 101
        # The message never ends: the server must not wait for the last fragment.
        peer.send_frame(Opcode.TEXT, b"ok \xff", fin=False)
        assert peer.recv_close().code == 1007
    finally:
        peer.close()


def test_unmasked_client_frame_closes_with_1002(server: RunningServer) -> None:
    peer = raw(server)
    try:
        assert peer.upgrade("/echo") == 101
        peer.send_frame(Opcode.TEXT, b"naked", mask=False)
        assert peer.recv_close().code == 1002
        peer.wait_eof()
    finally:
        peer.close()


def test_huge_length_header_closes_only_that_connection(server: RunningServer) -> None:
    with client(server, "/echo") as bystander:
        peer = raw(server)
        try:
            assert peer.upgrade("/echo") == 101
            # A binary frame announcing 2**62 bytes, masked, with no payload.
            peer.send(bytes([0x82, 0xFF]) + struct.pack("!Q", 2**62) + b"\x00\x00\x00\x00")
            assert peer.recv_close().code == 1009
            peer.wait_eof()
        finally:
            peer.close()
        bystander.send("still here")
        assert bystander.recv(timeout=10) == "still here"
    with client(server, "/echo") as newcomer:
        newcomer.send("and serving")
        assert newcomer.recv(timeout=10) == "and serving"


def test_handler_exception_closes_with_1011_and_server_continues(server: RunningServer) -> None:
    with client(server, "/echo") as ws:
        ws.send("raise:now")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    with client(server, "/echo") as ws:
        ws.send("fine")
        assert ws.recv(timeout=10) == "fine"


# -- handshakes at the server level -------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "method", "version", "status"),
    [
        ({"Sec-WebSocket-Key": None}, "GET", "HTTP/1.1", 400),
        ({"Sec-WebSocket-Key": "not base64!"}, "GET", "HTTP/1.1", 400),
        ({"Sec-WebSocket-Key": "c2hvcnQ="}, "GET", "HTTP/1.1", 400),
        ({"Sec-WebSocket-Version": "12"}, "GET", "HTTP/1.1", 426),
        ({}, "POST", "HTTP/1.1", 400),
        ({}, "GET", "HTTP/1.0", 400),
        ({"Upgrade": None}, "GET", "HTTP/1.1", 400),
        ({"Connection": "keep-alive"}, "GET", "HTTP/1.1", 400),
        ({"Origin": "http://evil.example"}, "GET", "HTTP/1.1", 403),
    ],
    ids=["no-key", "bad-key", "short-key", "version-12", "post", "http-1.0", "no-upgrade", "no-connection", "origin"],
)
def test_bad_handshake_gets_a_clear_status(
    server: RunningServer, headers: dict[str, str | None], method: str, version: str, status: int
) -> None:
    from tests.support.client import handshake_request

    peer = raw(server)
    try:
        extra = {"Content-Length": "0"} if method == "POST" else {}
        peer.send(
            handshake_request(server.host, server.port, "/echo", {**headers, **extra}, method=method, version=version)
        )  # type: ignore[dict-item]
        got, response_headers, body = peer.read_response_head()
        assert got == status
        if status == 426:
            assert response_headers["sec-websocket-version"] == "13"
        length = int(response_headers.get("content-length", "0"))
        while len(body) < length:
            chunk = peer.sock.recv(4096)
            if not chunk:
                break
            body += chunk
        assert body.strip(), "a rejection carries a one-line reason"
    finally:
        peer.close()


@pytest.mark.parametrize(("cookie", "status"), [(None, 401), ("token=bad", 403)])
def test_authorize_hook_rejects_before_upgrade(server: RunningServer, cookie: str | None, status: int) -> None:
    peer = raw(server)
    try:
        assert peer.upgrade("/auth", {"Cookie": cookie} if cookie else {}) == status
    finally:
        peer.close()
    # The handler never ran.
    with pytest.raises(TimeoutError):
        apps.wait_event("opened", "/auth", timeout=0.2)


def test_authorize_hook_accepts_and_subprotocol_is_negotiated(server: RunningServer) -> None:
    with client(server, "/auth", additional_headers={"Cookie": "token=good"}, subprotocols=["superchat", "chat"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat"  # the server's preference wins
        assert apps.wait_event("opened", "/auth") == "chat"


def test_same_origin_is_accepted(server: RunningServer) -> None:
    origin = server.http_url("").rstrip("/")
    with client(server, "/echo", origin=origin) as ws:  # type: ignore[arg-type]
        ws.send("same origin")
        assert ws.recv(timeout=10) == "same origin"


def test_plain_http_passes_through(server: RunningServer) -> None:
    import ssl

    context: ssl.SSLContext | None = server.extra["client_ssl"]
    with urllib.request.urlopen(server.http_url("/anything?x=1"), timeout=10, context=context) as response:
        assert response.status == 200
        assert response.headers["X-Plain"] == "yes"
        assert response.read() == b"plain GET /anything"
    request = urllib.request.Request(server.http_url("/form"), data=b"a=1", method="POST")
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert response.read() == b"plain POST /form"


def test_plain_get_on_websocket_path_is_400(server: RunningServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.http_url("/echo"), timeout=10, context=server.extra["client_ssl"])
    assert info.value.code == 400


# -- keepalive -----------------------------------------------------------------------


def test_peer_that_stops_answering_pings_is_closed(server: RunningServer) -> None:
    peer = raw(server)
    try:
        assert peer.upgrade("/keepalive") == 101
        started = time.monotonic()
        # Read without answering: the raw client never sends a pong.
        frame = peer.recv_frame(timeout=5)
        assert frame is not None and frame.opcode is Opcode.PING
        close = peer.recv_close(timeout=5)
        elapsed = time.monotonic() - started
        assert close.code == 1011
        # ping_interval 0.5 s + ping_timeout 0.5 s, with slack for a loaded machine.
        assert elapsed < 4.0
    finally:
        peer.close()


def test_peer_that_answers_pings_stays_open_and_latency_is_measured(server: RunningServer) -> None:
    with client(server, "/keepalive", ping_interval=None) as ws:
        # The websockets client answers pings automatically while we wait.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=2.0)
        ws.send("still open")
        assert ws.recv(timeout=10) == "still open"


# -- slow reader -----------------------------------------------------------------------


def test_reader_that_falls_behind_is_closed_with_1008(server: RunningServer) -> None:
    peer = raw(server)
    try:
        assert peer.upgrade("/slowreader") == 101
        # 64 MiB requested by a client that reads nothing: the send buffer limit
        # (256 KiB) trips and the server gives up on this peer.
        from websockets.frames import Frame

        peer.send(Frame(Opcode.TEXT, b"burst:1,256,262144").serialize(mask=True))
        with client(server, "/echo") as bystander:
            bystander.send("unaffected")
            assert bystander.recv(timeout=10) == "unaffected"
        close = peer.recv_close(timeout=30)
        assert close.code == 1008
    finally:
        peer.close()
