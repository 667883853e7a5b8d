"""Memory per client connection: ours, websocket-client and websockets' asyncio client.

``python -m tools.bench.clients --connections 10000`` starts a local echo
server (websockets' asyncio server, on CPU 0 with ``taskset``), then, one
after the other and each in a fresh process on CPU 1, opens N client
connections with:

- ``ours``: :class:`ws4py_integrations.client.WebSocketClient` on one
  :class:`~ws4py_integrations.ThreadedManager` (no thread per connection);
- ``websocket-client``: ``websocket.WebSocketApp``, a thread each (its
  ``run_forever`` model);
- ``websockets``: ``websockets.asyncio.client.connect`` on one event loop.

Each process reports its resident memory after imports and with every
connection open (after one echo round trip on a sample of them), and the
difference divided by N. The file descriptor limit is raised to the hard
limit in every process (``resource.setrlimit``). Exit status 0 when every kind
held every connection.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("ours", "websocket-client", "websockets")
#: Connections that do an echo round trip before memory is measured.
SAMPLE = 20


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        raise SystemExit(f"clients: {needed} connections need {needed} descriptors; the hard limit is {hard}")
    return hard


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- the server -------------------------------------------------------------------------


def serve(port_file: str) -> None:
    import asyncio

    from websockets.asyncio.server import serve as ws_serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    # Clients that leave without a closing handshake are routine here.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)

    async def main() -> None:
        async with ws_serve(echo, "127.0.0.1", 0, backlog=4096, ping_interval=None, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            Path(port_file).write_text(str(port))
            await asyncio.Future()

    asyncio.run(main())


# -- the clients ----------------------------------------------------------------------------


def run_ours(url: str, count: int) -> dict[str, Any]:
    from ws4py_integrations import ThreadedManager
    from ws4py_integrations.client import WebSocketClient

    manager = ThreadedManager(name="bench-clients")
    base = rss()
    clients = []
    for _ in range(count):
        client = WebSocketClient(url, manager=manager, compression=False, ping_interval=None)
        client.connect()
        clients.append(client)
    for client in clients[:SAMPLE]:
        client.send("x")
        message = client.receive(10)
        assert message is not None and message.data == "x"
    held = rss()
    open_count = len(manager)
    manager.stop(10)
    return {"base": base, "held": held, "open": open_count}


def run_websocket_client(url: str, count: int) -> dict[str, Any]:
    import threading

    import websocket  # websocket-client

    opened = threading.Semaphore(0)
    replies: dict[int, threading.Event] = {}
    apps = []
    base = rss()
    for index in range(count):
        event = replies.setdefault(index, threading.Event())
        app = websocket.WebSocketApp(
            url,
            on_open=lambda ws: opened.release(),
            on_message=lambda ws, message, event=event: event.set(),
        )
        thread = threading.Thread(target=app.run_forever, daemon=True)
        thread.start()
        apps.append(app)
        if not opened.acquire(timeout=120):
            # Reported as fewer connections open (memory is still per open connection).
            print(f"websocket-client: connection {index} did not open", file=sys.stderr, flush=True)
            apps.pop()
            break
    for index, app in enumerate(apps[:SAMPLE]):
        app.send("x")
        if not replies[index].wait(10):
            raise RuntimeError("websocket-client: no echo")
    held = rss()
    open_count = sum(1 for app in apps if app.sock is not None and app.sock.connected)
    for app in apps:
        app.close()
    return {"base": base, "held": held, "open": open_count}


def run_websockets(url: str, count: int) -> dict[str, Any]:
    import asyncio

    from websockets.asyncio.client import connect

    async def main() -> dict[str, Any]:
        base = rss()
        conns = []
        for _ in range(count):
            conns.append(await connect(url, compression=None, ping_interval=None, open_timeout=120))
        for ws in conns[:SAMPLE]:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 10) == "x"
        held = rss()
        open_count = sum(1 for ws in conns if ws.state.name == "OPEN")
        await asyncio.gather(*(ws.close() for ws in conns))
        return {"base": base, "held": held, "open": open_count}

    return asyncio.run(main())


RUNNERS = {"ours": run_ours, "websocket-client": run_websocket_client, "websockets": run_websockets}


def child(kind: str, url: str, count: int) -> None:
    raise_fd_limit(count + 100)
    started = time.monotonic()
    result = RUNNERS[kind](url, count)
    result["seconds"] = round(time.monotonic() - started, 1)
    print("RESULT " + json.dumps(result), flush=True)


# -- the command ----------------------------------------------------------------------------


def _prefix(cpu: int, pinned: bool) -> list[str]:
    return ["taskset", "-c", str(cpu)] if pinned else []


def measure(connections: int, kinds: list[str], pinned: bool, timeout: float) -> dict[str, dict[str, Any]]:
    raise_fd_limit(connections + 100)
    port_file = Path(f"/tmp/ws4py-bench-clients-{os.getpid()}.port")
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen(
        [*_prefix(0, pinned), sys.executable, "-m", "tools.bench.clients", "--serve", str(port_file)], cwd=ROOT
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("clients: the echo server did not start")
            time.sleep(0.05)
        url = f"ws://127.0.0.1:{port_file.read_text()}/"
        for kind in kinds:
            command = [*_prefix(1, pinned), sys.executable, "-m", "tools.bench.clients", "--child", kind, url]
            proc = subprocess.run(
                [*command, "--connections", str(connections)], cwd=ROOT, capture_output=True, text=True, timeout=timeout
            )
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                results[kind] = {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
                continue
            result = json.loads(line[len("RESULT ") :])
            result["per_connection_kib"] = round((result["held"] - result["base"]) / max(result["open"], 1) / 1024, 1)
            results[kind] = result
            print(
                f"clients: {kind}: {result['open']}/{connections} open, "
                f"{result['per_connection_kib']} KiB per connection "
                f"(RSS {result['base'] / 2**20:.0f} -> {result['held'] / 2**20:.0f} MiB, {result['seconds']} s)",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(10)
        port_file.unlink(missing_ok=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.clients", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--unpinned", action="store_true", help="do not pin with taskset")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per client kind")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        raise_fd_limit(args.connections + 100)
        serve(args.serve)
        return 0
    if args.child:
        child(args.child[0], args.child[1], args.connections)
        return 0
    pinned = not args.unpinned and shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2
    results = measure(args.connections, args.kinds, pinned, args.timeout)
    if args.json:
        args.json.write_text(json.dumps({"connections": args.connections, "pinned": pinned, **results}, indent=2))
    return 0 if all(r.get("open") == args.connections for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
