"""ThreadedManager and GeventManager driven with socket pairs: order, turns, handoff, stop, rooms."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ws4py_integrations.connection import Connection
from ws4py_integrations.events import Message
from ws4py_integrations.manager import Manager, ThreadedManager
from ws4py_integrations.manager.base import BATCH
from ws4py_integrations.options import WebSocketOptions
from ws4py_integrations.websocket import WebSocket

from .helpers import (
    ENVIRON,
    OP_TEXT,
    accept,
    client_close,
    client_frame,
    recv_exactly,
    server_close,
    server_frame,
)

TIMEOUT = 5.0
OPTIONS = WebSocketOptions(ping_interval=None, read_timeout=None, close_timeout=2.0)


class Events(WebSocket):
    """Puts every callback on the class's queue as (websocket, name, data)."""

    events: queue.Queue[tuple[WebSocket, str, Any]]

    def opened(self) -> None:
        self.events.put((self, "opened", None))

    def received_message(self, message: Message) -> None:
        self.events.put((self, "message", message.data))

    def closed(self, code: int, reason: str = "") -> None:
        self.events.put((self, "closed", (code, reason)))


def handler_class(**methods: Callable[..., Any]) -> type[Events]:
    cls = type("Handler", (Events,), dict(methods))
    cls.events = queue.Queue()
    return cls


def next_event(cls: type[Events], name: str | None = None, timeout: float = TIMEOUT) -> tuple[WebSocket, str, Any]:
    """The next event of ``cls`` (named ``name`` if given, others skipped), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        event = cls.events.get(timeout=max(0.0, deadline - time.monotonic()))
        if name is None or event[1] == name:
            return event


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll a condition the manager offers no event for, with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


class BrokenConnection(Connection):
    """A connection with a bug in its broadcast path."""

    def send_encoded(self, frame: bytes) -> bool:
        raise RuntimeError("bug")


class Client:
    """The peer end of a socket pair, blocking with a timeout."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(TIMEOUT)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def expect(self, data: bytes) -> None:
        assert recv_exactly(self.sock, len(data)) == data

    def finish_close(self, code: int = 1000) -> None:
        """Answer the server's close and end the TCP connection."""
        self.send(client_close(code))
        self.sock.shutdown(socket.SHUT_WR)


def connect(
    manager: Manager,
    cls: type[WebSocket],
    buffered: bytes = b"",
    options: WebSocketOptions = OPTIONS,
    conn_cls: type[Connection] = Connection,
    **environ: str,
) -> tuple[Connection, Client]:
    server, client = socket.socketpair()
    conn = conn_cls(server, accept(**environ), options, ENVIRON, manager, cls)
    manager.run(conn, buffered)
    return conn, Client(client)


@pytest.fixture
def manager() -> Iterator[ThreadedManager]:
    mgr = ThreadedManager(name="unit")
    yield mgr
    mgr.stop(timeout=1.0)


# -- ThreadedManager ----------------------------------------------------------------------------------


def test_callbacks_run_in_order_across_batches(manager: ThreadedManager) -> None:
    cls = handler_class()
    count = 3 * BATCH + 5
    frames = b"".join(client_frame(OP_TEXT, str(i).encode()) for i in range(count))
    _, client = connect(manager, cls, buffered=frames[:100])
    client.send(frames[100:])
    assert next_event(cls)[1] == "opened"
    assert [next_event(cls)[2] for _ in range(count)] == [str(i) for i in range(count)]
    # The queue entry goes when it runs empty: an idle manager holds none.
    wait_until(lambda: not manager._queues)
    stats = manager.stats()
    assert stats["connections"] == 1 and stats["accepted"] == 1 and stats["messages_in"] == count
    assert len(manager) == 1 and bool(manager) and len(manager.websockets) == 1


