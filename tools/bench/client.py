"""Load client for the benchmark: picows (Cython WebSocket) on uvloop, one process.

Run with the client venv's python (``tools/bench/.venvs/client``); it prints one JSON
object on its last stdout line. Scenarios:

- ``echo``: N connections, closed loop (one message in flight per connection);
- ``idle``: open N connections (handshakes/s), hold them, sample the server's RSS;
  its handshakes are :class:`HandshakePeer`'s, not picows's (see there why);
- ``broadcast``: N clients on /broadcast, one sends; time until each receives.

``--raw`` speaks the raw TCP echo protocol of ``tools/bench/servers/raw_server.py``
instead of WebSocket: the first byte selects echo (``E``) or broadcast (``B``).

The client samples the server's CPU time and RSS from ``/proc/<server-pid>``
and its own CPU time, so each result carries the client's headroom.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - the client venv has it
    uvloop = None  # type: ignore[assignment]

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

CONNECT_TIMEOUT = 15.0
CLOSE_TIMEOUT = 10.0
MAX_FRAME = 64 * 2**20
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of ``pid``; 0.0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes; 0 if unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def system_busy() -> float:
    """CPU seconds all processes of the machine spent busy (``/proc/stat``)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _CLK_TCK


class Meter:
    """Wall clock, client and server CPU, and everybody else's CPU between two points."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.t0 = self.c0 = self.s0 = self.b0 = 0.0

    def start(self) -> None:
        self.b0 = system_busy()
        self.t0, self.c0, self.s0 = time.perf_counter(), time.process_time(), proc_cpu(self.server_pid)

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        client = time.process_time() - self.c0
        server = proc_cpu(self.server_pid) - self.s0
        other = system_busy() - self.b0 - client - server
        return {
            "wall_s": wall,
            "client_cpu_s": client,
            "server_cpu_s": server,
            "other_core": max(0.0, other / wall),
        }


# -- connections ---------------------------------------------------------------


class Peer:
    """One connection, WebSocket or raw TCP: send a message, get called per message received."""

    on_message: Callable[[Peer, int, bytes | None], None]

    def send(self, payload: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class WSPeer(Peer, WSListener):  # type: ignore[misc]
    def __init__(self, binary: bool, keep_payload: bool) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.msg_type = WSMsgType.BINARY if binary else WSMsgType.TEXT
        self.keep_payload = keep_payload
        self.size = 0
        self.parts: list[bytes] = []
        self.on_message = _ignore

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if msg_type is WSMsgType.PING or msg_type is WSMsgType.PONG:
            return
        self.size += frame.payload_size
        if self.keep_payload:
            self.parts.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return
        size, self.size = self.size, 0
        payload = None
        if self.keep_payload:
            payload = b"".join(self.parts)
            self.parts = []
        self.on_message(self, size, payload)

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.send(self.msg_type, payload)

    async def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        if not transport.is_close_frame_sent:
            transport.send_close()
        try:
            await asyncio.wait_for(transport.wait_disconnected(), CLOSE_TIMEOUT)
        except (TimeoutError, Exception):
            transport.disconnect(graceful=False)


class RawPeer(Peer, asyncio.Protocol):
    """Raw TCP: messages are fixed-size records of ``record`` bytes."""

    def __init__(self, record: int, keep_payload: bool) -> None:
        self.transport: asyncio.Transport | None = None
        self.record = record
        self.keep_payload = keep_payload
        self.got = 0
        self.buffer = bytearray()
        self.on_message = _ignore
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        record = self.record
        if self.keep_payload:
            self.buffer += data
            while len(self.buffer) >= record:
                payload = bytes(self.buffer[:record])
                del self.buffer[:record]
                self.on_message(self, record, payload)
            return
        self.got += len(data)
        while self.got >= record:
            self.got -= record
            self.on_message(self, record, None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(payload)

    async def close(self) -> None:
        if self.transport is None:
            return
        self.transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), CLOSE_TIMEOUT)
        except TimeoutError:
            self.transport.abort()


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CLOSE_FRAME_HEAD = b"\x88\x82"


class HandshakeFailed(Exception):
    """The server's answer to the upgrade request was not a valid 101."""


