"""Raw TCP echo in pure Python: the least a Python server can spend on a message.

The same protocol as ``raw_server.py`` (the first byte a client sends
selects its mode; ``E`` echoes every byte back), on one thread with a
``selectors`` loop (epoll on Linux), ``recv_into`` a preallocated buffer
and ``send`` of a view of it: no WebSocket, no HTTP, no handler, no lock,
no queue. It runs on the project's own interpreter, as our servers do, so
its CPU per message is the floor of any WSGI WebSocket server in Python on
this machine, where ``raw_server.py`` (uvloop, compiled) is the floor of
any server at all. Echo scenarios only (``E``); a ``B`` client is closed.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import socket
from types import FrameType

RECV_SIZE = 262144
#: Stop reading a client while this much of its echo waits to be sent.
OUT_LIMIT = 4 * 1024 * 1024


class Client:
    """One connection: its mode byte seen yet, and the echo the kernel did not take yet."""

    __slots__ = ("events", "moded", "out", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.moded = False
        self.out = bytearray()
        self.events = selectors.EVENT_READ


def serve(host: str, port: int) -> None:
    selector = selectors.DefaultSelector()
    listener = socket.create_server((host, port), backlog=1024)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    bound = listener.getsockname()
    running = True

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal running
        running = False

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    print(f"raw TCP echo (pure Python, selectors): http://{bound[0]}:{bound[1]}/ (E echo)", flush=True)
    buffer = bytearray(RECV_SIZE)
    view = memoryview(buffer)

    def drop(client: Client) -> None:
        selector.unregister(client.sock)
        client.sock.close()

    def watch(client: Client) -> None:
        # Read unless too much echo waits; write while any does.
        events = selectors.EVENT_READ if len(client.out) <= OUT_LIMIT else 0
        if client.out:
            events |= selectors.EVENT_WRITE
        if events != client.events:
            client.events = events
            selector.modify(client.sock, events, client)

    def accept() -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvloop and our servers do
        selector.register(sock, selectors.EVENT_READ, Client(sock))

    def readable(client: Client) -> None:
        sock = client.sock
        try:
            received = sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            drop(client)
            return
        if not received:
            drop(client)
            return
        data = view[:received]
        if not client.moded:
            client.moded = True
            if data[0] != ord("E"):
                drop(client)
                return
            data = data[1:]
        if client.out:
            client.out += data  # after what waits, in order
        else:
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                drop(client)
                return
            if sent == len(data):
                return  # the common case: all of it, at once
            client.out += data[sent:]
        watch(client)

    def writable(client: Client) -> bool:
        """Send what waits; ``False`` if the connection is gone."""
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            drop(client)
            return False
        del client.out[:sent]
        watch(client)
        return True

    try:
        while running:
            for key, mask in selector.select(1.0):
                client = key.data
                if client is None:
                    accept()
                    continue
                if mask & selectors.EVENT_WRITE and client.out and not writable(client):
                    continue
                if mask & selectors.EVENT_READ:
                    readable(client)
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
