"""The official ``engine.io-client`` (Node) against the Engine.IO server on every
server adapter: polling only, WebSocket only, and polling upgraded to WebSocket.

It uses the ``engine.io-client`` that ``scripts/setup-node.sh`` installs with
``socket.io-client`` (``examples/chat_socketio/node_modules``), or the
``node_modules`` directory named by ``ENGINEIO_CLIENT_NODE_MODULES``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import RunningServer, available, serve
from ws4py_integrations.engineio import EchoHandler, EngineIOServer

ROOT = Path(__file__).resolve().parents[1]


def _node_modules() -> Path | None:
    candidates = [os.environ.get("ENGINEIO_CLIENT_NODE_MODULES"), ROOT / "examples/chat_socketio/node_modules"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "engine.io-client").is_dir():
            return Path(candidate)
    return None


NODE_MODULES = _node_modules()
pytestmark = pytest.mark.skipif(
    NODE_MODULES is None or shutil.which("node") is None,
    reason="engine.io-client is not installed (bash scripts/setup-node.sh)",
)

# Sends a text and a binary message, waits for both echoes and for a few
# heartbeats, and prints what happened as JSON.
CLIENT = """
const { Socket } = require("engine.io-client");
const [port, transports] = [process.argv[2], process.argv[3].split(",")];
const socket = new Socket(`ws://127.0.0.1:${port}`, { transports, path: "/engine.io/" });
const result = { messages: [], upgrades: [] };
const timer = setTimeout(() => { console.log(JSON.stringify(result)); process.exit(1); }, 8000);
socket.on("open", () => { socket.send("hello"); socket.send(new Uint8Array([1, 2, 3])); });
socket.on("upgrade", (transport) => result.upgrades.push(transport.name));
socket.on("message", (data) => {
  result.messages.push(typeof data === "string" ? data : "bin:" + Buffer.from(data).toString("hex"));
  if (result.messages.length === 2) {
    setTimeout(() => {
      result.transport = socket.transport.name;
      result.state = socket.readyState;
      socket.close();
      clearTimeout(timer);
      console.log(JSON.stringify(result));
    }, 1000);
  }
});
"""


@pytest.fixture(scope="module", params=available())
def running(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    eio = EngineIOServer(EchoHandler(), ping_interval=0.3, ping_timeout=0.3)
    with serve(request.param, eio) as server:
        yield server
        eio.close()


@pytest.mark.parametrize("transports", ["polling", "websocket", "polling,websocket"])
def test_engine_io_client(running: RunningServer, transports: str, tmp_path: Path) -> None:
    script = tmp_path / "client.cjs"
    script.write_text(CLIENT)
    completed = subprocess.run(
        ["node", str(script), str(running.port), transports],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert sorted(result["messages"]) == ["bin:010203", "hello"]
    # Still open after three heartbeats, on the transport it ended on.
    assert result["state"] == "open"
    assert result["transport"] == transports.split(",")[-1]
    assert result["upgrades"] == (["websocket"] if transports == "polling,websocket" else [])
