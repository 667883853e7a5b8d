"""A server adapter running the hardening app in a process of its own.

``python -m tools.hardening.serverproc --server NAME`` prints one JSON line
``{"port": ..., "pid": ...}`` once it accepts connections, then answers one
JSON line per JSON command read on standard input:

- ``{"cmd": "figures"}``: RSS, fds, threads, greenlets, open connections and
  live ``Connection``/``WebSocket`` objects;
- ``{"cmd": "broadcast", "text": ...}``: broadcast on every manager; ``{"sent": n}``;
- ``{"cmd": "stop"}``: stop the server (WebSockets get 1001), answer
  ``{"stop_seconds": ...}`` with the figures after, and exit.

:class:`HardeningServer` drives it from asyncio code (the process itself is run
by :class:`tests.support.process.ServerProcess`). Measuring the server in its
own process keeps the clients' memory, fds and CPU out of its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.process import ServerProcess

__all__ = ["HardeningServer", "main"]


def _managers(running: Any) -> list[Any]:
    from tests.support import app

    found = {id(m): m for m in app.managers.values()}
    if running.manager is not None:
        found.setdefault(id(running.manager), running.manager)
    return list(found.values())


def _figures(running: Any) -> dict[str, Any]:
    from tools.hardening.metrics import count_objects, process_figures

    figures: dict[str, Any] = dict(process_figures())
    managers = _managers(running)
    figures["connections"] = sum(len(m) for m in managers)
    figures["registered"] = sum(len(m._snapshot()) for m in managers)
    figures.update(count_objects("Connection", "Commands"))
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

    from tests.support import app
    from tests.support.servers import serve
    from tools.hardening.metrics import raise_fd_limit

    raise_fd_limit()
    app.record_events = False  # nobody reads them here; they would keep every handler alive
    out = sys.stdout
    with serve(args.server, app.make_app(app.not_found, **overrides)) as running:
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


class HardeningServer:
    """``python -m tools.hardening.serverproc``, driven from asyncio code.

    The blocking runner calls go to a thread so the event loop (and the
    clients on it) keeps running meanwhile.
    """

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
        command = [sys.executable, "-m", "tools.hardening.serverproc", "--server", server, "--log-level", log_level]
        command += [f"--option={name}={value}" for name, value in self.options.items()]
        #: The server's stderr (access logs are chatty) goes to ``log_path``; ``None``: discarded.
        self.process = ServerProcess(
            command,
            ready=r'"port": (?P<port>\d+)',
            log_path=Path(log_path) if log_path else None,
            stdin=True,
            name=f"hardening server on {server}",
        )
        self.port = 0
        self.pid = 0

    async def start(self, timeout: float = 60.0) -> None:
        await asyncio.to_thread(self.process.start, timeout)
        self.port, self.pid = self.process.port, self.process.pid

    async def command(self, cmd: str, timeout: float = 60.0, **kwargs: Any) -> dict[str, Any]:
        self.process.send_line(json.dumps({"cmd": cmd, **kwargs}))
        reply: dict[str, Any] = json.loads(await asyncio.to_thread(self.process.read_line, timeout))
        return reply

    async def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """Graceful stop; returns the server's stop figures."""
        reply = await self.command("stop", timeout)
        assert self.process.process is not None
        await asyncio.to_thread(self.process.wait, timeout)
        return reply

    async def kill(self) -> None:
        """End the process we started, by its PID, if it is still running."""
        await asyncio.to_thread(self.process.stop, 10.0)


if __name__ == "__main__":
    sys.exit(main())
