"""Cheap WebSocket clients for thousands of connections in one process.

Each client is an asyncio stream plus websockets' client-side Sans-I/O
protocol (an implementation independent of the code under test). A reader
task answers pings and closes automatically and queues the frames received.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import struct
from collections.abc import Sequence

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side
from websockets.utils import accept_key

__all__ = ["HandshakeFailed", "WSClient", "close_many", "connect", "open_many"]

_READ_SIZE = 65536


class HandshakeFailed(Exception):
    def __init__(self, status: int, head: str) -> None:
        super().__init__(f"handshake answered {status}: {head[:200]!r}")
        self.status = status


class WSClient:
    """One connection; frames arrive in :attr:`frames` (``None`` at end of stream)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rest: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = Protocol(Side.CLIENT, max_size=None)
        self.frames: asyncio.Queue[Frame | None] = asyncio.Queue()
        self.close_rcvd: Close | None = None
        self.eof = False
        if rest:
            self._receive(rest)
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    def _receive(self, data: bytes) -> None:
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.CLOSE:
                    self.close_rcvd = Close.parse(event.data)
                self.frames.put_nowait(event)
        self._write_pending()

    def _write_pending(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk and not self.writer.is_closing():
                self.writer.write(chunk)

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    data = await self.reader.read(_READ_SIZE)
                except (ConnectionError, OSError):
                    data = b""
                try:
                    self._receive(data)
                except Exception:  # a protocol error on our side: stop reading
                    data = b""
                if not data:
                    break
        finally:
            self.eof = True
            self.frames.put_nowait(None)
            self.writer.close()

    async def recv_frame(self, timeout: float = 10.0) -> Frame | None:
        """The next frame (pings and pongs included); ``None`` at end of stream."""
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def recv_data(self, timeout: float = 10.0) -> Frame | None:
        """The next data or close frame, skipping pings and pongs."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if frame is None or frame.opcode not in (Opcode.PING, Opcode.PONG):
                    return frame

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self._write_pending()

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (the reader finishes it)."""
        with contextlib.suppress(Exception):
            self.protocol.send_close(code, reason)
            self._write_pending()

    def abort(self) -> None:
        """Drop the connection with a TCP RST."""
        transport = self.writer.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait for the end of the stream."""
        await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def drop(self) -> None:
        """Close TCP now and wait for the reader task."""
        self.writer.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), 5.0)


def handshake_request(host: str, port: int, path: str, key: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def connect(
    host: str,
    port: int,
    path: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    headers: Sequence[tuple[str, str]] = (),
    timeout: float = 10.0,
) -> WSClient:
    """Open a WebSocket; raises :class:`HandshakeFailed` on anything but a valid 101."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname=host if ssl_context else None, limit=2**20
        )
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(handshake_request(host, port, path, key, headers))
            head = await reader.readuntil(b"\r\n\r\n")
            text = head.decode("latin-1")
            status_line, *header_lines = text.split("\r\n")
            parts = status_line.split()
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if status != 101:
                raise HandshakeFailed(status, text)
            fields = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            if fields.get("sec-websocket-accept") != accept_key(key):
                raise HandshakeFailed(status, text)
        except BaseException:
            writer.transport.abort()
            raise
    # Bytes past the head already in the stream buffer stay there for the reader task.
    return WSClient(reader, writer, b"")


async def open_many(
    count: int,
    host: str,
    port: int,
    path: str,
    *,
    concurrency: int = 64,
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[list[WSClient], list[BaseException]]:
    """Open ``count`` connections, at most ``concurrency`` handshakes at a time."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> WSClient:
        async with semaphore:
            return await connect(host, port, path, ssl_context=ssl_context, timeout=timeout)

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    clients = [r for r in results if isinstance(r, WSClient)]
    errors = [r for r in results if isinstance(r, BaseException)]
    return clients, errors


async def close_many(clients: Sequence[WSClient], timeout: float = 30.0) -> int:
    """Close cleanly (1000) and wait for each end of stream; returns how many ended in time."""
    for client in clients:
        client.close()
    done = 0

    async def wait(client: WSClient) -> None:
        nonlocal done
        with contextlib.suppress(Exception):
            await client.wait_closed(timeout)
            done += 1

    await asyncio.gather(*(wait(c) for c in clients))
    for client in clients:
        if not client.eof:
            await client.drop()
    return done
