"""The class applications subclass: one instance per WebSocket connection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from websockets.protocol import State

from .connection import Connection, encode_frames
from .events import Message

if TYPE_CHECKING:
    from .manager.base import Manager

__all__ = ["WebSocket"]

SendData = str | bytes | bytearray | memoryview | Iterable[str | bytes]


class WebSocket:
    """A server-side WebSocket connection.

    Subclass it and override the callbacks. The manager calls them one at a
    time per connection, in order. On :class:`~ws4py_integrations.ThreadedManager`
    they run on the thread leading the I/O loop, which hands the loop to
    another thread when a callback blocks; on
    :class:`~ws4py_integrations.gevent.GeventManager` on a greenlet (or a
    thread pool). Either way a slow callback delays only its own connection.

    ``send``, ``ping`` and ``close`` are safe to call from any thread: frames
    of concurrent messages never interleave. They never block on the network:
    bytes wait in a per-connection buffer bounded by ``max_send_buffer``.

    Example::

        class Echo(WebSocket):
            def received_message(self, message):
                self.send(message.data)
    """

    # Whether ``opened`` is this class's no-op: then the connection does not
    # queue it (a turn of the callback queue, and a wake-up of the loop, for nothing).
    _opened_is_noop = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._opened_is_noop = cls.opened is WebSocket.opened

    def __init__(self, connection: Connection, manager: Manager) -> None:
        self._connection = connection
        #: The :class:`~ws4py_integrations.manager.Manager` running this connection.
        self.manager = manager

    # -- callbacks to override ---------------------------------------------------

    def opened(self) -> None:
        """The handshake is complete; the connection is open."""

    def received_message(self, message: Message) -> None:
        """A complete message arrived: ``message.data`` is ``str`` (text) or ``bytes``."""

    def ponged(self, data: bytes) -> None:
        """A pong arrived (an answer to :meth:`ping` or to a keepalive ping)."""

    def closed(self, code: int, reason: str = "") -> None:
        """The connection is closed.

        ``code`` is the peer's close code when it sent one, else ours when
        the peer never answered it, else 1006 (the connection dropped). When
        the server closes (1001 on shutdown), a client that answers with its
        own code (often 1000) is reported with that code.
        """

    # -- actions ---------------------------------------------------------------------

    def send(self, data: SendData, binary: bool | None = None) -> None:
        """Send one message: ``str`` as text, bytes-like as binary.

        An iterable of ``str`` or of ``bytes`` is sent as one fragmented message.
        ``binary=True`` sends a ``str`` as a binary message (UTF-8 encoded);
        ``binary=False`` sends bytes as text (they must be UTF-8).

        Raises :class:`~ws4py_integrations.WebSocketClosed` once closing.
        """
        if isinstance(data, str):
            self._connection.send_message(data.encode(), binary is not True)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            if binary is False:
                data = bytes(data)
                data.decode()  # text must be UTF-8: fail here, not at the peer
                self._connection.send_message(data, True)
            else:
                self._connection.send_message(bytes(data), False)
        else:
            self._connection.send_frames(encode_frames(data))

    def ping(self, data: bytes | str = b"") -> None:
        """Send a ping; :meth:`ponged` is called with the answer's data."""
        self._connection.ping(data.encode() if isinstance(data, str) else bytes(data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; :meth:`closed` follows. Idempotent."""
        self._connection.close(code, reason)

    def terminate(self) -> None:
        """Drop the TCP connection now, without a closing handshake; :meth:`closed`
        follows (with 1006 unless a close frame was exchanged). Idempotent."""
        self._connection.abort()

    def join(self, room: str) -> None:
        """Join ``room``: :meth:`Manager.broadcast` to it reaches this connection."""
        self.manager.join(self, room)

    def leave(self, room: str) -> None:
        """Leave ``room``; closing leaves every room automatically."""
        self.manager.leave(self, room)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in."""
        return self.manager.rooms_of(self)

    # -- state ---------------------------------------------------------------------

    @property
    def environ(self) -> Mapping[str, Any]:
        """The WSGI environ of the upgrade request, less the server's stream
        objects (``wsgi.input``, ``wsgi.errors``, ``wsgi.file_wrapper``)."""
        return self._connection.environ

    @property
    def peer_address(self) -> Any:
        """The peer's address, as ``socket.getpeername()`` returned it."""
        return self._connection.peer_address

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or ``None``."""
        return self._connection.protocol.subprotocol

    @property
    def extensions(self) -> list[str]:
        """Names of the negotiated extensions, e.g. ``["permessage-deflate"]``."""
        return [ext.name for ext in self._connection.protocol.extensions]

    @property
    def latency(self) -> float | None:
        """Round-trip time of the last answered keepalive ping, in seconds."""
        return self._connection.latency

    @property
    def state(self) -> str:
        """``"open"``, ``"closing"`` or ``"closed"``."""
        if self._connection.finalized:
            return "closed"
        state = self._connection.protocol.state
        return "open" if state is State.OPEN else "closing" if state is State.CLOSING else "closed"

    @property
    def terminated(self) -> bool:
        """``True`` once the connection is closed (ws4py's name)."""
        return self._connection.finalized

    @property
    def close_code(self) -> int | None:
        """The close code once :meth:`closed` has been called, else ``None``."""
        return self._connection.closed_code if self._connection.finalized else None

    @property
    def close_reason(self) -> str | None:
        return self._connection.closed_reason if self._connection.finalized else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer_address} {self.state}>"
