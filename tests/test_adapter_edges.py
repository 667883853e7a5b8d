"""Edges of the server adapters: an application that fails after the upgrade,
and settings that make no sense."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.support.servers import available, serve
from ws4py_integrations import Message, WebSocket, WebSocketWSGIApplication
from ws4py_integrations.wsgiref import make_server


class Echo(WebSocket):
    def received_message(self, message: Message) -> None:
        self.send(message.data)


def failing_after_upgrade(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Upgrades, then raises: the server must not answer on (or close) a connection it gave away."""
    ws_app = WebSocketWSGIApplication(Echo)
    ws_app(environ, start_response)
    raise RuntimeError("the application failed after the upgrade")


@pytest.mark.parametrize("server_name", available())
def test_an_application_failing_after_the_upgrade_leaves_the_websocket_alone(server_name: str) -> None:
    with serve(server_name, failing_after_upgrade) as server, connect(server.ws_url("/"), open_timeout=10) as ws:
        for text in ("one", "two"):
            ws.send(text)
            assert ws.recv(timeout=10) == text


@pytest.mark.parametrize("setting", [{"head_timeout": 0}, {"max_head_size": 0}, {"max_threads": 0}])
def test_wsgiref_refuses_settings_that_make_no_sense(setting: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        make_server("127.0.0.1", 0, failing_after_upgrade, **setting)  # type: ignore[arg-type]


class TellsPeer(WebSocket):
    def opened(self) -> None:
        self.send(json.dumps(self.peer_address))


@pytest.mark.parametrize("server_name", available())
def test_peer_address_is_the_clients_own_address(server_name: str) -> None:
    # Adapters that know accept()'s address pass it on instead of asking the
    # socket; either way it must be the client's end of the connection.
    with (
        serve(server_name, WebSocketWSGIApplication(TellsPeer)) as server,
        connect(server.ws_url("/"), open_timeout=10) as ws,
    ):
        told = json.loads(ws.recv(timeout=10))
        assert tuple(told) == ws.socket.getsockname()
