"""Socket.IO load client for ``tools/bench/socketio.py``: picows on uvloop, one process.

Run as ``python -m tools.bench.sio_client`` with the client venv's python
(``tools/bench/.venvs/client``) from the repository root; it prints one JSON object
on its last stdout line. It speaks Engine.IO v4 / Socket.IO v5 straight over
WebSocket (``/socket.io/?EIO=4&transport=websocket``, no polling first), the way
the official clients do after an upgrade, but with a few bytes of state per
client, so one core drives thousands of clients:

- wait for the Engine.IO OPEN packet, send CONNECT to ``/``, wait for the
  server's CONNECT answer (a CONNECT_ERROR or anything else fails the client);
- answer every server PING (``2``) with a PONG (``3``);
- ``echo``: N clients, closed loop, one event in flight each: either
  ``message-with-ack`` and its ACK (the ack id and the echoed argument are
  checked), or ``message`` and the ``message-back`` event (``--event message``);
- ``idle``: open N clients (time to connect them all), hold them, sample the
  server's RSS: (RSS after - RSS before) / N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from tools.bench.client import (
    CONNECT_TIMEOUT,
    Meter,
    Peer,
    _add_cpu_per_message,
    close_all,
    open_many,
    percentile,
    proc_rss,
    raise_nofile,
)

try:
    import uvloop
except ImportError:  # pragma: no cover - the client venv has it
    uvloop = None  # type: ignore[assignment]

PATH = "/socket.io/?EIO=4&transport=websocket"


class SioPeer(Peer, WSListener):  # type: ignore[misc]
    """One Socket.IO client on the main namespace, over the WebSocket transport only."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: Called with the packet (bytes) of every ACK and EVENT after the connection.
        self.on_packet: Callable[[SioPeer, bytes], None] = _ignore_packet
        self.pings = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError("disconnected before the Socket.IO CONNECT answer"))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if msg_type is not WSMsgType.TEXT:
            return  # no binary attachments in these workloads; pings/pongs are answered by picows
        data = frame.get_payload_as_bytes()
        engine = data[:1]
        if engine == b"4":  # Engine.IO MESSAGE carrying a Socket.IO packet
            kind = data[1:2]
            if kind == b"0":  # CONNECT answer: 40{"sid":...}
                if not self.connected.done():
                    self.connected.set_result(None)
            elif kind == b"4":  # CONNECT_ERROR
                if not self.connected.done():
                    self.connected.set_exception(ConnectionError(data.decode(errors="replace")))
            else:
                self.on_packet(self, data)
        elif engine == b"2":  # server PING: answer PONG (with its payload, if any)
            self.pings += 1
            transport.send(WSMsgType.TEXT, b"3" + data[1:])
        elif engine == b"0":  # Engine.IO OPEN: join the main namespace
            transport.send(WSMsgType.TEXT, b"40")
        elif engine == b"1" and not self.connected.done():  # Engine.IO CLOSE
            self.connected.set_exception(ConnectionError("Engine.IO CLOSE"))

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, payload)

    async def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        # A clean Socket.IO goodbye (DISCONNECT), then the WebSocket close handshake.
        transport.send(WSMsgType.TEXT, b"41")
        transport.send_close()
        try:
            await asyncio.wait_for(transport.wait_disconnected(), 10.0)
        except (TimeoutError, Exception):
            transport.disconnect(graceful=False)


def _ignore_packet(peer: SioPeer, data: bytes) -> None:
    pass


async def connect(args: argparse.Namespace) -> SioPeer:
    """One client, connected to the main namespace (the server's CONNECT answer received)."""
    transport, peer = await ws_connect(
        SioPeer, f"ws://{args.host}:{args.port}{PATH}", websocket_handshake_timeout=CONNECT_TIMEOUT
    )
    try:
        await asyncio.wait_for(peer.connected, CONNECT_TIMEOUT)
    except BaseException:
        transport.disconnect(graceful=False)
        raise
    return peer  # type: ignore[no-any-return]


