"""A bare Engine.IO echo server: ``python -m tools.conformance.engineio_echo --server NAME``.

Every message a client sends comes back. ``/engine.io/`` is the endpoint (as
the engine.io-protocol test suite expects); ``/`` is a plain page, to show
that plain HTTP still answers while many sessions wait. Prints
``engineio echo on HOST:PORT`` once it accepts connections. ``--no-handover``
hides the server adapter's handover (held GETs then keep their thread).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

READY = r"engineio echo on (?P<host>\S+):(?P<port>\d+)"


def plain_page(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b"plain page\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def make_app(
    *,
    ping_interval: float = 0.3,
    ping_timeout: float = 0.2,
    max_payload: int = 1_000_000,
    cors_allowed_origins: Any = None,
    cors_credentials: bool = False,
    handover: bool = True,
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """The echo WSGI application (also for gunicorn: ``'tools.conformance.engineio_echo:make_app()'``)."""
    from ws4py_integrations.adapter import HANDOVER_KEY
    from ws4py_integrations.engineio import EchoHandler, EngineIOServer

    server = EngineIOServer(
        EchoHandler(),
        plain_page,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_payload=max_payload,
        cors_allowed_origins=cors_allowed_origins,
        cors_credentials=cors_credentials,
    )
    if handover:
        return server

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.pop(HANDOVER_KEY, None)
        return server(environ, start_response)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.conformance.engineio_echo", description=__doc__)
    parser.add_argument("--server", default="wsgiref", help="wsgiref, cherrypy or gevent")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--ping-interval", type=float, default=0.3, help="seconds (default 0.3, as the suite wants)")
    parser.add_argument("--ping-timeout", type=float, default=0.2, help="seconds (default 0.2)")
    parser.add_argument("--max-payload", type=int, default=1_000_000)
    parser.add_argument("--cors", action="append", default=None, metavar="ORIGIN", help="allowed origin ('*': any)")
    parser.add_argument("--cors-credentials", action="store_true")
    parser.add_argument("--no-handover", action="store_true", help="hold polling GETs on their server thread")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )

    from examples._servers import run

    origins: Any = None
    if args.cors:
        origins = "*" if args.cors == ["*"] else args.cors
    app = make_app(
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        max_payload=args.max_payload,
        cors_allowed_origins=origins,
        cors_credentials=args.cors_credentials,
        handover=not args.no_handover,
    )

    def ready(address: tuple[str, int]) -> None:
        print(f"engineio echo on {address[0]}:{address[1]}", flush=True)

    run(args.server, app, args.host, args.port, ready=ready)


def _wants_gevent(argv: list[str]) -> bool:
    return "--server=gevent" in argv or any(
        arg == "--server" and argv[index + 1 : index + 2] == ["gevent"] for index, arg in enumerate(argv)
    )


if __name__ == "__main__":
    if _wants_gevent(sys.argv[1:]):
        from gevent import monkey

        monkey.patch_all()
    main()
