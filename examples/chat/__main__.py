"""Run the chat example: ``python -m examples.chat --server wsgiref --port 8080``."""

from __future__ import annotations

import argparse
import logging

from examples._servers import (
    SERVERS,
    add_allowed_host_option,
    add_trusted_proxy_option,
    allowed_hosts,
    run,
    trusted_proxies,
)
from examples.chat import make_app
from ws4py_integrations import Manager


def display_url(scheme: str, host: str, port: int) -> str:
    """The URL to open: a wildcard bind address is reachable as localhost."""
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}/"


def make_manager(args: argparse.Namespace) -> Manager | None:
    """The manager the chat's rooms run on; ``None`` lets the server adapter provide one.

    The hook for ``--redis URL``: return a manager whose ``publish`` reaches
    the same rooms in every process (a manager with a cross-process broker),
    and several chat processes behind one load balancer share their rooms.
    The chat's room logic needs no change.
    """
    if not args.redis:
        return None
    from ws4py_integrations.redis_broker import RedisBroker

    broker = RedisBroker.from_url(args.redis)
    if args.server == "gevent":
        from ws4py_integrations.gevent import GeventManager

        return GeventManager(broker=broker)
    from ws4py_integrations import ThreadedManager

    return ThreadedManager(broker=broker)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.chat", description=__doc__)
    parser.add_argument("--server", choices=SERVERS, default="wsgiref", help="server adapter (default: wsgiref)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default: 8080)")
    parser.add_argument("--history", type=int, default=50, metavar="N", help="messages a joiner gets (default: 50)")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve https/wss with this certificate and key")
    parser.add_argument(
        "--redis", metavar="URL", help="share rooms with other chat processes through Redis (redis://...)"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    add_allowed_host_option(parser)
    add_trusted_proxy_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def ready(address: tuple[str, int]) -> None:
        url = display_url("https" if args.tls else "http", address[0], address[1])
        # Tests read this line to learn the bound port: keep its shape.
        print(f"chat example on {args.server}: open {url} in a browser (Ctrl+C stops it)", flush=True)

    manager = make_manager(args)
    app = make_app(
        history=args.history,
        manager=manager,
        allowed_hosts=allowed_hosts(args.allowed_host),
        trusted_proxies=trusted_proxies(args.trusted_proxy),
    )
    try:
        run(args.server, app, args.host, args.port, tls=tuple(args.tls) if args.tls else None, ready=ready)
    finally:
        if manager is not None:
            # The server stops only its own manager: close ours with 1001 too.
            manager.stop()


if __name__ == "__main__":
    main()
