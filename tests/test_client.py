"""WebSocketClient against independent servers: websockets' own, and raw sockets that misbehave."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
from websockets.sync.server import Server, ServerConnection, serve

from tests.support.servers import TLSFiles
from ws4py_integrations import Message, ThreadedManager
from ws4py_integrations.client import (
    ConnectionClosedDuringHandshake,
    ConnectionFailed,
    HandshakeTimeout,
    InvalidAccept,
    InvalidHandshake,
    InvalidResponse,
    InvalidStatus,
    NegotiationFailed,
    ProxyError,
    RedirectRefused,
    TLSVerificationFailed,
    TooManyRedirects,
    WebSocketClient,
    client_manager,
)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 5.0


@pytest.fixture
def manager() -> Iterator[ThreadedManager]:
    manager = ThreadedManager(name="test-client")
    yield manager
    manager.stop(5)
    assert len(manager) == 0


@contextlib.contextmanager
def websockets_server(
    handler: Callable[[ServerConnection], None], ssl_context: ssl.SSLContext | None = None, **kwargs: Any
) -> Iterator[str]:
    server: Server = serve(handler, "127.0.0.1", 0, ssl=ssl_context, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.socket.getsockname()[1]
    try:
        yield f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(TIMEOUT)


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


def test_echo_text_binary_fragmented_and_close(manager: ThreadedManager) -> None:
    with websockets_server(echo) as url:
        client = WebSocketClient(url + "/", manager=manager)
        client.connect()
        assert client.state == "open"
        assert client.extensions == ["permessage-deflate"]
        client.send("héllo")
        client.send(b"\x00\xff" * 50_000)
        client.send(["frag", "mented"])
        received = [client.receive(TIMEOUT) for _ in range(3)]
        assert [m.data for m in received if m is not None] == ["héllo", b"\x00\xff" * 50_000, "fragmented"]
        client.close(1000, "bye")
        assert client.run_forever(TIMEOUT)
        assert client.close_code == 1000
        assert client.receive(TIMEOUT) is None


def test_callbacks_and_subprotocol_without_compression(manager: ThreadedManager) -> None:
    events: list[Any] = []
    done = threading.Event()

    class Client(WebSocketClient):
        def opened(self) -> None:
            events.append("opened")
            self.send("one")
            self.ping(b"p1")

        def received_message(self, message: Message) -> None:
            events.append(message.data)
            self.close()

        def ponged(self, data: bytes) -> None:
            events.append(("pong", data))

        def closed(self, code: int, reason: str = "") -> None:
            events.append(("closed", code))
            done.set()

    def server(ws: ServerConnection) -> None:
        assert ws.request is not None
        assert ws.request.headers["X-Test"] == "yes"
        ws.send(ws.recv())
        with contextlib.suppress(Exception):
            ws.recv()

    with websockets_server(server, subprotocols=["chat", "superchat"]) as url:
        client = Client(url, protocols=["superchat"], headers=[("X-Test", "yes")], manager=manager, compression=False)
        client.connect()
        assert client.subprotocol == "superchat"
        assert client.extensions == []
        assert done.wait(TIMEOUT)
        assert client.run_forever(TIMEOUT)
    assert events[0] == "opened"
    assert "one" in events and ("pong", b"p1") in events
    assert events[-1] == ("closed", 1000)


def test_iteration_until_server_closes(manager: ThreadedManager) -> None:
    def server(ws: ServerConnection) -> None:
        for i in range(3):
            ws.send(str(i))
        ws.close(1001, "done")

    with websockets_server(server) as url, WebSocketClient(url, manager=manager) as client:
        assert [m.data for m in client] == ["0", "1", "2"]
        assert client.close_code == 1001
        assert client.close_reason == "done"


def test_receive_times_out(manager: ThreadedManager) -> None:
    with websockets_server(echo) as url, WebSocketClient(url, manager=manager) as client:
        with pytest.raises(TimeoutError):
            client.receive(0.2)
        assert not client.run_forever(0.1)


def test_keepalive_ping_measures_latency(manager: ThreadedManager) -> None:
    with websockets_server(echo) as url, WebSocketClient(url, manager=manager, ping_interval=0.1) as client:
        deadline = time.monotonic() + TIMEOUT
        while client.latency is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.latency is not None


def test_message_size_limit_fails_with_1009(manager: ThreadedManager) -> None:
    def server(ws: ServerConnection) -> None:
        ws.send(b"x" * 2000)
        with contextlib.suppress(Exception):
            ws.recv()

    with websockets_server(server) as url:
        client = WebSocketClient(url, manager=manager, max_message_size=1000)
        client.connect()
        assert client.run_forever(TIMEOUT)
        assert client.close_code == 1009


def test_wss_verifies_by_default(manager: ThreadedManager, tls_files: TLSFiles) -> None:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tls_files.certfile, tls_files.keyfile)
    with websockets_server(echo, server_context) as url:
        assert url.startswith("wss://")
        with pytest.raises(TLSVerificationFailed, match="certificate"):
            WebSocketClient(url, manager=manager).connect()
        with WebSocketClient(url, manager=manager, ssl_context=tls_files.client_context) as client:
            client.send("over TLS")
            message = client.receive(TIMEOUT)
            assert message is not None and message.data == "over TLS"


def test_tls_name_mismatch(manager: ThreadedManager) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("other.example")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with websockets_server(echo, server_context) as url:
        started = time.monotonic()
        with pytest.raises(TLSVerificationFailed, match="mismatch"):
            WebSocketClient(url, manager=manager, ssl_context=client_context).connect()
        assert time.monotonic() - started < TIMEOUT


# -- raw servers that misbehave ----------------------------------------------------------


class RawServer:
    """Accepts connections and answers each request head with ``respond(head, key)``."""

    def __init__(self, respond: Callable[[socket.socket, bytes, str], None]) -> None:
        self.respond = respond
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.requests: list[bytes] = []
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            conn.settimeout(TIMEOUT)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            self.requests.append(data)
            key = ""
            for line in data.decode("latin-1").split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            with contextlib.suppress(OSError):
                self.respond(conn, data, key)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.listener.close()
        for conn in self.conns:
            conn.close()
        self.thread.join(TIMEOUT)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, bytes, str], None]], RawServer]]:
    servers: list[RawServer] = []

    def make(respond: Callable[[socket.socket, bytes, str], None]) -> RawServer:
        server = RawServer(respond)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def switching(key: str, *extra: str, accept: str | None = None) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept if accept is not None else accept_value(key)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_not_a_websocket_server(raw_server: Any, manager: ThreadedManager) -> None:
    server = raw_server(
        lambda conn, head, key: conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"
        )
    )
    with pytest.raises(InvalidStatus, match="200 OK") as info:
        WebSocketClient(server.url, manager=manager).connect()
    assert info.value.status == 200
    assert info.value.header("content-type") == "text/html"
    assert info.value.body == b"hello"
    assert b"Sec-WebSocket-Key" in server.requests[0]


def test_refusal_keeps_status_headers_and_body(raw_server: Any, manager: ThreadedManager) -> None:
    server = raw_server(
        lambda conn, head, key: conn.sendall(
            b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="x"\r\nContent-Length: 6\r\n\r\nlog in'
        )
    )
    with pytest.raises(InvalidStatus) as info:
        WebSocketClient(server.url, manager=manager).connect()
    assert (info.value.status, info.value.body) == (401, b"log in")
    assert info.value.header("WWW-Authenticate") == 'Basic realm="x"'
    assert isinstance(info.value, InvalidHandshake)


def test_not_http_at_all(raw_server: Any, manager: ThreadedManager) -> None:
    server = raw_server(lambda conn, head, key: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    with pytest.raises(InvalidResponse, match="not an HTTP response"):
        WebSocketClient(server.url, manager=manager).connect()


def test_server_closes_during_handshake(raw_server: Any, manager: ThreadedManager) -> None:
    server = raw_server(lambda conn, head, key: conn.close())
    with pytest.raises(ConnectionClosedDuringHandshake, match="without answering"):
        WebSocketClient(server.url, manager=manager).connect()
    half = raw_server(lambda conn, head, key: (conn.sendall(b"HTTP/1.1 101 Switching"), conn.close()))
    with pytest.raises(ConnectionClosedDuringHandshake, match="middle"):
        WebSocketClient(half.url, manager=manager).connect()


def test_wrong_accept(raw_server: Any, manager: ThreadedManager) -> None:
    server = raw_server(lambda conn, head, key: conn.sendall(switching(key, accept=accept_value("nope"))))
    with pytest.raises(InvalidAccept, match="Sec-WebSocket-Accept") as info:
        WebSocketClient(server.url, manager=manager).connect()
    assert info.value.status == 101


def test_missing_upgrade_header(raw_server: Any, manager: ThreadedManager) -> None:
    def respond(conn: socket.socket, head: bytes, key: str) -> None:
        conn.sendall(f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {accept_value(key)}\r\n\r\n".encode())

    server = raw_server(respond)
    with pytest.raises(InvalidResponse, match=r"Connection|Upgrade"):
        WebSocketClient(server.url, manager=manager).connect()


def test_unknown_extension(raw_server: Any, manager: ThreadedManager) -> None:
    server = raw_server(lambda conn, head, key: conn.sendall(switching(key, "Sec-WebSocket-Extensions: x-zip")))
    with pytest.raises(NegotiationFailed, match="x-zip"):
        WebSocketClient(server.url, manager=manager).connect()


def test_subprotocol_not_offered(raw_server: Any, manager: ThreadedManager) -> None:
    server = raw_server(lambda conn, head, key: conn.sendall(switching(key, "Sec-WebSocket-Protocol: evil")))
    with pytest.raises(NegotiationFailed, match="subprotocol"):
        WebSocketClient(server.url, protocols=["chat"], manager=manager).connect()
    with pytest.raises(NegotiationFailed):
        WebSocketClient(server.url, manager=manager).connect()


def test_handshake_timeout(raw_server: Any, manager: ThreadedManager) -> None:
    release = threading.Event()
    server = raw_server(lambda conn, head, key: release.wait(TIMEOUT))
    started = time.monotonic()
    with pytest.raises(HandshakeTimeout, match="timed out"):
        WebSocketClient(server.url, manager=manager, handshake_timeout=0.3).connect()
    assert time.monotonic() - started < 2.0
    release.set()


def test_connection_refused(manager: ThreadedManager) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        WebSocketClient(f"ws://127.0.0.1:{port}/", manager=manager).connect()
    with pytest.raises(ValueError, match="ws://"):
        WebSocketClient("http://127.0.0.1/", manager=manager).connect()


def test_redirects_refused_by_default_and_followed_on_request(raw_server: Any, manager: ThreadedManager) -> None:
    with websockets_server(echo) as target:

        def respond(conn: socket.socket, head: bytes, key: str) -> None:
            conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {target}/there\r\nContent-Length: 0\r\n\r\n".encode())

        server = raw_server(respond)
        with pytest.raises(RedirectRefused, match="follow_redirects") as info:
            WebSocketClient(server.url, manager=manager).connect()
        assert info.value.status == 302
        assert info.value.location == f"{target}/there"
        with WebSocketClient(server.url, manager=manager, follow_redirects=True) as client:
            client.send("moved")
            message = client.receive(TIMEOUT)
            assert message is not None and message.data == "moved"

    loop = raw_server(lambda conn, head, key: conn.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /ws\r\n\r\n"))
    with pytest.raises(TooManyRedirects):
        WebSocketClient(loop.url, manager=manager, follow_redirects=True, max_redirects=2).connect()


class ConnectProxy:
    """A tiny HTTP CONNECT proxy: one thread per tunnel, bytes copied both ways."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[str] = []
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.socks.append(conn)
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        request = head.decode("latin-1")
        self.requests.append(request)
        method, authority, _ = request.split("\r\n")[0].split(" ")
        if self.refuse or method != "CONNECT":
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nno way!")
            conn.close()
            return
        host, port = authority.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        self.socks.append(upstream)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.listener.close()
        for sock in self.socks:
            sock.close()


