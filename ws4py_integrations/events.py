"""Events a connection delivers to its :class:`~ws4py_integrations.WebSocket`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Message", "Pong"]


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: ``str`` for a text message, ``bytes`` for binary."""

    data: str | bytes

    @property
    def is_text(self) -> bool:
        """``True`` for a text message (opcode 0x1)."""
        return isinstance(self.data, str)

    @property
    def is_binary(self) -> bool:
        """``True`` for a binary message (opcode 0x2)."""
        return not isinstance(self.data, str)

    def __len__(self) -> int:
        return len(self.data)

    def __str__(self) -> str:
        return self.data if isinstance(self.data, str) else self.data.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong frame received from the peer, with its application data."""

    data: bytes
