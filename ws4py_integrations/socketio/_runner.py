"""Where Socket.IO handlers run: one ordered queue per session, and shared timers."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("ws4py_integrations.socketio")


class SerialRunner:
    """Runs a session's handlers one at a time, in order, on a thread of their own.

    The thread exists only while the queue has work (started by the first
    job, gone when the queue runs empty), so an idle session costs none, and
    a handler that blocks holds up only its own session. Under gevent's
    monkey patching the "thread" is a greenlet.
    """

    __slots__ = ("_jobs", "_lock", "_name", "_running")

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._running = False

    def submit(self, func: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._jobs.append((func, args))
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._drain, name=f"socketio-{self._name}", daemon=True).start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._running = False
                    return
                func, args = self._jobs.popleft()
            try:
                func(*args)
            except Exception:
                logger.exception("%s: handler %s failed", self._name, getattr(func, "__qualname__", func))


class TimerHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """One thread for every delayed call of a server (connect timeouts)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle, Callable[[], Any]]] = []
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, func: Callable[[], Any]) -> TimerHandle:
        handle = TimerHandle()
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._counter), handle, func))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="socketio-timers", daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, handle, func = heapq.heappop(self._heap)
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            if handle.cancelled:
                continue
            try:
                func()
            except Exception:
                logger.exception("timer callback %s failed", getattr(func, "__qualname__", func))
