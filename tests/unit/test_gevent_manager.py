"""GeventManager on this thread's hub, driven with socket pairs (greenlet and thread handlers).

The process is not monkey-patched: the test waits cooperatively (gevent
sockets, events and joins with timeouts) so that the hub runs the manager.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pytest

from ws4py_integrations.connection import Connection
from ws4py_integrations.events import Message
from ws4py_integrations.manager import GeventManager
from ws4py_integrations.manager.base import BATCH
from ws4py_integrations.options import WebSocketOptions
from ws4py_integrations.websocket import WebSocket

from .helpers import ENVIRON, OP_TEXT, accept, client_close, client_frame, server_close, server_frame

TIMEOUT = 5.0
OPTIONS = WebSocketOptions(ping_interval=None, read_timeout=None, close_timeout=2.0)


class Echo(WebSocket):
    received: list[Any]

    def opened(self) -> None:
        self.received = []

    def received_message(self, message: Message) -> None:
        self.received.append(message.data)
        self.send(message.data)


def connect(manager: GeventManager, buffered: bytes = b"") -> tuple[Connection, Any]:
    server, client = socket.socketpair()
    conn = Connection(server, accept(), OPTIONS, ENVIRON, manager, Echo)
    manager.run(conn, buffered)
    peer = gevent.socket.socket(fileno=client.detach())
    peer.settimeout(TIMEOUT)
    return conn, peer


def expect(peer: Any, data: bytes) -> None:
    received = b""
    while len(received) < len(data):
        chunk = peer.recv(len(data) - len(received))
        assert chunk, received
        received += chunk
    assert received == data


@pytest.fixture(params=["greenlets", "threads"])
def manager(request: pytest.FixtureRequest) -> Iterator[GeventManager]:
    mgr = GeventManager(handlers=request.param)
    yield mgr
    with gevent.Timeout(TIMEOUT):
        mgr.stop(timeout=1.0)


def test_echo_in_order_and_stop_with_1001(manager: GeventManager) -> None:
    count = BATCH + 10
    frames = b"".join(client_frame(OP_TEXT, str(i).encode()) for i in range(count))
    conn, peer = connect(manager, buffered=frames[:50])
    peer.sendall(frames[50:])
    expect(peer, b"".join(server_frame(OP_TEXT, str(i).encode()) for i in range(count)))
    assert manager.handlers == manager._requested_mode
    assert manager.broadcast("all") == 1
    expect(peer, server_frame(OP_TEXT, b"all"))
    stopper = gevent.spawn(manager.stop, 2.0)
    expect(peer, server_close(1001, "server shutting down"))
    peer.sendall(client_close(1000))
    peer.shutdown(socket.SHUT_WR)
    assert stopper.join(TIMEOUT) is not None or stopper.ready()
    assert manager.wait_released(conn.websocket, timeout=TIMEOUT) is True
    assert conn.websocket.close_code == 1000
    peer.close()


def test_large_sends_wait_for_the_writer(manager: GeventManager) -> None:
    conn, peer = connect(manager)
    payload = b"x" * (4 * 2**20)
    conn.websocket.send(payload)
    expect(peer, b"\x82\x7f" + len(payload).to_bytes(8, "big") + payload)
    conn.websocket.close()
    expect(peer, server_close(1000))
    peer.sendall(client_close(1000))
    assert manager.wait_closed(TIMEOUT) is True
    peer.close()


def waiting_echo() -> tuple[GeventManager, type[WebSocket], gevent.event.Event]:
    """A greenlet-handler manager and an echo whose "wait" message waits for the event."""
    manager = GeventManager(handlers="greenlets")
    release = gevent.event.Event()

    class Waits(WebSocket):
        def received_message(self, message: Message) -> None:
            if message.data == "wait":
                assert release.wait(TIMEOUT)
            self.send(message.data)

    return manager, Waits, release


def test_a_waiting_greenlet_handler_delays_only_its_own_connection() -> None:
    # Both connections have a message before the runner greenlet starts, so
    # one runner takes both: the first handler waits, the second must not.
    manager, Waits, release = waiting_echo()

    peers = []
    for text in (b"wait", b"go"):
        server, client = socket.socketpair()
        manager.run(Connection(server, accept(), OPTIONS, ENVIRON, manager, Waits), client_frame(OP_TEXT, text))
        peer = gevent.socket.socket(fileno=client.detach())
        peer.settimeout(TIMEOUT)
        peers.append(peer)
    expect(peers[1], server_frame(OP_TEXT, b"go"))
    assert not release.is_set()
    release.set()
    expect(peers[0], server_frame(OP_TEXT, b"wait"))
    with gevent.Timeout(TIMEOUT):
        manager.stop(timeout=1.0)


def test_a_parked_runner_that_waits_delays_only_its_own_connection() -> None:
    # The runner that parked after the first echoes is switched to again by
    # the hub (_switch_to_runner): when its handler waits, the hub notices
    # on the way back and another runner serves the other connection.
    manager, Waits, release = waiting_echo()

    peers = []
    for _ in range(2):
        server, client = socket.socketpair()
        manager.run(Connection(server, accept(), OPTIONS, ENVIRON, manager, Waits))
        peer = gevent.socket.socket(fileno=client.detach())
        peer.settimeout(TIMEOUT)
        peers.append(peer)
    for peer in peers:
        peer.sendall(client_frame(OP_TEXT, b"warm"))
        expect(peer, server_frame(OP_TEXT, b"warm"))
    with gevent.Timeout(TIMEOUT):
        while manager._idle_runner is None:
            gevent.sleep(0.001)
    parked = manager._idle_runner
    peers[0].sendall(client_frame(OP_TEXT, b"wait"))
    peers[1].sendall(client_frame(OP_TEXT, b"go"))
    expect(peers[1], server_frame(OP_TEXT, b"go"))
    assert not release.is_set()
    assert manager._runner is not parked
    release.set()
    expect(peers[0], server_frame(OP_TEXT, b"wait"))
    peers[0].sendall(client_frame(OP_TEXT, b"again"))
    expect(peers[0], server_frame(OP_TEXT, b"again"))
    with gevent.Timeout(TIMEOUT):
        manager.stop(timeout=1.0)


def test_a_busy_connection_lets_the_hub_read_between_batches() -> None:
    # Three batches of messages wait for one connection; the other's message
    # is still in its socket: the hub reads it after the first batch, and it
    # is handled after the busy connection's next turn (already in line when
    # it arrived), not after all three.
    manager = GeventManager(handlers="greenlets")
    handled: list[tuple[int, str]] = []

    class Records(WebSocket):
        def received_message(self, message: Message) -> None:
            handled.append((id(self), str(message.data)))

    busy_server, busy_client = socket.socketpair()
    frames = b"".join(client_frame(OP_TEXT, b"%d" % i) for i in range(3 * BATCH))
    busy = Connection(busy_server, accept(), OPTIONS, ENVIRON, manager, Records)
    manager.run(busy, frames)
    other_server, other_client = socket.socketpair()
    other = Connection(other_server, accept(), OPTIONS, ENVIRON, manager, Records)
    manager.run(other)
    peer = gevent.socket.socket(fileno=other_client.detach())
    peer.sendall(client_frame(OP_TEXT, b"other"))
    with gevent.Timeout(TIMEOUT):
        while len(handled) < 3 * BATCH + 1:
            gevent.sleep(0.01)
    assert handled.index((id(other.websocket), "other")) <= 2 * BATCH
    assert [data for key, data in handled if key == id(busy.websocket)] == [str(i) for i in range(3 * BATCH)]
    busy_client.close()
    peer.close()
    with gevent.Timeout(TIMEOUT):
        manager.stop(timeout=1.0)


def test_timers_and_cancellation() -> None:
    mgr = GeventManager(handlers="greenlets")
    mgr.start()
    fired = gevent.event.Event()
    mgr.call_later(0.0, fired.set)
    cancelled = mgr.call_later(0.01, lambda: pytest.fail("cancelled timer ran"))
    cancelled.cancel()
    mgr.call_later(0.0, lambda: 1 / 0)  # logged, not raised
    assert fired.wait(TIMEOUT)
    gevent.sleep(0.05)
    mgr.stop()


def test_handler_mode_choice(monkeypatch: Any, caplog: Any) -> None:
    from ws4py_integrations.manager import gevent as backend

    with pytest.raises(ValueError, match="handlers must be"):
        GeventManager(handlers="processes")  # type: ignore[arg-type]
    monkeypatch.setattr(backend, "_logged_modes", set())
    with caplog.at_level(logging.INFO, "ws4py_integrations.gevent"):
        assert GeventManager()._resolve_mode() == "threads"
        assert GeventManager(handlers="greenlets")._resolve_mode() == "greenlets"
    assert "not monkey-patched, so WebSocket handlers run on up to 32 OS threads" in caplog.text
    assert "handlers run on greenlets but the socket module is not monkey-patched" in caplog.text
    monkeypatch.setattr(backend.monkey, "is_module_patched", lambda name: True)
    assert GeventManager()._resolve_mode() == "greenlets"
    with pytest.raises(ValueError, match="needs real threads"):
        GeventManager(handlers="threads")._resolve_mode()


# -- what runs from other threads, failures, large broadcasts, backpressure --------------------


def test_large_compressed_broadcast_is_compressed_off_the_hub(manager: GeventManager) -> None:
    deflate = {"HTTP_SEC_WEBSOCKET_EXTENSIONS": "permessage-deflate"}
    peers = []
    for _ in range(2):
        server, client = socket.socketpair()
        conn = Connection(server, accept(**deflate), OPTIONS, ENVIRON, manager, Echo)
        manager.run(conn)
        peer = gevent.socket.socket(fileno=client.detach())
        peer.settimeout(TIMEOUT)
        peers.append(peer)
    applied: list[Any] = []
    original = manager._offload

    def offload(func: Any) -> bytes:
        applied.append(func)
        return original(func)

    manager._offload = offload  # type: ignore[method-assign]
    payload = b"z" * (256 * 1024)
    assert manager.broadcast(payload) == 2
    assert len(applied) == 1  # one compression, shared by both receivers
    heads = []
    for peer in peers:
        head = b""
        while len(head) < 4:
            head += peer.recv(4 - len(head))
        heads.append(head)
    # Both got the same compressed frame: FIN + RSV1 + binary, 16-bit length.
    assert heads[0] == heads[1] and heads[0][0] == 0xC2 and heads[0][1] == 126


def test_reading_pauses_and_resumes_on_the_hub(manager: GeventManager) -> None:
    options = WebSocketOptions(ping_interval=None, read_timeout=None, close_timeout=2.0, max_queue=4)
    release = gevent.event.Event()

    class Slow(WebSocket):
        def received_message(self, message: Message) -> None:
            if manager.handlers == "greenlets":
                release.wait(TIMEOUT)
            else:
                gevent.get_hub().loop.run_callback_threadsafe(lambda: None)
            self.send(message.data)

    server, client = socket.socketpair()
    conn = Connection(server, accept(), options, ENVIRON, manager, Slow)
    manager.run(conn)
    peer = gevent.socket.socket(fileno=client.detach())
    peer.settimeout(TIMEOUT)
    peer.sendall(b"".join(client_frame(OP_TEXT, b"%d" % i) for i in range(20)))
    if manager.handlers == "greenlets":
        with gevent.Timeout(TIMEOUT):
            while not conn.reading_paused:
                gevent.sleep(0.01)
        assert conn.messages_in == 4  # the rest waits unparsed, not in memory as messages
        release.set()
    expect(peer, b"".join(server_frame(OP_TEXT, b"%d" % i) for i in range(20)))
    assert conn.messages_in == 20


class _BrokenReads(Connection):
    def read(self) -> bool:
        if self.messages_out:  # after the first echo
            raise RuntimeError("boom")
        return super().read()


def test_a_failing_read_drops_only_that_connection(manager: GeventManager, caplog: Any) -> None:
    server, client = socket.socketpair()
    conn = _BrokenReads(server, accept(), OPTIONS, ENVIRON, manager, Echo)
    manager.run(conn)
    peer = gevent.socket.socket(fileno=client.detach())
    peer.settimeout(TIMEOUT)
    peer.sendall(client_frame(OP_TEXT, b"first"))
    expect(peer, server_frame(OP_TEXT, b"first"))
    _other, other_peer = connect(manager)
    with caplog.at_level(logging.ERROR, "ws4py_integrations.gevent"):
        peer.sendall(client_frame(OP_TEXT, b"x"))
        with gevent.Timeout(TIMEOUT):
            while not conn.finalized:
                gevent.sleep(0.01)
    assert "reading failed" in caplog.text
    other_peer.sendall(client_frame(OP_TEXT, b"still"))
    expect(other_peer, server_frame(OP_TEXT, b"still"))


def test_calls_from_another_thread(manager: GeventManager) -> None:
    import threading

    conn, peer = connect(manager)
    results: dict[str, Any] = {}

    def elsewhere() -> None:
        results["sent"] = manager.broadcast("from a thread")
        results["closed"] = manager.wait_closed(0.05)
        results["released"] = manager.wait_released(conn.websocket, 0.05)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    expect(peer, server_frame(OP_TEXT, b"from a thread"))
    with gevent.Timeout(TIMEOUT):
        while thread.is_alive():
            gevent.sleep(0.01)
    assert results == {"sent": 1, "closed": False, "released": False}
