"""The echo example: the contract conformance and benchmark runs use.

``python -m examples.echo --server NAME --host H --port P`` serves:

- ``/ws``: every message echoed back, same type;
- ``/broadcast``: every message received goes to every client of ``/broadcast``;
- ``/``: a small page to try both from a browser.

``--style blocking`` serves the same endpoints with blocking function
handlers (:mod:`ws4py_integrations.blocking`) instead of callback classes.
"""

from __future__ import annotations

from typing import Any, Literal

from ws4py_integrations import BlockingWebSocket, Message, WebSocket, WebSocketMiddleware, WebSocketWSGIApplication

#: The Autobahn testsuite sends messages up to 16 MiB; the library default is 1 MiB.
MAX_MESSAGE_SIZE = 16 * 2**20


class EchoWebSocket(WebSocket):
    def received_message(self, message: Message) -> None:
        self.send(message.data)


class BroadcastWebSocket(WebSocket):
    room = "broadcast"

    def opened(self) -> None:
        self.join(self.room)

    def received_message(self, message: Message) -> None:
        self.manager.broadcast(message.data, self.room)


def echo(ws: BlockingWebSocket) -> None:
    """``/ws`` in the blocking style."""
    for message in ws:
        ws.send(message)


def broadcast(ws: BlockingWebSocket) -> None:
    """``/broadcast`` in the blocking style."""
    ws.join(BroadcastWebSocket.room)
    for message in ws:
        ws.manager.broadcast(message, BroadcastWebSocket.room)


#: The handlers of each style.
STYLES = {
    "callbacks": {"/ws": EchoWebSocket, "/broadcast": BroadcastWebSocket},
    "blocking": {"/ws": echo, "/broadcast": broadcast},
}


PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>ws4py_integrations echo</title></head>
<body>
<h1>Echo</h1>
<form id="f"><input id="m" autocomplete="off" value="hello"><button>send</button></form>
<pre id="log"></pre>
<script>
const log = (t) => { document.getElementById("log").textContent += t + "\\n"; };
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(scheme + "//" + location.host + "/ws");
ws.onopen = () => log("open");
ws.onmessage = (e) => log("< " + e.data);
ws.onclose = (e) => log("closed " + e.code);
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault(); const v = document.getElementById("m").value; ws.send(v); log("> " + v);
};
</script>
</body></html>
"""


def index(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("PATH_INFO", "/") != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE)))])
    return [PAGE]


def make_app(style: Literal["callbacks", "blocking"] = "callbacks", **options: Any) -> WebSocketMiddleware:
    """The echo WSGI application with handlers of ``style``; ``options`` override
    the endpoint settings."""
    settings: dict[str, Any] = {"max_message_size": MAX_MESSAGE_SIZE, "max_send_buffer": 64 * 2**20, **options}
    return WebSocketMiddleware(
        index,
        {path: WebSocketWSGIApplication(handler, **settings) for path, handler in STYLES[style].items()},
    )
