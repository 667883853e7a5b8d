"""Brokers: what carries :meth:`Manager.broadcast <ws4py_integrations.Manager.broadcast>`.

A manager hands every broadcast to its broker. The broker sends it to the
connections of this process (:meth:`Manager.broadcast_local
<ws4py_integrations.Manager.broadcast_local>`, one encoding for all of them)
and, if it spans processes, to the connections everywhere else.

* :class:`InProcessBroker`, the default: this process only, no setup.
* :class:`~ws4py_integrations.redis_broker.RedisBroker` (the ``redis``
  extra): Redis pub/sub, so a publish in any process reaches the room's
  members in every process.

A broker is attached to one manager when the manager starts and closed when
it stops. Write your own by implementing :class:`Broker`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .exceptions import WebSocketError

if TYPE_CHECKING:
    from .manager.base import Manager
    from .websocket import SendData, WebSocket

__all__ = ["Broker", "BrokerError", "BrokerUnavailable", "InProcessBroker"]


class BrokerError(WebSocketError):
    """A broker could not hand a message on to other processes."""


class BrokerUnavailable(BrokerError):
    """The broker's server (e.g. Redis) cannot be reached; the message went to no other process."""


@runtime_checkable
class Broker(Protocol):
    """How a manager's broadcasts reach their connections."""

    def attach(self, manager: Manager) -> None:
        """Deliver to ``manager`` from now on (called once, when the manager starts)."""

    def publish(self, room: str | None, data: SendData, exclude: Iterable[WebSocket] = ()) -> int:
        """Send ``data`` to the members of ``room`` (``None``: every connection) but
        ``exclude``, in every process the broker reaches.

        Returns how many connections of this process got it (``0`` while no
        manager is attached). ``exclude`` holds connections of this process.
        """

    def close(self) -> None:
        """Stop delivering and release resources (called when the manager stops); idempotent."""


class InProcessBroker:
    """The default broker: delivers to the attached manager's connections, nothing more.

    It adds no cost to :meth:`Manager.broadcast <ws4py_integrations.Manager.broadcast>`:
    a direct call to :meth:`Manager.broadcast_local <ws4py_integrations.Manager.broadcast_local>`.
    """

    def __init__(self) -> None:
        self._manager: Manager | None = None
        self._lock = threading.Lock()

    def attach(self, manager: Manager) -> None:
        with self._lock:
            if self._manager is not None and self._manager is not manager:
                raise RuntimeError("this broker is already attached to another manager")
            self._manager = manager

    def publish(self, room: str | None, data: SendData, exclude: Iterable[WebSocket] = ()) -> int:
        manager = self._manager
        if manager is None:
            return 0
        return manager.broadcast_local(data, room, exclude=exclude)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
