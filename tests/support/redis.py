"""A real ``redis-server`` for tests and benchmarks: on a free port, no persistence.

``RedisServer`` starts Debian's ``redis-server`` (``scripts/setup.sh --test``
installs it) on 127.0.0.1 and a free port with ``--save '' --appendonly no``,
waits until it answers, and stops it by PID. :meth:`RedisServer.restart`
stops it and starts it again on the same port (a Redis outage for the code
under test). :func:`require_redis_server` finds the binary: missing, it skips
the test, or fails it in CI (:func:`tests.support.in_ci`). The process is
run by :class:`tests.support.process.ServerProcess`.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.support import in_ci
from tests.support.process import ServerProcess, free_port

__all__ = ["RedisServer", "find_redis_server", "require_redis_server"]


def find_redis_server() -> str | None:
    """The ``redis-server`` executable, or ``None``."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_redis_server() -> str:
    """The ``redis-server`` executable; skips the test without it, fails it in CI."""
    found = find_redis_server()
    if found is None:
        message = "redis-server is not installed (scripts/setup.sh --test installs Debian's redis-server)"
        if in_ci():
            pytest.fail(message + "; CI must run the Redis tests", pytrace=False)
        pytest.skip(message)
    return found


class RedisServer:
    """One ``redis-server`` process of our own.

    Redis cannot report a port it bound to port 0, so the port is chosen up
    front (and kept across :meth:`restart`); readiness is a ``PING`` answered.
    """

    def __init__(self, executable: str, port: int | None = None) -> None:
        self.executable = executable
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self._dir = tempfile.mkdtemp(prefix="ws4py-redis-")
        self.process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it answers PING."""
        assert self.process is None, "already running"
        log = Path(self._dir, "redis.log")
        command = [self.executable, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        command += ["--dir", self._dir, "--logfile", str(log), "--daemonize", "no", "--protected-mode", "no"]
        # redis-server writes the log itself (--logfile); the runner quotes it in errors.
        process = ServerProcess(command, port=self.port, probe=lambda _: self.ping(), log_path=log, name="redis-server")
        process.start(timeout)
        self.process = process

    def ping(self) -> bool:
        """Whether it answers ``PING`` right now."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it by PID (SIGTERM, then SIGKILL) and wait until it is gone."""
        process, self.process = self.process, None
        if process is not None:
            process.stop(timeout)

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
