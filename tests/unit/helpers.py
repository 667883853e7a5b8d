"""Shared pieces of the unit tests: client frames, handshakes, a fake backend."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ws4py_integrations.connection import Connection, receive_buffer
from ws4py_integrations.events import Message
from ws4py_integrations.handshake import Accept, negotiate
from ws4py_integrations.options import WebSocketOptions
from ws4py_integrations.websocket import WebSocket

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x37\xfa\x21\x3d"

#: The smallest environ negotiate() accepts (RFC 6455 4.1's example key).
ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_HOST": "localhost",
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_SEC_WEBSOCKET_KEY": KEY,
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
    "PATH_INFO": "/ws",
    "REMOTE_ADDR": "127.0.0.1",
}

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept(**environ: str) -> Accept:
    """An Accept for ENVIRON plus ``environ`` (e.g. HTTP_SEC_WEBSOCKET_EXTENSIONS)."""
    result = negotiate({**ENVIRON, **environ}, WebSocketOptions())
    assert isinstance(result, Accept), result
    return result


def client_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False, mask: bytes = MASK
) -> bytes:
    """A masked client frame built by hand (RFC 6455 5.2), so tests see every byte."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((head, 0x80 | length))
    elif length < 65536:
        header = struct.pack("!BBH", head, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", head, 0x80 | 127, length)
    return header + mask + masked(payload, mask)


def masked(payload: bytes, mask: bytes) -> bytes:
    """``payload`` XOR ``mask`` (RFC 6455 5.3), fast enough for megabytes."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def client_close(code: int, reason: str = "") -> bytes:
    return client_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())


def server_frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """An unmasked server frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    return bytes(((0x80 if fin else 0) | opcode, len(payload))) + payload


def server_close(code: int, reason: str = "") -> bytes:
    """The exact close frame a server sends: code in network order, then the UTF-8 reason."""
    return server_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())


@dataclass
class FakeTimer:
    delay: float
    func: Callable[[], Any]
    cancelled: bool = False
    fired: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert not self.cancelled, "a cancelled timer was fired"
        self.fired = True
        self.func()


@dataclass
class FakeBackend:
    """The Backend protocol, recorded: callbacks and timers run only when a test says so."""

    scheduled: list[tuple[Connection, Callable[..., Any], tuple[Any, ...]]] = field(default_factory=list)
    timers: list[FakeTimer] = field(default_factory=list)
    writable_wanted: list[Connection] = field(default_factory=list)
    lost: list[Connection] = field(default_factory=list)
    #: Each reading_changed() call: (connection, its reading_paused then).
    reading: list[tuple[Connection, bool]] = field(default_factory=list)
    recv_buffer: memoryview = field(default_factory=receive_buffer)

    def reading_changed(self, conn: Connection) -> None:
        self.reading.append((conn, conn.reading_paused))

    def new_lock(self) -> threading.RLock:
        return threading.RLock()

    def schedule(self, conn: Connection, func: Callable[..., Any], *args: Any) -> None:
        self.scheduled.append((conn, func, args))

    def want_write(self, conn: Connection) -> None:
        self.writable_wanted.append(conn)

    def call_later(self, delay: float, func: Callable[[], Any]) -> FakeTimer:
        timer = FakeTimer(delay, func)
        self.timers.append(timer)
        return timer

    def connection_lost(self, conn: Connection) -> None:
        self.lost.append(conn)

    def run_scheduled(self, limit: int = 1000) -> int:
        """Run scheduled callbacks in order, including those they schedule; how many ran."""
        ran = 0
        while self.scheduled:
            assert ran < limit, "callbacks keep scheduling callbacks"
            _, func, args = self.scheduled.pop(0)
            func(*args)
            ran += 1
        return ran

    def live_timers(self, func_name: str) -> list[FakeTimer]:
        """Timers of ``func_name`` neither cancelled nor fired."""
        return [t for t in self.timers if not (t.cancelled or t.fired) and getattr(t.func, "__name__", "") == func_name]


class Recorder(WebSocket):
    """Records every callback as a tuple in ``events``."""

    def __init__(self, connection: Connection, manager: Any) -> None:
        super().__init__(connection, manager)
        self.events: list[tuple[Any, ...]] = []

    def opened(self) -> None:
        self.events.append(("opened",))

    def received_message(self, message: Message) -> None:
        self.events.append(("message", message.data))

    def ponged(self, data: bytes) -> None:
        self.events.append(("pong", data))

    def closed(self, code: int, reason: str = "") -> None:
        self.events.append(("closed", code, reason))


@contextmanager
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(server side, non-blocking as the managers set it; client side, blocking with a timeout)."""
    server, client = socket.socketpair()
    server.setblocking(False)
    client.settimeout(5.0)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from a blocking socket with a timeout."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


def recv_available(sock: socket.socket) -> bytes:
    """Whatever the socket holds right now (nothing waits)."""
    chunks = []
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(5.0)
    return b"".join(chunks)


def make_connection(
    sock: socket.socket,
    backend: FakeBackend,
    *,
    handler: type[WebSocket] = Recorder,
    the_accept: Accept | None = None,
    environ: dict[str, Any] | None = None,
    **options: Any,
) -> Connection:
    """A Connection on ``sock`` whose manager is ``backend`` (it is only used as the Backend)."""
    opts = WebSocketOptions.from_kwargs(None, **options)
    return Connection(sock, the_accept or accept(), opts, environ or ENVIRON, backend, handler)  # type: ignore[arg-type]