class HandshakePeer(Peer, asyncio.Protocol):
    """A WebSocket client that opens, holds and closes a connection, and nothing else.

    The idle scenario measures the server's handshakes; picows's client spends
    about 310 µs of client CPU per handshake on this machine (more than most
    servers), which made the one client core the bottleneck. This one sends a
    complete RFC 6455 upgrade request with a fresh random key, checks the status
    line and ``Sec-WebSocket-Accept`` of the answer, and closes with a masked
    close frame, waiting for the server to end the TCP connection.
    """

    def __init__(self, host: str, path: str, opened: asyncio.Future[HandshakePeer]) -> None:
        key = base64.b64encode(os.urandom(16))
        self.accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.request = (
            b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ) % (path.encode(), host.encode(), key)
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.upgraded = False
        self.on_message = _ignore
        self.lost: asyncio.Future[None] = opened.get_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            # Idle connections get nothing but the server's close frame (or a ping,
            # which none of the benchmarked servers sends in this time).
            if data[:1] == b"\x88" and self.transport is not None:
                self.transport.close()
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > 16384:
                self._fail(HandshakeFailed("no end of the response head in 16 KiB"))
            return
        status, *lines = self.head[:end].split(b"\r\n")
        accept = None
        for line in lines:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-accept":
                accept = value.strip()
        if not status.startswith(b"HTTP/1.1 101 "):
            self._fail(HandshakeFailed(f"status {status!r}"))
        elif accept != self.accept:
            self._fail(HandshakeFailed(f"Sec-WebSocket-Accept {accept!r}, expected {self.accept!r}"))
        else:
            self.upgraded = True
            self.head = b""
            if not self.opened.done():
                self.opened.set_result(self)

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.lost.done():
            self.lost.set_result(None)

    def send(self, payload: bytes) -> None:
        raise NotImplementedError("HandshakePeer only opens and closes")

    async def close(self) -> None:
        if self.transport is None or self.lost.done():
            return
        mask = os.urandom(4)
        code = bytes(b ^ m for b, m in zip(b"\x03\xe8", mask[:2], strict=True))  # 1000, masked
        self.transport.write(_CLOSE_FRAME_HEAD + mask + code)
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), CLOSE_TIMEOUT)
        except TimeoutError:
            self.transport.abort()


