"""The test app as a process: ``python -m tests.support.serve --server NAME [--redis URL] [--port 0]``.

Monkey-patches first when the server is gevent (before anything imports
sockets or threads). With ``--redis`` the manager shares rooms through that
Redis. It prints ``test app on HOST:PORT`` once it accepts connections (and,
with Redis, once it is subscribed): :func:`tests.support.process.app_server`
reads that line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws4py_integrations import Manager
    from ws4py_integrations.broker import Broker
    from ws4py_integrations.middleware import WSGIApp
    from ws4py_integrations.redis_broker import RedisBroker

__all__ = ["main", "make_manager"]


def make_manager(server: str, broker: Broker | None) -> Manager:
    """A manager for ``server`` (gevent: ``GeventManager``; else threads) on ``broker``."""
    if server == "gevent":
        from ws4py_integrations.gevent import GeventManager  # type: ignore[import-not-found,unused-ignore]

        manager: Manager = GeventManager(broker=broker)
        return manager
    from ws4py_integrations import ThreadedManager

    return ThreadedManager(broker=broker, max_workers=64, name=f"test-app-{server}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.serve", description=__doc__.split("\n\n")[0])
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
    from tests.support.app import make_app

    broker: RedisBroker | None = None
    if args.redis:
        from ws4py_integrations.redis_broker import RedisBroker

        broker = RedisBroker.from_url(args.redis, prefix=args.prefix, max_reconnect_delay=args.max_reconnect_delay)
    manager = make_manager(args.server, broker)
    manager.start()
    if broker is not None and not broker.wait_connected(15.0):
        raise SystemExit(f"could not subscribe on {args.redis} within 15s")

    def ready(address: tuple[str, int]) -> None:
        # The runner reads this line to learn the port.
        print(f"test app on {address[0]}:{address[1]}", flush=True)

    try:
        if args.server == "gevent":
            _run_gevent(make_app(manager=manager), args.host, args.port, manager, ready)
        else:
            run(args.server, make_app(manager=manager), args.host, args.port, ready=ready)
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


def _wants_gevent(argv: list[str]) -> bool:
    for index, arg in enumerate(argv):
        if arg == "--server=gevent" or (arg == "--server" and argv[index + 1 : index + 2] == ["gevent"]):
            return True
    return False


if __name__ == "__main__":
    if _wants_gevent(sys.argv[1:]):
        from gevent import monkey

        monkey.patch_all()
    main()
