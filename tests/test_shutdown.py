"""Stopping a server sends 1001: SIGTERM and SIGINT on every server, as users start it.

The examples stop the way the docs tell users to: ``server.run()`` on wsgiref
and gevent, CherryPy's engine on CherryPy. A bare cheroot server's ``run()``
and a stock pywsgi server's manager are checked too.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest
import websocket as wsclient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.process import ServerProcess, echo_example
from tests.support.servers import available

SERVERS = available()


def _expect_1001(ws_a: object, ws_b: wsclient.WebSocket) -> None:
    """Both clients see the server's close: 1001, going away."""
    with pytest.raises(ConnectionClosed) as info:
        ws_a.recv(timeout=15)  # type: ignore[attr-defined]
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    opcode, frame = ws_b.recv_data_frame(True)
    assert opcode == wsclient.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1001
    # websocket-client answered the Close; it leaves the TCP close to us, and
    # the server would wait its close_timeout for it.
    ws_b.shutdown()


def _both_clients_get_1001(proc: ServerProcess, url: str, signum: int) -> None:
    """Two clients (websockets', websocket-client) echo once; ``signum`` closes both with 1001."""
    with connect(url, open_timeout=10) as ws_a:
        ws_b = wsclient.create_connection(url, timeout=15)
        try:
            ws_a.send("before")
            assert ws_a.recv(timeout=10) == "before"
            ws_b.send("before")
            assert ws_b.recv() == "before"
            proc.signal(signum)
            _expect_1001(ws_a, ws_b)
        finally:
            ws_b.close()
    assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("server", SERVERS)
def test_a_stop_signal_closes_every_websocket_with_1001(server: str, signum: int, tmp_path: Path) -> None:
    with echo_example(server, log_path=tmp_path / "echo.log") as proc:
        _both_clients_get_1001(proc, f"ws://127.0.0.1:{proc.port}/ws", signum)
        assert "Traceback" not in proc.log(), proc.log()


_CHEROOT_SERVER = textwrap.dedent(
    """
    import sys
    from ws4py_integrations import WebSocket, WebSocketWSGIApplication
    from ws4py_integrations.cherrypy import WSGIServer

    class Echo(WebSocket):
        def received_message(self, message):
            self.send(message.data)

    server = WSGIServer(("127.0.0.1", 0), WebSocketWSGIApplication(Echo))
    server.prepare()
    print("cheroot on 127.0.0.1:%d" % server.bind_addr[1], flush=True)
    server.run()
    print("stopped", flush=True)
    """
)


def test_a_bare_cheroot_server_run_stops_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-c", _CHEROOT_SERVER]
    ready = r"cheroot on 127\.0\.0\.1:(?P<port>\d+)"
    with ServerProcess(command, ready=ready, log_path=tmp_path / "cheroot.log", name="cheroot run()") as proc:
        _both_clients_get_1001(proc, f"ws://127.0.0.1:{proc.port}/", signal.SIGTERM)
        assert proc.read_line(timeout=10).strip() == "stopped"
