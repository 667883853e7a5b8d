"""Managers run WebSocket connections: :class:`Manager` is the interface and
the shared part, :class:`ThreadedManager` the selectors-and-threads backend,
``GeventManager`` (:mod:`ws4py_integrations.manager.gevent`, imported on
first use) the greenlet backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._descriptors import reserve_descriptor_table
from .base import Manager
from .threaded import ThreadedManager

if TYPE_CHECKING:
    from .gevent import GeventManager

__all__ = ["GeventManager", "Manager", "ThreadedManager", "reserve_descriptor_table"]


def __getattr__(name: str) -> Any:
    # gevent is an optional dependency: import it only when asked for.
    if name == "GeventManager":
        from .gevent import GeventManager

        return GeventManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