def test_a_long_queue_lets_other_connections_have_a_turn(manager: ThreadedManager) -> None:
    order: list[tuple[str, int]] = []
    done = threading.Event()
    cls = handler_class()
    a, _ = connect(manager, cls)
    b, _ = connect(manager, cls)
    c, client_c = connect(manager, cls)

    def record(name: str, index: int) -> None:
        order.append((name, index))
        if name == "a" and index == 2 * BATCH - 1:
            done.set()

    def burst(ws: WebSocket, message: Message) -> None:
        # On the loop thread: both queues are filled before either runs.
        for index in range(2 * BATCH):
            manager.schedule(a, record, "a", index)
        manager.schedule(b, record, "b", 0)

    c.websocket.received_message = lambda message: burst(c.websocket, message)  # type: ignore[method-assign]
    client_c.send(client_frame(OP_TEXT, b"go"))
    assert done.wait(TIMEOUT)
    assert order.index(("b", 0)) == BATCH  # after a's first batch, before its second


def blocking_handler() -> tuple[type[Events], threading.Event, threading.Event]:
    """A handler class whose "block" message waits for ``release``; ``blocked`` is set when it does."""
    release = threading.Event()
    blocked = threading.Event()

    def received_message(self: Events, message: Message) -> None:
        if message.data == "block":
            blocked.set()
            release.wait(TIMEOUT)
        Events.received_message(self, message)

    return handler_class(received_message=received_message), blocked, release


def test_a_blocking_callback_hands_the_loop_over(manager: ThreadedManager) -> None:
    cls, blocked, release = blocking_handler()
    _slow, slow_client = connect(manager, cls)
    fast, fast_client = connect(manager, cls)
    slow_client.send(client_frame(OP_TEXT, b"block") + client_frame(OP_TEXT, b"after"))
    assert blocked.wait(TIMEOUT)
    fast_client.send(client_frame(OP_TEXT, b"fast"))
    ws, _name, data = next_event(cls, "message")
    assert (ws, data) == (fast.websocket, "fast")  # while the other callback still blocks
    release.set()
    got = [next_event(cls, "message")[1:] for _ in range(2)]
    assert got == [("message", "block"), ("message", "after")]


def test_messages_for_a_blocked_connection_queue_behind_it_in_order(manager: ThreadedManager) -> None:
    cls, blocked, release = blocking_handler()
    slow, slow_client = connect(manager, cls)
    fast, fast_client = connect(manager, cls)
    slow_client.send(client_frame(OP_TEXT, b"block"))
    assert blocked.wait(TIMEOUT)
    # Read by the new leader, queued behind the blocked callback.
    slow_client.send(client_frame(OP_TEXT, b"x1") + client_frame(OP_TEXT, b"x2"))
    fast_client.send(client_frame(OP_TEXT, b"fast"))
    ws, _name, data = next_event(cls, "message")
    assert (ws, data) == (fast.websocket, "fast")
    release.set()
    got = [next_event(cls, "message")[1:] for _ in range(3)]
    assert got == [("message", "block"), ("message", "x1"), ("message", "x2")]
    # The demoted thread ends once its queue is done; the loop serves the connection again.
    deadline = time.monotonic() + TIMEOUT
    while manager._threads > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert manager._threads == 1
    slow_client.send(client_frame(OP_TEXT, b"later"))
    ws, _name, data = next_event(cls, "message")
    assert (ws, data) == (slow.websocket, "later")


def test_wake_ups_from_other_threads_are_never_lost(manager: ThreadedManager) -> None:
    # run_or_schedule from a thread that is not the loop's, with a callback
    # queued meanwhile, wakes the loop without an op for it: the shared
    # wake-up flag must be cleared by the wake-up itself, or the next one is
    # swallowed and the loop sleeps on queued work.
    cls = handler_class()
    conn, _client = connect(manager, cls)
    assert next_event(cls)[1] == "opened"
    for turn in range(5):
        ran = threading.Event()

        def first(ran: threading.Event = ran) -> None:
            manager.schedule(conn, ran.set)

        thread = threading.Thread(target=manager.run_or_schedule, args=(conn, first))
        thread.start()
        thread.join(5)
        assert ran.wait(5), f"turn {turn}: the callback queued from another thread never ran"


