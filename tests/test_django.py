"""The Django example, as users run it: ``manage.py runserver`` and one of our adapters.

Real Django in a server process, logged in through its login form; clients
are ``websockets.sync.client`` and raw sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from tests.support.client import RawClient, handshake_request
from tests.support.django_chat import READY, create_database, env, log_in, server
from tests.support.process import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(90)

KINDS = ("runserver", "wsgiref", "gevent")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("django") / "chat.sqlite3"
    create_database(db)
    return db


@pytest.fixture(scope="module", params=KINDS)
def chat(
    request: pytest.FixtureRequest, database: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    kind: str = request.param
    log = tmp_path_factory.mktemp("logs") / f"{kind}.log"
    extra = ("--noreload",) if kind == "runserver" else ()
    with server(kind, database, log, *extra) as process:
        yield process


def base(process: ServerProcess) -> str:
    return f"http://{process.host}:{process.port}"


def join(process: ServerProcess, room: str, cookie: str) -> ClientConnection:
    return connect(process.url(f"/ws/chat/{room}/"), additional_headers={"Cookie": cookie}, open_timeout=10)


def receive(ws: ClientConnection) -> dict[str, object]:
    message = json.loads(ws.recv(timeout=10))
    assert isinstance(message, dict)
    return message


def db_files(pid: int, database: Path) -> list[str]:
    """The server process's open files that are the SQLite database (or its journal)."""
    return [f.path for f in psutil.Process(pid).open_files() if f.path.startswith(str(database))]


def no_more_db_files(process: ServerProcess, database: Path, baseline: list[str]) -> None:
    """Wait until the server has no more database files open than ``baseline``, taken before
    the WebSockets (Django < 5.1's runserver keeps the connection of its migration check)."""
    assert wait_for(lambda: len(db_files(process.pid, database)) <= len(baseline)), (
        db_files(process.pid, database),
        baseline,
    )


