"""Rooms on the manager with the default, in-process broker.

The ``check_*`` scenarios take two server URLs, "side A" and "side B": here
both are the same server (one process, the in-process broker); in
``test_redis.py`` they are two server processes sharing rooms through Redis.
Clients are independent (``websockets.sync.client``); half of them negotiate
permessage-deflate, half not, so both the shared encode-once frame and the
per-connection compressed path are exercised.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.app import make_app
from tests.support.servers import RunningServer, available, serve
from ws4py_integrations import Manager, ThreadedManager, WebSocket
from ws4py_integrations.broker import Broker, InProcessBroker

TIMEOUT = 10.0


class Peer:
    """One client of the room commands at ``/rooms`` of the test app (``tests.support.app``)."""

    def __init__(self, url: str, ws: ClientConnection) -> None:
        self.url = url
        self.ws = ws

    def send(self, data: str | bytes) -> None:
        self.ws.send(data)

    def recv(self, timeout: float = TIMEOUT) -> str | bytes:
        return self.ws.recv(timeout=timeout)

    def expect(self, expected: str | bytes, timeout: float = TIMEOUT) -> None:
        got = self.recv(timeout)
        assert got == expected, f"expected {expected!r}, got {got!r}"

    def ask(self, command: str) -> str:
        """Send a command and return its answer."""
        self.send(command)
        answer = self.recv()
        assert isinstance(answer, str)
        return answer

    def join(self, room: str) -> None:
        assert self.ask(f"join:{room}") == f"joined:{room}"

    def leave(self, room: str) -> None:
        assert self.ask(f"leave:{room}") == f"left:{room}"

    def close(self) -> None:
        self.ws.close()


PeerFactory = Callable[[str], Peer]


@contextmanager
def peers() -> Iterator[PeerFactory]:
    """Make peers (alternately with and without compression); close them all on exit."""
    with ExitStack() as stack:
        made = 0

        def factory(url: str) -> Peer:
            nonlocal made
            compression = "deflate" if made % 2 else None
            made += 1
            ws = stack.enter_context(connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, compression=compression))
            return Peer(url, ws)

        yield factory


def sync_all(sender: Peer, everyone: list[Peer], tag: str) -> None:
    """Broadcast a sentinel and check it is the next message of every peer:
    whatever they should not have received before it, they did not."""
    sender.send(f"all:{tag}")
    for peer in everyone:
        peer.expect(tag)


# -- scenarios shared with test_redis.py ------------------------------------------------------


def check_room_delivery(url_a: str, url_b: str) -> None:
    """A publish from either side reaches the room's members on both sides, nobody else;
    text stays text and binary stays binary."""
    with peers() as make:
        a1, a2, a3 = make(url_a), make(url_a), make(url_a)
        b1, b2, b3 = make(url_b), make(url_b), make(url_b)
        for peer in (a1, a2, b1):
            peer.join("red")
        for peer in (a3, b2):
            peer.join("blue")
        everyone = [a1, a2, a3, b1, b2, b3]
        red, blue = [a1, a2, b1], [a3, b2]

        a1.send("pub:red:hello from A")
        for peer in red:
            peer.expect("hello from A")
        sync_all(b3, everyone, "sync-1")

        b1.send("pub:red:héllo ☃ from B")
        for peer in red:
            peer.expect("héllo ☃ from B")
        sync_all(a3, everyone, "sync-2")

        b2.send(b"blue\n\x00\xffbinary")
        for peer in blue:
            got = peer.recv()
            assert isinstance(got, bytes) and got == b"\x00\xffbinary"
        a1.send("pub:blue:text")
        for peer in blue:
            got = peer.recv()
            assert isinstance(got, str) and got == "text"
        sync_all(a1, everyone, "sync-3")


def check_exclude(url_a: str, url_b: str) -> None:
    """``exclude`` spares the publisher; everyone else in the room gets the message."""
    with peers() as make:
        a1, a2, b1 = make(url_a), make(url_a), make(url_b)
        for peer in (a1, a2, b1):
            peer.join("green")
        a1.send("pubx:green:not for a1")
        a2.expect("not for a1")
        b1.expect("not for a1")
        b1.send("pubx:green:not for b1")
        a1.expect("not for b1")
        a2.expect("not for b1")
        sync_all(a2, [a1, a2, b1], "sync")


def check_leave_and_close(url_a: str, url_b: str) -> None:
    """A peer that left, or closed, gets nothing more from the room."""
    with peers() as make:
        a1, b1, b2, b3 = make(url_a), make(url_b), make(url_b), make(url_b)
        for peer in (a1, b1, b2, b3):
            peer.join("yellow")
        b1.join("purple")
        assert b1.ask("myrooms") == 'myrooms:["purple", "yellow"]'
        b2.leave("yellow")
        assert b2.ask("myrooms") == "myrooms:[]"
        b1.close()
        # Leaving the rooms on close is the manager's job: wait until it is done.
        deadline = time.monotonic() + TIMEOUT
        expected = "count:yellow:2" if url_a == url_b else "count:yellow:1"  # a1 and b3, or b3
        while b3.ask("count:yellow") != expected:
            assert time.monotonic() < deadline, "the closed connection never left its room"
        assert "purple" not in json.loads(b3.ask("rooms").removeprefix("rooms:"))
        a1.send("pub:yellow:still here")
        a1.expect("still here")
        b3.expect("still here")
        sync_all(a1, [a1, b2, b3], "sync")


def check_fragments(url_a: str, url_b: str) -> None:
    """A message published as fragments reaches every member whole."""
    with peers() as make:
        a1, b1 = make(url_a), make(url_b)
        a1.join("frag")
        b1.join("frag")
        a1.send("frag:frag:one,two,three")
        a1.expect("onetwothree")
        b1.expect("onetwothree")


SCENARIOS = [check_room_delivery, check_exclude, check_leave_and_close, check_fragments]


# -- the in-process broker, on every server adapter --------------------------------------------


@pytest.fixture(scope="module", params=available())
def rooms_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The room-commands app on one adapter, with the adapter's manager (in-process broker)."""
    with serve(request.param, make_app()) as running:
        yield running


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__.removeprefix("check_"))
def test_in_process_rooms(rooms_server: RunningServer, scenario: Callable[[str, str], None]) -> None:
    url = rooms_server.ws_url("/rooms")
    scenario(url, url)


