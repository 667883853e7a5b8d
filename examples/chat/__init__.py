"""The chat example: rooms, nicknames, history and presence over one WebSocket.

``python -m examples.chat --server wsgiref --host 127.0.0.1 --port 8080``
(or ``make chat``) serves the page at ``/`` and its WebSocket at ``/ws``.
:mod:`examples.chat.protocol` validates what clients send;
:mod:`examples.chat.server` holds the handler and the WSGI application.
"""

from __future__ import annotations

from .server import Chat, ChatWebSocket, make_app

__all__ = ["Chat", "ChatWebSocket", "make_app"]
