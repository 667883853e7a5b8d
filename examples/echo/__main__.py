"""``python -m examples.echo --server wsgiref --host 127.0.0.1 --port 9001``"""

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
from examples.echo import make_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.echo", description=__doc__)
    parser.add_argument("--server", choices=SERVERS, default="wsgiref")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve wss with this certificate and key")
    parser.add_argument(
        "--style",
        choices=("callbacks", "blocking"),
        default="callbacks",
        help="WebSocket callback classes or blocking functions",
    )
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--ping-interval", type=float, default=20.0, metavar="SECONDS", help="seconds between keepalive pings"
    )
    add_allowed_host_option(parser)
    add_trusted_proxy_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def ready(address: tuple[str, int]) -> None:
        scheme = "https" if args.tls else "http"
        print(
            f"echo example on {args.server} ({args.style}): {scheme}://{address[0]}:{address[1]}/ (WebSocket at /ws and /broadcast)",
            flush=True,
        )

    app = make_app(
        args.style,
        allowed_hosts=allowed_hosts(args.allowed_host),
        trusted_proxies=trusted_proxies(args.trusted_proxy),
        ping_interval=args.ping_interval,
    )
    run(args.server, app, args.host, args.port, tls=tuple(args.tls) if args.tls else None, ready=ready)


if __name__ == "__main__":
    main()
