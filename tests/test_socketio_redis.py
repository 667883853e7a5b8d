"""Socket.IO rooms across processes through a real redis-server.

Two servers, each with its own broker (a broker skips only what it
published itself, so two brokers are two processes to each other), and an
emitter in a separate process with no clients at all.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.redis import RedisServer, require_redis_server
from tests.support.socketio import TIMEOUT, FakeEngine
from ws4py_integrations.socketio import Emitter, Server, redis_broker


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with RedisServer(require_redis_server()) as server:
        yield server.url


def _server(url: str) -> Server:
    broker = redis_broker(url)
    sio = Server(namespaces=["/chat"], broker=broker)
    assert broker.wait_connected(TIMEOUT)
    return sio


def test_room_emit_reaches_every_process(redis_url: str) -> None:
    one, two = _server(redis_url), _server(redis_url)
    a, b, c = FakeEngine(one), FakeEngine(two), FakeEngine(two)
    sa, sb = a.connect("/chat"), b.connect("/chat")
    c.connect("/chat")
    one.enter_room(sa, "r")
    two.enter_room(sb, "r")
    one.emit("news", {"n": 1}, to="r", namespace="/chat")
    assert a.recv() == '2/chat,["news",{"n":1}]'
    assert b.recv() == '2/chat,["news",{"n":1}]'
    c.nothing(0.3)
    # a broadcast, skipping a client of the other process; binary survives the trip
    two.emit("all", b"\x00\xff", namespace="/chat", skip_sid=sa)
    for e in (b, c):
        assert e.recv() == '51-/chat,["all",{"_placeholder":true,"num":0}]'
        assert e.recv() == b"\x00\xff"
    a.nothing(0.3)
    # a sid is a room too: emit to a client of the other process
    one.emit("direct", to=sb, namespace="/chat")
    assert b.recv() == '2/chat,["direct"]'
    one.close()
    two.close()


def test_a_process_without_clients_emits(redis_url: str) -> None:
    sio = _server(redis_url)
    eio = FakeEngine(sio)
    sid = eio.connect("/chat")
    sio.enter_room(sid, "readers")
    code = (
        "from ws4py_integrations.socketio import RedisEmitter\n"
        f"with RedisEmitter({redis_url!r}) as emitter:\n"
        "    emitter.emit('news', ('a', 2), room='readers', namespace='/chat')\n"
        "    emitter.send('hi', room='readers', namespace='/chat')\n"
        "    emitter.emit('news', 'not you', room='others', namespace='/chat')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert eio.recv() == '2/chat,["news","a",2]'
    assert eio.recv() == '2/chat,["message","hi"]'
    eio.nothing(0.3)
    assert isinstance(sio.emitter(), Emitter)
    sio.close()


def test_two_chat_processes_share_rooms(redis_url: str) -> None:
    """Two real server processes on one Redis: a message said in one reaches the other."""
    import socketio

    from tests.support.process import ServerProcess

    def chat(server: str) -> ServerProcess:
        command = [sys.executable, "-m", "examples.chat_socketio", "--server", server, "--port", "0"]
        command += ["--redis", redis_url, "--log-level", "WARNING"]
        return ServerProcess(command, ready=r"open http://[^:]+:(?P<port>\d+)/", name=f"chat_socketio on {server}")

    with chat("wsgiref") as one, chat("cherrypy") as two:
        said: list[Any] = []
        heard = threading.Event()
        alice, bob = socketio.Client(), socketio.Client()

        @bob.on("said")
        def on_said(message: Any) -> None:
            said.append(message)
            heard.set()

        alice.connect(f"http://127.0.0.1:{one.port}", auth={"nick": "alice"}, wait_timeout=TIMEOUT)
        bob.connect(f"http://127.0.0.1:{two.port}", auth={"nick": "bob"}, wait_timeout=TIMEOUT)
        try:
            # the subscriber of each process is up once its server printed its URL;
            # retry the first message a few times in case one is still subscribing
            for _ in range(20):
                assert alice.call("say", "across", timeout=TIMEOUT)["delivered"] is True
                if heard.wait(0.5):
                    break
            assert said[0] == {"nick": "alice", "text": "across", "room": "lobby"}
        finally:
            alice.disconnect()
            bob.disconnect()
