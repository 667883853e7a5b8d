"""Process figures read from /proc: RSS, open fds, threads, greenlets."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import sys
import threading

__all__ = ["count_objects", "process_figures", "raise_fd_limit", "rss_kib"]


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit as far as the hard limit allows; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _status(pid: int | str = "self") -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def rss_kib(pid: int | str = "self") -> int:
    return int(_status(pid)["VmRSS"].split()[0])


def count_objects(*type_names: str) -> dict[str, int]:
    """Live objects whose class name is one of ``type_names`` (after a collection)."""
    gc.collect()
    counts = dict.fromkeys(type_names, 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts:
            counts[name] += 1
    return counts


def greenlet_count() -> int | None:
    """Live greenlets, or ``None`` when greenlet is not imported in this process."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet))


def malloc_trim() -> None:
    """Hand free heap memory back to the OS (glibc), so RSS shows what is in use."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def process_figures() -> dict[str, int | None]:
    """This process's RSS (KiB, before and after malloc_trim), Python memory blocks,
    open fds, OS threads, Python threads and greenlets."""
    gc.collect()
    rss = rss_kib()
    malloc_trim()
    status = _status()
    return {
        "rss_kib": rss,
        "rss_trimmed_kib": int(status["VmRSS"].split()[0]),
        "allocated_blocks": sys.getallocatedblocks(),
        "fds": len(os.listdir("/proc/self/fd")),
        "os_threads": int(status["Threads"]),
        "py_threads": threading.active_count(),
        "greenlets": greenlet_count(),
    }
