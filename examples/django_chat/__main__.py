"""Run the Django example.

``python -m examples.django_chat`` serves on ``manage.py runserver`` (its
options, such as ``--nothreading``, pass through);
``--server wsgiref|cherrypy|gevent`` on one of our adapters instead. Any
other first argument is a Django command: ``python -m examples.django_chat
createsuperuser``. The SQLite database (``DJANGO_CHAT_DB``) is migrated first.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from examples._servers import SERVERS


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_chat.settings")
    from django.core.management import call_command, execute_from_command_line

    if argv and not argv[0].startswith("-"):
        execute_from_command_line(["manage.py", *argv])
        return
    parser = argparse.ArgumentParser(prog="python -m examples.django_chat", description=__doc__)
    parser.add_argument("--server", choices=("runserver", *SERVERS), default="runserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--noreload", action="store_true", help="runserver without the autoreloader")
    parser.add_argument("--log-level", default="INFO")
    # Other options (--nothreading, --nostatic...) go to runserver.
    args, runserver_options = parser.parse_known_args(argv)
    if runserver_options and args.server != "runserver":
        parser.error(f"unrecognized arguments: {' '.join(runserver_options)}")

    import django

    django.setup()
    if os.environ.get("RUN_MAIN") != "true":  # not again in the autoreloader's child
        call_command("migrate", verbosity=0, interactive=False)
        # As runserver does after its checks: the main thread serves no request.
        from django.db import connections

        connections.close_all()
    if args.server == "runserver":
        execute_from_command_line(
            [
                "manage.py",
                "runserver",
                f"{args.host}:{args.port}",
                *(["--noreload"] if args.noreload else []),
                *runserver_options,
            ]
        )
        return

    from django.contrib.staticfiles.handlers import StaticFilesHandler

    from examples._servers import run
    from examples.django_chat.wsgi import application

    # What runserver does in DEBUG: serve the static files too (in production, nginx does).
    app = StaticFilesHandler(application)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def ready(address: tuple[str, int]) -> None:
        print(f"django_chat on {args.server}: http://{address[0]}:{address[1]}/", flush=True)

    run(args.server, app, args.host, args.port, ready=ready)


if __name__ == "__main__":
    main()
