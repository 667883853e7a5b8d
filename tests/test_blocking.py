"""The blocking API on real servers: receive() and its timeout, backpressure,
the close that follows the function, the pool's bound, per-request handlers."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.servers import RunningServer, available, serve
from ws4py_integrations import (
    BlockingWebSocket,
    HandlerPool,
    Message,
    WebSocket,
    WebSocketMiddleware,
    WebSocketWSGIApplication,
    function_handler,
)
from ws4py_integrations.blocking import FunctionWebSocket, as_handler_class, default_pool
from ws4py_integrations.handshake import Reject

SERVERS = available()

#: What handlers saw: (path, what).
seen: queue.Queue[tuple[str, Any]] = queue.Queue()
#: Released by the tests; handlers wait on them.
hold_gate = threading.Event()
pool_gate = threading.Event()
POOL = HandlerPool(max_workers=1, max_pending=1, name="test-pool")
POOL2 = HandlerPool(max_workers=1, max_pending=1, name="test-pool2")


def expect(path: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"nothing seen on {path} within {timeout}s")
        try:
            got_path, what = seen.get(timeout=remaining)
        except queue.Empty:
            continue
        if got_path == path:
            return what


def timeouts(ws: BlockingWebSocket) -> None:
    started = time.monotonic()
    try:
        ws.receive(timeout=0.2)
    except TimeoutError:
        ws.send(f"timeout after {time.monotonic() - started:.1f}")
    count = 0
    for message in ws:
        count += 1
        ws.send(message)
    # After the close: None at once, every time.
    started = time.monotonic()
    after = [ws.receive(), ws.receive(timeout=5), list(ws)]
    seen.put(("/timeouts", (count, ws.closed, ws.close_code, ws.close_reason, after, time.monotonic() - started)))


def returns(ws: BlockingWebSocket) -> None:
    ws.send("bye")


def raises(ws: BlockingWebSocket) -> None:
    message = ws.receive()
    raise ValueError(f"handler failed on {message!r}")


def hold(ws: BlockingWebSocket) -> None:
    seen.put(("/hold", ws))
    hold_gate.wait(20)
    got = [ws.receive(timeout=10) for _ in range(200)]
    ws.send(f"got:{len(got)}:{got == [str(n) * 4096 for n in range(200)]}")
    ws.receive()


def api(ws: BlockingWebSocket) -> None:
    ws.ping(b"are you there")
    ws.join("lobby")
    rooms = sorted(ws.rooms)
    ws.leave("lobby")
    ws.send(f"{ws.subprotocol} {rooms} {sorted(ws.rooms)} {ws.closed} {ws.close_code} {repr(ws).split()[0]}")
    ws.close(4003, "bye")
    seen.put(("/api", (ws.closed, ws.receive(timeout=10), ws.close_code, ws.close_reason)))


def quick(ws: BlockingWebSocket) -> None:
    seen.put(("/quick", ws.websocket))
    ws.receive()


def late(ws: BlockingWebSocket) -> None:
    assert ws.receive() is None
    ws.send("too late")  # raises WebSocketClosed: the function just ends


def pooled(ws: BlockingWebSocket) -> None:
    seen.put(("/pool", ws.environ.get("QUERY_STRING")))
    pool_gate.wait(20)
    for message in ws:
        ws.send(message)


def custom(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A 'framework view': the handler is chosen per request, from the query string."""
    endpoint: WebSocketWSGIApplication = custom_endpoint
    result = endpoint.check(environ)
    if isinstance(result, Reject):
        start_response(result.status_line, result.wsgi_headers())
        return [result.body]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    name = query.get("name", ["nobody"])[0]

    def greet(ws: BlockingWebSocket) -> None:
        ws.send(f"hello {name} on {threading.current_thread().name.rsplit('-', 1)[0]}")
        for message in ws:
            ws.send(message)

    class Greeter(WebSocket):
        def opened(self) -> None:
            self.send(f"class hello {name}")

    endpoint.upgrade(environ, result, handler=Greeter if "class" in query else greet)
    start_response("101 Switching Protocols", [])
    return []


custom_endpoint = WebSocketWSGIApplication(returns, pool=HandlerPool(4, 4, name="custom-pool"))


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("PATH_INFO") == "/custom":
        return custom(environ, start_response)
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


