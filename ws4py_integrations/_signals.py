"""Stopping a server on SIGTERM and SIGINT, so that clients get 1001."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["DEFAULT_SIGNALS", "stop_on_signals"]

logger = logging.getLogger("ws4py_integrations.server")

#: What systemd, Docker and gunicorn send to stop a process, and Ctrl-C.
DEFAULT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], object], signals: Iterable[int] = DEFAULT_SIGNALS) -> Iterator[None]:
    """While inside, the first of ``signals`` calls ``stop()`` on a new thread.

    ``stop()`` runs on a thread of its own because it waits for the serving
    loop, which the signal interrupts on the main thread. The previous
    handlers are restored on exit. Must be entered on the main thread.
    """
    fired = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if fired.is_set():
            return
        fired.set()
        logger.info("%s received: stopping (WebSockets get 1001)", signal.Signals(signum).name)
        threading.Thread(target=stop, name="ws4py-stop", daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
