"""The CherryPy adapter's socket reader reads lines exactly as cheroot's own.

``_LineReader.readline`` slices a line out of the buffer when the buffer
holds one, and otherwise leaves the call to ``_pyio``'s. Both readers get the
same bytes (part already buffered, the rest on a real socket) and the same
calls; every answer, the byte count cheroot keeps and what stays buffered
must be equal.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytest.importorskip("cheroot")

import cheroot.makefile
from cheroot.server import SizeCheckWrapper

from ws4py_integrations.cherrypy.server import _LineReader, _recording_connection_class

_BYTES = st.lists(
    st.sampled_from([b"\n", b"\r", b"\r\n", b"a", b"GET / HTTP/1.1", b"Host: x", b"0" * 300]), max_size=12
)
# None and -1: no limit; 256 is what cheroot's SizeCheckWrapper asks for.
_SIZES = st.one_of(st.none(), st.sampled_from([-1, 0, 1, 2, 5, 256, 65537]), st.integers(0, 40))
_CALLS = st.lists(st.tuples(st.sampled_from(["readline", "read"]), _SIZES), min_size=1, max_size=12)


def _reader(cls: type[Any], buffered: bytes, skip: int, rest: bytes, bufsize: int) -> tuple[Any, socket.socket]:
    server, client = socket.socketpair()
    client.sendall(rest)
    client.close()  # end of stream after ``rest``: no call waits
    reader = cls(server, "rb", bufsize)
    reader._read_buf, reader._read_pos = buffered, min(skip, len(buffered))
    return reader, server


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


@settings(max_examples=300, deadline=None)
@given(
    buffered=_BYTES.map(b"".join),
    skip=st.integers(0, 8),
    rest=_BYTES.map(b"".join),
    bufsize=st.sampled_from([1, 7, 64, 8192]),
    calls=_CALLS,
)
@example(buffered=b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", skip=0, rest=b"", bufsize=8192, calls=[("readline", 256)] * 4)
@example(buffered=b"abc", skip=0, rest=b"def\nghi", bufsize=8192, calls=[("readline", None), ("readline", None)])
@example(buffered=b"abcdef", skip=2, rest=b"", bufsize=8192, calls=[("readline", 3), ("readline", 0)])
def test_lines_read_as_cheroot_reads_them(
    buffered: bytes, skip: int, rest: bytes, bufsize: int, calls: list[tuple[str, int | None]]
) -> None:
    ours, ours_sock = _reader(_LineReader, buffered, skip, rest, bufsize)
    stock, stock_sock = _reader(cheroot.makefile.StreamReader, buffered, skip, rest, bufsize)
    try:
        for method, size in calls:
            if method == "read" and size is not None and size < 0:
                size = None
            assert getattr(ours, method)(size) == getattr(stock, method)(size), (method, size)
            assert ours.bytes_read == stock.bytes_read
            assert ours._read_buf[ours._read_pos :] == stock._read_buf[stock._read_pos :]
    finally:
        ours_sock.close()
        stock_sock.close()


def test_header_lines_come_through_cheroot_s_size_check_unchanged(sockets: list[socket.socket]) -> None:
    head = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" + b"X-Long: " + b"v" * 600 + b"\r\n\r\n"
    ours, sock = _reader(_LineReader, head, 0, b"body", 8192)
    sockets.append(sock)
    wrapper = SizeCheckWrapper(ours, 4096)
    lines = [wrapper.readline() for _ in range(5)]
    assert b"".join(lines) == head
    assert lines[3].startswith(b"X-Long: ") and lines[4] == b"\r\n"
    assert ours.bytes_read == len(head) and wrapper.bytes_read == len(head)
    assert ours.read(4) == b"body"


def test_the_connection_class_reads_with_the_line_reader(sockets: list[socket.socket]) -> None:
    server = cheroot.server.HTTPServer(("127.0.0.1", 0), gateway=cheroot.server.Gateway)
    connection_class = _recording_connection_class(cheroot.server.HTTPConnection)
    ours, peer = socket.socketpair()
    sockets += [ours, peer]
    conn = connection_class(server, ours)
    assert type(conn.rfile) is _LineReader
    peer.sendall(b"GET / HTTP/1.1\r\n")
    assert conn.rfile.readline() == b"GET / HTTP/1.1\r\n"
