"""WebSocket routes in ``urls.py``: views that upgrade after Django's middleware ran."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

from django.db import connections
from django.http import HttpRequest, HttpResponse

from ..blocking import BlockingWebSocket, HandlerPool
from ..handshake import Reject
from ..manager import Manager
from ..middleware import WebSocketWSGIApplication
from ..options import WebSocketOptions
from ..websocket import WebSocket

__all__ = ["REQUEST_KEY", "DjangoBlockingWebSocket", "DjangoWebSocket", "release_connections", "websocket"]

logger = logging.getLogger("ws4py_integrations.django")

#: Environ key of ``(request, args, kwargs)``: the handshake's Django request and URL arguments.
REQUEST_KEY = "ws4py_integrations.django.request"

_CALLBACKS = ("opened", "received_message", "ponged", "closed")

View = Callable[..., HttpResponse]
#: A function route: ``handler(request, ws, *url_args, **url_kwargs)``.
FunctionView = Callable[..., object]
Handler = type[WebSocket] | FunctionView
W = TypeVar("W", bound=WebSocket)


def release_connections() -> None:
    """Close this thread's database connections that Django's request cycle would close.

    What Django does at the start and the end of each request
    (``close_old_connections``): a connection is closed when it is broken or
    older than ``CONN_MAX_AGE`` (0, the default: at once). One inside
    ``transaction.atomic()`` is left alone: closing it would lose the
    transaction.
    """
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


class DjangoWebSocket(WebSocket):
    """A :class:`~ws4py_integrations.WebSocket` that knows the Django request of its handshake.

    ``self.request`` is the handshake's ``HttpRequest`` after Django's
    middleware ran (``request.user``, ``request.session``); ``self.args`` and
    ``self.kwargs`` are the URL's arguments, as a view gets them.
    """

    def _handshake(self) -> tuple[HttpRequest, tuple[Any, ...], dict[str, Any]]:
        try:
            handshake: tuple[HttpRequest, tuple[Any, ...], dict[str, Any]] = self.environ[REQUEST_KEY]
        except KeyError:
            raise RuntimeError(
                f"{type(self).__name__} has no Django request: route it with ws4py_integrations.django.websocket()"
            ) from None
        return handshake

    @property
    def request(self) -> HttpRequest:
        """The handshake's ``HttpRequest``."""
        return self._handshake()[0]

    @property
    def args(self) -> tuple[Any, ...]:
        """The URL's positional arguments."""
        return self._handshake()[1]

    @property
    def kwargs(self) -> dict[str, Any]:
        """The URL's keyword arguments."""
        return self._handshake()[2]


class DjangoBlockingWebSocket(BlockingWebSocket):
    """What a function route gets: a :class:`~ws4py_integrations.BlockingWebSocket`
    that releases the thread's database connections (:func:`release_connections`)
    before it waits for a message, as Django does between two requests."""

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        release_connections()
        return super().receive(timeout)


def _with_db_cycle(cls: type[W]) -> type[W]:
    """A subclass of ``cls`` whose callbacks run as Django runs a request.

    Each callback is bracketed by :func:`release_connections`: a connection
    a callback opened is closed after it (``CONN_MAX_AGE`` 0), or kept on the
    manager's thread and reused while healthy and young enough; never one
    connection per WebSocket.
    """

    def bracket(name: str) -> Callable[..., Any]:
        def callback(self: WebSocket, *args: Any) -> Any:
            release_connections()
            try:
                return getattr(super(derived, self), name)(*args)
            finally:
                release_connections()

        callback.__name__ = name
        callback.__qualname__ = f"{cls.__qualname__}.{name}"
        return callback

    namespace: dict[str, Any] = {name: bracket(name) for name in _CALLBACKS}
    namespace.update(__module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__)
    derived: type[W] = type(cls.__name__, (cls,), namespace)
    return derived


