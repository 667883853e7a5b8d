"""Real servers on 127.0.0.1 port 0, one module per server adapter.

Each module ``tests/servers/<name>.py`` defines::

    @contextmanager
    def serve(app, tls: TLSFiles | None = None) -> Iterator[RunningServer]: ...

which starts ``app`` on a free port, yields once it accepts connections, and
stops it (gracefully: WebSockets get 1001) on exit.
"""

from __future__ import annotations

import importlib
import ssl
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from ws4py_integrations import Manager

SERVER_NAMES = ("wsgiref", "cherrypy", "gevent")


@dataclass(frozen=True)
class TLSFiles:
    """A server certificate for 127.0.0.1 and a client context that trusts it."""

    certfile: str
    keyfile: str
    client_context: ssl.SSLContext

    def server_context(self) -> ssl.SSLContext:
        """A server context for this certificate.

        No TLS 1.3 session tickets (see :func:`no_session_tickets`).
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        no_session_tickets(context)
        return context


def no_session_tickets(context: ssl.SSLContext) -> None:
    """Send no TLS 1.3 session tickets from this server context.

    The websockets sync client reads its SSL socket on one thread while it
    writes the handshake request on another; a ticket that arrives in between
    can make that write fail ("[SSL] internal error") or vanish, so the client
    waits for a response to a request the server never got. A client-side
    race; OP_NO_TICKET does not help in TLS 1.3 (tickets become stateful),
    ``num_tickets = 0`` does.
    """
    context.num_tickets = 0


@dataclass
class RunningServer:
    name: str
    host: str
    port: int
    tls: bool
    manager: Manager | None
    stop: Callable[[], None]
    extra: dict[str, Any] = field(default_factory=dict)

    def ws_url(self, path: str) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}{path}"

    def http_url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{path}"


def available() -> list[str]:
    """Server names whose harness module (and server package) import here."""
    names = []
    for name in SERVER_NAMES:
        try:
            importlib.import_module(f"tests.support.servers.{name}")
        except ImportError:
            continue
        names.append(name)
    return names


def serve(name: str, app: Any, tls: TLSFiles | None = None) -> AbstractContextManager[RunningServer]:
    module = importlib.import_module(f"tests.support.servers.{name}")
    cm: AbstractContextManager[RunningServer] = module.serve(app, tls)
    return cm
