"""WebSocket routes under Django's ``LiveServerTestCase``.

Django's live server cannot hand connections over; with
``server_thread_class = LiveServerThread`` (this module's) it can::

    from django.test import LiveServerTestCase
    from ws4py_integrations.django.testing import LiveServerThread

    class ChatTests(LiveServerTestCase):
        server_thread_class = LiveServerThread

The same works for ``StaticLiveServerTestCase``. Each live server runs its
WebSockets on a manager of its own, closed with the server.
"""

from __future__ import annotations

from typing import Any

from django.core.servers import basehttp
from django.test import testcases

from ..manager import ThreadedManager
from .server import WSGIRequestHandler, WSGIServer

__all__ = ["LiveServerThread", "LiveWSGIServer", "QuietWSGIRequestHandler"]


class QuietWSGIRequestHandler(WSGIRequestHandler):
    """Logs no request, as Django's live server handler."""

    def log_message(self, *args: Any) -> None:
        pass


class LiveWSGIServer(WSGIServer, basehttp.ThreadedWSGIServer):  # type: ignore[misc]
    """Django's live test server, with the handover contract."""

    def __init__(self, server_address: Any, handler_class: Any, *args: Any, **kwargs: Any) -> None:
        if handler_class is testcases.QuietWSGIRequestHandler:
            handler_class = QuietWSGIRequestHandler
        kwargs.setdefault("manager", ThreadedManager(name="ws4py-live-server"))
        super().__init__(server_address, handler_class, *args, **kwargs)


class LiveServerThread(testcases.LiveServerThread):  # type: ignore[misc]
    """Django's ``LiveServerThread``, serving with :class:`LiveWSGIServer`."""

    server_class = LiveWSGIServer