async def handshake(args: argparse.Namespace, path: str) -> Peer:
    """Open one idle WebSocket connection with :class:`HandshakePeer`."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[HandshakePeer] = loop.create_future()
    await loop.create_connection(lambda: HandshakePeer(f"{args.host}:{args.port}", path, opened), args.host, args.port)
    return await opened


def _ignore(peer: Peer, size: int, payload: bytes | None) -> None:
    pass


async def connect(args: argparse.Namespace, path: str, *, binary: bool, record: int, keep_payload: bool) -> Peer:
    """Open one connection (WebSocket handshake, or TCP plus a mode byte and a one-byte round trip)."""
    if args.raw:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_connection(lambda: RawPeer(1, False), args.host, args.port)
        # The mode byte, then one byte echoed back: the server has the connection.
        done: asyncio.Future[None] = loop.create_future()
        peer.on_message = lambda p, s, d: done.done() or done.set_result(None)
        peer.send(b"B" if path == "/broadcast" else b"E")
        if path != "/broadcast":
            peer.send(b"x")
            await asyncio.wait_for(done, CONNECT_TIMEOUT)
        peer.record = record
        peer.keep_payload = keep_payload
        peer.on_message = _ignore
        return peer
    url = f"ws://{args.host}:{args.port}{path}"
    _, listener = await ws_connect(
        lambda: WSPeer(binary, keep_payload),
        url,
        websocket_handshake_timeout=CONNECT_TIMEOUT,
        max_frame_size=MAX_FRAME,
        enable_auto_pong=True,
    )
    return listener  # type: ignore[no-any-return]


async def open_many(
    count: int, concurrency: int, factory: Callable[[], Awaitable[Peer]]
) -> tuple[list[Peer], list[float], int]:
    """Open ``count`` connections, ``concurrency`` at a time: peers, handshake latencies, failures.

    ``concurrency`` workers each open one connection after another, so the
    client makes no task per connection.
    """
    peers: list[Peer] = []
    latencies: list[float] = []
    failures = 0
    left = count

    async def worker() -> None:
        nonlocal failures, left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT + 5):
                    peer = await factory()
            except Exception:
                failures += 1
                continue
            latencies.append(time.perf_counter() - t0)
            peers.append(peer)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return peers, latencies, failures


async def close_all(peers: list[Peer]) -> None:
    chunk = 500
    for i in range(0, len(peers), chunk):
        await asyncio.gather(*(p.close() for p in peers[i : i + chunk]), return_exceptions=True)


# -- scenarios -------------------------------------------------------------------


async def scenario_echo(args: argparse.Namespace) -> dict[str, Any]:
    binary = args.kind == "binary"
    payload = (b"\xa5" if binary else b"x") * args.size
    state = {"running": True, "recording": False, "count": 0, "errors": 0, "inflight": 0}
    latencies: list[float] = []
    sent_at: dict[int, float] = {}
    drained = asyncio.get_running_loop().create_future()

    def on_message(peer: Peer, size: int, data: bytes | None) -> None:
        now = time.perf_counter()
        key = id(peer)
        if size != args.size:
            state["errors"] += 1
        state["count"] += 1
        if state["recording"]:
            latencies.append(now - sent_at[key])
        if state["running"]:
            sent_at[key] = time.perf_counter()
            peer.send(payload)
        else:
            state["inflight"] -= 1
            if state["inflight"] == 0 and not drained.done():
                drained.set_result(None)

    peers, _, failures = await open_many(
        args.conns,
        min(args.conns, args.concurrency),
        lambda: connect(args, "/ws", binary=binary, record=args.size, keep_payload=False),
    )
    if failures or not peers:
        await close_all(peers)
        return {"error": f"{failures} of {args.conns} connections failed"}
    for peer in peers:
        peer.on_message = on_message
    meter = Meter(args.server_pid)
    state["inflight"] = len(peers)
    for peer in peers:
        sent_at[id(peer)] = time.perf_counter()
        peer.send(payload)
    await asyncio.sleep(args.warmup)
    count0 = state["count"]
    state["recording"] = True
    meter.start()
    await asyncio.sleep(args.duration)
    state["recording"] = False
    usage = meter.stop()
    count = state["count"] - count0
    state["running"] = False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drained, CLOSE_TIMEOUT)
    await close_all(peers)
    wall = usage["wall_s"]
    result: dict[str, Any] = {
        "messages": count,
        "msgs_per_s": count / wall,
        "mb_per_s": count * args.size / wall / 1e6,
        "p50_us": percentile(latencies, 0.50) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
        "errors": state["errors"],
        **usage,
    }
    _add_cpu_per_message(result, count)
    return result


def _add_cpu_per_message(result: dict[str, Any], count: int) -> None:
    wall = result["wall_s"]
    result["client_cpu_us_per_msg"] = result["client_cpu_s"] / max(count, 1) * 1e6
    result["server_cpu_us_per_msg"] = result["server_cpu_s"] / max(count, 1) * 1e6
    result["client_core"] = result["client_cpu_s"] / wall
    result["server_core"] = result["server_cpu_s"] / wall


async def scenario_idle(args: argparse.Namespace) -> dict[str, Any]:
    def factory() -> Awaitable[Peer]:
        if args.raw:
            return connect(args, "/ws", binary=False, record=1, keep_payload=False)
        return handshake(args, "/ws")

    # Warm the server (lazy imports, pools), then take the baseline.
    warm, _, _ = await open_many(min(50, args.conns), args.concurrency, factory)
    await close_all(warm)
    await asyncio.sleep(args.settle)
    rss0 = proc_rss(args.server_pid)
    meter = Meter(args.server_pid)
    meter.start()
    peers, latencies, failures = await open_many(args.conns, args.concurrency, factory)
    usage = meter.stop()
    await asyncio.sleep(args.settle)
    samples = []
    for _ in range(3):
        samples.append(proc_rss(args.server_pid))
        await asyncio.sleep(0.2)
    rss1 = max(samples)
    opened = len(peers)
    if args.hold > 0:
        sys.stderr.write(f"holding {opened} connections for {args.hold} s\n")
        sys.stderr.flush()
        await asyncio.sleep(args.hold)
    await close_all(peers)
    result: dict[str, Any] = {
        "connections": opened,
        "failures": failures,
        "handshakes_per_s": opened / usage["wall_s"],
        "handshake_p50_ms": percentile(latencies, 0.50) * 1e3,
        "handshake_p99_ms": percentile(latencies, 0.99) * 1e3,
        "handshake_max_ms": max(latencies, default=float("nan")) * 1e3,
        "rss_base_mib": rss0 / 2**20,
        "rss_mib": rss1 / 2**20,
        "rss_per_conn_kib": (rss1 - rss0) / max(opened, 1) / 1024,
        **usage,
    }
    _add_cpu_per_message(result, opened)
    if failures:
        result["error"] = f"{failures} of {args.conns} connections failed"
    return result


async def scenario_broadcast(args: argparse.Namespace) -> dict[str, Any]:
    size = args.size
    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {"seq": -1, "t0": 0.0, "arrivals": [], "done": None}

    def on_message(peer: Peer, length: int, data: bytes | None) -> None:
        if data is None or not data.startswith(b"B"):
            return
        seq = int(data[1:9])
        if seq != state["seq"]:
            return
        arrivals = state["arrivals"]
        arrivals.append(time.perf_counter() - state["t0"])
        if len(arrivals) == len(peers) and not state["done"].done():
            state["done"].set_result(None)

    peers, _, failures = await open_many(
        args.conns,
        args.concurrency,
        lambda: connect(args, "/broadcast", binary=False, record=size, keep_payload=True),
    )
    if failures or not peers:
        await close_all(peers)
        return {"error": f"{failures} of {args.conns} connections failed"}
    for peer in peers:
        peer.on_message = on_message
    sender = peers[0]

    async def one_round(seq: int, timeout: float) -> list[float] | None:
        state["seq"], state["arrivals"], state["done"] = seq, [], loop.create_future()
        payload = f"B{seq:08d}".encode().ljust(size, b".")
        state["t0"] = time.perf_counter()
        sender.send(payload)
        try:
            await asyncio.wait_for(state["done"], timeout)
        except TimeoutError:
            return None
        return list(state["arrivals"])

    # Wait until every client is subscribed: one round that reaches everybody.
    ready = False
    for attempt in range(30):
        if await one_round(attempt, 1.0) is not None:
            ready = True
            break
    if not ready:
        await close_all(peers)
        return {"error": "not every client received the warm-up broadcast within 30 attempts"}
    meter = Meter(args.server_pid)
    meter.start()
    p50s: list[float] = []
    p99s: list[float] = []
    alls: list[float] = []
    lost = 0
    for i in range(args.rounds):
        arrivals = await one_round(1000 + i, 10.0)
        if arrivals is None:
            lost += 1
            continue
        p50s.append(percentile(arrivals, 0.50))
        p99s.append(percentile(arrivals, 0.99))
        alls.append(max(arrivals))
        await asyncio.sleep(args.gap)
    usage = meter.stop()
    await close_all(peers)
    result: dict[str, Any] = {
        "clients": len(peers),
        "broadcasts": len(p50s),
        "lost_broadcasts": lost,
        "p50_ms": percentile(p50s, 0.5) * 1e3,
        "p99_ms": percentile(p99s, 0.5) * 1e3,
        "all_ms": percentile(alls, 0.5) * 1e3,
        **usage,
    }
    _add_cpu_per_message(result, len(p50s) * len(peers))
    if lost:
        result["error"] = f"{lost} broadcasts did not reach every client in 10 s"
    return result


SCENARIOS = {"echo": scenario_echo, "idle": scenario_idle, "broadcast": scenario_broadcast}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--raw", action="store_true", help="raw TCP echo protocol instead of WebSocket")
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--kind", choices=("text", "binary"), default="text")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32, help="handshakes in flight at once")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before sampling RSS")
    parser.add_argument("--hold", type=float, default=0.0, help="idle: seconds to hold connections after sampling")
    parser.add_argument("--rounds", type=int, default=20, help="broadcasts measured")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between broadcasts")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("loopback only")
    nofile = raise_nofile()
    factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(SCENARIOS[args.scenario](args))
    result["nofile"] = nofile
    result["loop"] = "uvloop" if uvloop is not None else "asyncio"
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
