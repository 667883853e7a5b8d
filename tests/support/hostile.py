"""Building blocks of the hostile-client probes: a raw attacker socket, a server
RSS sampler and an independent echo prober.

The attacker writes masked frames itself (payloads masked with websockets' C
helper, so 16 MiB costs milliseconds) and scans what the server sends with a
minimal parser of unmasked server frames: a hostile peer needs no validation,
and parsing 500,000 pongs through a full protocol object would take longer
than the attack.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import threading
import time
from types import TracebackType

import psutil  # type: ignore[import-untyped,unused-ignore]
from websockets.sync.client import connect

try:  # websockets' C unmasking; the pure-Python one where it is not built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

__all__ = ["MASK", "EchoProber", "HostileSocket", "RssSampler", "masked_frame"]

#: Any mask will do; a fixed one lets a repeated frame be built once.
MASK = b"\x37\xfa\x21\x3d"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x1, 0x2, 0x8, 0x9


def masked_frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """One client frame, serialized by hand (no validity checks)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 2**16:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + MASK + (apply_mask(payload, MASK) if payload else b"")


class HostileSocket:
    """A blocking TCP socket that upgrades, then writes whatever it is told."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        *,
        deflate: bool = False,
        rcvbuf: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if rcvbuf is not None:
            # Fixed before connecting (no autotuning): a peer that never reads
            # absorbs this much, not the tens of MiB loopback may grow to.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if deflate else ""
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"handshake: connection closed after {head!r}")
            head += chunk
            if len(head) > 65536:
                raise ConnectionError("handshake: response head too long")
        status_line = head.partition(b"\r\n")[0]
        if b" 101 " not in status_line:
            raise ConnectionError(f"handshake refused: {status_line!r}")
        self.negotiated = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        # Bytes of frames that arrived with the response head.
        self._rest = head.split(b"\r\n\r\n", 1)[1]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def drop(self, *, reset: bool = False) -> None:
        """Drop TCP without a closing handshake: FIN (the server reads what we
        sent, then end of stream), or RST with ``reset``."""
        if reset:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def read_close(self, timeout: float) -> tuple[int | None, int]:
        """Read (and discard) frames until the server's Close frame or EOF, for at
        most ``timeout`` seconds: ``(close code or None, bytes read)``."""
        deadline = time.monotonic() + timeout
        buffer = bytearray(self._rest)
        self._rest = b""
        total = len(buffer)
        offset = 0
        while True:
            # Skip every complete frame in the buffer; stop at a Close.
            while len(buffer) - offset >= 2:
                first, second = buffer[offset], buffer[offset + 1]
                length, header = second & 0x7F, 2
                if length == 126:
                    if len(buffer) - offset < 4:
                        break
                    length, header = struct.unpack_from("!H", buffer, offset + 2)[0], 4
                elif length == 127:
                    if len(buffer) - offset < 10:
                        break
                    length, header = struct.unpack_from("!Q", buffer, offset + 2)[0], 10
                if len(buffer) - offset < header + length:
                    break
                if first & 0x0F == OP_CLOSE:
                    payload = bytes(buffer[offset + header : offset + header + length])
                    return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005), total
                offset += header + length
            del buffer[:offset]
            offset = 0
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, total
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except (TimeoutError, ConnectionError, OSError):
                return None, total
            if not chunk:
                return None, total
            total += len(chunk)
            buffer += chunk

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> HostileSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RssSampler:
    """Polls a process's RSS on a thread; :attr:`peak` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.baseline = self.rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def rss(self) -> int:
        try:
            return int(self.process.memory_info().rss)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    @property
    def growth(self) -> int:
        """Peak RSS above the baseline, in bytes."""
        return self.peak - self.baseline

    def settle(self, limit: int, timeout: float) -> int:
        """Poll until RSS is within ``limit`` bytes of the baseline, at most
        ``timeout`` seconds; returns the last growth seen (bytes)."""
        deadline = time.monotonic() + timeout
        while True:
            growth = self.rss() - self.baseline
            if growth <= limit or time.monotonic() >= deadline:
                return growth
            time.sleep(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.peak = max(self.peak, self.rss())


class EchoProber:
    """An independent client (websockets' sync client) timing echo round trips on
    ``url`` every ``interval`` seconds while an attack runs; a round trip that
    takes longer than ``timeout`` counts as ``timeout``."""

    def __init__(self, url: str, interval: float = 0.05, timeout: float = 10.0) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.rtts: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="echo-prober", daemon=True)
        self._connected = threading.Event()

    @property
    def worst(self) -> float:
        return max(self.rtts, default=0.0)

    def _run(self) -> None:
        try:
            with connect(self.url, open_timeout=self.timeout, close_timeout=2, max_size=None) as ws:
                self._connected.set()
                serial = 0
                while not self._stop.is_set():
                    serial += 1
                    text = f"probe {serial}"
                    start = time.monotonic()
                    ws.send(text)
                    try:
                        answer = ws.recv(timeout=self.timeout)
                    except TimeoutError:
                        self.rtts.append(self.timeout)
                        return
                    self.rtts.append(time.monotonic() - start)
                    if answer != text:
                        raise AssertionError(f"echo answered {answer!r} to {text!r}")
                    self._stop.wait(self.interval)
        except BaseException as exc:  # reported by __exit__'s caller through .error
            self.error = exc
        finally:
            self._connected.set()

    def __enter__(self) -> EchoProber:
        self._thread.start()
        self._connected.wait(self.timeout)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5.0)
