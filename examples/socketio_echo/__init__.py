"""The Socket.IO echo example: the contract Socket.IO conformance runs use.

``python -m examples.socketio_echo --server NAME --host H --port P`` serves:

- ``/engine.io/``: a bare Engine.IO v4 server that sends every message back;
- ``/socket.io/``: a Socket.IO v5 server. A client connecting to ``/`` or
  ``/custom`` is sent an ``auth`` event carrying its auth payload (``{}``
  when none); an event ``message`` is answered with an event
  ``message-back`` carrying the same arguments; an event
  ``message-with-ack`` is acknowledged with the same arguments; every
  other namespace is refused with ``{"message": "Invalid namespace"}``.

CORS is open to any origin on both.
"""

from __future__ import annotations

from typing import Any

from ws4py_integrations.engineio import EchoHandler, EngineIOServer
from ws4py_integrations.socketio import Server, SocketIOMiddleware

NAMESPACES = ("/", "/custom")


def make_server(connect_timeout: float = 45.0, **engineio_options: Any) -> Server:
    """The Socket.IO echo server; ``engineio_options`` go to its Engine.IO server."""
    sio = Server(namespaces=list(NAMESPACES), connect_timeout=connect_timeout, path=None, **engineio_options)
    for namespace in NAMESPACES:
        _register(sio, namespace)
    return sio


def _register(sio: Server, namespace: str) -> None:
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        sio.emit("auth", auth, to=sid, namespace=namespace)

    def message(sid: str, *args: Any) -> None:
        sio.emit("message-back", args, to=sid, namespace=namespace)

    def message_with_ack(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    sio.on("connect", connect, namespace=namespace)
    sio.on("message", message, namespace=namespace)
    sio.on("message-with-ack", message_with_ack, namespace=namespace)


def index(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"Socket.IO echo: Engine.IO at /engine.io/, Socket.IO at /socket.io/\n"
    status = "200 OK" if environ.get("PATH_INFO", "/") == "/" else "404 Not Found"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def make_app(
    *,
    ping_interval: float = 25.0,
    ping_timeout: float = 20.0,
    connect_timeout: float = 45.0,
    max_payload: int = 1_000_000,
    allowed_hosts: list[str] | None = None,
) -> SocketIOMiddleware:
    """The echo WSGI application."""
    options: dict[str, Any] = {
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        "max_payload": max_payload,
        "cors_allowed_origins": "*",
        "allowed_hosts": allowed_hosts,
    }
    engine = EngineIOServer(EchoHandler(), index, path="/engine.io/", **options)
    return make_server(connect_timeout, **options).wsgi_app(engine)
