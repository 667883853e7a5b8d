"""The Socket.IO v5 server, on an Engine.IO v4 transport."""

from __future__ import annotations

import base64
import functools
import inspect
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

from ..broker import InProcessBroker
from ..connection import RLockLike, TimerHandle
from . import packet as pk
from ._runner import SerialRunner, Timers
from .exceptions import ConnectionRefusedError, SocketIOTimeout
from .namespace import BaseNamespace, Namespace

if TYPE_CHECKING:
    from ..broker import Broker
    from ..manager.base import Manager
    from ..websocket import SendData, WebSocket

__all__ = ["EngineSocket", "Server", "SocketIOMiddleware"]

logger = logging.getLogger("ws4py_integrations.socketio")

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)

#: Sent to a client whose connect handler returned ``False``.
REJECTED = {"message": "Connection rejected by server"}


class EngineSocket(Protocol):
    """What the Socket.IO layer needs of an Engine.IO session."""

    @property
    def sid(self) -> str: ...
    @property
    def environ(self) -> Mapping[str, Any]: ...
    @property
    def closed(self) -> bool: ...
    def send(self, data: str | bytes) -> None: ...
    def close(self) -> None: ...


def _positional_count(func: Handler) -> int:
    """How many positional arguments ``func`` takes (a large number for ``*args``)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it everything
        return 99
    count = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _args(data: Any) -> list[Any]:
    """python-socketio's convention: a tuple is several arguments, ``None`` none."""
    if data is None:
        return []
    if isinstance(data, tuple):
        return list(data)
    return [data]


def _ack_result(args: list[Any]) -> Any:
    if not args:
        return None
    return args[0] if len(args) == 1 else tuple(args)


