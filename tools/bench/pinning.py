"""CPU pinning of the server under test and the load client (``taskset``, util-linux).

The server gets one core and the load client the other, so a multi-threaded
server cannot spread over both cores beside the client, and every server has
the same CPU as every other.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pinning:
    """The CPUs of the server under test and of the load client."""

    server_cpu: int
    client_cpu: int
    taskset: str = "taskset"

    def server_prefix(self) -> list[str]:
        return [self.taskset, "-c", str(self.server_cpu)]

    def client_prefix(self) -> list[str]:
        return [self.taskset, "-c", str(self.client_cpu)]

    def describe(self) -> str:
        return (
            f"server under test on CPU {self.server_cpu} (taskset -c {self.server_cpu}), "
            f"load client on CPU {self.client_cpu} (taskset -c {self.client_cpu})"
        )

    def as_json(self) -> dict[str, Any]:
        return {"pinned": True, "server_cpu": self.server_cpu, "client_cpu": self.client_cpu}


UNPINNED_JSON: dict[str, Any] = {"pinned": False}


def usable_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity mask), else all of them."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def check(server_cpu: int, client_cpu: int, *, cpus: set[int] | None = None, taskset: str | None = None) -> Pinning:
    """The pinning to use, or :class:`SystemExit` with a message saying what is missing."""
    path = taskset if taskset is not None else shutil.which("taskset")
    if not path:
        raise SystemExit(
            "bench: `taskset` not found; install util-linux (apt-get install util-linux), "
            "or pass --unpinned to measure without pinning"
        )
    available = usable_cpus() if cpus is None else cpus
    if len(available) < 2:
        raise SystemExit(
            f"bench: pinning needs at least 2 CPUs (server on one, load client on another); "
            f"this process may use {len(available)} ({sorted(available)}); pass --unpinned to measure anyway"
        )
    if server_cpu == client_cpu:
        raise SystemExit(f"bench: --server-cpu and --client-cpu are both {server_cpu}; they must differ")
    for flag, cpu in (("--server-cpu", server_cpu), ("--client-cpu", client_cpu)):
        if cpu not in available:
            raise SystemExit(f"bench: {flag} {cpu} is not among the usable CPUs {sorted(available)}")
    return Pinning(server_cpu, client_cpu, path)