def _bind_function(
    func: FunctionView, request: HttpRequest, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[BlockingWebSocket], None]:
    """The blocking handler of one connection: ``func(request, ws, *args, **kwargs)``,
    with the database connections released before, while waiting, and after."""

    def handler(ws: BlockingWebSocket) -> None:
        release_connections()
        try:
            func(request, DjangoBlockingWebSocket(ws.websocket), *args, **kwargs)
        finally:
            release_connections()

    handler.__name__ = getattr(func, "__name__", "handler")
    handler.__qualname__ = getattr(func, "__qualname__", handler.__name__)
    return handler


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
    handler: Handler,
    /,
    *,
    manager: Manager | None = ...,
    pool: HandlerPool | None = ...,
    options: WebSocketOptions | None = ...,
    **kwargs: Any,
) -> View: ...
@overload
def websocket(
    handler: None = ...,
    /,
    *,
    manager: Manager | None = ...,
    pool: HandlerPool | None = ...,
    options: WebSocketOptions | None = ...,
    **kwargs: Any,
) -> Callable[[Handler], View]: ...


def websocket(
    handler: Handler | None = None,
    /,
    *,
    manager: Manager | None = None,
    pool: HandlerPool | None = None,
    options: WebSocketOptions | None = None,
    **kwargs: Any,
) -> View | Callable[[Handler], View]:
    """A Django view that upgrades to ``handler``: ``path("ws/chat/<room>/", websocket(chat))``.

    ``handler`` is a :class:`DjangoWebSocket` (or any
    :class:`~ws4py_integrations.WebSocket`) subclass, or a function
    ``handler(request, ws, *url_args, **url_kwargs)`` with ``ws`` a
    :class:`DjangoBlockingWebSocket`, run on ``pool`` after the view returned.
    Used without ``handler``, ``websocket(...)`` is a decorator.

    Django's middleware runs on the handshake as on any request: a middleware
    or decorator that answers (a 403) refuses the upgrade with its response.
    Then the view negotiates (keyword options as for
    :class:`~ws4py_integrations.WebSocketWSGIApplication`: ``protocols``,
    ``origins``, limits...): a refusal is an ``HttpResponse`` with the status
    and the reason.
    """
    if handler is None:
        return functools.partial(_view, manager=manager, pool=pool, options=options, **kwargs)
    return _view(handler, manager=manager, pool=pool, options=options, **kwargs)


def _view(
    handler: Handler,
    *,
    manager: Manager | None,
    pool: HandlerPool | None,
    options: WebSocketOptions | None,
    **kwargs: Any,
) -> View:
    function: FunctionView | None = None
    if isinstance(handler, type):
        if not issubclass(handler, WebSocket):
            raise TypeError(f"websocket() takes a WebSocket subclass or a function, not the class {handler!r}")
        app = WebSocketWSGIApplication(_with_db_cycle(handler), manager=manager, options=options, **kwargs)
    elif callable(handler):
        function = handler
        app = WebSocketWSGIApplication(WebSocket, pool=pool, manager=manager, options=options, **kwargs)
    else:
        raise TypeError(f"websocket() takes a WebSocket subclass or a function, not {handler!r}")

    def view(request: HttpRequest, *args: Any, **url_kwargs: Any) -> HttpResponse:
        environ = request.META
        result = app.check(environ)
        if isinstance(result, Reject):
            return _refusal(result)
        _force_user(request)
        environ[REQUEST_KEY] = (request, args, url_kwargs)
        per_request = None if function is None else _bind_function(function, request, args, url_kwargs)
        if app.upgrade(environ, result, per_request) is None:
            return HttpResponse("the WebSocket handler could not be created\n", status=500)
        # What the server's request log shows; nothing is sent.
        return HttpResponse(status=101)

    view.__name__ = view.__qualname__ = getattr(handler, "__name__", "websocket")
    view.__doc__ = handler.__doc__
    view.__module__ = handler.__module__
    return view