async def scenario_echo(args: argparse.Namespace) -> dict[str, Any]:
    argument = "x" * args.size
    quoted = json.dumps(argument).encode()
    state = {"running": True, "recording": False, "count": 0, "errors": 0}
    sent_at: dict[SioPeer, float] = {}
    ack_ids: dict[SioPeer, int] = {}
    latencies: list[float] = []
    by_ack = args.event == "message-with-ack"
    back_prefix = b'42["message-back",'
    expected_tail = quoted + b"]"

    def send_next(peer: SioPeer) -> None:
        if by_ack:
            ack = ack_ids.get(peer, -1) + 1
            ack_ids[peer] = ack
            peer.send(b'42%d["message-with-ack",%s]' % (ack, quoted))
        else:
            peer.send(b'42["message",%s]' % quoted)
        sent_at[peer] = time.perf_counter()

    def on_packet(peer: SioPeer, data: bytes) -> None:
        if by_ack:
            if not data.startswith(b"43"):
                return  # the auth event sent at connection time
            ok = data == b"43%d[%s]" % (ack_ids[peer], quoted)
        else:
            if not data.startswith(back_prefix):
                return
            ok = data.endswith(expected_tail)
        if not ok:
            state["errors"] += 1
        if state["recording"]:
            state["count"] += 1
            if len(latencies) < 200_000:
                latencies.append(time.perf_counter() - sent_at[peer])
        if state["running"]:
            send_next(peer)

    def factory() -> Awaitable[Peer]:
        return connect(args)

    peers, _, failures = await open_many(args.conns, args.concurrency, factory)
    if failures or not peers:
        await close_all(peers)
        return {"error": f"{failures} of {args.conns} clients failed to connect"}
    sio_peers = [p for p in peers if isinstance(p, SioPeer)]
    for peer in sio_peers:
        peer.on_packet = on_packet
        send_next(peer)
    await asyncio.sleep(args.warmup)
    meter = Meter(args.server_pid)
    state["recording"] = True
    meter.start()
    await asyncio.sleep(args.duration)
    usage = meter.stop()
    state["recording"] = False
    state["running"] = False
    count = int(state["count"])
    await asyncio.sleep(0.2)
    await close_all(peers)
    result: dict[str, Any] = {
        "events": count,
        "events_per_s": count / usage["wall_s"],
        "p50_us": percentile(latencies, 0.50) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
        "mismatches": state["errors"],
        **usage,
    }
    _add_cpu_per_message(result, count)
    if state["errors"]:
        result["error"] = f"{state['errors']} answers did not match what was sent"
    elif count == 0:
        result["error"] = "no answer during the measurement"
    return result


async def scenario_idle(args: argparse.Namespace) -> dict[str, Any]:
    def factory() -> Awaitable[Peer]:
        return connect(args)

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
    await close_all(peers)
    result: dict[str, Any] = {
        "connections": opened,
        "failures": failures,
        "connect_all_s": usage["wall_s"],
        "connects_per_s": opened / usage["wall_s"],
        "connect_p50_ms": percentile(latencies, 0.50) * 1e3,
        "connect_p99_ms": percentile(latencies, 0.99) * 1e3,
        "rss_base_mib": rss0 / 2**20,
        "rss_mib": rss1 / 2**20,
        "rss_per_client_kib": (rss1 - rss0) / max(opened, 1) / 1024,
        **usage,
    }
    _add_cpu_per_message(result, opened)
    if failures:
        # The figures still hold for the clients that connected; none at all is an error.
        key = "warning" if opened else "error"
        result[key] = f"{failures} of {args.conns} clients failed to connect"
    return result


SCENARIOS = {"echo": scenario_echo, "idle": scenario_idle}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="characters of the event's string argument")
    parser.add_argument("--event", choices=("message-with-ack", "message"), default="message-with-ack")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32, help="connections being opened at once")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before sampling RSS")
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
