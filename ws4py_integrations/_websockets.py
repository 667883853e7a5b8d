"""Every use of a ``websockets`` internal, named in one place.

The protocol engine is websockets' Sans-I/O layer. Its public surface
(``receive_data``, ``data_to_send``, ``send_*``, ``fail``, ``state``,
``close_rcvd``, ``close_sent``) is enough to run a connection, but assembling
messages strictly (early UTF-8 failure, a Close inside a fragmented message)
needs a few of its internals. They are listed here, with the versions they
were checked against; the minimum-versions CI run exercises the oldest.

Checked against websockets 14.0, 15.0.1, 16.0 and 17.x:

- ``Protocol.reader``: the ``StreamReader`` the parser reads from; replaced by
  a subclass before any byte is fed (:mod:`ws4py_integrations.protocol`).
- ``StreamReader.buffer`` / ``.eof`` / ``.at_eof()`` / ``.read_exact(n)``: the
  reader's state and the two generator methods the parser calls.
- ``Protocol.parser`` / ``Protocol.parse()``: the parser generator, restarted
  on the new reader.
- ``Protocol.events``: the parser appends each frame here; the frame event
  is translated into a message and websockets' copy dropped.
- ``Protocol.parser_exc``: set when failing the connection from outside the
  parser, so that websockets reports the cause as it would its own.
- ``Protocol.recv_frame(frame)``: overridden to assemble messages.
- ``Protocol.debug``: whether websockets traces frames; the fast path for
  small frames (:meth:`MessageProtocol._parse_fast
  <ws4py_integrations.protocol.MessageProtocol._parse_fast>`) stands aside
  then, so the trace stays complete.
- The size of the fragmented message being received: ``current_size`` since
  websockets 16.0, ``cur_size`` before (``None`` between messages).
- ``PerMessageDeflate.local_no_context_takeover``, ``.local_max_window_bits``
  and ``.compress_settings``: read to tell which receivers of a broadcast can
  share one compressed copy (:mod:`ws4py_integrations.manager.base`).
"""

from __future__ import annotations

from websockets.protocol import Protocol
from websockets.server import ServerProtocol

__all__ = ["SIZE_ATTRIBUTE", "fragmented_size", "reset_fragmented_size"]

#: The attribute holding the size of the fragmented message in progress.
SIZE_ATTRIBUTE = "current_size" if hasattr(ServerProtocol(), "current_size") else "cur_size"


def fragmented_size(protocol: Protocol) -> int | None:
    """The size of the fragmented message being received, or ``None`` between messages."""
    size: int | None = getattr(protocol, SIZE_ATTRIBUTE)
    return size


def reset_fragmented_size(protocol: Protocol) -> None:
    """Forget the fragmented message in progress (a Close arrived inside it)."""
    setattr(protocol, SIZE_ATTRIBUTE, None)
