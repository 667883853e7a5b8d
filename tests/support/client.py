"""Raw-socket clients for what a normal client library will not send.

Frames are built and parsed by websockets' client-side Sans-I/O protocol: an
independent implementation, never the code under test.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side


def handshake_request(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
) -> bytes:
    fields = {
        "Host": f"{host}:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    for name, value in (headers or {}).items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawClient:
    """A blocking socket speaking whatever the test writes, reading frames back."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None, timeout: float = 10.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        self.sock: socket.socket = tls.wrap_socket(sock, server_hostname=host) if tls else sock
        self.host, self.port = host, port
        self.protocol = Protocol(Side.CLIENT)
        self.pending: list[Frame] = []
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response_head(self, extra: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """Read an HTTP response head; returns status, headers, and bytes read past it."""
        data = extra
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, rest

    def upgrade(self, path: str, headers: dict[str, str] | None = None, extra: bytes = b"") -> int:
        """Handshake (with ``extra`` bytes in the same write); returns the status."""
        self.send(handshake_request(self.host, self.port, path, headers) + extra)
        status, _, rest = self.read_response_head()
        if rest:
            self.protocol.receive_data(rest)
        return status

    def send_frame(
        self, opcode: Opcode, data: bytes, *, fin: bool = True, mask: bool = True, rsv1: bool = False
    ) -> None:
        self.send(Frame(opcode, data, fin, rsv1).serialize(mask=mask))

    def recv_frame(self, timeout: float = 10.0) -> Frame | None:
        """The next frame from the server; ``None`` at end of stream."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    self.pending.append(event)
            if self.pending:
                return self.pending.pop(0)
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the server in time")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if data:
                self.protocol.receive_data(data)
            else:
                self.eof = True
                self.protocol.receive_eof()

    def recv_close(self, timeout: float = 10.0) -> Close:
        """Skip data frames until the server's close frame; returns its code and reason."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if frame is None:
                raise AssertionError("connection ended without a close frame")
            if frame.opcode is Opcode.CLOSE:
                return Close.parse(frame.data)

    def wait_eof(self, timeout: float = 10.0) -> None:
        """Read until the server closes TCP."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                if self.recv_frame(max(0.01, deadline - time.monotonic())) is None:
                    return
            except TimeoutError:
                raise AssertionError("server did not close the TCP connection in time") from None

    def close(self) -> None:
        self.sock.close()
