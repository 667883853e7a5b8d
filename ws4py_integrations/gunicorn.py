"""gunicorn workers: ``gunicorn -k ws4py_integrations.gunicorn.ThreadWorker --threads 4 app:app``.

:class:`ThreadWorker` is gunicorn's ``gthread`` worker (plain HTTP is served
exactly as by ``gthread``: keep-alive, ``--threads``, ``--worker-connections``)
that hands each WebSocket to one :class:`~ws4py_integrations.ThreadedManager`
per worker process. A WebSocket holds no worker thread and does not count
in ``--worker-connections``; the request that upgraded it counts toward
``--max-requests`` like any other. For the sync worker's applications too:
``-k ws4py_integrations.gunicorn.ThreadWorker --threads 1``.

Graceful shutdown (SIGTERM, ``--max-requests`` recycling, the arbiter
replacing the worker): every WebSocket is closed with 1001 at once, new
upgrades are refused, and the worker exits once the closing handshakes are
done (each within its ``close_timeout``, the whole within
``--graceful-timeout``), telling the arbiter it is alive meanwhile so that
``--timeout`` never kills it because of WebSockets.

:data:`GeventWorker` is :class:`ws4py_integrations.gevent.GunicornWorker`
(imported on first use: it needs gevent).

TLS served by gunicorn itself (``--certfile``) is refused with ``501``:
terminate TLS in a proxy (see the deployment page), or use the gevent worker.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from ._extras import missing_extra
from .adapter import HANDOVER_KEY, NO_HANDOVER_KEY, Handover, take_connection, take_connection_unsupported
from .manager import ThreadedManager
from .middleware import StartResponse, WSGIApp

try:
    from gunicorn.workers.gthread import ThreadWorker as _GthreadWorker
except ImportError as exc:
    raise missing_extra("ws4py_integrations.gunicorn.ThreadWorker", "gunicorn", exc) from exc

__all__ = ["ThreadWorker"]  # and GeventWorker, imported on first use

logger = logging.getLogger("ws4py_integrations.gunicorn")


class _Handover(Handover):
    """One gthread request's connection."""

    def __init__(self, manager: ThreadedManager, sock: socket.socket, unreader: Any) -> None:
        self.manager = manager
        self._sock = sock
        self._unreader = unreader
        self.detached = False

    def detach(self) -> tuple[socket.socket, bytes]:
        # The parser read the head in chunks: what followed it (frames the
        # client sent at once) waits in its unreader's buffer.
        take = getattr(self._unreader, "take_buffered", None)
        if take is not None:
            buffered = bytes(take())
        else:  # pragma: no cover - gunicorn < 25: the buffer itself
            buffered = self._unreader.buf.getvalue()
            self._unreader.buf.seek(0)
            self._unreader.buf.truncate()
        ours = take_connection(self._sock)
        self.detached = True
        return ours, buffered


class ThreadWorker(_GthreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker, able to hand requests over to WebSockets."""

    #: The manager of this worker process's WebSockets (created after the fork;
    #: set a broker on it in a ``post_worker_init`` hook).
    ws4py_manager: ThreadedManager | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ws4py_local = threading.local()
        self._ws4py_stopper: threading.Thread | None = None

    def init_process(self) -> None:
        # After the fork: the manager's threads belong to this process.
        self.ws4py_manager = ThreadedManager(name=f"ws4py-gunicorn-{self.pid}")
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app: WSGIApp = getattr(self, "wsgi")  # noqa: B009 - gunicorn sets it, untyped
        local = self._ws4py_local

        def with_handover(environ: dict[str, Any], start_response: StartResponse) -> Any:
            # handle_request() below runs on this thread and left the handover here.
            handover = getattr(local, "handover", None)
            if isinstance(handover, str):
                environ[NO_HANDOVER_KEY] = handover
            elif handover is not None:
                environ[HANDOVER_KEY] = handover
            else:  # pragma: no cover - gunicorn serves HTTP/2 streams without handle_request()
                environ[NO_HANDOVER_KEY] = "WebSocket over HTTP/2 is not supported; the client must use HTTP/1.1"
            return app(environ, start_response)

        self.wsgi = with_handover

    def handle_request(self, req: Any, conn: Any) -> Any:
        manager = self.ws4py_manager
        assert manager is not None, "init_process() makes the manager"
        reason = take_connection_unsupported(conn.sock)
        handover: _Handover | str
        if reason is None:
            handover = _Handover(manager, conn.sock, conn.parser.unreader)
        else:
            handover = (
                f"gunicorn's ThreadWorker: {reason}; terminate TLS in a proxy in front of it, "
                "or use -k ws4py_integrations.gunicorn.GeventWorker"
            )
        self._ws4py_local.handover = handover
        try:
            return super().handle_request(req, conn)
        except OSError:
            if isinstance(handover, _Handover) and handover.detached:
                # gunicorn's response went to the dead socket left in the
                # connection's place: nothing was lost, nothing to report.
                return False
            raise  # pragma: no cover - a client gone during a plain request: gunicorn's own handling
        finally:
            self._ws4py_local.handover = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        # SIGTERM: close the WebSockets now, not once gunicorn's loop ends.
        super().handle_exit(sig, frame)
        self._stop_websockets()

    def _stop_websockets(self) -> threading.Thread:
        manager = self.ws4py_manager
        assert manager is not None, "init_process() makes the manager before any signal handler"
        if self._ws4py_stopper is None:
            logger.info("worker %s: closing %d WebSocket(s) with 1001", self.pid, len(manager))
            self._ws4py_stopper = threading.Thread(target=manager.stop, name="ws4py-gunicorn-stop", daemon=True)
            self._ws4py_stopper.start()
        return self._ws4py_stopper

    def run(self) -> None:
        try:
            super().run()
        finally:
            # --max-requests or the arbiter ended the loop: 1001 for every
            # WebSocket, while telling the arbiter this worker is alive.
            stopper = self._stop_websockets()
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while stopper.is_alive() and time.monotonic() < deadline:
                self.notify()
                stopper.join(0.5)


def __getattr__(name: str) -> Any:
    if name == "GeventWorker":
        from .gevent.gunicorn import GunicornWorker

        return GunicornWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