def test_saturation_is_logged_once(caplog: Any) -> None:
    mgr = ThreadedManager(max_workers=1, handoff_after=0.005)
    release = threading.Event()
    cls = handler_class(received_message=lambda self, message: release.wait(TIMEOUT))
    try:
        with caplog.at_level(logging.WARNING, "ws4py_integrations.manager"):
            _, client = connect(mgr, cls)
            client.send(client_frame(OP_TEXT, b"block"))
            wait_until(lambda: "all 1 threads are inside blocking callbacks" in caplog.text)
    finally:
        release.set()
        mgr.stop(timeout=1.0)


def test_stop_sends_1001_and_waits_for_closed() -> None:
    mgr = ThreadedManager()
    cls = handler_class()
    conn, client = connect(mgr, cls)
    next_event(cls, "opened")
    stopper = threading.Thread(target=mgr.stop, kwargs={"timeout": TIMEOUT})
    stopper.start()
    client.expect(server_close(1001, "server shutting down"))
    client.finish_close(1000)
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    assert next_event(cls, "closed")[2] == (1000, "")
    assert not mgr.accepting and mgr.wait_closed(0)
    # Callbacks scheduled after the loop stopped run inline.
    ran: list[int] = []
    mgr.schedule(conn, ran.append, 1)
    assert ran == [1]
    mgr.stop()  # idempotent


def test_stop_aborts_peers_that_never_answer() -> None:
    mgr = ThreadedManager()
    cls = handler_class()
    _, client = connect(mgr, cls)
    next_event(cls, "opened")
    mgr.stop(timeout=0.05)
    assert next_event(cls, "closed")[2] == (1001, "server shutting down")
    client.sock.close()


def test_a_manager_stopped_before_starting_and_a_late_run() -> None:
    mgr = ThreadedManager()
    mgr.stop()
    assert not mgr.accepting
    with pytest.raises(RuntimeError, match="was stopped"):
        mgr.start()
    server, client = socket.socketpair()
    conn = Connection(server, accept(), OPTIONS, ENVIRON, mgr, handler_class())
    mgr.run(conn)  # a connection upgraded meanwhile is closed with 1001
    assert server.fileno() == -1
    client.settimeout(TIMEOUT)
    assert client.recv(4)[:4] == bytes((0x88, 22)) + (1001).to_bytes(2, "big")
    client.close()


def test_a_run_after_stop_closes_the_connection_with_1001(caplog: Any) -> None:
    mgr = ThreadedManager()
    mgr.start()
    mgr.start()  # idempotent
    server, client = socket.socketpair()
    cls = handler_class()
    conn = Connection(server, accept(), OPTIONS, ENVIRON, mgr, cls)
    mgr.stop()  # between the handshake and run()
    with caplog.at_level(logging.INFO, "ws4py_integrations.manager"):
        mgr.run(conn)
    assert "the manager stopped during the handshake" in caplog.text
    assert server.fileno() == -1
    # The client gets a close frame (1001), then the end of the stream.
    client.settimeout(TIMEOUT)
    received = b""
    while chunk := client.recv(4096):
        received += chunk
    reason = b"server shutting down"
    assert received == bytes((0x88, 2 + len(reason))) + (1001).to_bytes(2, "big") + reason
    assert cls.events.empty()  # never opened, so never closed either
    conn.close_unstarted(1001, "again")  # idempotent: nothing sent, nothing raised
    client.close()


