"""``python -m examples.socketio_echo --server wsgiref --host 127.0.0.1 --port 3000``"""

from __future__ import annotations

import argparse
import logging

from examples._servers import SERVERS, add_allowed_host_option, allowed_hosts, run
from examples.socketio_echo import make_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.socketio_echo", description=__doc__)
    parser.add_argument("--server", choices=SERVERS, default="wsgiref")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--ping-interval", type=float, default=25.0, help="seconds (fractions allowed)")
    parser.add_argument("--ping-timeout", type=float, default=20.0, help="seconds (fractions allowed)")
    parser.add_argument("--connect-timeout", type=float, default=45.0, help="seconds to connect to a namespace")
    parser.add_argument("--max-payload", type=int, default=1_000_000, help="bytes")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve https with this certificate and key")
    parser.add_argument("--log-level", default="WARNING")
    add_allowed_host_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def ready(address: tuple[str, int]) -> None:
        scheme = "https" if args.tls else "http"
        print(
            f"socketio_echo example on {args.server}: {scheme}://{address[0]}:{address[1]}/ "
            "(Engine.IO at /engine.io/, Socket.IO at /socket.io/)",
            flush=True,
        )

    app = make_app(
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        connect_timeout=args.connect_timeout,
        max_payload=args.max_payload,
        allowed_hosts=allowed_hosts(args.allowed_host),
    )
    run(args.server, app, args.host, args.port, tls=tuple(args.tls) if args.tls else None, ready=ready)


if __name__ == "__main__":
    main()
