"""How the examples run an application on each server.

Each module here defines ``run(app, host, port, *, tls=None, ready=None)``:
serve ``app`` until SIGINT or SIGTERM, then stop gracefully (WebSockets get
1001). ``tls`` is an optional ``(certfile, keyfile)`` pair; ``ready`` is
called with the bound ``(host, port)`` once the server accepts connections.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

SERVERS = ("wsgiref", "cherrypy", "gevent")

Ready = Callable[[tuple[str, int]], None]


def run(
    server: str, app: Any, host: str, port: int, *, tls: tuple[str, str] | None = None, ready: Ready | None = None
) -> None:
    """Run ``app`` on the named server until a stop signal."""
    if server not in SERVERS:
        raise SystemExit(f"unknown server {server!r}; choose one of {', '.join(SERVERS)}")
    try:
        module = importlib.import_module(f"examples._servers.{server}")
    except ImportError as exc:
        raise SystemExit(f"the {server} server is not available: {exc}") from exc
    module.run(app, host, port, tls=tls, ready=ready)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def add_allowed_host_option(parser: argparse.ArgumentParser) -> None:
    """``--allowed-host NAME``: host names the WebSocket endpoints answer to."""
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name clients use to reach this server (repeatable); without it only "
        "loopback names and IP addresses are trusted in the Host header (DNS rebinding)",
    )


def allowed_hosts(names: list[str]) -> list[str] | None:
    """The ``allowed_hosts`` option for ``--allowed-host`` names (loopback stays allowed)."""
    return [*LOOPBACK_HOSTS, *names] if names else None


def _proxy_address(value: str) -> str:
    """A ``--trusted-proxy`` value, checked as ``trusted_proxies`` checks it (a clear usage error)."""
    # Imported here: this module stays free of package imports until a server runs.
    from ws4py_integrations.options import proxy_networks

    try:
        proxy_networks([value])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_trusted_proxy_option(parser: argparse.ArgumentParser) -> None:
    """``--trusted-proxy ADDRESS``: reverse proxies whose forwarded headers are believed."""
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        type=_proxy_address,
        default=[],
        metavar="ADDRESS",
        help="address or network (10.0.0.0/8) of a reverse proxy in front of this server (repeatable): "
        "its Forwarded / X-Forwarded-Proto / X-Forwarded-Host headers give the public scheme and host "
        "for the Origin check (see docs/deployment.rst)",
    )


def trusted_proxies(addresses: list[str]) -> list[str] | None:
    """The ``trusted_proxies`` option for ``--trusted-proxy`` addresses."""
    return list(addresses) or None


def wait_for_stop_signal() -> None:
    """Block the main thread until SIGINT or SIGTERM."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def framework_main(name: str, create_app: Callable[..., Any], argv: list[str] | None = None) -> None:
    """The command line of the framework chat examples (``python -m examples.NAME_chat``):
    ``--server``, ``--host``, ``--port``, ``--log-level`` and ``--allowed-host``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m examples.{name}_chat", description=f"The {name} chat example on one of our servers."
    )
    parser.add_argument("--server", choices=SERVERS, default="wsgiref")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="WARNING")
    add_allowed_host_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def ready(address: tuple[str, int]) -> None:
        print(f"{name} example on {args.server}: http://{address[0]}:{address[1]}/", flush=True)

    run(args.server, create_app(allowed_hosts=allowed_hosts(args.allowed_host)), args.host, args.port, ready=ready)
