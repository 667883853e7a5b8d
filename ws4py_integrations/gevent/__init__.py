"""WebSocket on gevent: ``gevent.pywsgi`` and gunicorn.

- :class:`WebSocketHandler`: ``gevent.pywsgi.WSGIServer(address, app, handler_class=WebSocketHandler)``;
- :class:`WSGIServer`: the same server with that handler, a manager, and
  ``stop()``/``close()`` that close WebSockets with 1001;
- :class:`GeventManager`: the greenlet backend of :class:`~ws4py_integrations.Manager`;
- ``GunicornWorker``: ``gunicorn -k ws4py_integrations.gevent.GunicornWorker app:app``
  (imported on first use, so gunicorn is needed only for it).

Importing :mod:`ws4py_integrations` never imports gevent; importing this
package does not monkey-patch anything. Without gevent installed it raises
an :class:`ImportError` that names the extra to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..manager.gevent import GeventManager, HandlerMode
from .server import WebSocketHandler, WSGIServer, server_manager

if TYPE_CHECKING:
    from .gunicorn import GunicornWorker

__all__ = ["GeventManager", "GunicornWorker", "HandlerMode", "WSGIServer", "WebSocketHandler", "server_manager"]


def __getattr__(name: str) -> Any:
    if name == "GunicornWorker":
        from .gunicorn import GunicornWorker

        return GunicornWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
