"""Class-based namespaces: python-socketio's style and gevent-socketio's.

:class:`Namespace` is one object for every client of a namespace; its
``on_<event>(sid, *args)`` methods handle events (python-socketio,
Flask-SocketIO). :class:`BaseNamespace` is instantiated for each client that
connects (gevent-socketio): ``self.sid``, ``self.environ`` and
``self.session`` are that client's, ``on_<event>(*args)`` handles its events,
and an access control list decides which of those methods it may call yet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Server, UserSession

__all__ = ["BaseNamespace", "BroadcastMixin", "Namespace", "RoomsMixin"]

logger = logging.getLogger("ws4py_integrations.socketio")


def method_name(event: str) -> str:
    """The method handling ``event``: ``on_`` and the name, spaces and dashes as underscores."""
    return "on_" + event.replace(" ", "_").replace("-", "_")


class Namespace:
    """One handler object for every client of ``namespace`` (python-socketio style).

    Define ``on_connect(self, sid, environ[, auth])`` (return ``False`` or
    raise :class:`~ws4py_integrations.socketio.ConnectionRefusedError` to
    refuse), ``on_disconnect(self, sid[, reason])`` and
    ``on_<event>(self, sid, *args)`` (the return value is the
    acknowledgement). Register with :meth:`Server.register_namespace
    <ws4py_integrations.socketio.Server.register_namespace>`.
    """

    def __init__(self, namespace: str = "/") -> None:
        self.namespace = namespace
        self._server: Server | None = None

    def _attach(self, server: Server, namespace: str) -> None:
        self._server = server
        self.namespace = namespace

    @property
    def server(self) -> Server:
        if self._server is None:
            raise RuntimeError("this namespace is not registered with a server")
        return self._server

    def _trigger(self, event: str, sid: str, args: list[Any]) -> tuple[bool, Any]:
        # "connect" and "disconnect" never arrive as events: the decoder refuses them.
        handler = getattr(self, method_name(event), None)
        if handler is None:
            return False, None
        return True, handler(sid, *args)

    def emit(
        self,
        event: str,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        """:meth:`Server.emit <ws4py_integrations.socketio.Server.emit>` in this namespace."""
        self.server.emit(event, data, to, room, skip_sid, namespace or self.namespace, callback)

    def send(self, data: Any, to: str | Iterable[str] | None = None, **kwargs: Any) -> None:
        """:meth:`emit` of ``"message"``."""
        self.emit("message", data, to, **kwargs)

    def call(self, event: str, data: Any = None, to: str | None = None, timeout: float = 60.0) -> Any:
        """:meth:`Server.call <ws4py_integrations.socketio.Server.call>` in this namespace."""
        return self.server.call(event, data, to=to, namespace=self.namespace, timeout=timeout)

    def enter_room(self, sid: str, room: str) -> None:
        self.server.enter_room(sid, room, self.namespace)

    def leave_room(self, sid: str, room: str) -> None:
        self.server.leave_room(sid, room, self.namespace)

    def rooms(self, sid: str) -> list[str]:
        return self.server.rooms(sid, self.namespace)

    def disconnect(self, sid: str) -> None:
        self.server.disconnect(sid, self.namespace)

    def get_environ(self, sid: str) -> Mapping[str, Any] | None:
        return self.server.get_environ(sid, self.namespace)

    def session(self, sid: str) -> UserSession:
        return self.server.session(sid, self.namespace)


class BaseNamespace:
    """A handler object per client and namespace (gevent-socketio style).

    Made when the client connects, with ``server``, ``sid``, ``ns_name``,
    ``environ`` (the handshake's WSGI environ), ``auth`` (the CONNECT
    payload) and ``session``; then :meth:`initialize` runs, then
    :meth:`recv_connect` (return ``False`` or raise
    :class:`~ws4py_integrations.socketio.ConnectionRefusedError` to refuse).
    Events call ``on_<event>(self, *args)``; the return value is the
    acknowledgement. When the client goes, :meth:`recv_disconnect` runs.

    Access control: :meth:`get_initial_acl` gives the method names callable
    at first (``None``: all). An event whose method is not allowed is
    ignored, with a log line. :meth:`lift_acl_restrictions`,
    :meth:`add_acl_method`, :meth:`del_acl_method` and :meth:`reset_acl`
    change the list, e.g. once the client has logged in.
    """

    #: The namespace a subclass serves when registered without one.
    namespace = "/"

    def __init__(self, server: Server, sid: str, namespace: str, environ: Mapping[str, Any], auth: Any) -> None:
        self.server = server
        self.sid = sid
        self.ns_name = namespace
        self.environ = environ
        self.auth = auth
        self.session: UserSession = server.session(sid, namespace)
        #: Why the client went (set before :meth:`recv_disconnect`).
        self.disconnect_reason: str | None = None
        self.allowed_methods: set[str] | None = None
        self.reset_acl()
        self.initialize()

    # -- hooks -----------------------------------------------------------------------

    def initialize(self) -> None:
        """Set up per-client state (called once, before :meth:`recv_connect`)."""

    def recv_connect(self) -> bool | None:
        """The client connects; ``False`` (or ``ConnectionRefusedError``) refuses it."""
        return None

    def recv_disconnect(self) -> None:
        """The client went (``self.disconnect_reason`` says why)."""

    # -- ACL --------------------------------------------------------------------------

    def get_initial_acl(self) -> Iterable[str] | None:
        """Method names (``"on_login"``, ``"recv_connect"``) callable at first; ``None``: all."""
        return None

    def is_method_allowed(self, name: str) -> bool:
        return self.allowed_methods is None or name in self.allowed_methods

    def lift_acl_restrictions(self) -> None:
        """Allow every method from now on."""
        self.allowed_methods = None

    def add_acl_method(self, name: str) -> None:
        """Allow method ``name`` too (with no restrictions yet, allow only it)."""
        if self.allowed_methods is None:
            self.allowed_methods = set()
        self.allowed_methods.add(name)

    def del_acl_method(self, name: str) -> None:
        """Forbid method ``name``; ``ValueError`` while nothing is restricted."""
        if self.allowed_methods is None:
            raise ValueError("no ACL restrictions are in place: nothing to remove")
        self.allowed_methods.discard(name)

    def reset_acl(self) -> None:
        """Back to :meth:`get_initial_acl`."""
        initial = self.get_initial_acl()
        self.allowed_methods = None if initial is None else set(initial)

    # -- what the server calls -----------------------------------------------------------

    def _connect(self) -> bool | None:
        if not self.is_method_allowed("recv_connect"):
            return None
        return self.recv_connect()

    def _disconnected(self, reason: str) -> None:
        self.disconnect_reason = reason
        self.recv_disconnect()

    def _trigger(self, event: str, args: list[Any]) -> tuple[bool, Any]:
        name = method_name(event)
        handler = getattr(self, name, None)
        if handler is None or event in ("connect", "disconnect"):
            return False, None
        if not self.is_method_allowed(name):
            logger.warning("%s: %s is not allowed by the ACL of %s: event ignored", self.sid, name, self.ns_name)
            return False, None
        return True, handler(*args)

    # -- sending ----------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, callback: Callable[..., Any] | None = None) -> None:
        """Send ``event`` with ``args`` to this client."""
        self.server.emit(event, tuple(args), to=self.sid, namespace=self.ns_name, callback=callback)

    def send(self, data: Any, callback: Callable[..., Any] | None = None) -> None:
        """Send a ``"message"`` event to this client."""
        self.emit("message", data, callback=callback)

    def call(self, event: str, *args: Any, timeout: float = 60.0) -> Any:
        """Send ``event`` to this client and wait for its acknowledgement."""
        return self.server.call(event, tuple(args), to=self.sid, namespace=self.ns_name, timeout=timeout)

    def disconnect(self) -> None:
        """Disconnect this client from this namespace."""
        self.server.disconnect(self.sid, self.ns_name)

    def spawn(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``target`` beside the handlers (gevent-socketio's name): see
        :meth:`Server.start_background_task <ws4py_integrations.socketio.Server.start_background_task>`."""
        return self.server.start_background_task(target, *args, **kwargs)


class RoomsMixin:
    """gevent-socketio's rooms helpers for a :class:`BaseNamespace`."""

    server: Server
    sid: str
    ns_name: str

    def join(self, room: str) -> None:
        """Enter ``room``."""
        self.server.enter_room(self.sid, room, self.ns_name)

    def leave(self, room: str) -> None:
        """Leave ``room``."""
        self.server.leave_room(self.sid, room, self.ns_name)

    def emit_to_room(self, room: str, event: str, *args: Any) -> None:
        """Send ``event`` to the other members of ``room``, in every process on the broker."""
        self.server.emit(event, tuple(args), to=room, skip_sid=self.sid, namespace=self.ns_name)


class BroadcastMixin:
    """gevent-socketio's broadcast helpers for a :class:`BaseNamespace`."""

    server: Server
    sid: str
    ns_name: str

    def broadcast_event(self, event: str, *args: Any) -> None:
        """Send ``event`` to every client of this namespace, this one included."""
        self.server.emit(event, tuple(args), namespace=self.ns_name)

    def broadcast_event_not_me(self, event: str, *args: Any) -> None:
        """Send ``event`` to every client of this namespace but this one."""
        self.server.emit(event, tuple(args), skip_sid=self.sid, namespace=self.ns_name)
