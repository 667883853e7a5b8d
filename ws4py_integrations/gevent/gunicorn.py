"""A gunicorn worker: ``gunicorn -k ws4py_integrations.gevent.GunicornWorker app:app``.

gunicorn's pywsgi gevent worker (the process is monkey-patched, so handlers
run on greenlets) with :class:`~ws4py_integrations.gevent.WebSocketHandler`.
One :class:`~ws4py_integrations.gevent.GeventManager` per worker process runs
the WebSockets of every listener.

Graceful shutdown (SIGTERM, or the arbiter stopping or replacing the worker):
every WebSocket is closed with 1001 at once, new upgrades are refused with
1001, and the worker exits when the closing handshakes are done (each within
its ``close_timeout``; gunicorn's ``graceful_timeout`` still bounds the
whole). A plain WebSocket holds none of the ``worker_connections`` (one over
TLS, served by gunicorn itself).
"""

from __future__ import annotations

import functools
from typing import Any

from .._extras import missing_extra
from ..manager.gevent import GeventManager
from .server import WebSocketHandler, WSGIServer

try:
    import gevent
    from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer
except ImportError as exc:
    raise missing_extra("ws4py_integrations.gevent.GunicornWorker", "gunicorn", exc) from exc

__all__ = ["GunicornHandler", "GunicornWorker"]


class GunicornHandler(WebSocketHandler, PyWSGIHandler):  # type: ignore[misc]
    """gunicorn's pywsgi handler (access log, ``gunicorn.sock``) with the WebSocket contract."""

    def log_request(self) -> None:
        # gunicorn's handler builds the access record (datetimes, the request
        # headers' items) before its logger finds access logging off, which
        # is the default: skip it then (gunicorn 22+ tells; older: log as before).
        if getattr(getattr(self.server, "log", None), "access_log_enabled", True) is False:
            return
        super().log_request()


class _GunicornServer(WSGIServer, PyWSGIServer):  # type: ignore[misc]
    pass


class GunicornWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    """gunicorn's ``gevent_pywsgi`` worker, able to upgrade requests to WebSockets."""

    wsgi_handler = GunicornHandler
    #: The manager of this worker process's WebSockets (created after the fork).
    ws4py_manager: GeventManager | None = None

    def patch(self) -> None:
        # In the worker after the fork: monkey-patch first, then make the manager
        # (its locks are then gevent's).
        super().patch()
        self.ws4py_manager = GeventManager(handlers="greenlets", name=f"ws4py-gunicorn-{self.pid}")
        self.server_class = functools.partial(_GunicornServer, manager=self.ws4py_manager)

    def run(self) -> None:
        try:
            super().run()
        finally:
            # WebSockets hold no request greenlet that gunicorn would wait
            # for: wait here until every one has had its 1001.
            manager = self.ws4py_manager
            if manager is not None:
                manager.stop()
                manager.wait_closed(self.cfg.graceful_timeout)

    def handle_exit(self, sig: int, frame: Any) -> None:
        # SIGTERM: graceful stop. Close the WebSockets now rather than after
        # the next tick of gunicorn's one-second loop.
        super().handle_exit(sig, frame)
        manager = self.ws4py_manager
        if manager is not None:
            gevent.spawn(manager.stop)