def make_app() -> WebSocketMiddleware:
    return WebSocketMiddleware(
        plain,
        {
            "/timeouts": timeouts,
            "/returns": returns,
            "/raises": raises,
            "/hold": WebSocketWSGIApplication(hold, max_queue=4, compression=False),
            "/pool": WebSocketWSGIApplication(pooled, pool=POOL),
            "/pool2": WebSocketWSGIApplication(pooled, pool=POOL2),
            "/api": WebSocketWSGIApplication(api, protocols=["chat"]),
            "/quick": WebSocketWSGIApplication(quick, max_queue=2, close_timeout=5, compression=False),
            "/late": late,
            "/nofunction": FunctionWebSocket,
        },
    )


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve(request.param, make_app()) as running:
        yield running


def client(server: RunningServer, path: str) -> ClientConnection:
    return connect(server.ws_url(path), open_timeout=10, close_timeout=10)


def test_receive_timeout_iteration_and_receive_after_close(server: RunningServer) -> None:
    with client(server, "/timeouts") as ws:
        assert ws.recv(timeout=10) == "timeout after 0.2"
        for message in ["a", b"b", ""]:
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.close(4000, "done")
    count, closed, code, reason, after, elapsed = expect("/timeouts")
    assert (count, closed, code, reason) == (3, True, 4000, "done")
    assert after == [None, None, []]
    assert elapsed < 1.0


def test_returning_closes_with_1000(server: RunningServer) -> None:
    with client(server, "/returns") as ws:
        assert ws.recv(timeout=10) == "bye"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000


def test_raising_closes_with_1011_and_logs_the_traceback(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="ws4py_integrations.blocking"):
        with client(server, "/raises") as ws:
            ws.send("boom")
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        deadline = time.monotonic() + 10
        while not [r for r in caplog.records if r.name == "ws4py_integrations.blocking"]:
            assert time.monotonic() < deadline, "no log record"
            time.sleep(0.01)
    record = next(r for r in caplog.records if r.name == "ws4py_integrations.blocking")
    assert record.levelno == logging.ERROR
    assert "raises" in record.getMessage() and "1011" in record.getMessage()
    assert record.exc_info is not None and "handler failed on 'boom'" in str(record.exc_info[1])
    with client(server, "/returns") as ws:  # the server goes on
        assert ws.recv(timeout=10) == "bye"


def test_a_handler_that_does_not_receive_stops_the_reading(server: RunningServer) -> None:
    hold_gate.clear()
    with client(server, "/hold") as ws:
        blocking: BlockingWebSocket = expect("/hold")
        conn = blocking.websocket._connection
        messages = [str(n) * 4096 for n in range(200)]
        total = sum(len(m) for m in messages)
        sender = threading.Thread(target=lambda: [ws.send(m) for m in messages], daemon=True)
        sender.start()
        deadline = time.monotonic() + 10
        while not conn.reading_paused:
            assert time.monotonic() < deadline, "reading never paused"
            time.sleep(0.01)
        time.sleep(0.2)  # whatever still comes in would show up below
        assert conn.reading_paused
        assert blocking.websocket._mailbox.qsize() <= 4
        # What was read is a few messages and one receive buffer at most.
        assert conn.bytes_in < total // 2
        hold_gate.set()
        assert ws.recv(timeout=20) == "got:200:True"
        sender.join(10)
        assert not sender.is_alive()


def test_pool_queues_then_refuses_with_1013(server: RunningServer) -> None:
    pool_gate.clear()
    with client(server, "/pool?first") as first:
        assert expect("/pool") == "first"
        with client(server, "/pool?second") as second:
            # 101, but its handler waits for the one worker; its messages wait too.
            second.send("queued")
            deadline = time.monotonic() + 10
            while POOL.pending != 1:
                assert time.monotonic() < deadline, "the second handler was not queued"
                time.sleep(0.01)
            assert POOL.running == 1
            with client(server, "/pool?third") as third:
                with pytest.raises(ConnectionClosed) as info:
                    third.recv(timeout=10)
                assert info.value.rcvd is not None
                assert (info.value.rcvd.code, info.value.rcvd.reason) == (1013, "server busy, try again later")
            pool_gate.set()
            first.send("one")
            assert first.recv(timeout=10) == "one"
            first.close()
            # The worker is free: the second handler starts, and gets its message.
            assert expect("/pool") == "second"
            assert second.recv(timeout=10) == "queued"
    deadline = time.monotonic() + 10
    while POOL.running or POOL.pending:
        assert time.monotonic() < deadline, "the pool did not empty"
        time.sleep(0.01)


