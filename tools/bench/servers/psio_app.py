"""python-socketio's side of ``tools/bench/socketio.py``: the Socket.IO echo contract.

The same behaviour as ``examples.socketio_echo`` at ``/socket.io/``: a client
connecting to ``/`` or ``/custom`` is sent an ``auth`` event with its auth payload,
``message`` is answered with ``message-back``, ``message-with-ack`` is acknowledged
with its arguments. Runs in the ``python-socketio`` bench venv only.
"""

from __future__ import annotations

from typing import Any

import socketio

NAMESPACES = ("/", "/custom")


def make_app(async_mode: str) -> Any:
    """The WSGI application, on python-socketio's ``async_mode`` (``gevent`` or ``threading``)."""
    sio = socketio.Server(async_mode=async_mode, cors_allowed_origins="*", namespaces=list(NAMESPACES))
    for namespace in NAMESPACES:
        _register(sio, namespace)
    return socketio.WSGIApp(sio)


def _register(sio: Any, namespace: str) -> None:
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        sio.emit("auth", {} if auth is None else auth, to=sid, namespace=namespace)

    def message(sid: str, *args: Any) -> None:
        sio.emit("message-back", args, to=sid, namespace=namespace)

    def message_with_ack(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    sio.on("connect", connect, namespace=namespace)
    sio.on("message", message, namespace=namespace)
    sio.on("message-with-ack", message_with_ack, namespace=namespace)
