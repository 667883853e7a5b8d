"""The asyncio server of ``websockets``: echo at /ws, broadcast at /broadcast.

Settings match ``examples.echo`` where both have them: 16 MiB messages,
keepalive pings every 20 s. The default asyncio event loop, as shipped.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

MAX_SIZE = 16 * 2**20
CLIENTS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else "/ws"
    if path == "/broadcast":
        CLIENTS.add(ws)
        try:
            async for message in ws:
                broadcast(CLIENTS, message)
        finally:
            CLIENTS.discard(ws)
    elif path == "/ws":
        async for message in ws:
            await ws.send(message)
    else:
        await ws.close(1008, "unknown path")


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(handler, host, port, max_size=MAX_SIZE, ping_interval=20, ping_timeout=20) as server:
        bound = next(iter(server.sockets)).getsockname()
        print(f"websockets asyncio: http://{bound[0]}:{bound[1]}/ (WebSocket at /ws and /broadcast)", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
