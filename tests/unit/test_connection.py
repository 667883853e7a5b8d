"""Connection with a fake backend and a real socket pair: the bytes on the wire, the callback order."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.frames import Frame, Opcode

from ws4py_integrations.connection import (
    RECV_SIZE,
    Connection,
    _data_header,
    connection_environ,
    encode_frames,
    receive_buffer,
)
from ws4py_integrations.events import Message
from ws4py_integrations.exceptions import WebSocketClosed

from .helpers import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FakeBackend,
    Recorder,
    accept,
    client_close,
    client_frame,
    make_connection,
    recv_available,
    recv_exactly,
    server_close,
    server_frame,
    socket_pair,
)

NO_TIMERS = {"ping_interval": None, "read_timeout": None}


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket_pair() as sockets:
        yield sockets


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


def handler(conn: Connection) -> Recorder:
    ws = conn.websocket
    assert isinstance(ws, Recorder)
    return ws


def fill(sock: socket.socket) -> int:
    """Write to a non-blocking socket until it would block; how many bytes went."""
    total = 0
    chunk = b"\0" * 65536
    for _ in range(10_000):
        try:
            total += sock.send(chunk)
        except BlockingIOError:
            return total
    raise AssertionError("the socket never filled up")


class ProxySocket:
    """A socket with hooks: records send() calls, can fail, and has no sendmsg (like TLS sockets)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sends: list[bytes] = []
        self.fail_with: dict[str, OSError] = {}

    def __getattr__(self, name: str) -> Any:
        if name == "sendmsg":
            raise AttributeError(name)
        return getattr(self._sock, name)

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail_with:
            raise self.fail_with[name]

    def send(self, data: bytes) -> int:
        self._maybe_fail("send")
        sent = self._sock.send(data)
        self.sends.append(bytes(data[:sent]))
        return sent

    def recv_into(self, buffer: Any) -> int:
        self._maybe_fail("recv_into")
        return self._sock.recv_into(buffer)

    def shutdown(self, how: int) -> None:
        self._maybe_fail("shutdown")
        self._sock.shutdown(how)


# -- starting and receiving -----------------------------------------------------------------------------


def test_start_schedules_opened_then_processes_buffered_bytes(pair: Any, backend: FakeBackend) -> None:
    server, _ = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    conn.start(client_frame(OP_TEXT, b"one") + client_frame(OP_BINARY, b"two"))
    assert [func.__name__ for _, func, _ in backend.scheduled] == ["_dispatch", "_handle_message", "_handle_message"]
    backend.run_scheduled()
    assert handler(conn).events == [("opened",), ("message", "one"), ("message", b"two")]
    assert (conn.messages_in, conn.bytes_in) == (2, 9 + 9)
    assert backend.timers == []


