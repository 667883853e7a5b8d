"""A real ``redis-server`` for tests and benchmarks: on a free port, no persistence.

``RedisServer`` starts Debian's ``redis-server`` (``scripts/setup.sh --test``
installs it) on 127.0.0.1 and a free port with ``--save '' --appendonly no``,
waits until it answers, and stops it by PID. :meth:`RedisServer.restart`
stops it and starts it again on the same port (a Redis outage for the code
under test). :func:`require_redis_server` finds the binary: missing, it skips
the test, or fails it in CI (``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from scaleout.processes import terminate

__all__ = ["RedisServer", "find_redis_server", "in_ci", "require_redis_server"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process of our own."""

    def __init__(self, executable: str, port: int | None = None) -> None:
        self.executable = executable
        self.host = "127.0.0.1"
        self.port = port if port is not None else _free_port()
        self._dir = tempfile.mkdtemp(prefix="ws4py-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it answers PING."""
        assert self.process is None, "already running"
        log = Path(self._dir, "redis.log")
        command = [self.executable, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        command += ["--dir", self._dir, "--logfile", str(log), "--daemonize", "no", "--protected-mode", "no"]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                details = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                self.process = None
                raise RuntimeError(f"redis-server exited at start on port {self.port}:\n{details}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout}s")
            time.sleep(0.02)

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
        if process is None:
            return
        terminate(process, timeout)

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
