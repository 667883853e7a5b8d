"""Soak: N connect/send/close cycles; the server's resources must return to baseline.

    python -m tools.hardening.soak --cycles 10000 [--server wsgiref] [--json]

The server runs in a process of its own (``hardening.serverproc``). After a
warm-up (thread pools exist, caches are filled) the baseline is taken: open
fds, OS threads, greenlets (gevent), RSS and live ``Connection``/handler
objects. Each cycle connects to ``/echo``, sends a message, reads the echo and
closes (1000, waiting for the server to drop TCP); every tenth cycle drops the
connection with a TCP RST instead. Afterwards every figure must be back at
its baseline, within small tolerances for threads and RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.hardening.aioclient import connect
from tools.hardening.metrics import raise_fd_limit
from tools.hardening.serverproc import HardeningServer

__all__ = ["SoakResult", "main", "run_soak"]

#: Tolerances for "back to baseline". Worker pools start threads lazily, up to
#: their max_workers, so a few more threads after the run are not a leak.
THREAD_SLACK = 16
#: Python memory blocks may differ by this much (caches, interned strings).
BLOCKS_SLACK = 20_000
#: RSS after malloc_trim; the allocator keeps some fragmentation.
RSS_SLACK_KIB = 64 * 1024
#: How long closed connections may take to be freed (timers hold them until they fire).
SETTLE_SECONDS = 90.0


@dataclass
class SoakResult:
    server: str
    cycles: int
    completed: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    baseline: dict[str, Any] = field(default_factory=dict)
    #: Figures right after the last cycle closed (before timers let go of connections).
    right_after: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    settle_seconds: float = 0.0

    def delta(self, name: str) -> int | None:
        before, after = self.baseline.get(name), self.after.get(name)
        return None if before is None or after is None else after - before

    def problems(self) -> list[str]:
        """What did not return to baseline (empty when the soak passed)."""
        found = []
        if self.completed != self.cycles:
            found.append(f"{self.cycles - self.completed} cycles failed: {self.failures[:5]}")
        for name in ("fds", "connections", "registered", "Connection", "Commands"):
            delta = self.delta(name)
            if delta is not None and delta > 0:  # fewer than at baseline is fine
                found.append(f"{name}: {self.baseline.get(name)} -> {self.after.get(name)}")
        for name in ("os_threads", "py_threads", "greenlets"):
            delta = self.delta(name)
            if delta is not None and delta > THREAD_SLACK:
                found.append(f"{name}: {self.baseline.get(name)} -> {self.after.get(name)}")
        blocks = self.delta("allocated_blocks")
        if blocks is not None and blocks > BLOCKS_SLACK:
            found.append(f"Python memory blocks grew by {blocks}")
        rss = self.delta("rss_trimmed_kib")
        if rss is not None and rss > RSS_SLACK_KIB:
            found.append(f"rss (after malloc_trim) grew by {rss} KiB")
        return found

    def summary(self) -> str:
        parts = [
            f"{name} {self.delta(name):+d}"
            for name in (
                "fds",
                "os_threads",
                "py_threads",
                "greenlets",
                "rss_kib",
                "rss_trimmed_kib",
                "allocated_blocks",
                "Connection",
            )
            if self.delta(name) is not None
        ]
        return (
            f"{self.server}: {self.completed}/{self.cycles} cycles in {self.seconds:.1f}s "
            f"({self.cycles / max(self.seconds, 1e-9):.0f}/s); after vs baseline: {', '.join(parts)} "
            f"(baseline rss {self.baseline.get('rss_kib')} KiB, fds {self.baseline.get('fds')}, "
            f"threads {self.baseline.get('os_threads')}); right after the last cycle "
            f"{self.right_after.get('Connection')} closed Connection objects were still alive, "
            f"freed after {self.settle_seconds:.1f}s"
        )


async def _cycle(host: str, port: int, index: int) -> None:
    client = await connect(host, port, "/echo", timeout=30)
    try:
        text = f"soak {index}"
        client.send_text(text)
        frame = await client.recv_data(30)
        if frame is None or bytes(frame.data) != text.encode():
            raise AssertionError(f"cycle {index}: expected the echo, got {frame!r}")
        if index % 10 == 9:
            client.abort()
            await client.wait_closed(30)
            return
        client.close(1000)
        await client.wait_closed(30)
        if client.close_rcvd is None or client.close_rcvd.code != 1000:
            raise AssertionError(f"cycle {index}: closing handshake ended with {client.close_rcvd!r}")
    finally:
        if not client.eof:
            client.writer.transport.abort()


async def _cycles(host: str, port: int, first: int, count: int, concurrency: int, result: SoakResult | None) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with semaphore:
            try:
                await _cycle(host, port, index)
            except Exception as exc:
                if result is None:
                    raise
                result.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                if result is not None:
                    result.completed += 1

    await asyncio.gather(*(one(i) for i in range(first, first + count)))


async def _settled(proc: HardeningServer, timeout: float) -> dict[str, Any]:
    """Figures once no connection is registered any more (or at the timeout).

    One closed ``Connection`` may stay referenced by the I/O loop's last
    iteration (a local variable) until the next event: that is not a leak.
    """
    deadline = time.monotonic() + timeout
    while True:
        figures = await proc.command("figures")
        if (figures["registered"] == 0 and figures["Connection"] <= 1) or time.monotonic() > deadline:
            return figures
        await asyncio.sleep(0.2)


async def run_soak(
    cycles: int,
    server: str = "wsgiref",
    *,
    concurrency: int = 8,
    warmup: int = 200,
    log_path: str | None = None,
    options: dict[str, float | None] | None = None,
) -> SoakResult:
    """``options`` override every endpoint's (a short ``ping_interval`` lets closed
    connections go sooner: their cancelled keepalive timers hold them until due)."""
    raise_fd_limit()
    result = SoakResult(server, cycles)
    proc = HardeningServer(server, log_path=log_path, options=options)
    try:
        await proc.start()
        host, port = "127.0.0.1", proc.port
        await _cycles(host, port, -warmup, warmup, concurrency, None)
        result.baseline = await _settled(proc, SETTLE_SECONDS)
        started = time.monotonic()
        await _cycles(host, port, 0, cycles, concurrency, result)
        result.seconds = time.monotonic() - started
        result.right_after = await proc.command("figures")
        settle_started = time.monotonic()
        result.after = await _settled(proc, SETTLE_SECONDS)
        result.settle_seconds = time.monotonic() - settle_started
        await proc.stop(60)
    finally:
        await proc.kill()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="connect/send/close cycles; resources must return to baseline")
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--server", action="append", help="server adapter (repeatable); default: every available one")
    parser.add_argument("--concurrency", type=int, default=8, help="cycles in flight at once")
    parser.add_argument("--ping-interval", type=float, default=None, help="override every endpoint's ping_interval")
    parser.add_argument("--close-timeout", type=float, default=None, help="override every endpoint's close_timeout")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    from tests.support.servers import available

    options: dict[str, float | None] = {}
    if args.ping_interval:
        options["ping_interval"] = args.ping_interval
    if args.close_timeout:
        options["close_timeout"] = args.close_timeout
    ok = True
    results = []
    for name in args.server or available():
        with tempfile.TemporaryDirectory() as directory:
            log_path = os.path.join(directory, "server.log")
            result = asyncio.run(
                run_soak(args.cycles, name, concurrency=args.concurrency, log_path=log_path, options=options)
            )
            with open(log_path, errors="replace") as log:
                errors = [line.rstrip() for line in log if " ERROR " in line or "Traceback" in line]
        results.append(asdict(result))
        print(result.summary(), flush=True)
        problems = result.problems() + [f"server log: {line}" for line in errors[:5]]
        for problem in problems:
            print(f"  NOT BACK TO BASELINE: {problem}", flush=True)
        ok = ok and not problems
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