def test_read_from_the_socket_until_eof(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    conn.start(b"")
    assert conn.read() is True  # nothing there yet: would block
    client.sendall(client_frame(OP_TEXT, b"a") + client_frame(OP_TEXT, b"b"))
    assert conn.read() is True
    client.shutdown(socket.SHUT_WR)
    assert conn.read() is False
    assert conn.read() is False  # finalized
    backend.run_scheduled()
    assert handler(conn).events == [("opened",), ("message", "a"), ("message", "b"), ("closed", 1006, "")]
    assert backend.lost == [conn]


@pytest.mark.parametrize("into", ["mapping", "bytearray"])
def test_a_large_payload_comes_through_the_backend_s_receive_buffer_or_into_a_mapping(
    pair: Any, backend: FakeBackend, into: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Into a mapping placed for the kernel's copy, the payload goes straight
    # from the socket (protocol._REGION_OFFSET). Into a bytearray it comes
    # through the backend's (cache-hot) buffer, at most its size at a time.
    from ws4py_integrations import protocol as protocol_module

    monkeypatch.setattr(protocol_module, "_spare_regions", [])
    if into == "bytearray":
        monkeypatch.setattr(protocol_module, "_REGION_OFFSET", None)
    server, client = pair
    conn = make_connection(server, backend, **NO_TIMERS, max_message_size=None)
    reads: list[tuple[object, int]] = []

    class Recording(ProxySocket):
        def recv_into(self, buffer: Any) -> int:
            reads.append((buffer.obj, len(buffer)))
            return super().recv_into(buffer)

    conn.io = Recording(server)
    conn.start(b"")
    payload = bytes(range(256)) * (3 * RECV_SIZE // 256 + 7)
    data = client_frame(OP_BINARY, payload)
    client.setblocking(False)
    sent = 0
    for _ in range(100_000):  # the test's own pump: write what fits, read what came
        if sent < len(data):
            with contextlib.suppress(BlockingIOError):
                sent += client.send(data[sent : sent + 65536])
        assert conn.read() is True
        if conn.messages_in:
            break
    backend.run_scheduled()
    assert handler(conn).events[-1] == ("message", payload)
    assert reads and reads[0][0] is backend.recv_buffer.obj  # the header, and what came with it
    if into == "bytearray":
        assert all(obj is backend.recv_buffer.obj and size <= RECV_SIZE for obj, size in reads)
    else:
        assert len(protocol_module._spare_regions) == 1  # the mapping, kept for the next payload
        region = protocol_module._spare_regions[0]
        assert all(obj is region for obj, _ in reads[1:])
        # Each read asks for the rest of the payload.
        assert [size for _, size in reads[1:]] == sorted((size for _, size in reads[1:]), reverse=True)
    # Most of the payload came in full-sized reads, not byte by byte.
    assert len(reads) < 4 * len(payload) // 65536


def test_the_receive_buffer_starts_2_KiB_and_64_bytes_into_a_page() -> None:
    # Far from the few bytes into a page where a payload usually starts (after
    # its header), which is where a plain allocation of this size would start.
    view = receive_buffer()
    assert len(view) == RECV_SIZE and not view.readonly
    address = ctypes.addressof(ctypes.c_char.from_buffer(view))
    assert address % mmap.PAGESIZE == 0x840
    view[-1:] = b"x"  # all of it is writable memory


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_receives_into_a_copy_of_the_buffer() -> None:
    # As with a bytearray: a manager made before a fork (a preloaded app) must
    # not have its processes receive into the same memory.
    view = receive_buffer()
    view[:4] = b"mine"
    pid = os.fork()
    if pid == 0:  # the child: write, then leave at once
        view[:4] = b"kids"
        os._exit(0 if bytes(view[:4]) == b"kids" else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bytes(view[:4]) == b"mine"


def test_a_recv_error_drops_the_connection(pair: Any, backend: FakeBackend) -> None:
    server, _ = pair
    sock = ProxySocket(server)
    sock.fail_with["recv_into"] = ConnectionResetError("reset")
    conn = make_connection(sock, backend, **NO_TIMERS)  # type: ignore[arg-type]
    assert conn.read() is False
    assert conn.finalized and backend.lost == [conn]


# -- sending ----------------------------------------------------------------------------------------------


def test_send_text_binary_fragmented_and_encoded(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    ws = handler(conn)
    ws.send("hé")
    ws.send(b"\x00\x01")
    ws.send(["ab", "c"])
    ws.send("text as binary", binary=True)
    ws.send(b"bytes as text", binary=False)
    assert conn.send_encoded(server_frame(OP_TEXT, b"pre-encoded")) is True
    expected = (
        b"\x81\x03h\xc3\xa9"
        + b"\x82\x02\x00\x01"
        + b"\x01\x02ab"
        + b"\x00\x01c"
        + b"\x80\x00"
        + server_frame(OP_BINARY, b"text as binary")
        + server_frame(OP_TEXT, b"bytes as text")
        + server_frame(OP_TEXT, b"pre-encoded")
    )
    assert recv_exactly(client, len(expected)) == expected
    assert conn.messages_out == 6 and conn.bytes_out == len(expected) and conn.out_size == 0


def test_large_payloads_are_queued_behind_their_header(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    payload = bytes(range(256)) * 400  # 102400 bytes: over the coalescing size, 64-bit length
    handler(conn).send(payload)
    expected = b"\x82\x7f" + struct.pack("!Q", len(payload)) + payload
    received = b""
    for _ in range(1000):
        received += recv_available(client)
        if len(received) >= len(expected):
            break
        conn.on_writable()
    assert received == expected


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_data_header_matches_websockets_serialization(length: int) -> None:
    frame = Frame(Opcode.BINARY, b"x" * length)
    serialized = frame.serialize(mask=False)
    assert _data_header(frame) == serialized[: len(serialized) - length]
    assert _data_header(Frame(Opcode.TEXT, b"", fin=False)) == b"\x01\x00"


def test_writes_wait_in_order_while_the_socket_is_full_and_go_out_gathered(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    filled = fill(server)
    ws = handler(conn)
    for index in range(5):
        ws.send(f"m{index}")
    assert backend.writable_wanted, "the connection asked to be told when the socket is writable"
    assert conn.out_size == 5 * 4
    assert recv_exactly(client, filled) == b"\0" * filled
    assert conn.on_writable() is False  # everything went
    assert recv_exactly(client, 20) == b"".join(server_frame(OP_TEXT, f"m{i}".encode()) for i in range(5))
    assert conn.out_size == 0


def test_without_sendmsg_small_frames_are_joined_and_a_tried_head_is_retried_as_is(
    pair: Any, backend: FakeBackend
) -> None:
    server, client = pair
    sock = ProxySocket(server)
    conn = make_connection(sock, backend, **NO_TIMERS)  # type: ignore[arg-type]
    filled = fill(server)
    ws = handler(conn)
    for text in ("a", "b", "c"):
        ws.send(text)
    assert sock.sends == []
    recv_exactly(client, filled)
    assert conn.on_writable() is False
    # TLS needs the exact buffer it tried to be retried; the two behind it go as one write.
    assert sock.sends == [b"\x81\x01a", b"\x81\x01b\x81\x01c"]
    assert recv_exactly(client, 9) == b"\x81\x01a\x81\x01b\x81\x01c"


def test_a_send_that_returns_zero_waits_for_writability(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    sock = ProxySocket(server)
    conn = make_connection(sock, backend, **NO_TIMERS)  # type: ignore[arg-type]
    sock.send = lambda data: 0  # type: ignore[method-assign]  # gevent's SSLSocket when it would block
    handler(conn).send("x")
    assert backend.writable_wanted == [conn]
    del sock.send
    assert conn.on_writable() is False
    assert recv_exactly(client, 3) == b"\x81\x01x"


def test_a_direct_send_queues_what_the_socket_did_not_take(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    sock = ProxySocket(server)
    conn = make_connection(sock, backend, **NO_TIMERS)  # type: ignore[arg-type]
    calls: list[bytes] = []

    def send(data: bytes) -> int:
        calls.append(bytes(data))
        if len(calls) > 1:
            raise BlockingIOError
        return server.send(data[:2])

    sock.send = send  # type: ignore[method-assign]
    handler(conn).send("xyz")
    # The rest is tried again at once, then waits for writability.
    assert calls == [b"\x81\x03xyz", b"xyz"]
    assert backend.writable_wanted == [conn] and conn.out_size == 3 and conn.bytes_out == 2
    del sock.send
    assert conn.on_writable() is False
    assert recv_exactly(client, 5) == b"\x81\x03xyz"
    assert conn.out_size == 0 and conn.bytes_out == 5 and conn.messages_out == 1


def test_a_direct_send_error_drops_the_connection(pair: Any, backend: FakeBackend) -> None:
    server, _ = pair
    sock = ProxySocket(server)
    conn = make_connection(sock, backend, **NO_TIMERS)  # type: ignore[arg-type]
    sock.fail_with["send"] = BrokenPipeError("broken pipe")
    handler(conn).send("x")  # the failure is the connection's, not the sender's
    assert conn.finalized and backend.lost == [conn] and conn.out_size == 0


@pytest.mark.parametrize("gather", [True, False], ids=["sendmsg", "send"])
def test_a_send_error_drops_the_connection(pair: Any, backend: FakeBackend, gather: bool) -> None:
    server, _ = pair
    conn = make_connection(server if gather else ProxySocket(server), backend, **NO_TIMERS)  # type: ignore[arg-type]
    filled = fill(server)
    assert filled
    ws = handler(conn)
    ws.send("a")
    ws.send("b")
    server.shutdown(socket.SHUT_WR)  # the next write fails with EPIPE
    conn.on_writable()
    assert conn.finalized and backend.lost == [conn]
    with pytest.raises(WebSocketClosed) as caught:
        ws.send("c")
    assert caught.value.code == 1006


def test_sendmsg_returning_zero_waits_for_writability(pair: Any, backend: FakeBackend, monkeypatch: Any) -> None:
    server, client = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    fill(server)
    ws = handler(conn)
    ws.send("a")
    ws.send("b")
    backend.writable_wanted.clear()
    drained = recv_available(client)
    assert drained

    class ZeroSendmsg:
        def __getattr__(self, name: str) -> Any:
            return getattr(server, name)

        def sendmsg(self, buffers: Any) -> int:
            return 0

    conn.io = ZeroSendmsg()
    assert conn.on_writable() is True
    assert backend.writable_wanted == [conn]
    conn.io = server
    assert conn.on_writable() is False


def test_max_send_buffer_fails_a_slow_peer_with_1008(pair: Any, backend: FakeBackend, caplog: Any) -> None:
    server, client = pair
    conn = make_connection(server, backend, max_send_buffer=1000, **NO_TIMERS)
    filled = fill(server)
    ws = handler(conn)
    ws.send(b"x" * 2000)  # the buffer was below the limit: one large message still goes
    with caplog.at_level(logging.WARNING, "ws4py_integrations.connection"), pytest.raises(WebSocketClosed) as caught:
        ws.send("more")
    reason = "peer too slow: send buffer limit exceeded"
    assert (caught.value.code, caught.value.reason) == (1008, reason)
    assert "more than max_send_buffer=1000 (peer too slow)" in caplog.text
    assert conn.send_encoded(b"\x81\x00") is False
    assert [t.delay for t in backend.live_timers("_close_timeout")] == [10.0]
    # The close frame follows what was already queued.
    recv_exactly(client, filled)
    conn.on_writable()
    expected = b"\x82\x7e\x07\xd0" + b"x" * 2000 + server_close(1008, reason)
    assert recv_exactly(client, len(expected)) == expected
    assert client.recv(1) == b""  # the server half-closed after its close frame


# -- closing -------------------------------------------------------------------------------------------------


class Answering(Recorder):
    def received_message(self, message: Message) -> None:
        super().received_message(message)
        self.send(f"re: {message.data!s}")


def test_answers_to_messages_before_a_close_go_out_before_our_close_frame(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, handler=Answering, **NO_TIMERS)
    conn.start(b"")
    backend.run_scheduled()
    conn.feed(client_frame(OP_TEXT, b"q1") + client_frame(OP_TEXT, b"q2") + client_close(1000, "done"))
    assert recv_available(client) == b""  # the close answer waits for the callbacks before it
    backend.run_scheduled()
    expected = server_frame(OP_TEXT, b"re: q1") + server_frame(OP_TEXT, b"re: q2") + server_close(1000, "done")
    assert recv_exactly(client, len(expected)) == expected
    assert client.recv(1) == b""
    with pytest.raises(WebSocketClosed) as caught:
        handler(conn).send("late")
    assert (caught.value.code, caught.value.reason) == (1000, "done")
    # The peer's EOF completes the closing handshake.
    conn.feed(b"")
    backend.run_scheduled()
    assert handler(conn).events[-1] == ("closed", 1000, "done")
    assert conn.finalized and backend.lost == [conn]
    assert all(t.cancelled for t in backend.timers)


def test_server_close_is_idempotent_and_times_out(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, close_timeout=3.0, **NO_TIMERS)
    ws = handler(conn)
    assert ws.state == "open" and ws.close_code is None and ws.close_reason is None
    ws.close(1001, "bye")
    ws.close(1000)
    assert recv_exactly(client, 7) == server_close(1001, "bye")
    assert ws.state == "closing"
    with pytest.raises(WebSocketClosed) as caught:
        ws.ping(b"x")
    assert (caught.value.code, caught.value.reason) == (1001, "bye")
    [timer] = backend.live_timers("_close_timeout")
    assert timer.delay == 3.0
    timer.fire()
    backend.run_scheduled()
    # The peer never answered: our own close frame is what closed().
    assert ws.events[-1] == ("closed", 1001, "bye")
    assert (ws.state, ws.terminated, ws.close_code, ws.close_reason) == ("closed", True, 1001, "bye")
    timer.func()  # a late timer after the close is harmless


def test_terminate_reports_1006_once(pair: Any, backend: FakeBackend) -> None:
    server, _ = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    ws = handler(conn)
    ws.terminate()
    ws.terminate()
    conn._fail(1011, "ignored once finalized")
    conn.feed(client_frame(OP_TEXT, b"ignored"))
    backend.run_scheduled()
    assert ws.events == [("closed", 1006, "")]
    with pytest.raises(WebSocketClosed) as caught:
        ws.send("x")
    assert caught.value.code == 1006


def test_a_peer_close_code_is_reported(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    conn.feed(client_close(4001, "app"))
    backend.run_scheduled()
    assert recv_exactly(client, 7) == server_close(4001, "app")
    client.close()
    conn.feed(b"")
    backend.run_scheduled()
    assert handler(conn).events == [("closed", 4001, "app")]


def test_a_failed_shutdown_drops_the_connection(pair: Any, backend: FakeBackend) -> None:
    server, _ = pair
    sock = ProxySocket(server)
    sock.fail_with["shutdown"] = OSError("not connected")
    conn = make_connection(sock, backend, **NO_TIMERS)  # type: ignore[arg-type]
    conn.feed(client_close(1000))
    backend.run_scheduled()
    assert conn.finalized


# -- keepalive and timeouts -----------------------------------------------------------------------------------


def test_keepalive_ping_pong_and_latency(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, ping_interval=5.0, ping_timeout=3.0, read_timeout=None)
    conn.start(b"")
    [keepalive] = backend.live_timers("_keepalive")
    assert keepalive.delay == 5.0
    keepalive.fire()
    ping = recv_exactly(client, 6)
    assert ping[:2] == b"\x89\x04"
    [check] = backend.live_timers("_keepalive_check")
    assert check.delay == 3.0
    keepalive.func()  # a ping is outstanding: no second one
    assert recv_available(client) == b""
    conn.feed(client_frame(OP_PONG, ping[2:]))
    assert check.cancelled
    assert conn.latency is not None and conn.latency >= 0
    assert handler(conn).latency == conn.latency
    [again] = backend.live_timers("_keepalive")
    assert 0 <= again.delay <= 5.0
    conn.feed(client_frame(OP_PONG, b"unsolicited"))
    backend.run_scheduled()
    assert handler(conn).events == [("opened",), ("pong", ping[2:]), ("pong", b"unsolicited")]


def test_keepalive_timeout_is_1011(pair: Any, backend: FakeBackend, caplog: Any) -> None:
    server, client = pair
    conn = make_connection(server, backend, ping_interval=5.0, ping_timeout=3.0, read_timeout=None)
    conn.start(b"")
    backend.live_timers("_keepalive")[0].fire()
    recv_exactly(client, 6)
    with caplog.at_level(logging.INFO, "ws4py_integrations.connection"):
        backend.live_timers("_keepalive_check")[0].fire()
    assert "no pong within ping_timeout=3.0s" in caplog.text
    expected = server_close(1011, "keepalive ping timeout")
    assert recv_exactly(client, len(expected)) == expected
    assert backend.live_timers("_close_timeout")
    assert backend.live_timers("_keepalive") == []  # none is re-armed
    conn._keepalive()  # closing: no more pings
    assert recv_available(client) == b""


def test_keepalive_without_timeout_keeps_pinging(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, ping_interval=5.0, ping_timeout=None, read_timeout=None)
    conn.start(b"")
    backend.live_timers("_keepalive")[0].fire()
    recv_exactly(client, 6)
    [check] = backend.live_timers("_keepalive_check")
    assert check.delay == 5.0
    check.fire()
    assert conn.protocol.state.name == "OPEN"
    assert len(backend.live_timers("_keepalive")) == 1  # the next one is armed
    conn.abort()
    check.func()  # after the end: nothing


def test_read_timeout_mid_frame_is_1008(pair: Any, backend: FakeBackend, caplog: Any) -> None:
    server, client = pair
    conn = make_connection(server, backend, ping_interval=None, read_timeout=30.0)
    frame = client_frame(OP_BINARY, b"payload")
    conn.feed(frame[:4])
    [first] = backend.live_timers("_read_timed_out")
    assert first.delay == 30.0
    conn.feed(frame[4:])
    assert first.cancelled and backend.live_timers("_read_timed_out") == []
    conn.feed(frame[:8])
    [stalled] = backend.live_timers("_read_timed_out")
    with caplog.at_level(logging.INFO, "ws4py_integrations.connection"):
        stalled.fire()
    assert "stalled inside a frame for read_timeout=30.0s" in caplog.text
    reason = "read timeout: incomplete frame"
    assert recv_exactly(client, 4 + len(reason)) == server_close(1008, reason)
    stalled.func()  # fired twice: the second does nothing
    conn.abort()


# -- callbacks ----------------------------------------------------------------------------------------------------


class Failing(Recorder):
    def received_message(self, message: Message) -> None:
        if message.data == "closed-error":
            raise WebSocketClosed(1000)
        raise RuntimeError("handler bug")

    def closed(self, code: int, reason: str = "") -> None:
        raise RuntimeError("closed bug")


def test_callback_exceptions_are_logged_and_close_with_1011(pair: Any, backend: FakeBackend, caplog: Any) -> None:
    server, client = pair
    conn = make_connection(server, backend, handler=Failing, **NO_TIMERS)
    with caplog.at_level(logging.DEBUG, "ws4py_integrations.connection"):
        conn.feed(client_frame(OP_TEXT, b"closed-error"))
        backend.run_scheduled()
        assert "the connection closed while sending" in caplog.text
        assert recv_available(client) == b""
        conn.feed(client_frame(OP_TEXT, b"boom"))
        backend.run_scheduled()
        assert "Failing.received_message raised; closing the connection with 1011" in caplog.text
        expected = server_close(1011, "internal server error")
        assert recv_exactly(client, len(expected)) == expected
        conn.abort()
        backend.run_scheduled()
    assert "Failing.closed raised" in caplog.text
    assert [r.exc_info is not None for r in caplog.records if "raised" in r.getMessage()] == [True, True]


def test_ping_from_the_handler(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    conn = make_connection(server, backend, **NO_TIMERS)
    handler(conn).ping("hi")
    handler(conn).ping(b"")
    assert recv_exactly(client, 6) == server_frame(OP_PING, b"hi") + server_frame(OP_PING, b"")


# -- environ, properties, logging ------------------------------------------------------------------------------------


def test_connection_environ_drops_plumbing_and_the_process_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("WS4PY_UNIT_COPY", "same")
    environ = {
        "wsgi.input": object(),
        "wsgi.errors": object(),
        "wsgi.file_wrapper": object(),
        "ws4py_integrations.handover": object(),
        "WS4PY_UNIT_COPY": "same",
        "PATH": "a value that differs from the process's",
        "PATH_INFO": "/ws",
        "HTTP_COOKIE": "a=b",
    }
    assert connection_environ(environ) == {
        "PATH": "a value that differs from the process's",
        "PATH_INFO": "/ws",
        "HTTP_COOKIE": "a=b",
    }


def test_connection_environs_share_equal_strings() -> None:
    def request() -> dict[str, Any]:
        # New string objects for every request, as servers make them.
        return {
            "".join(["HTTP_", "HOST"]): "".join(["127.0.0.1", ":9001"]),
            "HTTP_SEC_WEBSOCKET_KEY": "".join(["dGhlIHNhbXBsZSBub25jZQ", "=="]),
            "HTTP_COOKIE": "".join(["c" * 150, "d" * 150]),
            "wsgi.version": (1, 0),
        }

    first, second = connection_environ(request()), connection_environ(request())
    assert first == second == request()
    key_one, key_two = (next(k for k in env if k == "HTTP_HOST") for env in (first, second))
    assert key_one is key_two and first["HTTP_HOST"] is second["HTTP_HOST"]
    # What differs per connection, or is large, is kept as it came.
    assert first["HTTP_SEC_WEBSOCKET_KEY"] is not second["HTTP_SEC_WEBSOCKET_KEY"]
    assert first["HTTP_COOKIE"] is not second["HTTP_COOKIE"]


def test_websocket_properties(pair: Any, backend: FakeBackend) -> None:
    server, _ = pair
    the_accept = accept(HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate")
    conn = make_connection(server, backend, the_accept=the_accept, environ={"wsgi.input": 1, "X": "y"}, **NO_TIMERS)
    ws = handler(conn)
    assert ws.environ == {"X": "y"}
    assert ws.extensions == ["permessage-deflate"]
    assert ws.subprotocol is None and ws.latency is None
    assert ws.peer_address == server.getpeername() == conn.peer_address
    assert repr(ws) == f"<Recorder {conn.peer_address} open>"
    assert repr(conn) == f"<Connection {conn.id} {conn.peer_address}>"
    assert conn.id.startswith("#")


def test_peer_address_of_a_socket_without_a_peer(backend: FakeBackend) -> None:
    with socket.socket() as sock:
        conn = make_connection(sock, backend, **NO_TIMERS)
        assert conn.peer_address is None


def test_compressed_sends_go_through_the_extension(pair: Any, backend: FakeBackend) -> None:
    server, client = pair
    the_accept = accept(HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate")
    conn = make_connection(server, backend, the_accept=the_accept, **NO_TIMERS)
    handler(conn).send(b"z" * 100_000)
    data = b""
    for _ in range(100):
        data += recv_available(client)
        if data:
            break
    assert data[0] == 0xC2  # FIN, RSV1, binary: compressed even though it is large


def test_encode_frames_rejects_mixed_or_odd_fragments() -> None:
    with pytest.raises(TypeError, match="all be str or all bytes"):
        encode_frames(["a", b"b"])
    with pytest.raises(TypeError, match="fragment of type int"):
        encode_frames([1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="empty iterable"):
        encode_frames([])
    frames = encode_frames([memoryview(b"a"), bytearray(b"b")])
    assert [(f.opcode, f.data, f.fin) for f in frames] == [
        (Opcode.BINARY, b"a", False),
        (Opcode.CONT, b"b", False),
        (Opcode.CONT, b"", True),
    ]


def test_protocol_log_is_debug_with_the_connection_id(pair: Any, backend: FakeBackend, caplog: Any) -> None:
    server, _ = pair
    with caplog.at_level(logging.DEBUG, "ws4py_integrations.protocol"):
        conn = make_connection(server, backend, **NO_TIMERS)
        conn.feed(client_close(1000, "bye"))
        backend.run_scheduled()
    records = [r for r in caplog.records if r.name == "ws4py_integrations.protocol"]
    assert records, "websockets' frame log goes through the connection's adapter"
    assert all(r.levelno == logging.DEBUG for r in records)
    assert all(r.getMessage().startswith(f"{conn.id} ") for r in records)
    # websockets logs the close at INFO: demoted to a trace line like the rest.
    assert any("< CLOSE 1000 (OK) bye" in r.getMessage() for r in records)


def test_protocol_log_is_silent_unless_debug(pair: Any, backend: FakeBackend, caplog: Any) -> None:
    server, _ = pair
    with caplog.at_level(logging.INFO, "ws4py_integrations.protocol"):
        conn = make_connection(server, backend, **NO_TIMERS)
        assert not conn.protocol.logger.isEnabledFor(logging.ERROR)
        conn.protocol.logger.log(logging.ERROR, "dropped")
        conn.feed(client_close(1000, "bye"))
    assert [r for r in caplog.records if r.name == "ws4py_integrations.protocol"] == []


# -- bounded memory against hostile peers ----------------------------------------------------------


def test_reading_pauses_at_max_queue_and_resumes_at_a_quarter(pair: Any, backend: FakeBackend) -> None:
    server, _ = pair
    conn = make_connection(server, backend, max_queue=8, **NO_TIMERS)
    conn.start(b"".join(client_frame(OP_TEXT, b"m%d" % i) for i in range(10)))
    # 8 unhandled messages paused reading; the other 2 frames wait unparsed.
    assert backend.reading == [(conn, True)]
    assert conn.reading_paused and conn.messages_in == 8
    assert conn.read() is True  # paused: reads nothing, still open
    _, opened, args = backend.scheduled.pop(0)
    opened(*args)
    handled = 0
    while backend.reading[-1][1]:
        _, func, args = backend.scheduled.pop(0)
        func(*args)
        handled += 1
    # Resumed once 2 (= 8 // 4) were left; the held frames come next.
    assert handled == 6 and not conn.reading_paused
    assert backend.reading == [(conn, True), (conn, False)]
    assert conn.read() is True
    assert conn.messages_in == 10
    backend.run_scheduled()
    assert [event[1] for event in handler(conn).events[1:]] == [f"m{i}" for i in range(10)]


def test_pongs_count_toward_the_send_buffer(pair: Any, backend: FakeBackend) -> None:
    server, _ = pair
    conn = make_connection(server, backend, max_send_buffer=1000, **NO_TIMERS)
    conn.start(b"")
    fill(server)  # the peer reads nothing: every pong stays queued
    pings = b"".join(client_frame(OP_PING, b"x" * 100) for _ in range(20))
    conn.feed(pings)
    assert conn.protocol.close_sent is not None and conn.protocol.close_sent.code == 1008
    assert conn.out_size < 1000 + 20 * 102 + 64


def test_a_connection_dropped_mid_message_frees_it_without_the_cycle_collector(pair: Any, backend: FakeBackend) -> None:
    import gc
    import tracemalloc

    server, _ = pair
    conn = make_connection(server, backend, max_message_size=64 * 2**20, **NO_TIMERS)
    conn.start(b"")
    gc.disable()
    tracemalloc.start()
    try:
        chunk = b"z" * 2**20
        conn.feed(client_frame(OP_BINARY, chunk, fin=False))
        for _ in range(7):
            conn.feed(client_frame(OP_CONT, chunk, fin=False))
        held = tracemalloc.get_traced_memory()[0]
        assert held > 8 * 2**20
        conn.feed(b"")  # TCP dropped mid-message
        assert conn.finalized
        assert tracemalloc.get_traced_memory()[0] < held - 7 * 2**20
    finally:
        tracemalloc.stop()
        gc.enable()
