"""The application the gunicorn tests run: ``gunicorn -k ws4py_integrations.gevent.GunicornWorker tests.gunicorn_app:app``."""

from __future__ import annotations

import time
from typing import Any

from ws4py_integrations import Message, WebSocket, WebSocketMiddleware


class Echo(WebSocket):
    """Echoes; ``sleep:SECONDS`` sleeps with ``time.sleep`` (patched: yields), ``mode`` tells the handler mode."""

    def received_message(self, message: Message) -> None:
        data = message.data
        if isinstance(data, str) and data.startswith("sleep:"):
            time.sleep(float(data[6:]))
            self.send(f"slept:{data[6:]}")
        elif data == "mode":
            from gevent import monkey

            self.send(f"{getattr(self.manager, 'handlers', None)} patched={monkey.is_module_patched('socket')}")
        else:
            self.send(data)


class Broadcast(WebSocket):
    def opened(self) -> None:
        self.join("all")
        self.send("joined")

    def received_message(self, message: Message) -> None:
        self.manager.broadcast(message.data, "all")


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"plain " + environ.get("PATH_INFO", "").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = WebSocketMiddleware(plain, {"/echo": Echo, "/broadcast": Broadcast})
