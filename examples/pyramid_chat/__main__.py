"""``python -m examples.pyramid_chat --server wsgiref --host 127.0.0.1 --port 8080``"""

from __future__ import annotations

import argparse
import logging

from examples._servers import SERVERS, add_allowed_host_option, allowed_hosts, run
from examples.pyramid_chat import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.pyramid_chat", description=__doc__)
    parser.add_argument("--server", choices=SERVERS, default="wsgiref")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="WARNING")
    add_allowed_host_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def ready(address: tuple[str, int]) -> None:
        print(f"pyramid example on {args.server}: http://{address[0]}:{address[1]}/", flush=True)

    run(args.server, create_app(allowed_hosts=allowed_hosts(args.allowed_host)), args.host, args.port, ready=ready)


if __name__ == "__main__":
    main()
