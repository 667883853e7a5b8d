"""Run the Socket.IO chat: ``python -m examples.chat_socketio --server wsgiref --port 8080``."""

from __future__ import annotations

import argparse
import logging

from examples._servers import SERVERS, add_allowed_host_option, allowed_hosts, run
from examples.chat.__main__ import display_url
from examples.chat_socketio import CLIENT, make_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.chat_socketio", description=__doc__)
    parser.add_argument("--server", choices=SERVERS, default="wsgiref", help="server adapter (default: wsgiref)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default: 8080)")
    parser.add_argument("--redis", metavar="URL", help="share rooms with other chat processes through Redis")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    add_allowed_host_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not CLIENT.exists():
        logging.warning("socket.io-client is missing: run bash scripts/setup-node.sh")

    def ready(address: tuple[str, int]) -> None:
        url = display_url("http", address[0], address[1])
        print(f"socket.io chat example on {args.server}: open {url} in a browser (Ctrl+C stops it)", flush=True)

    broker = None
    if args.redis:
        from ws4py_integrations.socketio import redis_broker

        broker = redis_broker(args.redis)
    app = make_app(broker=broker, allowed_hosts=allowed_hosts(args.allowed_host))
    run(args.server, app, args.host, args.port, ready=ready)


if __name__ == "__main__":
    main()
