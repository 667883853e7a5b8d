"""Exceptions raised by ws4py_integrations.

Every exception the library raises derives from :class:`WebSocketError`, so
``except WebSocketError`` catches them all.
"""

from __future__ import annotations

__all__ = [
    "HandshakeRejected",
    "WebSocketClosed",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Root of every exception raised by ws4py_integrations."""


class WebSocketClosed(WebSocketError):
    """Raised by :meth:`WebSocket.send` and ``ping`` once the connection is closing or closed.

    ``code`` and ``reason`` are the close code and reason known so far: the
    final ones once the connection is closed, the close frame we sent while
    it is closing (1006 and ``""`` when none is known yet).
    """

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"the WebSocket is closed ({code}{' ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class HandshakeRejected(WebSocketError):
    """Raise from an ``authorize`` hook (or ``origins`` callable) to refuse an upgrade.

    The client gets ``status`` with ``reason`` as a one-line plain-text body and
    ``headers`` added to the response (for example ``WWW-Authenticate`` with 401).
    """

    def __init__(
        self,
        status: int = 403,
        reason: str = "Forbidden",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = list(headers or [])
