"""Run :mod:`scaleout.app` as a server process on a free port; stop it by PID."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["ServerProcess"]

ROOT = Path(__file__).resolve().parent.parent
_READY = re.compile(r"scaleout app on (\S+):(\d+)")


def terminate(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float) -> None:
    """End a process we started, by PID: SIGTERM, then SIGKILL if it outlives ``timeout``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)


class ServerProcess:
    """``python -m scaleout.serve`` on 127.0.0.1 port 0; its log goes to ``log_path``."""

    def __init__(
        self,
        server: str,
        *,
        redis_url: str | None = None,
        log_path: Path,
        extra_args: list[str] | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.server = server
        self.redis_url = redis_url
        self.log_path = log_path
        self.extra_args = extra_args or []
        self.log_level = log_level
        self.process: subprocess.Popen[str] | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def url(self, path: str = "/rooms") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait for its ready line (it prints it once it accepts connections)."""
        command = [sys.executable, "-m", "scaleout.serve", "--server", self.server, "--port", "0"]
        command += ["--log-level", self.log_level]
        if self.redis_url:
            command += ["--redis", self.redis_url]
        command += self.extra_args
        log = self.log_path.open("a")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, env=env
        )
        log.close()
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = self.process.stdout
        assert stdout is not None

        def reader() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, name=f"scaleout-{self.server}-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                self.stop()
                raise TimeoutError(
                    f"{self.server} server printed no ready line within {timeout}s; log: {self.log()}"
                ) from None
            if line is None:
                self.stop()
                raise RuntimeError(f"{self.server} server exited at start; log: {self.log()}")
            match = _READY.search(line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return

    def log(self) -> str:
        """What the process logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID (graceful: WebSockets get 1001), SIGKILL if it does not exit in time."""
        process, self.process = self.process, None
        if process is None:
            return
        terminate(process, timeout)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
