"""Rooms across processes through a real ``redis-server``.

Two server processes (wsgiref + wsgiref, and wsgiref + gevent) run the
test app (``python -m tests.support.serve``, rooms at ``/rooms``) with a ``RedisBroker`` on a Redis of our
own; independent clients of both share rooms. Redis is restarted mid-test to
check that delivery resumes. Without ``redis-server`` these tests skip, or
fail in CI (``CI=true``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedOK

from tests.support.process import ServerProcess, app_server
from tests.support.redis import RedisServer, require_redis_server
from tests.test_rooms import SCENARIOS, Peer, peers, sync_all
from ws4py_integrations import ThreadedManager
from ws4py_integrations.broker import Broker, BrokerUnavailable
from ws4py_integrations.redis_broker import RedisBroker, _glob_escape, _redact, decode_payload, encode_payload, publish

TIMEOUT = 20.0


def _gevent_importable() -> bool:
    # In a child: importing the gevent adapter here could disturb this process.
    code = "import ws4py_integrations.gevent"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0


PAIRS = [
    pytest.param(("wsgiref", "wsgiref"), id="wsgiref+wsgiref"),
    pytest.param(("wsgiref", "gevent"), id="wsgiref+gevent"),
]


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(require_redis_server()) as server:
        yield server


class Cluster:
    def __init__(self, redis: RedisServer, a: ServerProcess, b: ServerProcess, prefix: str) -> None:
        self.redis = redis
        self.a = a
        self.b = b
        self.prefix = prefix

    def broker(self, **options: object) -> RedisBroker:
        """A publish-only broker on the cluster's Redis and prefix."""
        return RedisBroker.from_url(self.redis.url, prefix=self.prefix, **options)

    def wait_subscribed(self, processes: int = 2) -> None:
        wait_subscribed(self.redis.url, self.prefix, processes)


def wait_subscribed(url: str, prefix: str, processes: int, timeout: float = TIMEOUT) -> None:
    """Wait until ``processes`` brokers receive a publish (Redis' PUBLISH reply counts them)."""
    deadline = time.monotonic() + timeout
    with RedisBroker.from_url(url, prefix=prefix) as probe:
        while True:
            try:
                if probe.publish_remote("__probe__", "") >= processes:
                    return
            except BrokerUnavailable:
                pass
            assert time.monotonic() < deadline, f"fewer than {processes} processes subscribed within {timeout}s"
            time.sleep(0.05)


@pytest.fixture(scope="module", params=PAIRS)
def cluster(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    first, second = request.param
    if "gevent" in (first, second) and not _gevent_importable():
        pytest.skip("ws4py_integrations.gevent is not importable here (the gevent adapter is not installed or built)")
    prefix = f"test-{first}-{second}:"
    logs = tmp_path_factory.mktemp(f"{first}-{second}")
    options = ["--prefix", prefix, "--max-reconnect-delay", "0.5"]
    a = app_server(first, redis_url=redis_server.url, log_path=logs / "a.log", extra_args=options)
    b = app_server(second, redis_url=redis_server.url, log_path=logs / "b.log", extra_args=options)
    with a, b:
        running = Cluster(redis_server, a, b, prefix)
        running.wait_subscribed()
        yield running


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__.removeprefix("check_"))
def test_rooms_span_processes(cluster: Cluster, scenario: Callable[[str, str], None]) -> None:
    scenario(cluster.a.url(), cluster.b.url())


def test_status_reports_the_redis_broker(cluster: Cluster) -> None:
    with peers() as make:
        a, b = make(cluster.a.url()), make(cluster.b.url())
        status_a, status_b = a.ask("status"), b.ask("status")
        assert '"broker": "RedisBroker"' in status_a and '"broker": "RedisBroker"' in status_b
        assert status_a != status_b  # two processes (different pids)


