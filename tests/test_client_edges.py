"""Client edge cases: the client-side protocol engine, the handshake's parsing helpers,
proxy and redirect corners, and the client on GeventManager under gevent."""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.frames import CloseCode
from websockets.protocol import State
from websockets.sync.server import ServerConnection

from tests.test_client import TIMEOUT, ConnectProxy, RawServer, echo, switching, websockets_server
from ws4py_integrations import ThreadedManager, WebSocketClosed
from ws4py_integrations.client import (
    ConnectionClosedDuringHandshake,
    HandshakeTimeout,
    InvalidResponse,
    InvalidStatus,
    ProxyError,
    WebSocketClient,
    _Deadline,
    _dechunk,
    _parse_head,
    _read_head,
    redirect_target,
)
from ws4py_integrations.events import Message
from ws4py_integrations.protocol import ClientMessageProtocol

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def manager() -> Iterator[ThreadedManager]:
    manager = ThreadedManager(name="test-client-edges")
    yield manager
    manager.stop(5)


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def make(respond: Callable[[socket.socket, bytes, str], None]) -> RawServer:
        servers.append(RawServer(respond))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


# -- the client-side protocol ---------------------------------------------------------------


def test_client_protocol_parses_unmasked_frames_and_masks_its_own() -> None:
    protocol = ClientMessageProtocol.connected([], None, 1000)
    protocol.receive_data(b"\x81\x02hi\x82\x04abcd\x8a\x01p")
    assert protocol.inbox[:2] == [Message("hi"), Message(b"abcd")]
    protocol.send_text(b"x")
    sent = protocol.data_to_send()[0]
    assert sent[0] == 0x81 and sent[1] == 0x81  # FIN text, MASK bit and length 1


def test_client_protocol_fails_fast_on_invalid_utf8_in_a_partial_frame() -> None:
    protocol = ClientMessageProtocol.connected([], None, None)
    # A 16-bit length (200 bytes) of which only the start arrived, invalid at byte 3.
    protocol.receive_data(b"\x81\x7e\x00\xc8" + b"ok\xff")
    assert protocol.close_sent is not None and protocol.close_sent.code == CloseCode.INVALID_DATA
    valid = ClientMessageProtocol.connected([], None, None)
    valid.receive_data(b"\x81\x05ab")
    assert valid.state is State.OPEN and valid.close_sent is None
    valid.receive_data(b"c\xc3\xa9")
    assert valid.inbox == [Message("abcé")]


def test_a_masked_frame_from_the_server_is_a_protocol_error() -> None:
    protocol = ClientMessageProtocol.connected([], None, None)
    protocol.receive_data(b"\x81\x82\x00\x00\x00\x00hi")
    assert protocol.close_sent is not None and protocol.close_sent.code == CloseCode.PROTOCOL_ERROR


# -- parsing helpers ----------------------------------------------------------------------


def test_head_and_body_helpers() -> None:
    with pytest.raises(InvalidResponse, match="invalid header line"):
        _parse_head(b"HTTP/1.1 200 OK\r\nno colon here")
    assert _parse_head(b"HTTP/1.1 204") == (204, "", [])
    assert _dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n") == b"abcde"
    assert _dechunk(b"zz\r\nabc") == b""
    assert _dechunk(b"5\r\nab") == b""
    with pytest.raises(HandshakeTimeout):
        _Deadline(0.0, "nothing").remaining()
    assert _Deadline(None, "forever").remaining() is None
    a, b = socket.socketpair()
    try:
        b.sendall(b"x" * 70_000)
        with pytest.raises(InvalidResponse, match="larger than"):
            _read_head(a, _Deadline(TIMEOUT, "test"))
        b.close()
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionClosedDuringHandshake):
            _read_head(a, _Deadline(TIMEOUT, "test"), b"HTTP/1.1")
    finally:
        a.close()
        b.close()


