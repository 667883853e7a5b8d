"""The one runner for server processes: tests, the hardening tools and the fan-out benchmark use it.

:class:`ServerProcess` starts a server command (on 127.0.0.1, port 0 unless the
command needs a port chosen up front), learns the bound port from the line the
server prints once it listens, optionally polls a readiness probe, and stops the
process by its PID. Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Literal

from packaging.version import Version

__all__ = ["ROOT", "ServerProcess", "app_server", "echo_example", "free_port", "gunicorn_worker", "terminate"]

ROOT = Path(__file__).resolve().parents[2]

#: What ``python -m tests.support.serve`` prints once it accepts connections.
APP_READY = r"test app on (?P<host>\S+):(?P<port>\d+)"


def free_port() -> int:
    """A port that was free a moment ago (for servers that cannot report one bound to port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float) -> int:
    """End a process we started, by PID: SIGTERM, then SIGKILL if it outlives ``timeout``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout)
    return process.returncode


class ServerProcess:
    """One server process of our own.

    ``ready`` is a pattern matched against each line of ``ready_stream``; its
    ``port`` group (and ``host`` group, if any) tell where the server listens.
    Without ``ready``, ``port`` must be given. ``probe`` (if any) is polled
    after that until it returns true. Every line of ``ready_stream`` and the
    other stream go to ``log_path`` (or nowhere); the lines of ``ready_stream``
    after the ready line can be read with :meth:`read_line` (with ``stdin=True``,
    :meth:`send_line` writes to the process: a line protocol).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        ready: str | None = None,
        ready_stream: Literal["stdout", "stderr"] = "stdout",
        port: int = 0,
        probe: Callable[[ServerProcess], bool] | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        name: str | None = None,
    ) -> None:
        self.command = list(command)
        self.ready = re.compile(ready) if ready else None
        self.ready_stream = ready_stream
        self.probe = probe
        self.log_path = log_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.stdin = stdin
        self.name = name or Path(self.command[0]).name
        self.host = "127.0.0.1"
        self.port = port
        self.process: subprocess.Popen[str] | None = None
        #: The ready line's match (its other groups, e.g. a URL).
        self.ready_match: re.Match[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def url(self, path: str = "/rooms", scheme: str = "ws") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def start(self, timeout: float = 30.0) -> None:
        """Start it; return once it printed its ready line and ``probe`` succeeded."""
        assert self.process is None, "already running"
        assert self.ready is not None or self.port, "without a ready line, the port must be known"
        self._lines = queue.Queue()
        log: IO[str] | int = self.log_path.open("a") if self.log_path else subprocess.DEVNULL
        pipe = subprocess.PIPE
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdin=pipe if self.stdin else subprocess.DEVNULL,
            stdout=pipe if self.ready_stream == "stdout" else log,
            stderr=pipe if self.ready_stream == "stderr" else log,
            text=True,
        )
        if not isinstance(log, int):
            log.close()
        stream = self.process.stdout if self.ready_stream == "stdout" else self.process.stderr
        assert stream is not None
        # Keeps reading so the child never blocks on a full pipe.
        threading.Thread(target=self._pump, args=(stream,), name=f"{self.name}-output", daemon=True).start()
        deadline = time.monotonic() + timeout
        try:
            if self.ready is not None:
                self._wait_ready_line(deadline, timeout)
            while self.probe is not None and not self.probe(self):
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited at start ({self.process.returncode}); log: {self.log()[-4000:]}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} was not ready within {timeout}s; log: {self.log()[-4000:]}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def _wait_ready_line(self, deadline: float, timeout: float) -> None:
        assert self.ready is not None
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"{self.name} printed no ready line within {timeout}s; log: {self.log()[-4000:]}"
                ) from None
            if line is None:
                raise RuntimeError(f"{self.name} exited at start; log: {self.log()[-4000:]}")
            match = self.ready.search(line)
            if match:
                self.ready_match = match
                groups = match.groupdict()
                self.port = int(groups["port"]) if groups.get("port") else self.port
                self.host = groups.get("host") or self.host
                return

    def _pump(self, stream: IO[str]) -> None:
        log = self.log_path.open("a") if self.log_path else None
        try:
            for line in stream:
                if log is not None:
                    log.write(line)
                    log.flush()
                self._lines.put(line)
        except ValueError:
            pass  # the stream was closed under us by stop()
        finally:
            if log is not None:
                log.close()
            self._lines.put(None)

    def read_line(self, timeout: float) -> str:
        """The next line of ``ready_stream``; ``RuntimeError`` if the process ended."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name} printed nothing within {timeout}s") from None
        if line is None:
            self._lines.put(None)  # later readers learn it too
            raise RuntimeError(f"{self.name} exited ({self.process.poll() if self.process else None})")
        return line

    def send_line(self, text: str) -> None:
        assert self.process is not None and self.process.stdin is not None, "started without stdin=True"
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to our process, by PID."""
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        """Its exit status, waiting up to ``timeout``."""
        assert self.process is not None, "not started"
        return self.process.wait(timeout)

    def log(self) -> str:
        """What the process logged so far."""
        if self.log_path is None:
            return "(not logged)"
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM by PID (graceful: WebSockets get 1001), SIGKILL if it does not exit in time."""
        process, self.process = self.process, None
        if process is None:
            return None
        code = terminate(process, timeout)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return code

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def app_server(
    server: str,
    *,
    log_path: Path,
    redis_url: str | None = None,
    log_level: str = "INFO",
    extra_args: Sequence[str] = (),
) -> ServerProcess:
    """``python -m tests.support.serve``: the test app on ``server``, port 0 (rooms at ``/rooms``)."""
    command = [sys.executable, "-m", "tests.support.serve", "--server", server, "--port", "0"]
    command += ["--log-level", log_level, *(["--redis", redis_url] if redis_url else []), *extra_args]
    return ServerProcess(command, ready=APP_READY, log_path=log_path, name=f"test app on {server}")


def echo_example(
    server: str,
    *,
    tls: tuple[str, str] | None = None,
    log_path: Path | None = None,
    log_level: str = "INFO",
    args: Sequence[str] = (),
) -> ServerProcess:
    """``python -m examples.echo --server SERVER`` on port 0, exactly as users start it
    (``tls``: a ``(certfile, keyfile)`` pair for wss; ``args``: more options)."""
    command = [sys.executable, "-m", "examples.echo", "--server", server, "--port", "0", "--log-level", log_level]
    command += args
    if tls is not None:
        command += ["--tls", *tls]
    ready = rf"echo example on {server}.*://[^/\s]+:(?P<port>\d+)"
    return ServerProcess(command, ready=ready, log_path=log_path, name=f"echo example on {server}")


def _gunicorn_has_control_socket() -> bool:
    # gunicorn 25.1 added a control socket (one path per user: parallel runs
    # would fight over it); older releases have no flag to turn it off.
    try:
        release = Version(version("gunicorn")).release
    except PackageNotFoundError:
        return False
    return release >= (25, 1)


@contextmanager
def gunicorn_worker(
    *extra: str,
    context: ssl.SSLContext | None = None,
    worker: str = "ws4py_integrations.gevent.GunicornWorker",
    log_path: Path | None = None,
) -> Iterator[tuple[ServerProcess, int]]:
    """A real gunicorn (one ``worker``, GunicornWorker by default) on a free port, serving
    tests.support.gunicorn_app:app (``log_path``: where its log goes)."""
    command = [
        sys.executable, "-m", "gunicorn",
        "-k", worker,
        "-b", "127.0.0.1:0", "-w", "1", "--graceful-timeout", "20",
        *(["--no-control-socket"] if _gunicorn_has_control_socket() else []),
        *extra, "tests.support.gunicorn_app:app",
    ]  # fmt: skip
    # The worker is forked after "Listening at"; it may need a moment to import and start serving.
    proc = ServerProcess(
        command,
        ready=r"Listening at: https?://127\.0\.0\.1:(?P<port>\d+)",
        ready_stream="stderr",
        probe=lambda p: _accepts(p.port, context),
        log_path=log_path,
        name="gunicorn",
    )
    with proc:
        yield proc, proc.port


def _accepts(port: int, context: ssl.SSLContext | None) -> bool:
    scheme = "https" if context is not None else "http"
    try:
        with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/ping", timeout=2, context=context) as response:
            return bool(response.read() == b"plain GET /ping")
    except OSError:
        return False
