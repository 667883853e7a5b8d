"""Slow, stuck and vanished clients on every server: they are closed, others see nothing."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from websockets.frames import Opcode

from tests.support import app
from tests.support.client import RawClient
from tests.support.hardening import assert_serving, frame_bytes, hardening_server, raw, ws_client
from tests.support.servers import RunningServer, available

SLACK = 5.0  # seconds of scheduling slack on a loaded 2-core machine


@pytest.fixture(scope="module", params=available())
def hserver(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with hardening_server(request.param) as running:
        yield running


def stuck_client(server: RunningServer) -> RawClient:
    """A raw client with a tiny receive buffer that will never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((server.host, server.port))
    peer = RawClient.__new__(RawClient)
    RawClient.__init__(peer, server.host, server.port)  # fields, then swap the socket
    peer.sock.close()
    peer.sock = sock
    return peer


def opened_websocket(path: str) -> app.Commands:
    websocket: app.Commands = app.wait_event("opened", path)
    return websocket


def test_reader_that_stops_reading_is_closed_and_others_see_no_delay(hserver: RunningServer) -> None:
    with ws_client(hserver) as bystander:
        peer = stuck_client(hserver)
        try:
            assert peer.upgrade("/stuck") == 101
            # The server sends 64 KiB messages until it gives up on this peer.
            peer.send(frame_bytes(Opcode.TEXT, b"flood:100000,65536"))
            for index in range(20):
                bystander.send(f"meanwhile {index}")
                assert bystander.recv(timeout=10) == f"meanwhile {index}"
            sent = app.wait_event("flood-stopped", "/stuck", timeout=30)
            assert sent < 100000
            code, _ = app.wait_event("closed", "/stuck", timeout=2.0 + SLACK)  # close_timeout + slack
            assert code == 1008
        finally:
            peer.close()
        assert_serving(hserver, bystander)


def test_broadcast_reaches_everyone_but_the_stuck_reader(hserver: RunningServer) -> None:
    # 300 x 32 KiB: far more than the stuck reader's kernel buffers plus its
    # 256 KiB max_send_buffer, well within the readers' default 16 MiB.
    count, size = 300, 32768
    with (
        ws_client(hserver, "/echo", max_queue=None) as reader1,
        ws_client(hserver, "/echo", max_queue=None) as reader2,
    ):
        peer = stuck_client(hserver)
        try:
            assert peer.upgrade("/stuck") == 101
            opened_websocket("/stuck")  # registered with the manager (the 101 goes out just before)
            reader1.send(f"broadcast:{count},{size}")
            reached = app.wait_event("broadcast-done", "/echo", timeout=60)
            for reader in (reader1, reader2):
                got = [reader.recv(timeout=30) for _ in range(count)]
                assert all(message == b"x" * size for message in got)
            # The stuck reader tripped max_send_buffer and was dropped from later broadcasts.
            assert reached[0] == 3 and reached[-1] == 2
            code, _ = app.wait_event("closed", "/stuck", timeout=2.0 + SLACK)
            assert code == 1008
        finally:
            peer.close()
        assert_serving(hserver, reader1, reader2)


def test_peer_stalled_inside_a_frame_is_closed_by_the_read_timeout(hserver: RunningServer) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/stall") == 101  # read_timeout=1.0, no keepalive
        whole = frame_bytes(Opcode.BINARY, b"y" * 100)
        peer.send(whole[:20])  # header, mask and part of the payload; then nothing
        started = time.monotonic()
        close = peer.recv_close(timeout=1.0 + SLACK)
        assert close.code == 1008
        assert time.monotonic() - started < 1.0 + SLACK
        peer.wait_eof(timeout=10)
    finally:
        peer.close()
    assert_serving(hserver)


def test_peer_stalled_after_a_frame_header_only_is_closed_by_the_read_timeout(hserver: RunningServer) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/stall") == 101
        peer.send(bytes([0x82]))  # the first byte of a header
        close = peer.recv_close(timeout=1.0 + SLACK)
        assert close.code == 1008
    finally:
        peer.close()


def test_idle_peer_between_frames_is_not_hit_by_the_read_timeout(hserver: RunningServer) -> None:
    with ws_client(hserver, "/stall") as ws:
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        # Idle at a frame boundary for longer than read_timeout (1 s): still open.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=2.0)
        ws.send("after")
        assert ws.recv(timeout=10) == "after"


def test_peer_trickling_inside_a_frame_is_closed_by_keepalive(hserver: RunningServer) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/keepalive") == 101  # ping 0.5 s, pong timeout 0.5 s, no read timeout
        whole = frame_bytes(Opcode.BINARY, b"z" * 1000)
        started = time.monotonic()
        close = None
        # One byte every 0.1 s: a pong can never get through inside the frame.
        for index in range(len(whole)):
            peer.send(whole[index : index + 1])
            try:
                frame = peer.recv_frame(timeout=0.1)
            except TimeoutError:
                continue
            if frame is not None and frame.opcode is Opcode.CLOSE:
                close = struct.unpack("!H", frame.data[:2])[0]
                break
            if time.monotonic() - started > 0.5 + 0.5 + SLACK:
                break
        assert close == 1011
    finally:
        peer.close()


def test_peer_that_vanishes_with_rst_is_cleaned_up(hserver: RunningServer) -> None:
    app.drain_events()
    peer = raw(hserver)
    assert peer.upgrade("/echo") == 101
    websocket = opened_websocket("/echo")
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.sock.close()  # RST, no close frame
    code, _ = app.wait_event("closed", "/echo", timeout=10)
    assert code == 1006
    assert websocket.terminated
    assert websocket not in websocket.manager.websockets
    assert_serving(hserver)


def test_silent_peer_is_closed_by_keepalive_and_cleaned_up(hserver: RunningServer) -> None:
    app.drain_events()
    peer = raw(hserver)
    try:
        assert peer.upgrade("/keepalive") == 101
        websocket = opened_websocket("/keepalive")
        # The peer neither reads nor answers pings, as if it had vanished.
        code, _ = app.wait_event("closed", "/keepalive", timeout=0.5 + 0.5 + 1.0 + SLACK)
        assert code == 1011
        assert websocket.terminated
        assert websocket not in websocket.manager.websockets
    finally:
        peer.close()
    assert_serving(hserver)


def test_stalled_http_handshakes_do_not_block_others(hserver: RunningServer) -> None:
    # 40 clients that send half a head: more than cheroot's 10 workers here.
    # Every adapter waits for complete heads without a thread or worker each.
    stalled = []
    try:
        for _ in range(40):
            sock = socket.create_connection((hserver.host, hserver.port), timeout=10)
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")  # and no more
            stalled.append(sock)
        assert_serving(hserver)
    finally:
        for sock in stalled:
            sock.close()