def test_publish_only_process_reaches_every_process(cluster: Cluster) -> None:
    """This test process holds no WebSocket: it publishes like a cron job would."""
    with peers() as make:
        a1, b1, a2 = make(cluster.a.url()), make(cluster.b.url()), make(cluster.a.url())
        a1.join("news")
        b1.join("news")
        with cluster.broker() as broker:
            assert broker.publish("news", "from cron") == 0  # no local members: none here
            a1.expect("from cron")
            b1.expect("from cron")
            assert broker.publish_remote("news", ["frag", "ments"]) == 2  # both processes
            a1.expect("fragments")
            b1.expect("fragments")
        assert publish(cluster.redis.url, "news", b"\x00binary", prefix=cluster.prefix) == 2
        for peer in (a1, b1):
            got = peer.recv()
            assert isinstance(got, bytes) and got == b"\x00binary"
        publish(cluster.redis.url, None, "to everyone", prefix=cluster.prefix)
        for peer in (a1, b1, a2):
            peer.expect("to everyone")  # a2, outside the room, got nothing before


def test_another_prefix_is_another_namespace(cluster: Cluster) -> None:
    with peers() as make:
        a1, b1 = make(cluster.a.url()), make(cluster.b.url())
        a1.join("ns")
        b1.join("ns")
        assert publish(cluster.redis.url, "ns", "elsewhere", prefix="another-app:") == 0
        sync_all(a1, [a1, b1], "sync")


def test_redis_restart_mid_test(cluster: Cluster) -> None:
    """Redis goes away: publishing fails clearly, local members still get messages,
    the servers log it and reconnect; once Redis is back, delivery resumes."""
    with peers() as make:
        a1, a2, b1 = make(cluster.a.url()), make(cluster.a.url()), make(cluster.b.url())
        for peer in (a1, a2, b1):
            peer.join("live")
        a1.send("pub:live:before")
        for peer in (a1, a2, b1):
            peer.expect("before")

        cluster.redis.stop()

        # A publish-only process gets an exception, at once.
        started = time.monotonic()
        with cluster.broker() as broker, pytest.raises(BrokerUnavailable, match="cannot publish"):
            broker.publish("live", "lost")
        assert time.monotonic() - started < 5.0

        # In a server: members of this process get it, then the handler sees the error.
        a1.send("pub:live:during")
        a1.expect("during")
        error = a1.recv()
        assert isinstance(error, str) and error.startswith("error:BrokerUnavailable:"), error
        a2.expect("during")

        cluster.redis.start()  # same port
        cluster.wait_subscribed()

        b1.send("pub:live:after, from B")
        a1.send("pub:live:after, from A")
        for peer in (a1, a2, b1):
            got = {peer.recv(), peer.recv()}
            assert got == {"after, from B", "after, from A"}, f"lost or extra messages: {got}"
        # b1 never got "during" (at most once: it was published while Redis was down).
        sync_all(a1, [a1, a2, b1], "sync")

    for process in (cluster.a, cluster.b):
        log = process.log()
        assert "lost Redis" in log, log
        assert "is back" in log, log


# -- the broker in this process ----------------------------------------------------------------


def test_attached_broker_delivers_to_its_manager_and_skips_its_own(redis_server: RedisServer) -> None:
    broker = RedisBroker.from_url(redis_server.url, prefix="unit-attached:")
    assert isinstance(broker, Broker)
    manager = ThreadedManager(broker=broker)
    manager.start()
    try:
        assert broker.wait_connected(TIMEOUT)
        assert broker.connected
        # Own publishes come back from Redis and are skipped; nobody is here anyway.
        assert manager.broadcast("x", "room") == 0
        assert broker.publish_remote("room", "y") == 1
    finally:
        manager.stop(1.0)
    assert not broker.connected
    with pytest.raises(BrokerUnavailable, match="closed"):
        broker.publish("room", "after close")