def wait_for(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(condition())  # type: ignore[operator]


def test_the_handler_sees_the_session_and_the_user_and_the_room_history(chat: ServerProcess) -> None:
    room = f"history-{chat.port}"
    alice = log_in(base(chat), "alice", nickname="Alice in Chains")
    bob = log_in(base(chat), "bob")
    with join(chat, room, alice) as a, join(chat, room, bob) as b:
        hello_a, hello_b = receive(a), receive(b)
        assert hello_a == {"type": "hello", "room": room, "you": "Alice in Chains", "history": []}
        assert hello_b["you"] == "bob"
        a.send("hello bob")
        for ws in (a, b):
            assert receive(ws) == {"type": "message", "user": "Alice in Chains", "text": "hello bob"}
    # Stored by the handler: a newcomer gets it from the database.
    with join(chat, room, bob) as late:
        assert receive(late)["history"] == [{"user": "alice", "text": "hello bob"}]


def refusal(process: ServerProcess, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Send a handshake for /ws/chat/lobby/; the response's status, headers and body."""
    client = RawClient(process.host, process.port)
    try:
        client.send(handshake_request(process.host, process.port, "/ws/chat/lobby/", headers))
        status, fields, body = client.read_response_head()
        deadline = time.monotonic() + 10
        while int(fields.get("content-length", 0)) > len(body) and time.monotonic() < deadline:
            body += client.sock.recv(4096)
        return status, fields, body
    finally:
        client.close()


def test_static_files_are_served_beside_the_routes(chat: ServerProcess) -> None:
    """runserver keeps staticfiles' handler (the example wraps the adapters' app the same way)."""
    with urllib.request.urlopen(base(chat) + "/static/django_chat/chat.js", timeout=10) as response:
        assert response.status == 200
        assert b"new WebSocket(" in response.read()


def test_an_anonymous_handshake_gets_the_views_403(chat: ServerProcess) -> None:
    status, _, body = refusal(chat, {})
    assert (status, body) == (403, b"log in first\n")


def test_our_negotiation_refuses_with_status_and_reason(chat: ServerProcess) -> None:
    cookie = log_in(base(chat), "alice")
    status, headers, body = refusal(chat, {"Cookie": cookie, "Sec-WebSocket-Version": "8"})
    assert status == 426
    assert headers["sec-websocket-version"] == "13"
    assert b"version" in body.lower()


def test_frames_sent_with_the_handshake_are_not_lost_and_the_101_is_ours(chat: ServerProcess) -> None:
    room = f"eager-{chat.port}"
    cookie = log_in(base(chat), "bob")
    client = RawClient(chat.host, chat.port)
    try:
        client.send(
            handshake_request(chat.host, chat.port, f"/ws/chat/{room}/", {"Cookie": cookie})
            + Frame(Opcode.TEXT, b"first words").serialize(mask=True)
        )
        status, headers, rest = client.read_response_head()
        assert status == 101
        assert "content-length" not in headers and "transfer-encoding" not in headers
        client.protocol.receive_data(rest)
        hello = client.recv_frame()
        assert hello is not None and json.loads(hello.data)["type"] == "hello"
        echoed = client.recv_frame()
        assert echoed is not None
        assert json.loads(echoed.data) == {"type": "message", "user": "bob", "text": "first words"}
    finally:
        client.close()


def test_no_database_connection_stays_open_per_websocket(chat: ServerProcess, database: Path) -> None:
    """Handlers query and write the database; idle WebSockets hold no connection (CONN_MAX_AGE 0)."""
    room = f"db-{chat.port}"
    cookie = log_in(base(chat), "alice")
    baseline = db_files(chat.pid, database)
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(join(chat, room, cookie)) for _ in range(5)]
        for ws in sockets:
            receive(ws)
        for number, ws in enumerate(sockets):
            ws.send(f"message {number}")
        for ws in sockets:
            texts = {str(receive(ws)["text"]) for _ in sockets}
            assert texts == {f"message {n}" for n in range(len(sockets))}
        # Five open, idle WebSockets, each of which used the database.
        no_more_db_files(chat, database, baseline)
    no_more_db_files(chat, database, baseline)


def test_a_normal_close_logs_no_error(chat: ServerProcess) -> None:
    cookie = log_in(base(chat), "bob")
    marker = f"close-{time.monotonic_ns()}"
    with join(chat, marker, cookie) as ws:
        receive(ws)
        ws.send("bye")
        receive(ws)
    with join(chat, marker, cookie) as ws:  # the first one's closed() has run by now or soon
        receive(ws)
    time.sleep(0.5)  # let the server write whatever it would log about those closes
    log = chat.log()
    assert f"/ws/chat/{marker}/" in log
    for bad in ("Traceback", "ERROR", "Error", "Broken pipe"):
        assert bad not in log, log[-3000:]


def test_runserver_nothreading_is_not_held_by_a_websocket(database: Path, tmp_path: Path) -> None:
    """With one thread for every request, an open WebSocket must not hold it; the request log stays Django's."""
    with server("runserver", database, tmp_path / "log", "--noreload", "--nothreading") as process:
        cookie = log_in(base(process), "alice")
        with join(process, "single", cookie) as first, join(process, "single", cookie) as second:
            receive(first)
            receive(second)
            second.send("both open")
            assert receive(first)["text"] == "both open"
            # Plain HTTP still answers while both are open.
            log_in(base(process), "bob")
        # Django's request log shows the upgrades.
        assert wait_for(lambda: '"GET /ws/chat/single/ HTTP/1.1" 101' in process.log()), process.log()[-2000:]


def test_runserver_autoreload_closes_websockets_with_1001_and_comes_back(database: Path, tmp_path: Path) -> None:
    views = ROOT / "examples" / "django_chat" / "views.py"
    with server("runserver", database, tmp_path / "log") as process:
        cookie = log_in(base(process), "alice")
        with join(process, "reload", cookie) as ws:
            receive(ws)
            os.utime(views)  # a source file changed: the autoreloader restarts the server
            with pytest.raises(Exception) as closed:
                ws.recv(timeout=20)
            assert ws.close_code == 1001, closed.value

        # The new server process (port 0: a new port) serves WebSockets again.
        deadline = time.monotonic() + 30
        while (match := re.search(READY["runserver"], process.read_line(deadline - time.monotonic()))) is None:
            pass
        process.port = int(match["port"])
        with join(process, "reload", cookie) as again:
            assert receive(again)["type"] == "hello"


def test_a_function_route_gets_the_request_url_arguments_and_a_blocking_websocket(
    chat: ServerProcess, database: Path
) -> None:
    room = f"search-{chat.port}"
    alice = log_in(base(chat), "alice", nickname="Al")
    baseline = db_files(chat.pid, database)
    with join(chat, room, alice) as talk:
        receive(talk)
        for text in ("apples are red", "pears are green", "apples again"):
            talk.send(text)
            receive(talk)
    with connect(chat.url(f"/ws/search/{room}/"), additional_headers={"Cookie": alice}, open_timeout=10) as ws:
        assert receive(ws) == {"type": "hello", "room": room, "you": "Al"}
        ws.send("apples")
        found = receive(ws)
        assert found["query"] == "apples"
        assert [line["text"] for line in found["lines"]] == ["apples are red", "apples again"]  # type: ignore[union-attr]
        # Waiting in receive(), the handler holds no database connection.
        no_more_db_files(chat, database, baseline)
        ws.send("green")
        assert len(receive(ws)["lines"]) == 1  # type: ignore[arg-type]
    no_more_db_files(chat, database, baseline)


def test_a_function_route_is_refused_like_a_class_route(chat: ServerProcess) -> None:
    client = RawClient(chat.host, chat.port)
    try:
        client.send(handshake_request(chat.host, chat.port, "/ws/search/lobby/"))
        status, _, _ = client.read_response_head()
        assert status == 403
    finally:
        client.close()


def test_the_examples_live_server_tests_pass(tmp_path: Path) -> None:
    """Django's own test runner: a LiveServerTestCase whose live server hands WebSockets over."""
    result = subprocess.run(
        [sys.executable, "-m", "examples.django_chat", "test", "examples.django_chat", "-v", "2"],
        cwd=ROOT,
        env=env(tmp_path / "db.sqlite3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Ran 2 tests" in result.stderr
    assert "test_a_member_chats_and_the_line_is_stored" in result.stderr


def test_the_example_on_gunicorns_thread_worker_holds_more_websockets_than_threads(
    database: Path, tmp_path: Path
) -> None:
    """Production: gunicorn's thread worker with two threads, twenty WebSockets, plain HTTP still served."""
    pytest.importorskip("ws4py_integrations.gunicorn", reason="needs ws4py_integrations.gunicorn.ThreadWorker")
    from tests.support.process import _gunicorn_has_control_socket

    command = [
        sys.executable, "-m", "gunicorn", "-k", "ws4py_integrations.gunicorn.ThreadWorker",
        "--threads", "2", "-w", "1", "-b", "127.0.0.1:0",
        *(["--no-control-socket"] if _gunicorn_has_control_socket() else []),
        "examples.django_chat.wsgi:application",
    ]  # fmt: skip

    def answers(process: ServerProcess) -> bool:
        try:
            with urllib.request.urlopen(base(process) + "/login/", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    process = ServerProcess(
        command,
        ready=r"Listening at: http://127\.0\.0\.1:(?P<port>\d+)",
        ready_stream="stderr",
        probe=answers,
        env=env(database),
        log_path=tmp_path / "gunicorn.log",
        name="gunicorn",
    )
    with process:
        room = f"gunicorn-{process.port}"
        cookie = log_in(base(process), "alice")
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(join(process, room, cookie)) for _ in range(20)]
            for ws in sockets:
                receive(ws)
            log_in(base(process), "bob")  # the two threads are free
            sockets[0].send("to all twenty")
            for ws in sockets:
                assert receive(ws)["text"] == "to all twenty"


def test_manage_py_checks_which_runserver_wins(tmp_path: Path) -> None:
    """The example's manage.py, from another directory; then with staticfiles listed first."""
    manage_py = str(ROOT / "examples" / "django_chat" / "manage.py")
    environment = env(tmp_path / "db.sqlite3")

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, manage_py, "check", *args],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )

    ordered = check()
    assert ordered.returncode == 0, ordered.stderr
    assert "no issues" in ordered.stdout
    misordered = check("--settings", "tests.support.django_misordered_settings", "--pythonpath", str(ROOT))
    assert misordered.returncode == 0, misordered.stderr
    assert "ws4py_integrations.W001" in misordered.stderr
    assert "django.contrib.staticfiles" in misordered.stderr