def test_everything_the_function_can_call(server: RunningServer) -> None:
    with connect(server.ws_url("/api"), open_timeout=10, subprotocols=["chat"]) as ws:  # type: ignore[list-item]
        assert ws.recv(timeout=10) == "chat ['lobby'] [] False None <BlockingWebSocket"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and (info.value.rcvd.code, info.value.rcvd.reason) == (4003, "bye")
    # After its own close(): closed at once; receive() waits for the end of the handshake, then None.
    closed, message, code, reason = expect("/api")
    assert (closed, message, code, reason) == (True, None, 4003, "bye")


def test_returning_while_messages_keep_coming_still_closes_cleanly(server: RunningServer) -> None:
    with client(server, "/quick") as ws:
        websocket: WebSocket = expect("/quick")
        started = time.monotonic()
        with contextlib.suppress(ConnectionClosed):  # the server may close while we send
            for n in range(50):  # more than max_queue: reading pauses until the function ends
                ws.send(f"m{n}")
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1000
    # The server read the client's answer to its close (messages left were dropped,
    # reading resumed): no waiting for close_timeout (5 s).
    while websocket.close_code is None:
        assert time.monotonic() - started < 3, "the closing handshake did not complete"
        time.sleep(0.01)
    assert time.monotonic() - started < 3, "the closing handshake waited for close_timeout"
    assert websocket.close_code == 1000


def test_sending_after_the_close_ends_the_function_quietly(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="ws4py_integrations.blocking"):
        with client(server, "/late") as ws:
            ws.close()
        deadline = time.monotonic() + 10
        while not any("closed while sending" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the function did not end"
            time.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("ws4py")]


def test_a_function_websocket_without_a_function_closes_with_1011(server: RunningServer) -> None:
    with client(server, "/nofunction") as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


def test_a_connection_gone_before_its_function_starts(server: RunningServer) -> None:
    pool_gate.clear()
    with client(server, "/pool2?first") as first:
        assert expect("/pool") == "first"
        with client(server, "/pool2?second"):
            deadline = time.monotonic() + 10
            while POOL2.pending != 1:
                assert time.monotonic() < deadline, "the second function was not queued"
                time.sleep(0.01)
        # Gone, server side too, while its function waited for the worker.
        assert server.manager is not None
        deadline = time.monotonic() + 10
        while any(ws.environ.get("QUERY_STRING") == "second" for ws in server.manager.websockets):
            assert time.monotonic() < deadline, "the server kept the second connection"
            time.sleep(0.01)
        pool_gate.set()
        first.close()
    deadline = time.monotonic() + 10
    while POOL2.running or POOL2.pending:
        assert time.monotonic() < deadline, "the pool did not empty"
        time.sleep(0.01)
    with pytest.raises(TimeoutError):
        expect("/pool", timeout=0.2)  # the second function never ran


@pytest.mark.parametrize("kind", ["function", "class"])
def test_per_request_handler(server: RunningServer, kind: str) -> None:
    query = "name=ada" + ("&class" if kind == "class" else "")
    with client(server, f"/custom?{query}") as ws:
        if kind == "class":
            assert ws.recv(timeout=10) == "class hello ada"
        else:
            assert ws.recv(timeout=10) == "hello ada on custom-pool"
            ws.send("again")
            assert ws.recv(timeout=10) == "again"


@pytest.mark.skipif("gevent" not in SERVERS, reason="gevent is not installed")
def test_greenlet_handlers() -> None:
    from tests.support.servers import gevent as gevent_server

    with gevent_server.serve(make_app(), handlers="greenlets") as running:
        with client(running, "/timeouts") as ws:
            assert ws.recv(timeout=10) == "timeout after 0.2"
            ws.send("over a greenlet")
            assert ws.recv(timeout=10) == "over a greenlet"
        count, closed, code, _, after, elapsed = expect("/timeouts")
        assert (count, closed, code, after) == (1, True, 1000, [None, None, []])
        assert elapsed < 1.0
        with client(running, "/raises") as ws:
            ws.send("boom")
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011


