"""The Flask extension's routes under ``flask run``: a Flask developer's first contact.

``flask --app examples.flask_chat run`` (werkzeug's development server, threaded,
found through the app factory) serves the example's ``@sockets.route`` chat:
werkzeug's server is taken over by ``WebSocketWSGIApplication.check()`` on the
first handshake. The peers are websockets' sync client and websocket-client;
the server's log must stay free of errors.
"""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websocket as wsclient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.frameworks import post_form, refused_at
from tests.support.process import ServerProcess


def _serves(proc: ServerProcess) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/", timeout=2) as response:
            return b"Flask chat" in response.read()
    except OSError:
        return False


def test_flask_run_serves_the_extensions_routes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "flask", "--app", "examples.flask_chat", "run", "--port", "0"]
    log_path = tmp_path / "flask.log"
    with ServerProcess(
        command,
        ready=r"Running on http://127\.0\.0\.1:(?P<port>\d+)",
        ready_stream="stderr",
        probe=_serves,
        log_path=log_path,
        env={"FLASK_CHAT_SECRET_KEY": "test secret"},
        name="flask run",
    ) as proc:
        # before_request runs for the handshake: no name yet, its 401 is the answer.
        status, _, body = refused_at(proc.host, proc.port, "/ws/lobby")
        assert (status, body) == (401, b"pick a name first\n")
        base = f"http://{proc.host}:{proc.port}"
        _, ada = post_form(base + "/login", {"name": "ada"})
        _, bob = post_form(base + "/login", {"name": "bob"})
        assert ada is not None and bob is not None
        url = proc.url("/ws/lobby")
        with connect(url, additional_headers={"Cookie": ada}, open_timeout=10) as first:
            assert first.recv(timeout=10) == "* ada joined lobby"
            second = wsclient.create_connection(url, header=[f"Cookie: {bob}"], timeout=10)
            try:
                assert second.recv() == "* bob joined lobby"
                assert first.recv(timeout=10) == "* bob joined lobby"
                second.send("hi from websocket-client")
                assert first.recv(timeout=10) == "bob: hi from websocket-client"
                assert second.recv() == "bob: hi from websocket-client"
                first.send("x" * 70_000)  # a long message through werkzeug's socket
                assert second.recv() == "ada: " + "x" * 70_000
                assert first.recv(timeout=10) == "ada: " + "x" * 70_000
            finally:
                second.close()
            assert first.recv(timeout=10) == "* bob left"
            first.close()
            with pytest.raises(ConnectionClosed) as closed:
                first.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        # The page is still served (no request thread is held by the closed sockets).
        with urllib.request.urlopen(base + "/", timeout=10) as response:
            assert response.status == 200
        time.sleep(0.3)  # werkzeug's request threads finish (and would log) after the close
        log = proc.log()
    for marker in ("Traceback", "Error on request", "Exception"):
        assert marker not in log, log[-3000:]
    # werkzeug's request log (colored on a terminal): the two handshakes, answered 101 by the takeover.
    assert len(re.findall(r'GET /ws/lobby HTTP/1\.1\S*" 101', log)) == 2, log[-3000:]
