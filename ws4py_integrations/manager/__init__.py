"""Managers run detached connections: :class:`Manager` is the interface,
:class:`ThreadedManager` the selectors-and-threads backend."""

from .base import Manager
from .threaded import ThreadedManager

__all__ = ["Manager", "ThreadedManager"]