class _Waiter:
    """An acknowledgement :meth:`Server.call` waits for."""

    __slots__ = ("args", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.args: list[Any] | None = None

    def __call__(self, *args: Any) -> None:
        self.args = list(args)
        self.event.set()


class UserSession(dict[str, Any]):
    """A client's session dictionary; also usable as ``with server.session(sid) as s:``."""

    def __enter__(self) -> UserSession:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Socket:
    """One client's connection to one namespace."""

    __slots__ = (
        "acks",
        "auth",
        "client",
        "connected",
        "gone",
        "instance",
        "namespace",
        "next_id",
        "pending",
        "session",
        "sid",
    )

    def __init__(self, client: _Client, namespace: str, sid: str) -> None:
        self.client = client
        self.namespace = namespace
        self.sid = sid
        self.connected = False
        self.gone = False
        self.acks: dict[int, Callable[..., Any]] = {}
        self.next_id = 0
        self.pending: list[list[str | bytes]] = []
        self.session = UserSession()
        self.instance: BaseNamespace | None = None
        self.auth: Any = None

    def send_packet(self, packet: pk.Packet, callback: Callable[..., Any] | None = None) -> None:
        if callback is not None:
            with self.client.lock:
                ack_id = self.next_id
                self.next_id += 1
                self.acks[ack_id] = callback
            packet.id = ack_id
        self.send_messages(pk.encode(packet))

    def send_messages(self, messages: list[str | bytes]) -> bool:
        """Send an encoded packet; ``False`` if this socket is gone."""
        with self.client.lock:
            if self.gone:
                return False
            if not self.connected:
                # An emit from the connect handler: sent once the CONNECT answer is.
                self.pending.append(messages)
                return True
        self.client.send(messages)
        return True


class _Client:
    """One Engine.IO session: its decoder, its namespaces, the queue of its handlers."""

    def __init__(self, eio: EngineSocket, decoder: pk.Decoder) -> None:
        self.eio = eio
        self.decoder = decoder
        #: For the manager's log lines (it keys callback queues by this object).
        self.id = f"sio:{eio.sid[:8]}"
        manager: Any = getattr(eio, "manager", None)
        #: Run ``func(*args)`` after every handler submitted before for this client.
        self.submit: Callable[..., None]
        if manager is not None and hasattr(manager, "schedule"):
            # The manager's ordered queue, under a key of our own: its threads (or
            # greenlets) run handlers, and a blocked one is handed off, so a blocked
            # handler holds up this client only, and never the transport's callbacks.
            self.submit = functools.partial(manager.schedule, self)
            self.call_later: Callable[[float, Callable[[], Any]], TimerHandle] | None = manager.call_later
        else:
            self.submit = SerialRunner(eio.sid).submit
            self.call_later = None
        self.sockets: dict[str, _Socket] = {}
        # Keeps a packet's text and attachments together, and ack ids unique; the
        # manager's kind of lock (a greenlet-aware one under gevent).
        self.lock: RLockLike = manager.new_lock() if manager is not None else threading.RLock()
        self.timer: TimerHandle | None = None

    def send(self, messages: list[str | bytes]) -> None:
        if len(messages) == 1:
            # Nothing to keep together (Engine.IO's send is atomic, and a no-op once closed).
            self.eio.send(messages[0])
            return
        with self.lock:
            if self.eio.closed:
                return
            for message in messages:
                self.eio.send(message)


class _EngineHandler:
    """The Engine.IO handler interface, kept apart from :class:`Server`'s own
    ``disconnect(sid)``."""

    # message() never blocks: it decodes, takes acknowledgements, and queues
    # handlers on the client's own queue, so Engine.IO may call it on the
    # WebSocket transport's turn (handlers still never run there).
    _inline_messages = True

    def __init__(self, server: Server) -> None:
        self._server = server

    def connect(self, socket: EngineSocket) -> None:
        self._server._engine_connect(socket)

    def message(self, socket: EngineSocket, data: str | bytes) -> None:
        self._server._engine_message(socket, data)

    def disconnect(self, socket: EngineSocket, reason: str) -> None:
        self._server._engine_disconnect(socket, reason)


class _BrokerTarget:
    """What a :class:`~ws4py_integrations.broker.Broker` delivers to: it takes the
    place of a manager, and hands each published emit to the server's clients."""

    def __init__(self, server: Server) -> None:
        self._server = server
        # The emit this thread is publishing, decoded: the broker hands the same
        # string straight back for this process's clients.
        self._local = threading.local()

    def publish(
        self, broker: Broker, namespace: str, rooms: list[str] | None, skip: list[str], messages: list[str | bytes]
    ) -> int:
        envelope = encode_envelope(namespace, rooms, skip, messages)
        self._local.current = (envelope, (namespace, rooms, set(skip), messages))
        try:
            return broker.publish(namespace, envelope)
        finally:
            self._local.current = None

    def broadcast_local(self, data: SendData, room: str | None = None, *, exclude: Iterable[WebSocket] = ()) -> int:
        current = getattr(self._local, "current", None)
        if current is not None and current[0] is data:
            return self._server._deliver(*current[1])
        if not isinstance(data, str):
            logger.warning("ignoring a non-text message from the broker")
            return 0
        try:
            envelope = json.loads(data)
            messages: list[str | bytes] = [envelope["text"], *(base64.b64decode(b) for b in envelope["bin"])]
            return self._server._deliver(envelope["ns"], envelope["rooms"], set(envelope["skip"]), messages)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring a malformed emit from the broker: %s", exc)
            return 0


def encode_envelope(namespace: str, rooms: list[str] | None, skip: list[str], messages: list[str | bytes]) -> str:
    """An emit in the form brokers carry between processes."""
    text, *binary = messages
    return json.dumps(
        {
            "ns": namespace,
            "rooms": rooms,
            "skip": skip,
            "text": text,
            "bin": [base64.b64encode(cast(bytes, b)).decode() for b in binary],
        },
        separators=(",", ":"),
    )


def _room_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


def event_packet(namespace: str, event: str, data: Any) -> pk.Packet:
    if not isinstance(event, str):
        raise TypeError(f"event names are str, not {type(event).__name__}")
    return pk.Packet(pk.EVENT, namespace, [event, *_args(data)])


class Server:
    """A Socket.IO v5 server: mount it as a WSGI application (``server`` itself
    answers every request as Engine.IO), or beside an application with
    :meth:`wsgi_app` / :class:`SocketIOMiddleware`.

    ``namespaces``: the namespaces clients may connect to: a list, or ``"*"``
    for any; by default ``"/"`` and every namespace with a handler.
    ``connect_timeout``: seconds a client has to connect to a namespace
    after its Engine.IO session opens. ``broker``: what carries emits to
    rooms and broadcasts (default: this process only; a
    :class:`~ws4py_integrations.redis_broker.RedisBroker`, dedicated to this
    server, reaches the same rooms in every process). ``max_attachments``
    and ``max_attachment_bytes`` bound one binary packet (more closes the
    client's session: attachments are held until the packet is complete).
    Other keyword options
    go to the Engine.IO server (``ping_interval``, ``ping_timeout``,
    ``max_payload``, ``cors_allowed_origins``...).

    Handlers run on the manager's ordered queue of each client, outside the
    transport's callbacks: one client's handlers run one at a time, in the
    order its packets came; a handler that blocks (a database query,
    :meth:`call`) holds up only its own client.
    """

    def __init__(
        self,
        *,
        namespaces: Iterable[str] | str | None = None,
        connect_timeout: float = 45.0,
        broker: Broker | None = None,
        max_attachments: int = pk.MAX_ATTACHMENTS,
        max_attachment_bytes: int = pk.MAX_ATTACHMENT_BYTES,
        **engineio_options: Any,
    ) -> None:
        self._allowed: set[str] | None
        if namespaces == "*":
            self._allowed = None
        elif namespaces is None:
            self._allowed = set()
        else:
            self._allowed = set(namespaces)
        self._auto_namespaces = namespaces is None
        self.connect_timeout = connect_timeout
        self.max_attachments = max_attachments
        self.max_attachment_bytes = max_attachment_bytes
        self.engineio_options = engineio_options
        self._handlers: dict[str, dict[str, Handler]] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._namespace_classes: dict[str, type[BaseNamespace]] = {}
        self._clients: dict[str, _Client] = {}
        self._sockets: dict[str, _Socket] = {}
        self._rooms: dict[str, dict[str, set[str]]] = {}
        self._memberships: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._timers = Timers()
        self._handler = _EngineHandler(self)
        self._eio: Any = None
        self._broker: Broker = broker if broker is not None else InProcessBroker()
        self._target = _BrokerTarget(self)
        self._broker.attach(cast("Manager", self._target))

    # -- mounting -------------------------------------------------------------------

    @property
    def engine_handler(self) -> _EngineHandler:
        """The object the Engine.IO server calls (``connect``, ``message``, ``disconnect``)."""
        return self._handler

    @property
    def eio(self) -> Any:
        """The :class:`~ws4py_integrations.engineio.EngineIOServer` under this server (made on first use)."""
        if self._eio is None:
            from ..engineio import EngineIOServer

            options = {"path": None, **self.engineio_options}
            self._eio = EngineIOServer(self._handler, **options)
        return self._eio

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result: Iterable[bytes] = self.eio(environ, start_response)
        return result

    def wsgi_app(self, app: Any = None, path: str = "socket.io") -> SocketIOMiddleware:
        """A WSGI application: Socket.IO at ``/<path>/``, everything else to ``app`` (404 without one)."""
        return SocketIOMiddleware(app, self, path)

    # -- registration -------------------------------------------------------------------

    def _allow(self, namespace: str) -> None:
        if self._auto_namespaces and self._allowed is not None:
            self._allowed.add(namespace)

    @overload
    def on(self, event: str, handler: None = None, namespace: str | None = None) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F, namespace: str | None = None) -> F: ...

    def on(self, event: str, handler: F | None = None, namespace: str | None = None) -> Any:
        """Register ``handler`` for ``event`` in ``namespace`` (a decorator without ``handler``).

        ``"connect"`` handlers get ``(sid, environ)`` or ``(sid, environ, auth)``
        and may refuse the client (return ``False`` or raise
        :class:`~ws4py_integrations.socketio.ConnectionRefusedError`);
        ``"disconnect"`` ones ``(sid)`` or ``(sid, reason)``; ``"*"`` catches
        every event without a handler: ``(event, sid, *args)``; others get
        ``(sid, *args)``, and what they return is the acknowledgement.
        """
        ns = namespace or "/"

        def register(func: F) -> F:
            with self._lock:
                self._handlers.setdefault(ns, {})[event] = func
                self._allow(ns)
            return func

        return register if handler is None else register(handler)

    @overload
    def event(self, handler: F) -> F: ...
    @overload
    def event(self, *, namespace: str | None = None) -> Callable[[F], F]: ...

    def event(self, handler: F | None = None, *, namespace: str | None = None) -> Any:
        """Register a handler under its function's name: ``@server.event``."""
        if handler is not None:
            return self.on(handler.__name__, handler, namespace)

        def register(func: F) -> F:
            return self.on(func.__name__, func, namespace)

        return register

    def register_namespace(self, handler: Namespace | type[BaseNamespace], namespace: str | None = None) -> None:
        """Add a class-based namespace: a :class:`Namespace` instance (one for all
        clients), or a :class:`BaseNamespace` subclass (one instance per client)."""
        with self._lock:
            if isinstance(handler, Namespace):
                ns = namespace or handler.namespace
                handler._attach(self, ns)
                self._namespaces[ns] = handler
            elif isinstance(handler, type) and issubclass(handler, BaseNamespace):
                ns = namespace or handler.namespace
                self._namespace_classes[ns] = handler
            else:
                raise TypeError(f"expected a Namespace instance or a BaseNamespace subclass, not {handler!r}")
            self._allow(ns)

    def _namespace_allowed(self, namespace: str) -> bool:
        return namespace == "/" or self._allowed is None or namespace in self._allowed

    # -- Engine.IO callbacks (one at a time per session) ----------------------------------

    def _engine_connect(self, eio: EngineSocket) -> None:
        client = _Client(eio, pk.Decoder(self.max_attachments, self.max_attachment_bytes))
        with self._lock:
            self._clients[eio.sid] = client
        if self.connect_timeout > 0:
            call_later = client.call_later or self._timers.call_later
            client.timer = call_later(self.connect_timeout, lambda: self._connect_timed_out(client))

    def _connect_timed_out(self, client: _Client) -> None:
        if not client.sockets and not client.eio.closed:
            logger.info("%s: no namespace connected within %.3gs: closing", client.eio.sid, self.connect_timeout)
            client.eio.close()

    def _engine_message(self, eio: EngineSocket, data: str | bytes) -> None:
        client = self._clients.get(eio.sid)
        if client is None:
            return
        try:
            packet = client.decoder.feed(data)
        except pk.PacketError as exc:
            logger.info("%s: malformed packet, closing the session: %s", eio.sid, exc)
            eio.close()
            return
        if packet is None:
            return
        kind = packet.type
        if kind == pk.CONNECT:
            self._on_connect_packet(client, packet)
            return
        sock = client.sockets.get(packet.namespace)
        if sock is None:
            logger.debug("%s: packet for unconnected namespace %s ignored", eio.sid, packet.namespace)
            return
        if kind in (pk.ACK, pk.BINARY_ACK):
            # Right here, not behind the handlers: a handler may be blocked in call() waiting for it.
            assert packet.id is not None
            with client.lock:
                callback = sock.acks.pop(packet.id, None)
            if callback is None:
                logger.debug("%s: unexpected ack %d ignored", eio.sid, packet.id)
            elif isinstance(callback, _Waiter):
                callback(*packet.data)
            else:
                client.submit(callback, *packet.data)
        elif kind == pk.DISCONNECT:
            self._close_socket(sock, "client namespace disconnect", False)
        else:
            client.submit(self._run_event, sock, packet)

    def _engine_disconnect(self, eio: EngineSocket, reason: str) -> None:
        with self._lock:
            client = self._clients.pop(eio.sid, None)
        if client is None:
            return
        if client.timer is not None:
            client.timer.cancel()
        for sock in list(client.sockets.values()):
            self._close_socket(sock, reason, False)

    # -- connecting -----------------------------------------------------------------------

    def _on_connect_packet(self, client: _Client, packet: pk.Packet) -> None:
        ns = packet.namespace
        if not self._namespace_allowed(ns):
            client.send(pk.encode(pk.Packet(pk.CONNECT_ERROR, ns, {"message": "Invalid namespace"})))
            return
        sock = _Socket(client, ns, secrets.token_urlsafe(15))
        sock.auth = packet.data if packet.data is not None else {}
        with client.lock:
            if ns in client.sockets:
                logger.info("%s: second CONNECT to %s ignored", client.eio.sid, ns)
                return
            client.sockets[ns] = sock
        with self._lock:
            self._sockets[sock.sid] = sock
        # The connect timer stays until a namespace accepts: a client refused everywhere is closed.
        client.submit(self._run_connect, sock)

    def _run_connect(self, sock: _Socket) -> None:
        if sock.gone:
            return  # disconnected before its turn came
        client = sock.client
        environ = client.eio.environ
        refusal: dict[str, Any] | None = None
        try:
            accepted = self._call_connect(sock, environ)
            if accepted is False:
                refusal = dict(REJECTED)
        except ConnectionRefusedError as exc:
            refusal = exc.error_args()
        except Exception:
            logger.exception("%s: connect handler of %s failed", sock.sid, sock.namespace)
            refusal = dict(REJECTED)
        if refusal is not None:
            self._forget(sock)
            client.send(pk.encode(pk.Packet(pk.CONNECT_ERROR, sock.namespace, refusal)))
            return
        self.enter_room(sock.sid, sock.sid, sock.namespace)
        with client.lock:
            if sock.gone:
                return
            client.send(pk.encode(pk.Packet(pk.CONNECT, sock.namespace, {"sid": sock.sid})))
            sock.connected = True
            if client.timer is not None:  # as the reference server: connected once is enough
                client.timer.cancel()
                client.timer = None
            pending, sock.pending = sock.pending, []
            for messages in pending:
                client.send(messages)

    def _call_connect(self, sock: _Socket, environ: Mapping[str, Any]) -> Any:
        ns = sock.namespace
        cls = self._namespace_classes.get(ns)
        if cls is not None:
            sock.instance = cls(self, sock.sid, ns, environ, sock.auth)
            return sock.instance._connect()
        instance = self._namespaces.get(ns)
        handler: Handler | None
        if instance is not None:
            handler = getattr(instance, "on_connect", None)
        else:
            handler = self._handlers.get(ns, {}).get("connect")
        if handler is None:
            return None
        if _positional_count(handler) >= 3:
            return handler(sock.sid, environ, sock.auth)
        return handler(sock.sid, environ)

    # -- events ---------------------------------------------------------------------------

    def _run_event(self, sock: _Socket, packet: pk.Packet) -> None:
        if sock.gone:
            return
        name, *args = packet.data
        # A number is a valid event name on the wire; handlers are keyed by str.
        event = name if isinstance(name, str) else str(int(name) if float(name).is_integer() else name)
        try:
            found, result = self._call_event(sock, event, args)
        except Exception:
            logger.exception("%s: handler of %r in %s failed", sock.sid, event, sock.namespace)
            return
        if not found:
            logger.debug("%s: no handler for %r in %s", sock.sid, event, sock.namespace)
            return
        if packet.id is not None and not sock.gone:
            sock.client.send(pk.encode_ack(sock.namespace, packet.id, _args(result)))

    def _call_event(self, sock: _Socket, event: str, args: list[Any]) -> tuple[bool, Any]:
        if sock.instance is not None:
            return sock.instance._trigger(event, args)
        instance = self._namespaces.get(sock.namespace)
        if instance is not None:
            return instance._trigger(event, sock.sid, args)
        handlers = self._handlers.get(sock.namespace, {})
        handler = handlers.get(event) if event not in ("connect", "disconnect") else None
        if handler is not None:
            return True, handler(sock.sid, *args)
        catch_all = handlers.get("*")
        if catch_all is not None:
            return True, catch_all(event, sock.sid, *args)
        return False, None

    # -- disconnecting ----------------------------------------------------------------------

    def _forget(self, sock: _Socket) -> bool:
        """Remove ``sock`` from the registry and its rooms; ``False`` if it was gone already."""
        with sock.client.lock:
            if sock.gone:
                return False
            sock.gone = True
            sock.pending = []
            if sock.client.sockets.get(sock.namespace) is sock:
                del sock.client.sockets[sock.namespace]
        with self._lock:
            self._sockets.pop(sock.sid, None)
            rooms = self._rooms.get(sock.namespace, {})
            for room in self._memberships.pop(sock.sid, ()):
                members = rooms.get(room)
                if members is not None:
                    members.discard(sock.sid)
                    if not members:
                        del rooms[room]
        return True

    def _release_waiters(self, sock: _Socket) -> None:
        with sock.client.lock:
            waiters = [cb for cb in sock.acks.values() if isinstance(cb, _Waiter)]
            sock.acks.clear()
        for waiter in waiters:
            waiter.event.set()

    def _close_socket(self, sock: _Socket, reason: str, notify: bool) -> None:
        """End ``sock`` at once (later packets for its namespace are ignored, a new
        CONNECT is a new connection); its disconnect handler is queued behind its others."""
        if not self._forget(sock):
            return
        if notify:
            sock.client.send(pk.encode(pk.Packet(pk.DISCONNECT, sock.namespace)))
        self._release_waiters(sock)
        sock.client.submit(self._run_disconnect, sock, reason)

    def _run_disconnect(self, sock: _Socket, reason: str) -> None:
        if not sock.connected:
            return  # refused, or gone before its connect handler ran
        try:
            self._call_disconnect(sock, reason)
        except Exception:
            logger.exception("%s: disconnect handler of %s failed", sock.sid, sock.namespace)

    def _call_disconnect(self, sock: _Socket, reason: str) -> None:
        if sock.instance is not None:
            sock.instance._disconnected(reason)
            return
        instance = self._namespaces.get(sock.namespace)
        handler: Handler | None
        if instance is not None:
            handler = getattr(instance, "on_disconnect", None)
        else:
            handler = self._handlers.get(sock.namespace, {}).get("disconnect")
        if handler is None:
            return
        if _positional_count(handler) >= 2:
            handler(sock.sid, reason)
        else:
            handler(sock.sid)

    def disconnect(self, sid: str, namespace: str | None = None) -> None:
        """Disconnect client ``sid`` from its namespace (its disconnect handler
        runs with the reason ``"server namespace disconnect"``)."""
        sock = self._socket(sid, namespace, required=False)
        if sock is None:
            return
        self._close_socket(sock, "server namespace disconnect", True)

    # -- sending ----------------------------------------------------------------------------

    def _socket(self, sid: str, namespace: str | None, *, required: bool = True) -> _Socket | None:
        sock = self._sockets.get(sid)
        if sock is not None and (namespace is None or sock.namespace == namespace):
            return sock
        if required:
            raise KeyError(f"no client {sid!r}" + (f" in namespace {namespace!r}" if namespace else ""))
        return None

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
        """Send ``event`` with ``data`` (a tuple is several arguments) to client
        ``to`` (a sid), to the members of room(s) ``to`` (``room`` is an alias),
        or to every client of ``namespace``; never to ``skip_sid``.

        ``callback`` gets the client's acknowledgement (``to`` one client only).
        From any thread; rooms and broadcasts go through the broker.
        """
        target = to if to is not None else room
        if isinstance(target, str):
            sock = self._sockets.get(target)
            if sock is not None and (namespace is None or namespace == sock.namespace):
                skip = _room_list(skip_sid) or []
                if target not in skip:
                    sock.send_packet(event_packet(sock.namespace, event, data), callback)
                return
        if callback is not None:
            raise ValueError("callback= needs to= naming one connected client of this process")
        ns = namespace or "/"
        messages = pk.encode(event_packet(ns, event, data))
        self._publish(ns, _room_list(target), _room_list(skip_sid) or [], messages)

    def send(
        self,
        data: Any,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        """:meth:`emit` of the event ``"message"``."""
        self.emit("message", data, to=to, room=room, skip_sid=skip_sid, namespace=namespace, callback=callback)

    def call(
        self,
        event: str,
        data: Any = None,
        to: str | None = None,
        sid: str | None = None,
        namespace: str | None = None,
        timeout: float = 60.0,
    ) -> Any:
        """Emit ``event`` to one client and wait for its acknowledgement: its single
        argument, a tuple of several, ``None`` for none.

        Raises :class:`~ws4py_integrations.socketio.SocketIOTimeout` after
        ``timeout`` seconds or when the client goes away. A handler may call
        its own client: acknowledgements are taken outside the handler queue.
        """
        target = to if to is not None else sid
        if target is None:
            raise ValueError("call() needs to= (one client's sid)")
        sock = self._socket(target, namespace)
        assert sock is not None
        waiter = _Waiter()
        sock.send_packet(event_packet(sock.namespace, event, data), waiter)
        if not waiter.event.wait(timeout):
            with sock.client.lock:
                for key, cb in list(sock.acks.items()):
                    if cb is waiter:
                        del sock.acks[key]
            raise SocketIOTimeout(f"no acknowledgement of {event!r} from {target} within {timeout}s")
        if waiter.args is None:
            raise SocketIOTimeout(f"{target} disconnected before acknowledging {event!r}")
        return _ack_result(waiter.args)

    def _publish(self, namespace: str, rooms: list[str] | None, skip: list[str], messages: list[str | bytes]) -> int:
        if type(self._broker) is InProcessBroker:
            return self._deliver(namespace, rooms, set(skip), messages)  # no other process: no envelope
        return self._target.publish(self._broker, namespace, rooms, skip, messages)

    def _deliver(self, namespace: str, rooms: list[str] | None, skip: set[str], messages: list[str | bytes]) -> int:
        """Send an encoded packet to this process's clients of ``namespace`` in ``rooms``
        (``None``: all of them) but ``skip``; returns how many got it."""
        with self._lock:
            if rooms is None:
                sids = {sid for sid, s in self._sockets.items() if s.namespace == namespace}
            else:
                ns_rooms = self._rooms.get(namespace, {})
                sids = set().union(*(ns_rooms.get(r, ()) for r in rooms)) if rooms else set()
            socks = [self._sockets[sid] for sid in sids - skip if sid in self._sockets]
        return sum(1 for sock in socks if sock.send_messages(messages))

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``target(*args, **kwargs)`` on a daemon thread of its own (a greenlet
        under gevent's monkey patching) and return it (python-socketio's name)."""
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    @staticmethod
    def sleep(seconds: float) -> None:
        """``time.sleep`` (python-socketio's name; cooperative under monkey patching)."""
        time.sleep(seconds)

    def close(self) -> None:
        """Release the broker (its subscriber, its Redis connections); idempotent."""
        self._broker.close()

    def emitter(self) -> Emitter:
        """An :class:`Emitter` on this server's broker."""
        return Emitter(self._broker)

    # -- rooms -------------------------------------------------------------------------------

    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Add client ``sid`` to ``room`` (it leaves every room when it disconnects)."""
        sock = self._socket(sid, namespace, required=False)
        if sock is None or sock.gone:
            return
        with self._lock:
            self._rooms.setdefault(sock.namespace, {}).setdefault(room, set()).add(sid)
            self._memberships.setdefault(sid, set()).add(room)

    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Remove client ``sid`` from ``room`` (no error if it is not a member)."""
        sock = self._socket(sid, namespace, required=False)
        if sock is None:
            return
        with self._lock:
            rooms = self._rooms.get(sock.namespace, {})
            members = rooms.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del rooms[room]
            self._memberships.get(sid, set()).discard(room)

    def close_room(self, room: str, namespace: str | None = None) -> None:
        """Remove every client of this process from ``room``."""
        with self._lock:
            members = self._rooms.get(namespace or "/", {}).pop(room, set())
            for sid in members:
                self._memberships.get(sid, set()).discard(room)

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        """The rooms client ``sid`` is in (its own sid included)."""
        if self._socket(sid, namespace, required=False) is None:
            return []
        with self._lock:
            return sorted(self._memberships.get(sid, ()))

    def participants(self, room: str, namespace: str | None = None) -> list[str]:
        """The sids of this process's clients in ``room``."""
        with self._lock:
            return sorted(self._rooms.get(namespace or "/", {}).get(room, ()))

    # -- per-client state ---------------------------------------------------------------------

    def get_environ(self, sid: str, namespace: str | None = None) -> Mapping[str, Any] | None:
        """The WSGI environ of client ``sid``'s Engine.IO handshake request."""
        sock = self._socket(sid, namespace, required=False)
        return None if sock is None else sock.client.eio.environ

    def session(self, sid: str, namespace: str | None = None) -> UserSession:
        """Client ``sid``'s session dictionary (also a context manager, as in python-socketio)."""
        sock = self._socket(sid, namespace)
        assert sock is not None
        return sock.session

    def get_session(self, sid: str, namespace: str | None = None) -> UserSession:
        """:meth:`session` (python-socketio's name)."""
        return self.session(sid, namespace)

    def save_session(self, sid: str, session: dict[str, Any], namespace: str | None = None) -> None:
        """Replace client ``sid``'s session with ``session``."""
        target = self.session(sid, namespace)
        target.clear()
        target.update(session)

    def transport(self, sid: str, namespace: str | None = None) -> str | None:
        """The Engine.IO transport client ``sid`` uses now (``"polling"`` or ``"websocket"``)."""
        sock = self._socket(sid, namespace, required=False)
        return None if sock is None else getattr(sock.client.eio, "transport", None)

    def connected(self, sid: str, namespace: str | None = None) -> bool:
        """Whether client ``sid`` is connected."""
        sock = self._socket(sid, namespace, required=False)
        return sock is not None and sock.connected and not sock.gone


class Emitter:
    """Emits to rooms from anywhere, through a broker, with no clients of its own
    (a worker, a cron job)::

        from ws4py_integrations.socketio import RedisEmitter
        RedisEmitter("redis://localhost:6379/0").emit("news", {"title": "..."}, room="readers")

    Emits reach the clients of every :class:`Server` on the same broker channel.
    """

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def emit(
        self,
        event: str,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
    ) -> None:
        """As :meth:`Server.emit`, without acknowledgements."""
        ns = namespace or "/"
        target = to if to is not None else room
        messages = pk.encode(event_packet(ns, event, data))
        self.broker.publish(ns, encode_envelope(ns, _room_list(target), _room_list(skip_sid) or [], messages))

    def send(self, data: Any, **kwargs: Any) -> None:
        """:meth:`emit` of the event ``"message"``."""
        self.emit("message", data, **kwargs)

    def close(self) -> None:
        self.broker.close()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SocketIOMiddleware:
    """A WSGI application: requests under ``/<path>/`` go to ``server``, the rest to ``app``.

    Put it around (or inside) a :class:`~ws4py_integrations.WebSocketMiddleware`
    to serve plain WebSocket routes beside Socket.IO.
    """

    def __init__(self, app: Any, server: Server, path: str = "socket.io") -> None:
        self.app = app
        self.server = server
        self.prefix = "/" + path.strip("/")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return self.server(environ, start_response)
        if self.app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
            return [b"not found\n"]
        result: Iterable[bytes] = self.app(environ, start_response)
        return result
