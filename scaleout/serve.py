"""Entry point: ``python -m scaleout.serve --server gevent|wsgiref [--redis URL] [--port 0]``.

Monkey-patches first when the server is gevent (before anything imports
sockets or threads), then runs :func:`scaleout.app.main`.
"""

from __future__ import annotations

import sys


def _wants_gevent(argv: list[str]) -> bool:
    for index, arg in enumerate(argv):
        if arg == "--server=gevent" or (arg == "--server" and argv[index + 1 : index + 2] == ["gevent"]):
            return True
    return False


if __name__ == "__main__":
    if _wants_gevent(sys.argv[1:]):
        from gevent import monkey

        monkey.patch_all()
    from scaleout.app import main

    main()