def test_http_connect_proxy(manager: ThreadedManager) -> None:
    proxy = ConnectProxy()
    refusing = ConnectProxy(refuse=True)
    try:
        with websockets_server(echo) as url:
            port = url.rsplit(":", 1)[1]
            with WebSocketClient(url, manager=manager, proxy=proxy.url) as client:
                client.send("through the proxy")
                message = client.receive(TIMEOUT)
                assert message is not None and message.data == "through the proxy"
            assert proxy.requests[0].startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1")
            with pytest.raises(ProxyError, match="403") as info:
                WebSocketClient(url, manager=manager, proxy=refusing.url).connect()
            assert info.value.status == 403 and info.value.body == b"no way!"
            with pytest.raises(ValueError, match="proxy"):
                WebSocketClient(url, manager=manager, proxy="socks5://127.0.0.1:1").connect()
    finally:
        proxy.close()
        refusing.close()


def test_frames_after_the_101_in_the_same_packet(raw_server: Any, manager: ThreadedManager) -> None:
    # The server's first frame arrives with the handshake answer: it is not lost.
    server = raw_server(lambda conn, head, key: conn.sendall(switching(key) + b"\x81\x05early"))
    with WebSocketClient(server.url, manager=manager, compression=False, close_timeout=0.5) as client:
        message = client.receive(TIMEOUT)
        assert message is not None and message.data == "early"


def test_client_frames_are_masked(raw_server: Any, manager: ThreadedManager) -> None:
    got = threading.Event()
    frames: list[bytes] = []

    def respond(conn: socket.socket, head: bytes, key: str) -> None:
        conn.sendall(switching(key))
        frames.append(conn.recv(100))
        got.set()

    server = raw_server(respond)
    with WebSocketClient(server.url, manager=manager, compression=False, close_timeout=0.5) as client:
        client.send("abc")
        assert got.wait(TIMEOUT)
    assert frames[0][0] == 0x81 and frames[0][1] == 0x80 | 3  # FIN+text, MASK bit, length 3


def test_default_manager_is_shared_and_reconnect_refused() -> None:
    assert client_manager() is client_manager()
    with websockets_server(echo) as url, WebSocketClient(url) as client:
        assert client.manager is client_manager()
        with pytest.raises(RuntimeError, match="already connected"):
            client.connect()
        assert "open" in repr(client)
    assert WebSocketClient("ws://x/").state == "connecting"
