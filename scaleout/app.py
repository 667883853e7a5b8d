"""A WebSocket app driven by text commands, to exercise rooms in one or several processes.

Commands (text messages to ``/rooms``)::

    join:ROOM            join, answer "joined:ROOM"
    leave:ROOM           leave, answer "left:ROOM"
    pub:ROOM:TEXT        publish TEXT to ROOM (no answer unless it fails)
    pubn:ROOM:TEXT       same, answer "published:N" (N: connections of this process that got it)
    pubx:ROOM:TEXT       publish to ROOM but not to this connection
    frag:ROOM:A,B,C      publish one message sent as fragments A, B, C
    all:TEXT             broadcast TEXT to every connection
    count:ROOM           answer "count:ROOM:N" (members in this process)
    rooms                answer "rooms:" + JSON {room: count} (this process)
    myrooms              answer "myrooms:" + JSON [rooms of this connection]
    status               answer "status:" + JSON {"pid": ..., "broker": ...}

A binary message ``ROOM\\n`` + payload publishes the payload, as binary. A
publish the broker cannot hand on answers ``error:<exception class>:<message>``.

Run it as a process: ``python -m scaleout.serve --server wsgiref --port 0
--redis redis://127.0.0.1:6379/0``; it prints ``scaleout app on HOST:PORT``
once it accepts connections (and, with Redis, once it is subscribed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ws4py_integrations import Manager, Message, ThreadedManager, WebSocket, WebSocketMiddleware
from ws4py_integrations.broker import Broker, BrokerError
from ws4py_integrations.middleware import WSGIApp

if TYPE_CHECKING:
    from ws4py_integrations.redis_broker import RedisBroker

__all__ = ["RoomCommands", "main", "make_app", "make_manager"]

logger = logging.getLogger("scaleout.app")


class RoomCommands(WebSocket):
    """Rooms driven by the client (see the module docstring)."""

    def received_message(self, message: Message) -> None:
        data = message.data
        if isinstance(data, bytes):
            name, _, payload = data.partition(b"\n")
            self._publish(name.decode(), payload)
            return
        command, _, arg = data.partition(":")
        if command == "join":
            self.join(arg)
            self.send(f"joined:{arg}")
        elif command == "leave":
            self.leave(arg)
            self.send(f"left:{arg}")
        elif command in ("pub", "pubn", "pubx"):
            room, _, text = arg.partition(":")
            count = self._publish(room, text, exclude=[self] if command == "pubx" else ())
            if command == "pubn" and count is not None:
                self.send(f"published:{count}")
        elif command == "frag":
            room, _, parts = arg.partition(":")
            self._publish(room, parts.split(","))
        elif command == "all":
            self._publish(None, arg)
        elif command == "count":
            self.send(f"count:{arg}:{self.manager.count(arg)}")
        elif command == "rooms":
            self.send("rooms:" + json.dumps(self.manager.rooms(), sort_keys=True))
        elif command == "myrooms":
            self.send("myrooms:" + json.dumps(sorted(self.rooms)))
        elif command == "status":
            broker = self.manager.broker
            self.send("status:" + json.dumps({"pid": os.getpid(), "broker": type(broker).__name__}))
        else:
            self.send(f"unknown:{command}")

    def _publish(
        self, room: str | None, data: str | bytes | list[str], exclude: Iterable[WebSocket] = ()
    ) -> int | None:
        try:
            return self.manager.broadcast(data, room, exclude=exclude)
        except BrokerError as exc:
            self.send(f"error:{type(exc).__name__}:{exc}")
            return None


def make_app(manager: Manager | None = None) -> WSGIApp:
    """``/rooms`` runs :class:`RoomCommands` (on ``manager``, or the server's)."""

    def not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return WebSocketMiddleware(not_found, {"/rooms": RoomCommands}, manager=manager)


def make_manager(server: str, broker: Broker | None) -> Manager:
    """A manager for ``server`` (gevent: ``GeventManager``; else threads) on ``broker``."""
    if server == "gevent":
        from ws4py_integrations.gevent import GeventManager  # type: ignore[import-not-found,unused-ignore]

        manager: Manager = GeventManager(broker=broker)
        return manager
    return ThreadedManager(broker=broker, max_workers=64, name=f"scaleout-{server}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scaleout.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="wsgiref", help="server adapter (wsgiref, cherrypy, gevent)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--redis", metavar="URL", help="share rooms through the Redis at URL (default: this process only)"
    )
    parser.add_argument("--prefix", default="ws4py:", help="Redis channel prefix")
    parser.add_argument("--max-reconnect-delay", type=float, default=10.0, help="Redis reconnect backoff cap (s)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )

    from examples._servers import run

    broker: RedisBroker | None = None
    if args.redis:
        from ws4py_integrations.redis_broker import RedisBroker

        broker = RedisBroker.from_url(args.redis, prefix=args.prefix, max_reconnect_delay=args.max_reconnect_delay)
    manager = make_manager(args.server, broker)
    manager.start()
    if broker is not None and not broker.wait_connected(15.0):
        raise SystemExit(f"could not subscribe on {args.redis} within 15s")

    def ready(address: tuple[str, int]) -> None:
        # The tests and the benchmark read this line to learn the port.
        print(f"scaleout app on {address[0]}:{address[1]}", flush=True)

    try:
        if args.server == "gevent":
            _run_gevent(make_app(manager), args.host, args.port, manager, ready)
        else:
            run(args.server, make_app(manager), args.host, args.port, ready=ready)
    finally:
        manager.stop(5.0)


def _run_gevent(app: WSGIApp, host: str, port: int, manager: Manager, ready: Callable[[tuple[str, int]], None]) -> None:
    """Serve on ``ws4py_integrations.gevent.WSGIServer`` in this (monkey-patched) process until SIGTERM/SIGINT."""
    import signal

    import gevent

    from ws4py_integrations.gevent import WSGIServer  # type: ignore[import-not-found,unused-ignore]

    server = WSGIServer((host, port), app, manager=manager, log=None)
    server.start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, server.close)
    ready(server.address[:2])
    server.serve_forever()  # returns once close() ran; close() stops the manager (1001)
