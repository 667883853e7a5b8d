"""A server adapter running the hardening app in a process of its own.

``python -m hardening.serverproc --server NAME`` prints one JSON line
``{"port": ..., "pid": ...}`` once it accepts connections, then answers one
JSON line per JSON command read on standard input:

- ``{"cmd": "figures"}``: RSS, fds, threads, greenlets, open connections and
  live ``Connection``/``WebSocket`` objects;
- ``{"cmd": "broadcast", "text": ...}``: broadcast on every manager; ``{"sent": n}``;
- ``{"cmd": "stop"}``: stop the server (WebSockets get 1001), answer
  ``{"stop_seconds": ...}`` with the figures after, and exit.

:class:`ServerProcess` drives it from asyncio code. Measuring the server in
its own process keeps the clients' memory, fds and CPU out of its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from typing import Any

__all__ = ["ServerProcess", "main"]


def _managers(running: Any) -> list[Any]:
    from hardening import app

    found = {id(m): m for m in app.managers.values()}
    if running.manager is not None:
        found.setdefault(id(running.manager), running.manager)
    return list(found.values())


def _figures(running: Any) -> dict[str, Any]:
    from hardening.metrics import count_objects, process_figures

    figures: dict[str, Any] = dict(process_figures())
    managers = _managers(running)
    figures["connections"] = sum(len(m) for m in managers)
    figures["registered"] = sum(len(m._snapshot()) for m in managers)
    figures.update(count_objects("Connection", "Hostile"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="wsgiref")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--option", action="append", default=[], help="NAME=VALUE (a number or None) for every endpoint"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    for item in args.option:
        name, _, value = item.partition("=")
        overrides[name] = None if value == "None" else float(value)
    logging.basicConfig(level=args.log_level, format="server %(levelname)s %(name)s: %(message)s")

    from hardening import app
    from hardening.app import make_app
    from hardening.metrics import raise_fd_limit
    from tests.servers import serve

    raise_fd_limit()
    app.record_events = False  # nobody reads them here; they would keep every handler alive
    out = sys.stdout
    with serve(args.server, make_app(**overrides)) as running:
        out.write(json.dumps({"port": running.port, "pid": os.getpid(), "server": args.server}) + "\n")
        out.flush()
        for line in sys.stdin:
            command = json.loads(line)
            reply: dict[str, Any]
            if command["cmd"] == "figures":
                reply = _figures(running)
            elif command["cmd"] == "broadcast":
                reply = {"sent": sum(m.broadcast(command["text"]) for m in _managers(running))}
            elif command["cmd"] == "stop":
                started = time.monotonic()
                running.stop()
                reply = {"stop_seconds": time.monotonic() - started, **_figures(running)}
                out.write(json.dumps(reply) + "\n")
                out.flush()
                break
            else:
                reply = {"error": f"unknown command {command['cmd']!r}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    return 0


class ServerProcess:
    """Start and drive ``hardening.serverproc`` from asyncio code."""

    def __init__(
        self,
        server: str,
        *,
        log_level: str = "WARNING",
        log_path: str | None = None,
        options: dict[str, float | None] | None = None,
    ) -> None:
        self.server = server
        #: Option overrides for every endpoint (``ping_interval`` and the like).
        self.options = dict(options or {})
        self.log_level = log_level
        #: Where the server's stderr goes (access logs are chatty); ``None``: discarded.
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.pid = 0

    async def start(self, timeout: float = 60.0) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        stderr = open(self.log_path, "ab") if self.log_path else asyncio.subprocess.DEVNULL  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hardening.serverproc",
            "--server",
            self.server,
            "--log-level",
            self.log_level,
            *(f"--option={name}={value}" for name, value in self.options.items()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=root,
            env=env,
        )
        if not isinstance(stderr, int):
            stderr.close()
        ready = await self._read(timeout)
        self.port, self.pid = int(ready["port"]), int(ready["pid"])

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"server process {self.server} exited ({self.proc.returncode})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def command(self, cmd: str, timeout: float = 60.0, **kwargs: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **kwargs}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout)

    async def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """Graceful stop; returns the server's stop figures."""
        assert self.proc is not None
        reply = await self.command("stop", timeout)
        await asyncio.wait_for(self.proc.wait(), timeout)
        return reply

    async def kill(self) -> None:
        """End the process we started, by its PID, if it is still running."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10.0)


if __name__ == "__main__":
    sys.exit(main())
