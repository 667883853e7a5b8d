"""Fan-out benchmark: how long until every member of a room has one published message.

    python -m tools.fanout [--clients 1000] [--rounds 30] [--server wsgiref]

Runs, on 127.0.0.1:

* ``in-process``: one server process (the test app, ``python -m tests.support.serve``)
  with the default broker, all clients in it;
* ``redis``: two server processes sharing rooms through a ``redis-server`` of
  its own (``--save '' --appendonly no``), the clients spread evenly over them.

Every client joins the room ``bench``. Each round a trigger client (in no
room, connected to the first process) sends ``pub:bench:<round>``; the time is
measured from that send until the last client has the message ("all"), and
until the last client of the publishing process ("local") and of the other
process ("remote") have it. With Redis a second series publishes from this
process without WebSockets (``RedisBroker.publish``, a publish-only process).
Reported: p50 and p99 over the rounds (after warm-up rounds). The clients
(``websockets`` asyncio, one event loop, no compression) run in this process
and share the machine with the servers and Redis: client-side receiving is
part of every figure, for both brokers alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.support.process import app_server
from tests.support.redis import RedisServer, find_redis_server
from ws4py_integrations.redis_broker import RedisBroker

ROOM = "bench"


@dataclass
class Series:
    broker: str
    processes: int
    trigger: str
    all: list[float] = field(default_factory=list)
    local: list[float] = field(default_factory=list)
    remote: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Fleet:
    """Clients joined to ROOM on several servers; counts arrivals per round."""

    def __init__(self) -> None:
        self.connections: list[tuple[int, ClientConnection]] = []  # (server index, connection)
        self.expected = ""
        self.arrivals: list[tuple[int, float]] = []
        self.done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.total = 0

    async def connect(self, urls: list[str], count: int, concurrency: int = 50) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            server = index % len(urls)
            async with gate:
                ws = await connect(urls[server], compression=None, open_timeout=30, max_queue=None)
                await ws.send(f"join:{ROOM}")
                answer = await asyncio.wait_for(ws.recv(), 30)
                assert answer == f"joined:{ROOM}", answer
            self.connections.append((server, ws))

        await asyncio.gather(*(one(i) for i in range(count)))
        self.total = len(self.connections)
        for server, ws in self.connections:
            self.tasks.append(asyncio.create_task(self._receive(server, ws)))

    async def _receive(self, server: int, ws: ClientConnection) -> None:
        async for message in ws:
            if message == self.expected:
                self.arrivals.append((server, time.perf_counter()))
                if len(self.arrivals) == self.total:
                    self.done.set()

    def arm(self, payload: str) -> None:
        self.expected = payload
        self.arrivals = []
        self.done = asyncio.Event()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for _, ws in self.connections), return_exceptions=True)


async def run_series(
    series: Series,
    fleet: Fleet,
    rounds: int,
    warmup: int,
    trigger_ws: ClientConnection | None,
    broker: RedisBroker | None,
    local_server: int = 0,
) -> None:
    for number in range(warmup + rounds):
        payload = f"{series.trigger}-{number}-" + "x" * 48
        fleet.arm(payload)
        started = time.perf_counter()
        if trigger_ws is not None:
            await trigger_ws.send(f"pub:{ROOM}:{payload}")
        else:
            assert broker is not None
            broker.publish(ROOM, payload)  # a fraction of a millisecond: blocking the loop here is fine
        await asyncio.wait_for(fleet.done.wait(), 60)
        if number < warmup:
            continue
        times = [t - started for _, t in fleet.arrivals]
        local = [t - started for s, t in fleet.arrivals if s == local_server]
        remote = [t - started for s, t in fleet.arrivals if s != local_server]
        series.all.append(max(times))
        series.first.append(min(times))
        if local:
            series.local.append(max(local))
        if remote:
            series.remote.append(max(remote))


async def bench(args: argparse.Namespace, workdir: Path) -> list[Series]:
    results: list[Series] = []

    # In-process broker: one process holds every client.
    with app_server(args.server, log_path=workdir / "inprocess.log", log_level="WARNING") as single:
        fleet = Fleet()
        await fleet.connect([single.url()], args.clients)
        async with connect(single.url(), compression=None) as trigger:
            series = Series("in-process", 1, "websocket")
            await run_series(series, fleet, args.rounds, args.warmup, trigger, None)
            results.append(series)
        await fleet.close()

    # Redis broker: two processes, clients spread over both.
    executable = find_redis_server()
    if executable is None:
        print("redis-server not found (scripts/setup.sh --test installs it): Redis series skipped", file=sys.stderr)
        return results
    with RedisServer(executable) as redis:
        servers = [args.server, args.second_server or args.server]
        processes = [
            app_server(name, redis_url=redis.url, log_path=workdir / f"redis-{i}.log", log_level="WARNING")
            for i, name in enumerate(servers)
        ]
        with processes[0], processes[1], RedisBroker.from_url(redis.url) as broker:
            fleet = Fleet()
            await fleet.connect([p.url() for p in processes], args.clients)
            async with connect(processes[0].url(), compression=None) as trigger:
                series = Series("redis", 2, "websocket")
                await run_series(series, fleet, args.rounds, args.warmup, trigger, None)
                results.append(series)
            series = Series("redis", 2, "publish-only")
            await run_series(series, fleet, args.rounds, args.warmup, None, broker, local_server=-1)
            results.append(series)
            await fleet.close()
    return results


def report(results: list[Series], args: argparse.Namespace) -> str:
    def ms(value: float) -> str:
        return f"{value * 1000:8.2f}"

    lines = [
        f"fan-out: {args.clients} clients in room {ROOM!r}, {args.rounds} rounds (+{args.warmup} warm-up), "
        f"64-byte text message; server {args.server}" + (f" + {args.second_server}" if args.second_server else ""),
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, clients: websockets asyncio in one process",
        "",
        "broker      procs trigger       all p50  all p99 | local p50 remote p50 | first p50   (ms)",
    ]
    for s in results:
        local = ms(percentile(s.local, 0.5)) if s.local else "       -"
        remote = ms(percentile(s.remote, 0.5)) if s.remote else "       -"
        lines.append(
            f"{s.broker:<11} {s.processes:>5} {s.trigger:<12} {ms(percentile(s.all, 0.5))} {ms(percentile(s.all, 0.99))} |"
            f"  {local}   {remote} | {ms(percentile(s.first, 0.5))}"
        )
    lines.append("")
    lines.append(
        "all: until the last client has it; local/remote: the last client of the publishing / the other process;"
    )
    lines.append("first: until the first client has it. p99 over few rounds is close to the maximum.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--server", default="wsgiref", help="server adapter of the (first) process")
    parser.add_argument("--second-server", help="adapter of the second process with Redis (default: --server)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="ws4py-fanout-") as tmp:
        results = asyncio.run(bench(args, Path(tmp)))
    print(report(results, args))
    if args.json:
        data: list[dict[str, Any]] = [s.__dict__ for s in results]
        args.json.write_text(json.dumps({"clients": args.clients, "rounds": args.rounds, "series": data}, indent=1))


if __name__ == "__main__":
    main()
