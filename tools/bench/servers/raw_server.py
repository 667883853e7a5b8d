"""Raw TCP echo and broadcast on asyncio (uvloop when installed): the limit.

The first byte a client sends selects its mode: ``E`` echoes every byte back,
``B`` relays every byte received to every ``B`` client.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

try:
    import uvloop
except ImportError:
    uvloop = None  # type: ignore[assignment]

BROADCAST: set[asyncio.Transport] = set()


class RawProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.mode = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        if not self.mode:
            self.mode, data = data[:1], data[1:]
            if self.mode == b"B":
                BROADCAST.add(transport)
            if not data:
                return
        if self.mode == b"E":
            transport.write(data)
        else:
            for peer in BROADCAST:
                peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            BROADCAST.discard(self.transport)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(RawProtocol, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()
    kind = "uvloop" if uvloop is not None else "asyncio"
    print(f"raw TCP echo ({kind}): http://{bound[0]}:{bound[1]}/ (E echo, B broadcast)", flush=True)
    await stop
    server.close()
    for transport in list(BROADCAST):
        transport.close()
    await asyncio.wait_for(server.wait_closed(), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
