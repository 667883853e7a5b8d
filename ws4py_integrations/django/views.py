"""WebSocket routes in ``urls.py``: views that upgrade after Django's middleware ran."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

from ..handshake import Reject
from ..manager import Manager
from ..middleware import WebSocketWSGIApplication
from ..options import WebSocketOptions
from ..websocket import WebSocket

__all__ = ["REQUEST_KEY", "DjangoWebSocket", "websocket"]

logger = logging.getLogger("ws4py_integrations.django")

#: Environ key of ``(request, args, kwargs)``: the handshake's Django request and URL arguments.
REQUEST_KEY = "ws4py_integrations.django.request"

_CALLBACKS = ("opened", "received_message", "ponged", "closed")

View = Callable[..., HttpResponse]
W = TypeVar("W", bound=WebSocket)


class DjangoWebSocket(WebSocket):
    """A :class:`~ws4py_integrations.WebSocket` that knows the Django request of its handshake.

    ``self.request`` is the handshake's ``HttpRequest`` after Django's
    middleware ran (``request.user``, ``request.session``); ``self.args`` and
    ``self.kwargs`` are the URL's arguments, as a view gets them.
    """

    @property
    def request(self) -> HttpRequest:
        return self.environ[REQUEST_KEY][0]

    @property
    def args(self) -> tuple[Any, ...]:
        args: tuple[Any, ...] = self.environ[REQUEST_KEY][1]
        return args

    @property
    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = self.environ[REQUEST_KEY][2]
        return kwargs


def _with_db_cycle(cls: type[W]) -> type[W]:
    """A subclass of ``cls`` whose callbacks run as Django runs a request.

    Each callback is bracketed by ``close_old_connections()`` (Django's
    ``request_started`` / ``request_finished`` do the same around a request):
    a connection opened by a callback is closed after it (``CONN_MAX_AGE``
    0), or kept on the manager thread and reused while healthy and young
    enough. Never one connection per WebSocket.
    """

    def bracket(name: str) -> Callable[..., Any]:
        def callback(self: WebSocket, *args: Any) -> Any:
            close_old_connections()
            try:
                return getattr(super(derived, self), name)(*args)
            finally:
                close_old_connections()

        callback.__name__ = name
        callback.__qualname__ = f"{cls.__qualname__}.{name}"
        return callback

    namespace: dict[str, Any] = {name: bracket(name) for name in _CALLBACKS}
    namespace.update(__module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__)
    derived: type[W] = type(cls.__name__, (cls,), namespace)
    return derived


def _refusal(result: Reject) -> HttpResponse:
    response = HttpResponse(result.body, status=result.status, content_type="text/plain; charset=utf-8")
    for name, value in result.headers:
        response[name] = value
    return response


def _force_user(request: HttpRequest) -> None:
    # request.user is lazy: resolve it on the request thread, with the
    # request's database connection, not later on a manager thread.
    user = getattr(request, "user", None)
    if user is not None:
        _ = user.is_authenticated


@overload
def websocket(
    handler: type[WebSocket], /, *, manager: Manager | None = ..., options: WebSocketOptions | None = ..., **kwargs: Any
) -> View: ...
@overload
def websocket(
    handler: None = ..., /, *, manager: Manager | None = ..., options: WebSocketOptions | None = ..., **kwargs: Any
) -> Callable[[type[WebSocket]], View]: ...


def websocket(
    handler: type[WebSocket] | None = None,
    /,
    *,
    manager: Manager | None = None,
    options: WebSocketOptions | None = None,
    **kwargs: Any,
) -> View | Callable[[type[WebSocket]], View]:
    """A Django view that upgrades to ``handler``: ``path("ws/chat/<room>/", websocket(Chat))``.

    Django's middleware runs on the handshake as on any request: one that
    answers (a 302 to the login page, a 403) refuses the upgrade with its
    response. Then the view negotiates (keyword options as for
    :class:`~ws4py_integrations.WebSocketWSGIApplication`: ``protocols``,
    ``origins``, limits...): a refusal is an ``HttpResponse`` with the status
    and the reason. Used without ``handler``, it is a decorator.
    """
    if handler is None:
        return functools.partial(_view, manager=manager, options=options, **kwargs)
    return _view(handler, manager=manager, options=options, **kwargs)


def _view(
    handler: type[WebSocket], *, manager: Manager | None, options: WebSocketOptions | None, **kwargs: Any
) -> View:
    if not (isinstance(handler, type) and issubclass(handler, WebSocket)):
        raise TypeError(f"websocket() takes a WebSocket subclass, not {handler!r}")
    app = WebSocketWSGIApplication(_with_db_cycle(handler), manager=manager, options=options, **kwargs)

    def view(request: HttpRequest, *args: Any, **url_kwargs: Any) -> HttpResponse:
        environ = request.META
        result = app.check(environ)
        if isinstance(result, Reject):
            return _refusal(result)
        _force_user(request)
        environ[REQUEST_KEY] = (request, args, url_kwargs)
        if app.upgrade(environ, result) is None:
            return HttpResponse("the WebSocket handler could not be created\n", status=500)
        # What the server's request log shows; nothing is sent.
        return HttpResponse(status=101)

    view.__name__ = view.__qualname__ = handler.__name__
    view.__doc__ = handler.__doc__
    view.__module__ = handler.__module__
    view.websocket_app = app  # type: ignore[attr-defined]
    return view
