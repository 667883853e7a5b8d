"""What the library logs for one connection, on a real server with an independent client.

Every line about a connection carries its id; the DEBUG trace shows frames in
both directions; a normal close is not logged at INFO (websockets' own
"connection closed" line is trace, not news).
"""

from __future__ import annotations

import logging
import re

import pytest
from websockets.sync.client import connect

from tests.support.servers import available, serve
from ws4py_integrations import Message, WebSocket, WebSocketWSGIApplication


class Echo(WebSocket):
    def received_message(self, message: Message) -> None:
        self.send(message.data)


@pytest.mark.parametrize("server_name", available())
def test_a_connection_s_story_in_the_log(server_name: str, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.DEBUG, "ws4py_integrations"),
        serve(server_name, WebSocketWSGIApplication(Echo)) as server,
    ):
        with connect(server.ws_url("/"), open_timeout=10) as ws:
            ws.send("hello")
            assert ws.recv(timeout=10) == "hello"
        records = [r for r in caplog.records if r.name.startswith("ws4py_integrations")]
        upgraded = [r.getMessage() for r in records if "upgraded" in r.getMessage()]
        assert len(upgraded) == 1
        conn_id = re.match(r"(#\d+): upgraded", upgraded[0]).group(1)  # type: ignore[union-attr]
        # Wait for the close to be reported (the server finishes it after the client).
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("ws4py_integrations.protocol")]
        assert any(line.startswith(f"{conn_id} < TEXT 'hello'") for line in lines), lines
        assert any(line.startswith(f"{conn_id} > TEXT") for line in lines), lines
        assert all(line.startswith(conn_id) for line in lines), lines
    about_it = [r for r in caplog.records if r.name in ("ws4py_integrations.connection", "ws4py_integrations.protocol")]
    assert all(r.getMessage().startswith(conn_id) for r in about_it)
    assert any(r.getMessage() == f"{conn_id}: closed 1000 " for r in about_it)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "connection closed" in r.getMessage()]
