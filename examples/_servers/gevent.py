"""Run an example on ``ws4py_integrations.gevent`` (``gevent.pywsgi``).

gevent wants ``gevent.monkey.patch_all()`` before anything else is imported,
and by the time ``run()`` is called the example has imported its modules. So
when the process was started as ``python -m examples.<name>`` and is not
patched yet, ``run()`` starts the same command again in this process
(``os.execv``, same pid, same arguments) with ``patch_all()`` as its very
first statement. Called any other way, it serves unpatched: the library works
either way, WebSocket handlers then run on OS threads instead of greenlets.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from . import Ready

_PATCHED_ENV = "WS4PY_EXAMPLES_GEVENT_PATCHED"
logger = logging.getLogger("examples.gevent")


def _example_module() -> str | None:
    """``examples.<name>`` when this process is ``python -m examples.<name>``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name: str | None = getattr(spec, "name", None)
    if name and name.startswith("examples.") and name.endswith(".__main__"):
        return name[: -len(".__main__")]
    return None


def _restart_patched() -> None:
    """Re-run ``python -m examples.<name> ...`` with ``patch_all()`` first (does not return)."""
    module = _example_module()
    if module is None or os.environ.get(_PATCHED_ENV):
        return
    bootstrap = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import runpy, sys\n"
        f"sys.argv[0] = {module!r}\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )
    os.environ[_PATCHED_ENV] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-c", bootstrap, *sys.argv[1:]])


def run(app: Any, host: str, port: int, *, tls: tuple[str, str] | None = None, ready: Ready | None = None) -> None:
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        _restart_patched()
        logger.info("gevent: not monkey-patched; WebSocket handlers run on OS threads")

    import gevent.ssl

    from ws4py_integrations.gevent import WSGIServer

    ssl_args: dict[str, Any] = {}
    if tls is not None:
        context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        # No TLS 1.3 session tickets: resumption buys little for long-lived
        # WebSockets, and a ticket arriving while a threaded client (such as
        # websockets.sync) writes its first request can make that write fail.
        context.num_tickets = 0
        ssl_args["ssl_context"] = context
    # The access log goes through logging (INFO on "examples.access"): one line
    # per request only with --log-level INFO or DEBUG.
    access = logging.getLogger("examples.access")
    server = WSGIServer((host, port), app, environ={"SERVER_NAME": host}, log=access, **ssl_args)
    server.start()
    if ready is not None:
        ready(server.address[:2])
    # Until SIGTERM or Ctrl-C; then every WebSocket gets 1001.
    server.run()