def test_raise_errors_false_logs_once_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    dead = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    broker = RedisBroker.from_url(dead, raise_errors=False, reconnect_delay=0.05, max_reconnect_delay=0.1)
    manager = ThreadedManager(broker=broker)
    with caplog.at_level(logging.INFO, logger="ws4py_integrations.redis_broker"):
        manager.start()
        try:
            assert manager.broadcast("one", "room") == 0
            assert manager.broadcast("two") == 0
            assert broker.dropped == 2
            deadline = time.monotonic() + TIMEOUT
            while not any("lost Redis" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the subscriber never logged the outage"
                time.sleep(0.02)
        finally:
            manager.stop(1.0)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "dropping messages" in errors[0].getMessage()
    assert not broker.wait_connected(0)


def test_publish_helper_fails_clearly_without_redis() -> None:
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:9"):
        publish("redis://127.0.0.1:9/0", "room", "nobody")


def test_wire_format() -> None:
    origin = bytes(range(16))
    assert encode_payload(origin, "héllo") == b"t" + origin + "héllo".encode()
    assert encode_payload(origin, b"\x00") == b"b" + origin + b"\x00"
    assert encode_payload(origin, ["a", "b"]) == b"t" + origin + b"ab"
    assert encode_payload(origin, [b"a", b"b"]) == b"b" + origin + b"ab"
    assert decode_payload(b"t" + origin + b"hi") == (origin, "hi")
    assert decode_payload(b"b" + origin + b"hi") == (origin, b"hi")
    assert decode_payload(b"t" + origin) == (origin, "")
    for bad in (b"t" + origin[:5], b"x" + origin + b"hi", b"t" + origin + b"\xff"):
        with pytest.raises(ValueError):
            decode_payload(bad)
    with pytest.raises(TypeError):
        encode_payload(origin, ["a", b"b"])
    with pytest.raises(ValueError):
        encode_payload(origin, [])


def test_channels_and_redaction() -> None:
    broker = RedisBroker.from_url("redis://user:secret@127.0.0.1:9/0", prefix="app[1]*:")
    try:
        assert broker.channel("lobby") == b"app[1]*:room:lobby"
        assert broker.channel(None) == b"app[1]*:all"
        assert _glob_escape("app[1]*:") == "app\\[1\\]\\*:"
        assert "secret" not in repr(broker)
        assert _redact("redis://user:secret@host:1/0") == "redis://user:***@host:1/0"
        assert _redact("redis://host:1/0") == "redis://host:1/0"
    finally:
        broker.close()


def test_missing_redis_server_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.support.redis as helper

    monkeypatch.setattr(helper, "find_redis_server", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the Redis tests"):
        helper.require_redis_server()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        helper.require_redis_server()


# -- the documented gunicorn deployment ------------------------------------------------------------


def test_gunicorn_workers_share_rooms(redis_server: RedisServer, tmp_path: Path) -> None:
    """Two gevent workers under gunicorn, each with a Redis broker set in ``post_worker_init``."""
    if importlib.util.find_spec("gunicorn") is None or not _gevent_importable():
        pytest.skip("gunicorn or ws4py_integrations.gevent is not installed")
    prefix = "test-gunicorn:"
    command = [sys.executable, "-m", "gunicorn", "-c", "tests/support/gunicorn_conf.py", "-b", "127.0.0.1:0"]
    process = ServerProcess(
        [*command, "tests.support.gunicorn_app:app"],
        ready=r"Listening at: http://127\.0\.0\.1:(?P<port>\d+)",
        ready_stream="stderr",
        log_path=tmp_path / "gunicorn.log",
        env={"REDIS_URL": redis_server.url, "WS4PY_PREFIX": prefix, "WEB_CONCURRENCY": "2"},
        name="gunicorn",
    )
    with process:
        url = process.url("/rooms")
        with peers() as make:
            by_pid: dict[int, Peer] = {}
            for _ in range(200):
                peer = make(url)
                pid = json.loads(peer.ask("status").removeprefix("status:"))["pid"]
                by_pid.setdefault(pid, peer)
                if len(by_pid) == 2:
                    break
            assert len(by_pid) == 2, "every connection went to the same worker"
            first, second = by_pid.values()
            first.join("g")
            second.join("g")
            wait_subscribed(redis_server.url, prefix, 2)
            first.send("pub:g:across workers")
            first.expect("across workers")
            second.expect("across workers")
            process.signal(signal.SIGTERM)  # graceful: the workers' managers close with 1001
            for peer in (first, second):
                with pytest.raises(ConnectionClosedOK):
                    peer.recv()
                assert peer.ws.close_code == 1001
        process.wait(20)
