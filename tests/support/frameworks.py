"""Helpers for the framework integration tests: the examples as users start them,
and HTTP with a session cookie."""

from __future__ import annotations

import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.client import RawClient, handshake_request
from tests.support.process import ServerProcess

__all__ = ["example", "post_form", "refused_at"]


def example(module: str, server: str, *, log_path: Path | None = None) -> ServerProcess:
    """``python -m examples.<module> --server SERVER --port 0``; its ready line is
    ``<module> example on <server>: http://HOST:PORT/`` (``_chat`` dropped)."""
    name = module.removesuffix("_chat")
    command = [sys.executable, "-m", f"examples.{module}", "--server", server, "--port", "0", "--log-level", "INFO"]
    ready = rf"{name} example on {server}: http://[^/\s]+:(?P<port>\d+)/"
    return ServerProcess(command, ready=ready, log_path=log_path, name=f"{name} example on {server}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def post_form(url: str, fields: dict[str, str]) -> tuple[int, str | None]:
    """POST a form without following redirects: the status and the session cookie
    (``name=value``) the response sets, if any."""
    data = urllib.parse.urlencode(fields).encode()
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=data, method="POST"), timeout=10) as response:
            status, cookie = response.status, response.headers.get("Set-Cookie")
    except urllib.error.HTTPError as exc:
        status, cookie = exc.code, exc.headers.get("Set-Cookie")
    return status, cookie.split(";")[0] if cookie else None


def refused_at(
    host: str, port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A WebSocket handshake on a raw socket: the response's status, headers and body
    (for refusals: some servers answer them in HTTP/1.0, which client libraries reject)."""
    peer = RawClient(host, port)
    try:
        peer.send(handshake_request(host, port, path, headers))
        status, response_headers, body = peer.read_response_head()
        length = int(response_headers.get("content-length", "0"))
        while len(body) < length:
            chunk = peer.sock.recv(4096)
            if not chunk:
                break
            body += chunk
        return status, response_headers, body
    finally:
        peer.close()