def test_default_broker_is_in_process(rooms_server: RunningServer) -> None:
    with peers() as make:
        peer = make(rooms_server.ws_url("/rooms"))
        assert json.loads(peer.ask("status").removeprefix("status:"))["broker"] == "InProcessBroker"


def test_publish_counts_local_members(rooms_server: RunningServer) -> None:
    url = rooms_server.ws_url("/rooms")
    with peers() as make:
        a, b, c = make(url), make(url), make(url)
        a.join("count")
        b.join("count")
        c.join("other")
        assert c.ask("count:count") == "count:count:2"
        c.send("pubn:count:x")
        assert c.recv() == "published:2"
        a.expect("x")
        b.expect("x")
        c.send("pubn:nobody:x")
        assert c.recv() == "published:0"
        rooms = json.loads(c.ask("rooms").removeprefix("rooms:"))
        assert rooms == {"count": 2, "other": 1}


# -- the Manager API and the broker seam, without a network ---------------------------------------


class RecordingBroker:
    """A broker that records publishes and delivers locally."""

    def __init__(self) -> None:
        self.manager: Manager | None = None
        self.published: list[tuple[str | None, Any, list[WebSocket]]] = []
        self.closed = False

    def attach(self, manager: Manager) -> None:
        self.manager = manager

    def publish(self, room: str | None, data: Any, exclude: Any = ()) -> int:
        exclude = list(exclude)
        self.published.append((room, data, exclude))
        return 0 if self.manager is None else self.manager.broadcast_local(data, room, exclude=exclude)

    def close(self) -> None:
        self.closed = True


def test_publish_and_broadcast_go_through_the_broker() -> None:
    broker = RecordingBroker()
    assert isinstance(broker, Broker)
    manager = ThreadedManager(broker=broker)
    assert manager.broker is broker
    assert broker.manager is None  # attached when the manager starts (after a fork, in the worker)
    assert manager.broadcast("before start", "room") == 0  # the recording broker has no manager yet
    broker.published.clear()
    manager.start()
    try:
        assert broker.manager is manager
        assert manager.broadcast("hello", "room") == 0
        assert manager.broadcast(b"all") == 0
        assert [(room, data) for room, data, _ in broker.published] == [("room", "hello"), (None, b"all")]
    finally:
        manager.stop(1.0)
    assert broker.closed


def test_in_process_broker_attaches_once() -> None:
    broker = InProcessBroker()
    assert broker.publish("room", "nobody") == 0
    first, second = ThreadedManager(broker=broker), ThreadedManager(broker=broker)
    first.start()
    try:
        with pytest.raises(RuntimeError, match="already attached"):
            second.start()
    finally:
        first.stop(1.0)
        second.stop(1.0)


def test_manager_stops_its_broker_even_unstarted() -> None:
    broker = RecordingBroker()
    ThreadedManager(broker=broker).stop()
    assert broker.closed


def test_importing_the_package_does_not_import_redis() -> None:
    code = "import sys, ws4py_integrations, ws4py_integrations.redis_broker; print('redis' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"