def test_refusal_with_chunked_body_and_no_length(
    raw_server: Callable[..., RawServer], manager: ThreadedManager
) -> None:
    chunked = raw_server(
        lambda conn, head, key: conn.sendall(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ngone\r\n0\r\n\r\n"
        )
    )
    with pytest.raises(InvalidStatus) as info:
        WebSocketClient(chunked.url, manager=manager).connect()
    assert (info.value.status, info.value.body) == (404, b"gone")
    until_close = raw_server(lambda conn, head, key: (conn.sendall(b"HTTP/1.0 403 Forbidden\r\n\r\nno"), conn.close()))
    with pytest.raises(InvalidStatus) as info:
        WebSocketClient(until_close.url, manager=manager).connect()
    assert (info.value.status, info.value.body) == (403, b"no")


# -- sending after close, broadcasts ---------------------------------------------------------


def test_send_after_close_raises_and_broadcast_skips_clients(manager: ThreadedManager) -> None:
    with websockets_server(echo) as url:
        client = WebSocketClient(url, manager=manager, compression=False)
        client.connect()
        assert manager.broadcast("to servers only") == 0
        assert client.peer_address is not None
        client.close()
        with pytest.raises(WebSocketClosed):
            client.send("late")
        assert client.run_forever(TIMEOUT)
        client.close()  # idempotent
    assert WebSocketClient("ws://x/").peer_address is None
    WebSocketClient("ws://x/").close()  # before connect: nothing to do


# -- proxy and redirect corners ----------------------------------------------------------------


def test_proxy_credentials_and_misbehaving_proxies(
    raw_server: Callable[..., RawServer], manager: ThreadedManager
) -> None:
    seen: list[bytes] = []

    def chatty(conn: socket.socket, head: bytes, key: str) -> None:
        seen.append(head)
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nextra")

    proxy = raw_server(chatty)
    proxy_url = f"http://us%40er:pa%3Ass@127.0.0.1:{proxy.port}"
    with pytest.raises(ProxyError, match="before the tunnel"):
        WebSocketClient("ws://example.invalid/", manager=manager, proxy=proxy_url).connect()
    assert b"Proxy-Authorization: Basic dXNAZXI6cGE6c3M=" in seen[0]
    closing = raw_server(lambda conn, head, key: conn.close())
    with pytest.raises(ProxyError, match="broke off"):
        WebSocketClient("ws://example.invalid/", manager=manager, proxy=f"http://127.0.0.1:{closing.port}").connect()
    silent = raw_server(lambda conn, head, key: threading.Event().wait(1.0))
    with pytest.raises(HandshakeTimeout):
        WebSocketClient(
            "ws://example.invalid/", manager=manager, proxy=f"http://127.0.0.1:{silent.port}", connect_timeout=0.3
        ).connect()


def test_redirect_corners(raw_server: Callable[..., RawServer], manager: ThreadedManager) -> None:
    elsewhere = raw_server(
        lambda conn, head, key: conn.sendall(b"HTTP/1.1 301 Moved\r\nLocation: ftp://example.invalid/\r\n\r\n")
    )
    with pytest.raises(InvalidStatus, match="non-WebSocket"):
        WebSocketClient(elsewhere.url, manager=manager, follow_redirects=True).connect()


