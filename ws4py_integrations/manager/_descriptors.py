"""Sizing the process's descriptor table before connections arrive.

Linux keeps a process's open descriptors in a table that starts small (256
entries for Python) and doubles as descriptors are opened. In a process with
several threads, each growth waits for an RCU grace period
(``synchronize_rcu()`` in the kernel's ``expand_fdtable()``), and the thread
opening the descriptor (accepting a connection) stands still meanwhile:
measured on the benchmark machine, 8 to 24 ms per growth with two threads
(0.01 ms with one), six growths on the way to 10,000 connections, during
which handshakes stop. Growing the table once, when a manager is made, moves
that wait out of the way; a single-threaded process does not wait at all,
and managers leave its table alone (a larger table is no help to it).
The table takes 8 bytes per descriptor of kernel memory (512 KiB for 65,536).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

logger = logging.getLogger("ws4py_integrations.manager")

__all__ = ["native_thread_count", "reserve_descriptor_table"]

_lock = threading.Lock()
# (pid, size): a forked child gets a table sized to its open descriptors, so
# what a parent reserved does not carry over.
_reserved = (0, 0)


def reserve_descriptor_table(count: int) -> int:
    """Grow this process's descriptor table to ``count`` entries now (Linux).

    ``count`` is capped by the soft ``RLIMIT_NOFILE``. Returns the number of
    descriptors the table was grown for, or 0 when nothing was done (another
    system, ``count`` below 1, or the kernel refused).
    """
    global _reserved
    if not sys.platform.startswith("linux") or count < 1:
        return 0
    import fcntl
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        count = min(count, soft)
    pid = os.getpid()
    with _lock:
        if _reserved[0] == pid and _reserved[1] >= count:
            return _reserved[1]
        try:
            probe = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            logger.debug("descriptor table not grown: %s", exc)
            return 0
        try:
            # The lowest free descriptor at or above count - 1: the table
            # grows to hold it, and keeps its size once it is closed.
            high = fcntl.fcntl(probe, fcntl.F_DUPFD_CLOEXEC, count - 1)
            os.close(high)
        except OSError as exc:
            # EMFILE (every descriptor up there is taken) or EINVAL.
            logger.debug("descriptor table not grown to %d: %s", count, exc)
            return 0
        finally:
            os.close(probe)
        _reserved = (pid, count)
    logger.debug("descriptor table grown to hold %d descriptors", count)
    return count


def native_thread_count() -> int:
    """The operating system threads of this process (greenlets are not
    threads); 2 when it cannot tell, so that callers take it as threaded."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 2