# -- no server needed -------------------------------------------------------------------


def test_handlers_are_classes_or_functions() -> None:
    assert as_handler_class(WebSocket) is WebSocket
    cls = as_handler_class(returns)
    assert issubclass(cls, FunctionWebSocket) and cls.handler is returns and cls.pool is None
    assert function_handler(returns, pool=POOL).pool is POOL
    assert WebSocketWSGIApplication(handler_cls=returns).handler_cls.handler is returns  # type: ignore[attr-defined]
    for bad in (object, 42):
        with pytest.raises(TypeError, match="WebSocket subclass or a function"):
            WebSocketWSGIApplication(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a function"):
        function_handler(WebSocket)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        custom_endpoint.upgrade({}, None, handler=42)  # type: ignore[arg-type]


def test_pool_frees_the_slot_of_a_job_killed_by_a_base_exception() -> None:
    pool = HandlerPool(1, 0)
    assert pool.submit(lambda: None)  # a thread runs it and ends
    deadline = time.monotonic() + 10
    while pool.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    def killed() -> None:
        raise KeyboardInterrupt

    pool._running = 1  # as submit() counts the job _work then runs
    with pytest.raises(KeyboardInterrupt):
        pool._work(killed, None)
    assert pool.running == 0


def test_pool_hands_a_waiting_greenlet_job_to_its_own_kind_of_worker() -> None:
    pool = HandlerPool(1, 1)
    release, done = threading.Event(), threading.Event()
    spawned: list[str] = []

    def spawn(func: Any, *args: Any) -> None:
        # What GeventManager._spawn does, on a thread instead of a hub.
        spawned.append(threading.current_thread().name)
        threading.Thread(target=func, args=args).start()

    assert pool.submit(lambda: release.wait(10))
    assert pool.submit(done.set, spawn)
    assert (pool.running, pool.pending) == (1, 1)
    assert not pool.submit(done.set, spawn)  # full
    release.set()
    assert done.wait(10)
    assert len(spawned) == 1 and spawned[0].startswith("ws4py-handler")


def test_pool_settings() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        HandlerPool(max_workers=0)
    with pytest.raises(ValueError, match="max_pending"):
        HandlerPool(max_pending=-1)
    pool = default_pool()
    assert pool is default_pool()
    assert (pool.max_workers, pool.max_pending) == (100, 100)


def test_message_type_is_the_callback_one() -> None:
    # receive() hands out Message.data: str for text, bytes for binary.
    assert Message("x").data == "x" and Message(b"x").data == b"x"


# -- the echo example in the blocking style, as users start it ---------------------------


@pytest.mark.parametrize("server_name", SERVERS)
def test_echo_example_blocking_style(server_name: str) -> None:
    from tests.support.process import echo_example

    with echo_example(server_name, args=["--style", "blocking"]) as process:
        url = process.url("/ws")
        with connect(url, open_timeout=10) as ws:
            ws.send("hello")
            assert ws.recv(timeout=10) == "hello"
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=10) == b"\x00\x01"
        broadcast = process.url("/broadcast")
        with connect(broadcast, open_timeout=10) as one:
            one.send("a")
            assert one.recv(timeout=10) == "a"
            with connect(broadcast, open_timeout=10) as two:
                two.send("b")
                assert two.recv(timeout=10) == "b"
                assert one.recv(timeout=10) == "b"
                one.send("c")
                assert (one.recv(timeout=10), two.recv(timeout=10)) == ("c", "c")


@pytest.mark.parametrize(
    ("module", "missing", "hint"),
    [("flask", "flask", "Flask"), ("bottle", "bottle", "bottle"), ("pyramid", "pyramid", "pyramid")],
)
def test_a_missing_framework_says_what_to_install(module: str, missing: str, hint: str) -> None:
    import subprocess
    import sys

    from tests.support.process import ROOT

    code = (
        f"import sys\nsys.modules[{missing!r}] = None\n"
        f"try:\n    import ws4py_integrations.{module}\n"
        "except ImportError as exc:\n    print(exc)\n"
        "else:\n    print('no error')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert f"ws4py_integrations.{module} needs {hint}, which is not installed: pip install {hint}" in result.stdout