def test_server_frames_on_the_same_read_as_an_invalid_101(
    raw_server: Callable[..., RawServer], manager: ThreadedManager
) -> None:
    # A 101 whose extension parameters are invalid: a negotiation failure, not a crash.
    server = raw_server(
        lambda conn, head, key: conn.sendall(
            switching(key, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99")
        )
    )
    with pytest.raises(InvalidResponse):
        WebSocketClient(server.url, manager=manager).connect()


def test_connect_to_a_proxy_that_refuses(manager: ThreadedManager) -> None:
    proxy = ConnectProxy(refuse=True)
    try:
        with pytest.raises(ProxyError) as info:
            WebSocketClient("ws://127.0.0.1:9/", manager=manager, proxy=proxy.url).connect()
        assert info.value.header("content-length") == "7"
    finally:
        proxy.close()


# -- under gevent ----------------------------------------------------------------------------------


def test_client_on_gevent_manager_under_monkey_patching(tmp_path: Path) -> None:
    script = tmp_path / "gevent_client.py"
    script.write_text(
        textwrap.dedent(
            """
            from gevent import monkey
            monkey.patch_all()

            import gevent
            from ws4py_integrations import Message, WebSocket, WebSocketWSGIApplication
            from ws4py_integrations.client import WebSocketClient, client_manager
            from ws4py_integrations.gevent import WSGIServer
            from ws4py_integrations.manager.gevent import GeventManager

            class Echo(WebSocket):
                def received_message(self, message: Message) -> None:
                    self.send(message.data)

            server = WSGIServer(("127.0.0.1", 0), WebSocketWSGIApplication(Echo), log=None)
            server.start()
            assert isinstance(client_manager(), GeventManager)
            clients = [WebSocketClient(f"ws://127.0.0.1:{server.address[1]}/") for _ in range(20)]
            for client in clients:
                client.connect()
                client.send("g")
            assert [c.receive(5).data for c in clients] == ["g"] * 20
            for client in clients:
                client.close()
            assert all(c.run_forever(5) for c in clients)
            client_manager().stop(5)
            server.stop()
            print("GEVENT-CLIENT-OK")
            """
        )
    )
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "GEVENT-CLIENT-OK" in result.stdout, result.stdout + result.stderr


def test_client_callback_failure_closes_with_1011(manager: ThreadedManager) -> None:
    got: list[int] = []

    class Failing(WebSocketClient):
        def received_message(self, message: Message) -> None:
            raise RuntimeError("bug in the handler")

    def server(ws: ServerConnection) -> None:
        ws.send("boom")
        with contextlib.suppress(Exception):
            ws.recv()
        assert ws.close_code is not None
        got.append(ws.close_code)

    with websockets_server(server) as url:
        client = Failing(url, manager=manager)
        client.connect()
        assert client.run_forever(TIMEOUT)
        assert client.close_code == 1011


def test_redirect_targets() -> None:
    assert redirect_target("ws://a/", 302, "https://b/x") == "wss://b/x"
    assert redirect_target("wss://a/", 302, "wss://b/") == "wss://b/"
    with pytest.raises(InvalidStatus, match="wss:// to plain ws://"):
        redirect_target("wss://a/", 302, "http://b/")


def reset(conn: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_reset_during_handshake_and_by_the_proxy(
    raw_server: Callable[..., RawServer], manager: ThreadedManager
) -> None:
    server = raw_server(lambda conn, head, key: reset(conn))
    with pytest.raises(ConnectionClosedDuringHandshake):
        WebSocketClient(server.url, manager=manager).connect()
    with pytest.raises(ProxyError, match="broke off"):
        WebSocketClient("ws://example.invalid/", manager=manager, proxy=f"http://127.0.0.1:{server.port}").connect()


def test_missing_accept_and_bad_subprotocol_header(
    raw_server: Callable[..., RawServer], manager: ThreadedManager
) -> None:
    from ws4py_integrations.client import InvalidAccept, NegotiationFailed

    no_accept = raw_server(
        lambda conn, head, key: conn.sendall(b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    )
    with pytest.raises(InvalidAccept, match="missing or wrong"):
        WebSocketClient(no_accept.url, manager=manager).connect()
    two = raw_server(lambda conn, head, key: conn.sendall(switching(key, "Sec-WebSocket-Protocol: a, b")))
    with pytest.raises(NegotiationFailed):
        WebSocketClient(two.url, protocols=["a", "b"], manager=manager).connect()


def test_tls_handshake_timeout(raw_server: Callable[..., RawServer], manager: ThreadedManager) -> None:
    # Accepts TCP, never speaks TLS.
    silent = raw_server(lambda conn, head, key: None)
    url = f"wss://127.0.0.1:{silent.port}/"
    with pytest.raises(HandshakeTimeout, match="TLS"):
        WebSocketClient(url, manager=manager, handshake_timeout=0.3).connect()


def test_wss_to_a_plain_http_port_is_a_tls_failure(manager: ThreadedManager) -> None:
    from ws4py_integrations.client import ConnectionFailed

    listener = socket.create_server(("127.0.0.1", 0))

    def answer_plain() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_plain, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectionFailed, match="TLS"):
            WebSocketClient(f"wss://127.0.0.1:{listener.getsockname()[1]}/", manager=manager).connect()
    finally:
        thread.join(TIMEOUT)
        listener.close()
