"""The blocking API: a WebSocket handler written as a function with a loop.

::

    def chat(ws: BlockingWebSocket) -> None:
        for message in ws:          # ends when the connection closes
            ws.send(message)

    app = WebSocketWSGIApplication(chat)

The function runs on a worker from a :class:`HandlerPool`: an OS thread, or a
greenlet under :class:`~ws4py_integrations.gevent.GeventManager` when its
handlers run on greenlets. Reading, writing, keepalive and closing stay on the
manager, as for the callback style: the worker only waits in
:meth:`BlockingWebSocket.receive`.

Messages wait for :meth:`~BlockingWebSocket.receive` with the callback
style's limits: once ``max_queue`` messages are waiting, the manager stops
reading the socket (the peer's sends wait in TCP buffers) until the handler
takes some. When the function returns, the connection is closed with 1000;
when it raises, with 1011, and the traceback is logged (logger
``ws4py_integrations.blocking``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from websockets.frames import CloseCode

from .connection import Connection
from .events import Message
from .exceptions import WebSocketClosed
from .websocket import SendData, WebSocket

if TYPE_CHECKING:
    from .manager.base import Manager

__all__ = [
    "BlockingWebSocket",
    "FunctionWebSocket",
    "HandlerFunction",
    "HandlerPool",
    "as_handler_class",
    "default_pool",
    "function_handler",
]

logger = logging.getLogger("ws4py_integrations.blocking")

#: What a blocking handler is: a function of the connection.
HandlerFunction = Callable[["BlockingWebSocket"], object]

# Put in a mailbox when the connection is closed: receive() answers None.
_CLOSED = object()


#: Starts ``func(*args)`` on a greenlet of a hub, from any thread (``GeventManager._spawn``).
Spawn = Callable[..., None]


def _spawner(manager: Manager) -> Spawn | None:
    """How ``manager`` starts greenlets if it runs handlers on them, else ``None``."""
    if getattr(manager, "handlers", None) != "greenlets":
        return None
    spawn: Spawn = getattr(manager, "_spawn")  # noqa: B009  (a GeventManager's; Manager has none)
    return spawn


class HandlerPool:
    """Runs blocking handlers: at most ``max_workers`` at once.

    A handler that cannot start at once waits (its connection open, its
    messages queued under ``max_queue``) until a worker is free; at most
    ``max_pending`` wait. Beyond that, the connection is closed with 1013
    (Try Again Later) and a warning is logged.

    Workers are daemon threads, started when needed and ended when no handler
    waits; under a GeventManager running handlers on greenlets, greenlets of
    its hub (counted in the same ``max_workers``).
    """

    def __init__(self, max_workers: int = 100, max_pending: int = 100, *, name: str = "ws4py-handler") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        if max_pending < 0:
            raise ValueError(f"max_pending must be at least 0, not {max_pending}")
        self.max_workers = max_workers
        self.max_pending = max_pending
        self.name = name
        self._lock = threading.Lock()
        self._running = 0
        self._pending: deque[tuple[Callable[[], None], Spawn | None]] = deque()
        self._serial = 0

    @property
    def running(self) -> int:
        """Handlers running now."""
        return self._running

    @property
    def pending(self) -> int:
        """Handlers waiting for a worker."""
        return len(self._pending)

    def submit(self, job: Callable[[], None], spawn: Spawn | None = None) -> bool:
        """Run ``job`` on a worker, or queue it; ``False`` when the pool is full.

        The worker is a thread, or a greenlet started with ``spawn(func, *args)``
        (a GeventManager's, which starts it on its hub from any thread).
        """
        with self._lock:
            if self._running >= self.max_workers:
                if len(self._pending) >= self.max_pending:
                    return False
                self._pending.append((job, spawn))
                return True
            self._running += 1
        self._launch(job, spawn)
        return True

    def _launch(self, job: Callable[[], None], spawn: Spawn | None) -> None:
        if spawn is not None:
            spawn(self._work, job, spawn)
            return
        with self._lock:
            self._serial += 1
            name = f"{self.name}-{self._serial}"
        threading.Thread(target=self._work, args=(job, None), name=name, daemon=True).start()

    def _work(self, job: Callable[[], None], spawn: Spawn | None) -> None:
        while True:
            try:
                job()
            except BaseException:
                # A job is FunctionWebSocket._run, which catches Exception;
                # this is a GreenletExit or KeyboardInterrupt: the slot is freed.
                with self._lock:
                    self._running -= 1
                raise
            with self._lock:
                if not self._pending:
                    self._running -= 1
                    return
                job, wanted = self._pending.popleft()
            if wanted != spawn:
                # Another kind of worker (or another hub's): hand the slot over to one.
                self._launch(job, wanted)
                return


_default_pool: HandlerPool | None = None
_default_pool_lock = threading.Lock()


def default_pool() -> HandlerPool:
    """The pool handlers run on unless given one: 100 at once, 100 more waiting."""
    global _default_pool
    with _default_pool_lock:
        if _default_pool is None:
            _default_pool = HandlerPool()
        return _default_pool


class BlockingWebSocket:
    """What a function handler gets: one WebSocket connection, with a blocking ``receive``.

    Use it from the handler's worker. ``send``, ``ping`` and ``close`` are
    safe from any thread (they never wait for the network); only one thread
    should :meth:`receive` at a time.
    """

    def __init__(self, websocket: FunctionWebSocket) -> None:
        self._ws = websocket

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message: ``str`` (text) or ``bytes`` (binary); ``None`` once closed.

        Messages that arrived before the close are still returned first.
        ``timeout`` is in seconds (``None``: wait as long as the connection is
        open); when it expires with the connection still open,
        :class:`TimeoutError` is raised. After the close, it returns ``None``
        at once, every time.
        """
        # Made by opened(), which runs before the function starts.
        mailbox = self._ws._mailbox
        try:
            item = mailbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout} seconds") from None
        if item is _CLOSED:
            mailbox.put(_CLOSED)  # the next receive() answers None as well
            return None
        self._ws._connection.message_handled()
        data: str | bytes = item
        return data

    def __iter__(self) -> Iterator[str | bytes]:
        """Every message until the connection closes."""
        while True:
            message = self.receive()
            if message is None:
                return
            yield message

    def send(self, data: SendData, binary: bool | None = None) -> None:
        """Send one message (see :meth:`WebSocket.send <ws4py_integrations.WebSocket.send>`);
        raises :class:`~ws4py_integrations.WebSocketClosed` once the connection is closing."""
        self._ws.send(data, binary)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; :meth:`receive` then returns what is left, then ``None``."""
        self._ws.close(code, reason)

    def ping(self, data: bytes | str = b"") -> None:
        """Send a ping (the pong is handled by the manager)."""
        self._ws.ping(data)

    def join(self, room: str) -> None:
        """Join ``room`` (see :meth:`Manager.broadcast <ws4py_integrations.Manager.broadcast>`)."""
        self._ws.join(room)

    def leave(self, room: str) -> None:
        """Leave ``room``."""
        self._ws.leave(room)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in."""
        return self._ws.rooms

    @property
    def manager(self) -> Manager:
        """The manager running this connection."""
        return self._ws.manager

    @property
    def websocket(self) -> FunctionWebSocket:
        """The underlying :class:`~ws4py_integrations.WebSocket`."""
        return self._ws

    @property
    def environ(self) -> Mapping[str, Any]:
        """The WSGI environ of the upgrade request (see :attr:`WebSocket.environ
        <ws4py_integrations.WebSocket.environ>`)."""
        return self._ws.environ

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or ``None``."""
        return self._ws.subprotocol

    @property
    def closed(self) -> bool:
        """``True`` once the closing handshake started or the connection is gone
        (:meth:`send` raises; :meth:`receive` may still return queued messages)."""
        return self._ws.state != "open"

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed, else ``None``."""
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection is closed, else ``None``."""
        return self._ws.close_reason

    def __repr__(self) -> str:
        return f"<BlockingWebSocket {self._ws.peer_address} {self._ws.state}>"


class FunctionWebSocket(WebSocket):
    """The WebSocket that runs a function handler (see :func:`function_handler`).

    Subclasses made by :func:`function_handler` set :attr:`handler` and
    :attr:`pool`; they may override :meth:`ponged` like any WebSocket, but
    not ``opened``, ``received_message`` or ``closed``.
    """

    #: The function run for each connection.
    handler: ClassVar[HandlerFunction | None] = None
    #: The pool it runs on (``None``: :func:`default_pool`).
    pool: ClassVar[HandlerPool | None] = None

    def __init__(self, connection: Connection, manager: Manager) -> None:
        super().__init__(connection, manager)
        # receive() says when a message is taken: max_queue counts the ones waiting.
        connection.holds_messages = True
        self._func = type(self).handler
        self._pool = type(self).pool
        self._mailbox: Any = None
        # Set once nobody will receive(): messages are dropped as they come.
        self._discard = False
        self._mailbox_lock = threading.Lock()
        #: What the function gets.
        self.blocking = BlockingWebSocket(self)

    def bind(self, func: HandlerFunction, pool: HandlerPool | None = None) -> None:
        """Run ``func`` (on ``pool``) for this connection, before it starts."""
        self._func = func
        if pool is not None:
            self._pool = pool

    def opened(self) -> None:
        spawn = _spawner(self.manager)
        if spawn is not None:
            import gevent.queue

            self._mailbox = gevent.queue.Queue()
        else:
            self._mailbox = queue.SimpleQueue()
        if self._func is None:
            raise TypeError(f"{type(self).__name__} has no handler function")
        pool = self._pool if self._pool is not None else default_pool()
        if not pool.submit(self._run, spawn):
            logger.warning(
                "%s: refused (1013): %d handlers run and %d wait in pool %r (max_workers=%d, max_pending=%d)",
                self._connection.id,
                pool.running,
                pool.pending,
                pool.name,
                pool.max_workers,
                pool.max_pending,
            )
            self._stop_receiving()
            self.close(CloseCode.TRY_AGAIN_LATER, "server busy, try again later")

    def received_message(self, message: Message) -> None:
        with self._mailbox_lock:
            discard = self._discard
            if not discard:
                self._mailbox.put(message.data)
        if discard:
            self._connection.message_handled()

    def closed(self, code: int, reason: str = "") -> None:
        # After opened(), which made the mailbox: a connection starts with it.
        self._mailbox.put(_CLOSED)

    def _stop_receiving(self) -> None:
        """Nobody will receive(): drop what waits and what comes, so reading
        resumes (the peer's answer to our close must be read)."""
        with self._mailbox_lock:
            self._discard = True
            dropped = 0
            while True:
                try:
                    item = self._mailbox.get_nowait()
                except queue.Empty:
                    break
                if item is _CLOSED:
                    self._mailbox.put(_CLOSED)
                    break
                dropped += 1
        for _ in range(dropped):
            self._connection.message_handled()

    def _run(self) -> None:
        func = self._func
        assert func is not None  # checked in opened()
        if self.terminated:
            logger.debug("%s: closed before its handler could start", self._connection.id)
            return
        name = getattr(func, "__qualname__", repr(func))
        try:
            func(self.blocking)
        except WebSocketClosed:
            logger.debug("%s: %s: the connection closed while sending", self._connection.id, name)
        except Exception:
            logger.exception("%s: handler %s raised; closing the connection with 1011", self._connection.id, name)
            self._stop_receiving()
            self.close(CloseCode.INTERNAL_ERROR, "internal server error")
            return
        self._stop_receiving()
        self.close(CloseCode.NORMAL_CLOSURE)


def function_handler(func: HandlerFunction, *, pool: HandlerPool | None = None) -> type[FunctionWebSocket]:
    """A :class:`WebSocket` class that runs ``func(ws)`` for each connection,
    on a worker of ``pool`` (:func:`default_pool` if ``None``).

    ``ws`` is a :class:`BlockingWebSocket`. The connection closes with 1000
    when ``func`` returns, with 1011 when it raises (the traceback is logged).
    """
    if isinstance(func, type) or not callable(func):
        raise TypeError(f"function_handler() takes a function, not {func!r}")
    name = getattr(func, "__name__", "handler")
    namespace = {
        "handler": staticmethod(func),
        "pool": pool,
        "__module__": getattr(func, "__module__", __name__),
        "__doc__": getattr(func, "__doc__", None),
    }
    cls = type(f"{name}_websocket", (FunctionWebSocket,), namespace)
    return cls


def as_handler_class(handler: type[WebSocket] | HandlerFunction, pool: HandlerPool | None = None) -> type[WebSocket]:
    """``handler`` as a WebSocket class: a subclass as is, a function through :func:`function_handler`."""
    if isinstance(handler, type):
        if issubclass(handler, WebSocket):
            return handler
        raise TypeError(f"a handler must be a WebSocket subclass or a function, not the class {handler!r}")
    if not callable(handler):
        raise TypeError(f"a handler must be a WebSocket subclass or a function, not {handler!r}")
    return function_handler(handler, pool=pool)
