"""gunicorn's thread workers: our ThreadWorker, and the stock sync/gthread workers' 501.

Real gunicorn processes (one worker) serving tests.support.gunicorn_app:app;
clients are raw sockets (tests.support.client, frames by websockets'
Sans-I/O protocol) for many connections, and websockets' sync client.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psutil
import pytest
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from tests.support.client import RawClient, handshake_request
from tests.support.process import ServerProcess, gunicorn_worker
from tests.support.servers import TLSFiles

THREAD_WORKER = "ws4py_integrations.gunicorn.ThreadWorker"


def plain(port: int, path: str = "/plain") -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: bytes = response.read()
        return body


def worker_process(proc: ServerProcess) -> psutil.Process:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(proc.pid).children()
        if children:
            return children[0]
        time.sleep(0.05)
    raise AssertionError("gunicorn started no worker")


def open_many(stack: ExitStack, port: int, count: int) -> list[RawClient]:
    clients = []
    for _ in range(count):
        client = stack.enter_context(_closing(RawClient("127.0.0.1", port)))
        assert client.upgrade("/echo") == 101
        clients.append(client)
    return clients


class _closing:
    def __init__(self, client: RawClient) -> None:
        self.client = client

    def __enter__(self) -> RawClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()


def read_body(client: RawClient, body: bytes, length: int) -> bytes:
    deadline = time.monotonic() + 10
    while len(body) < length and time.monotonic() < deadline:
        chunk = client.sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def echo_all(clients: list[RawClient]) -> None:
    for n, client in enumerate(clients):
        client.send_frame(Opcode.TEXT, f"m{n}".encode())
    for n, client in enumerate(clients):
        frame = client.recv_frame()
        assert frame is not None and frame.data == f"m{n}".encode()


@pytest.fixture
def thread_worker(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    with gunicorn_worker("--threads", "4", worker=THREAD_WORKER, log_path=tmp_path / "gunicorn.log") as running:
        yield running


def hold_many(port: int, proc: ServerProcess, count: int) -> None:
    worker = worker_process(proc)
    with ExitStack() as stack:
        clients = open_many(stack, port, count)
        # Plain requests still answer, with every WebSocket open, on 4 threads.
        for _ in range(8):
            assert plain(port) == b"plain GET /plain"
        echo_all(clients)
        # The manager's few threads, not one per WebSocket.
        assert worker.num_threads() < 4 + 40
        # SIGTERM: every WebSocket gets 1001, well within the graceful timeout (20 s).
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        for client in clients:
            assert client.recv_close(timeout=15).code == 1001
        assert time.monotonic() - started < 15
    assert proc.wait(20) == 0


def test_thread_worker_holds_200_websockets_on_4_threads_and_sigterm_sends_1001(
    thread_worker: tuple[ServerProcess, int],
) -> None:
    proc, port = thread_worker
    hold_many(port, proc, 200)
    log = proc.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


@pytest.mark.slow
def test_thread_worker_holds_1000_websockets_on_4_threads(thread_worker: tuple[ServerProcess, int]) -> None:
    proc, port = thread_worker
    hold_many(port, proc, 1000)


def test_thread_worker_keeps_frames_sent_with_the_handshake(thread_worker: tuple[ServerProcess, int]) -> None:
    _, port = thread_worker
    client = RawClient("127.0.0.1", port)
    try:
        frames = b"".join(Frame(Opcode.TEXT, f"early{n}".encode()).serialize(mask=True) for n in range(3))
        assert client.upgrade("/echo", extra=frames) == 101
        for n in range(3):
            frame = client.recv_frame()
            assert frame is not None and frame.data == f"early{n}".encode()
    finally:
        client.close()
    # websockets' client: the handshake's response is a clean 101.
    with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10) as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers.get("Content-Length") is None
        assert ws.response.headers.get("Transfer-Encoding") is None
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
    assert ws.close_code == 1000


def test_timeout_never_kills_a_worker_because_of_websockets(tmp_path: Path) -> None:
    extra = ("--threads", "2", "--timeout", "2")
    with gunicorn_worker(*extra, worker=THREAD_WORKER, log_path=tmp_path / "g.log") as (proc, port):
        worker = worker_process(proc)
        with ExitStack() as stack:
            clients = open_many(stack, port, 8)
            # Longer than --timeout, with every WebSocket idle on the manager.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                echo_all(clients)
                time.sleep(0.5)
            assert worker.is_running() and worker_process(proc).pid == worker.pid
            echo_all(clients)
        assert "WORKER TIMEOUT" not in proc.log()


def test_max_requests_recycling_closes_websockets_with_1001(tmp_path: Path) -> None:
    extra = ("--threads", "2", "--max-requests", "3")
    with gunicorn_worker(*extra, worker=THREAD_WORKER, log_path=tmp_path / "g.log") as (proc, port):
        # The readiness probe made request 1; the upgrade is request 2.
        first = worker_process(proc)
        client = RawClient("127.0.0.1", port)
        try:
            assert client.upgrade("/echo") == 101
            assert plain(port) == b"plain GET /plain"  # request 3: the worker recycles
            assert client.recv_close(timeout=15).code == 1001
        finally:
            client.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            children = psutil.Process(proc.pid).children()
            if children and children[0].pid != first.pid:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("gunicorn did not replace the recycled worker")
        with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=15) as ws:
            ws.send("after")
            assert ws.recv(timeout=10) == "after"
        assert "Autorestarting worker" in proc.log()


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_stock_workers_answer_501_naming_the_worker_class(worker: str, tmp_path: Path) -> None:
    with gunicorn_worker(worker=worker, log_path=tmp_path / "g.log") as (proc, port):
        client = RawClient("127.0.0.1", port)
        try:
            client.send(handshake_request("127.0.0.1", port, "/echo"))
            status, headers, body = client.read_response_head()
            body = read_body(client, body, int(headers["content-length"]))
        finally:
            client.close()
        assert status == 501
        assert b"run gunicorn with -k ws4py_integrations.gunicorn.ThreadWorker" in body
        # Plain HTTP is unaffected.
        assert plain(port) == b"plain GET /plain"
        deadline = time.monotonic() + 10
        while "-k ws4py_integrations.gunicorn.ThreadWorker" not in proc.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "cannot upgrade /echo: gunicorn's stock workers" in proc.log()


def test_thread_worker_refuses_tls_it_serves_itself_with_501(tls_files: TLSFiles, tmp_path: Path) -> None:
    tls = ("--certfile", tls_files.certfile, "--keyfile", tls_files.keyfile)
    with gunicorn_worker(*tls, context=tls_files.client_context, worker=THREAD_WORKER, log_path=tmp_path / "g.log") as (
        _,
        port,
    ):
        client = RawClient("127.0.0.1", port, tls=tls_files.client_context)
        try:
            client.send(handshake_request("127.0.0.1", port, "/echo"))
            status, headers, body = client.read_response_head()
            body = read_body(client, body, int(headers["content-length"]))
        finally:
            client.close()
        assert status == 501
        assert b"cannot hand over a TLS connection" in body and b"proxy" in body
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/plain", timeout=10, context=tls_files.client_context
        ) as response:
            assert response.read() == b"plain GET /plain"