def test_broker_can_change_only_before_start() -> None:
    from ws4py_integrations.broker import InProcessBroker

    mgr = ThreadedManager()
    broker = InProcessBroker()
    mgr.broker = broker
    assert mgr.broker is broker and repr(broker) == "<InProcessBroker>"
    assert broker.publish(None, "nobody") == 0
    mgr.start()
    with pytest.raises(RuntimeError, match="cannot change"):
        mgr.broker = InProcessBroker()
    with pytest.raises(RuntimeError, match="another manager"):
        broker.attach(ThreadedManager())
    mgr.stop()
    with pytest.raises(ValueError, match="max_workers"):
        ThreadedManager(max_workers=0)


def test_rooms_and_broadcast(manager: ThreadedManager) -> None:
    cls = handler_class()
    (a, ca), (b, cb), (c, cc) = (connect(manager, cls) for _ in range(3))
    deflate, cd = connect(manager, cls, HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate")
    wa, wb, wc = a.websocket, b.websocket, c.websocket
    wa.join("red")
    wb.join("red")
    wb.join("blue")
    deflate.websocket.join("red")
    assert manager.rooms() == {"red": 3, "blue": 1}
    assert manager.count("red") == 3 and manager.count("green") == 0
    assert set(manager.members("red")) == {wa, wb, deflate.websocket}
    assert wb.rooms == frozenset({"red", "blue"})

    assert manager.broadcast("hi", room="red", exclude=[wa]) == 2
    cb.expect(server_frame(OP_TEXT, b"hi"))
    assert cd.sock.recv(1)[0] == 0xC1  # compressed for the connection that negotiated it
    assert manager.broadcast_local(b"all") == 4
    for client in (ca, cb, cc):
        client.expect(server_frame(0x2, b"all"))

    wb.leave("red")
    wb.leave("red")  # not a member any more: no error
    wb.leave("nowhere")
    assert manager.rooms_of(wb) == frozenset({"blue"})
    wb.leave("blue")
    assert manager.rooms() == {"red": 2}

    # A connection that fails while broadcasting does not stop the others.
    _broken, cx = connect(manager, cls, conn_cls=BrokenConnection)
    wc.close()
    cc.expect(server_close(1000))
    assert manager.broadcast_local("x") == 3  # not the closing one, not the broken one
    cc.finish_close()
    next_event(cls, "closed")
    wa.close()
    ca.expect(server_frame(OP_TEXT, b"x") + server_close(1000))
    ca.finish_close()
    next_event(cls, "closed")
    wait_until(lambda: manager.count("red") == 1)
    wa.join("red")  # closed: joins nothing
    assert manager.rooms() == {"red": 1}
    assert manager.stats()["connections"] == 3
    manager.close_all(1001, "bye")
    cb.expect(server_frame(OP_TEXT, b"x") + server_close(1001, "bye"))
    cx.expect(server_close(1001, "bye"))


def test_timers_fire_in_order_and_cancelled_ones_do_not(manager: ThreadedManager, caplog: Any) -> None:
    manager.start()
    fired: queue.Queue[str] = queue.Queue()
    manager.call_later(0.02, lambda: fired.put("second"))
    manager.call_later(0.0, lambda: fired.put("first"))
    manager.call_later(0.01, lambda: fired.put("cancelled")).cancel()
    with caplog.at_level(logging.ERROR, "ws4py_integrations.manager"):
        manager.call_later(0.0, lambda: 1 / 0)
        assert [fired.get(timeout=TIMEOUT), fired.get(timeout=TIMEOUT)] == ["first", "second"]
        wait_until(lambda: "timer callback failed" in caplog.text)
    assert fired.empty()


def test_cancelled_timers_are_weeded_out_of_the_heap(manager: ThreadedManager) -> None:
    manager.start()
    for _ in range(1100):
        manager.call_later(3600, lambda: None).cancel()
    fired = threading.Event()
    manager.call_later(0, fired.set)
    assert fired.wait(TIMEOUT)
    assert len(manager._timers) < 1100


def test_a_failing_queued_callback_is_logged_and_the_queue_goes_on(manager: ThreadedManager, caplog: Any) -> None:
    cls = handler_class()
    conn, _ = connect(manager, cls)
    ran = threading.Event()
    with caplog.at_level(logging.ERROR, "ws4py_integrations.manager"):
        manager.schedule(conn, lambda: 1 / 0)
        manager.schedule(conn, ran.set)
        assert ran.wait(TIMEOUT)
    assert "callback" in caplog.text and "failed" in caplog.text


def test_wait_released(manager: ThreadedManager) -> None:
    cls = handler_class()
    conn, client = connect(manager, cls)
    assert manager.wait_released(conn.websocket, timeout=0.01) is False
    assert manager.wait_closed(timeout=0.01) is False
    conn.websocket.close()
    client.expect(server_close(1000))
    client.finish_close()
    assert manager.wait_released(conn.websocket, timeout=TIMEOUT) is True
    assert manager.wait_closed(timeout=TIMEOUT) is True


def test_a_loop_crash_aborts_its_connections(caplog: Any) -> None:
    mgr = ThreadedManager()
    cls = handler_class()
    _, client = connect(mgr, cls)
    next_event(cls, "opened")
    with caplog.at_level(logging.ERROR, "ws4py_integrations.manager"):
        mgr._call_soon(lambda: 1 / 0)  # an op that raises: the loop itself fails
        assert next_event(cls, "closed", timeout=0.5)[2] == (1006, "")
    assert "I/O loop crashed" in caplog.text
    assert not mgr.accepting  # new upgrades get 503 rather than a dead loop
    mgr.stop(timeout=0.1)
    client.sock.close()


def test_run_or_schedule_runs_inline_when_idle_and_queues_otherwise(manager: ThreadedManager, caplog: Any) -> None:
    connect(manager, handler_class())  # starts the manager

    class Key:
        id = "key"

    key: Any = Key()
    order: list[str] = []
    done = threading.Event()

    def inline() -> None:
        order.append(f"inline on caller: {threading.current_thread() is threading.main_thread()}")
        # Scheduled meanwhile: runs after this call, on the manager.
        manager.schedule(key, order.append, "scheduled during")
        manager.run_or_schedule(key, order.append, "nested")
        manager.schedule(key, done.set)

    manager.run_or_schedule(key, inline)
    assert order[0] == "inline on caller: True"
    assert done.wait(TIMEOUT)
    assert order == ["inline on caller: True", "scheduled during", "nested"]
    wait_until(lambda: not manager._queues)

    # Busy (a callback of the key runs): queued behind it, not run here.
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []
    finished = threading.Event()
    manager.schedule(key, lambda: (started.set(), release.wait(TIMEOUT)))
    assert started.wait(TIMEOUT)
    manager.run_or_schedule(key, lambda: (ran.append(threading.current_thread().name), finished.set()))
    assert ran == []
    release.set()
    assert finished.wait(TIMEOUT)
    assert ran and ran[0] != threading.main_thread().name

    # A failing inline call is logged and frees the queue.
    wait_until(lambda: not manager._queues)
    with caplog.at_level(logging.ERROR, "ws4py_integrations.manager"):
        manager.run_or_schedule(key, lambda: 1 / 0)
    assert "key: callback" in caplog.text and "failed" in caplog.text
    assert not manager._queues


# -- a handshake without waking the loop --------------------------------------------------------------


class Quiet(WebSocket):
    """Echoes; ``opened`` is WebSocket's own no-op."""

    def received_message(self, message: Message) -> None:
        self.send(message.data)


def counting_wakes(manager: ThreadedManager) -> list[int]:
    """Count the manager's wake-up bytes from now on."""
    wakes: list[int] = []
    real = manager._wake

    def wake() -> None:
        wakes.append(threading.get_ident())
        real()

    manager._wake = wake  # type: ignore[method-assign]
    return wakes


def test_a_new_connection_wakes_no_loop_unless_opened_is_overridden(manager: ThreadedManager) -> None:
    manager.start()
    wait_until(lambda: manager._waiting_until == float("inf"))  # the loop waits, for nothing in particular
    wakes = counting_wakes(manager)
    options = WebSocketOptions(ping_interval=20.0, read_timeout=None, close_timeout=2.0)
    _, quiet = connect(manager, Quiet, options=options)
    # Registered from this thread, no opened() queued, a keepalive timer later than
    # anything the loop waits for... (it waits for nothing: the timer is the first)
    assert len(wakes) == 1
    _, quiet2 = connect(manager, Quiet, options=options)
    # ...and the second timer is later than the first: no wake-up at all.
    assert len(wakes) == 1
    # The loop still sees what arrives on both.
    for client in (quiet, quiet2):
        client.send(client_frame(OP_TEXT, b"hi"))
        client.expect(server_frame(OP_TEXT, b"hi"))
    cls = handler_class()
    connect(manager, cls, options=options)
    assert next_event(cls, "opened")[1] == "opened"
    assert len(wakes) == 2  # opened() runs on the loop: one wake-up for it


def test_opened_is_queued_only_when_a_class_or_instance_overrides_it(manager: ThreadedManager) -> None:
    assert Quiet._opened_is_noop and WebSocket._opened_is_noop
    assert not handler_class()._opened_is_noop

    class Subclassed(Quiet):
        pass

    assert Subclassed._opened_is_noop
    opened = threading.Event()

    class PerInstance(Quiet):
        def __init__(self, connection: Connection, manager: Manager) -> None:
            super().__init__(connection, manager)
            self.opened = opened.set  # type: ignore[method-assign]

    connect(manager, PerInstance)
    assert opened.wait(TIMEOUT)


def test_a_timer_set_from_another_thread_fires_on_time_while_the_loop_waits_longer(
    manager: ThreadedManager,
) -> None:
    manager.start()
    manager.call_later(3600, lambda: None)
    wait_until(lambda: manager._waiting_until < float("inf"))  # waiting for that timer
    wakes = counting_wakes(manager)
    fired = threading.Event()
    started = time.monotonic()
    manager.call_later(0.05, fired.set)
    assert fired.wait(TIMEOUT)
    assert time.monotonic() - started < 2.0
    assert len(wakes) == 1  # earlier than what the loop waited for: woken
    manager.call_later(3601, lambda: None)
    assert len(wakes) == 1  # later: taken when the loop next runs


def test_a_connection_run_after_the_loop_closed_is_not_watched(caplog: Any) -> None:
    mgr = ThreadedManager(name="unit")
    mgr.start()
    mgr.stop(timeout=1.0)
    wait_until(lambda: mgr._selector.get_map() is None)
    server, client = socket.socketpair()
    conn = Connection(server, accept(), OPTIONS, ENVIRON, mgr, Quiet)
    with caplog.at_level(logging.DEBUG, "ws4py_integrations.manager"):
        mgr._watch(conn, b"")
    assert "not watched" in caplog.text
    server.close()
    client.close()


def test_timers_set_by_timer_callbacks_fire_once_each(manager: ThreadedManager) -> None:
    # Timers set on the loop thread wait until the loop has run the due ones:
    # the heap is weeded (replaced) now and then, never while being run.
    manager.start()
    for _ in range(1100):
        manager.call_later(3600, lambda: None).cancel()
    fired: list[int] = []
    done = threading.Event()

    def chain(n: int) -> None:
        fired.append(n)
        if n < 50:
            for _ in range(30):
                manager.call_later(3600, lambda: None).cancel()
            manager.call_later(0, lambda: chain(n + 1))
        else:
            done.set()

    manager.call_later(0, lambda: chain(0))
    assert done.wait(TIMEOUT)
    assert fired == list(range(51))
