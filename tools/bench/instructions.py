"""Instructions per message / per handshake of our server, under callgrind.

``python -m tools.bench instructions --server gevent`` runs the echo example
under ``valgrind --tool=callgrind`` with collection off, opens the
connections, switches collection on (``callgrind_control -i on``) for exactly
the measured phase, and prints instructions per message (echo) or per
handshake. Instruction counts do not depend on what else the machine runs, so
they compare a change before and after on a busy, shared machine, where
wall-clock figures cannot. They are not a speed figure: the benchmark's pinned
runs are (docs/benchmarks.rst).

The load is plain blocking sockets in this process (the server under
callgrind is ~50x slower than the client): ``--conns`` connections, each with
one 32-byte text message in flight, ``--messages`` messages in all.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .run import ROOT

TIMEOUT = 600.0


def _wait_port(proc: subprocess.Popen[str], deadline: float) -> int:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the server exited before listening")
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if match:
            return int(match.group(1))
    raise TimeoutError("the server did not start")


def _handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:80]!r}")
    return sock


_MASK = bytes((1, 2, 3, 4))


def _frames(size: int) -> tuple[bytes, bytes]:
    """A masked client frame of ``size`` bytes (text up to 125 bytes, else binary) and its echo."""
    payload = b"x" * size
    if size < 126:
        head, length = 0x81, bytes((size,))
    elif size < 65536:
        head, length = 0x82, bytes((126,)) + size.to_bytes(2, "big")
    else:
        head, length = 0x82, bytes((127,)) + size.to_bytes(8, "big")
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(_MASK * (size // 4) + _MASK[: size % 4], "big")).to_bytes(
        size, "big"
    )
    frame = bytes((head, length[0] | 0x80)) + length[1:] + _MASK + masked
    return frame, bytes((head,)) + length + payload


# A masked 32-byte text frame (mask 0x01020304) and the echo it gets back.
_FRAME, _ECHO = _frames(32)


def _echo(socks: list[socket.socket], messages: int, frames: tuple[bytes, bytes] | None = None) -> None:
    """Closed loop: one message in flight per connection, ``messages`` in all."""
    frame, echo = frames or (_FRAME, _ECHO)
    sel = selectors.DefaultSelector()
    pending: dict[socket.socket, bytes] = {}
    sent = 0
    for sock in socks:
        sock.setblocking(True)
        if sent < messages:
            sock.sendall(frame)
            sent += 1
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, sock)
        pending[sock] = b""
    received = 0
    deadline = time.monotonic() + TIMEOUT
    while received < messages:
        if time.monotonic() > deadline:
            raise TimeoutError("echo timed out")
        for key, _ in sel.select(5.0):
            sock = key.data
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError("server closed a connection")
            buf = pending[sock] + data
            while len(buf) >= len(echo):
                if buf[: len(echo)] != echo:
                    raise RuntimeError(f"unexpected echo {buf[:40]!r}")
                buf = buf[len(echo) :]
                received += 1
                if sent < messages:
                    sock.setblocking(True)
                    sock.sendall(frame)
                    sock.setblocking(False)
                    sent += 1
            pending[sock] = buf
    sel.close()


def _control(pid: int, *args: str) -> None:
    done = subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or "Error" in done.stdout + done.stderr:
        raise RuntimeError(f"callgrind_control {args}: {done.stdout}{done.stderr}")
    pass


def measure(
    server: str, scenario: str, count: int, conns: int, python: str, keep: str | None = None, size: int = 32
) -> int:
    """Instructions of ``server`` for the measured phase of ``scenario``."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--trace-children=yes",
            f"--callgrind-out-file={out}",
            python,
            "-m",
            "examples.echo",
            "--server",
            server,
            "--port",
            "0",
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, start_new_session=True
        )
        try:
            port = _wait_port(proc, time.monotonic() + TIMEOUT)
            # Warm up: import-time and first-use costs stay outside the count.
            warm = [_handshake(port) for _ in range(conns)]
            _echo(warm, conns * 4)
            if scenario == "echo":
                socks = warm
                _echo(socks, conns * 4)
                frames = _frames(size)
                _echo(socks, conns, frames)
                _control(proc.pid, "-i", "on")
                _echo(socks, count, frames)
                _control(proc.pid, "-i", "off")
            else:
                _control(proc.pid, "-i", "on")
                socks = [_handshake(port) for _ in range(count)]
                # The last 101 is written before the manager has started the
                # connection: one echo round trip per connection makes sure the
                # whole upgrade is counted.
                _echo(socks, len(socks))
                _control(proc.pid, "-i", "off")
                socks += warm
            _control(proc.pid, "--dump")
            for sock in socks:
                sock.close()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        dumps = sorted(p for p in Path(tmp).glob("callgrind.out.*"))
        if not dumps:
            raise RuntimeError(f"callgrind wrote no dump: {sorted(os.listdir(tmp))}")
        # The explicit dump holds the measured phase (collection was off before).
        if keep is not None:
            shutil.copy(dumps[0], keep)
        for line in dumps[0].read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
        raise RuntimeError(f"no totals in {dumps[0].name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench instructions", description=__doc__)
    parser.add_argument("--server", default="gevent")
    parser.add_argument("--scenario", choices=["echo", "handshake"], default="echo")
    parser.add_argument("--messages", type=int, default=4000, help="echo: messages measured")
    parser.add_argument("--handshakes", type=int, default=200, help="handshake: connections measured")
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="echo: message size (binary from 126 bytes)")
    parser.add_argument("--keep", metavar="FILE", help="copy the measured phase's callgrind dump here")
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind (callgrind) is needed: apt-get install valgrind")
    count = args.messages if args.scenario == "echo" else args.handshakes
    total = measure(args.server, args.scenario, count, args.conns, args.python, args.keep, args.size)
    unit = "message" if args.scenario == "echo" else "handshake"
    print(f"{args.server} {args.scenario}: {total:,} instructions, {total / count:,.0f} per {unit}")


if __name__ == "__main__":
    main()
