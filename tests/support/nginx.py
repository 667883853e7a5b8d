"""A real nginx in front of a test server, with the configuration docs/deployment.rst shows.

``docs/nginx/websocket.conf`` is read and its ``@NAME@`` placeholders filled in;
a small ``nginx.conf`` around it keeps everything (pid, logs, temp files) in a
test directory. nginx runs in the foreground (``daemon off``) as our own child
and is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from tests.support.process import ROOT, ServerProcess, free_port

__all__ = ["CONFIG", "Nginx", "nginx_binary", "render"]

#: The configuration the deployment page includes.
CONFIG = ROOT / "docs" / "nginx" / "websocket.conf"


def nginx_binary() -> str | None:
    """Debian's nginx (``scripts/setup.sh --test`` installs it), or ``None``."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every ``@NAME@`` replaced; ``KeyError`` for one without a value."""
    text = template
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    # Only comments may still mention placeholders (the list at the top).
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if "@" in code:
            raise KeyError(f"placeholder left in {CONFIG.name}: {line.strip()}")
    return text


class Nginx:
    """nginx on 127.0.0.1 (an http and an https port) proxying to ``upstream_port``.

    ``source`` is the address nginx connects to the application from
    (``proxy_bind``): tests use 127.0.0.2 so that a client on 127.0.0.1 is
    not the trusted proxy.
    """

    def __init__(
        self,
        directory: Path,
        upstream_port: int,
        *,
        certfile: str,
        keyfile: str,
        read_timeout: str = "75s",
        source: str | None = "127.0.0.2",
    ) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed: run scripts/setup.sh --test")
        self.directory = directory
        (directory / "temp").mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.https_port = free_port()
        site = render(
            CONFIG.read_text(),
            {
                "UPSTREAM": f"127.0.0.1:{upstream_port}",
                "LISTEN_HTTP": f"127.0.0.1:{self.http_port}",
                "LISTEN_TLS": f"127.0.0.1:{self.https_port}",
                "CERTIFICATE": certfile,
                "CERTIFICATE_KEY": keyfile,
                "READ_TIMEOUT": read_timeout,
            },
        )
        (directory / "websocket.conf").write_text(site)
        temp = directory / "temp"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers as ourselves: they read our temp files
        (directory / "nginx.conf").write_text(
            f"{user}worker_processes 1;\n"
            f"error_log {directory}/error.log info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {directory}/access.log;\n"
            f"    client_body_temp_path {temp}/body;\n"
            f"    proxy_temp_path {temp}/proxy;\n"
            f"    fastcgi_temp_path {temp}/fastcgi;\n"
            f"    uwsgi_temp_path {temp}/uwsgi;\n"
            f"    scgi_temp_path {temp}/scgi;\n"
            # A threaded client writing its first request while a TLS 1.3
            # ticket arrives can fail the write (see tests/support/servers).
            "    ssl_session_tickets off;\n"
            + (f"    proxy_bind {source};\n" if source else "")
            + "    include websocket.conf;\n"
            "}\n"
        )
        command = [
            binary, "-p", f"{directory}/", "-c", f"{directory}/nginx.conf", "-e", f"{directory}/error.log",
            "-g", f"daemon off; pid {directory}/nginx.pid;",
        ]  # fmt: skip
        self.process = ServerProcess(
            command,
            port=self.http_port,
            probe=lambda _: _listening(self.http_port) and _listening(self.https_port),
            log_path=directory / "nginx.out",
            name="nginx",
        )

    def url(self, path: str = "/ws", *, tls: bool = False) -> str:
        return f"wss://127.0.0.1:{self.https_port}{path}" if tls else f"ws://127.0.0.1:{self.http_port}{path}"

    def origin(self, *, tls: bool = False) -> str:
        """The Origin a browser sends for a page served by this nginx."""
        return f"https://127.0.0.1:{self.https_port}" if tls else f"http://127.0.0.1:{self.http_port}"

    def error_log(self) -> str:
        return self._read("error.log")

    def access_log(self) -> str:
        """nginx's access log: one line per request, with the status the application answered."""
        return self._read("access.log")

    def _read(self, name: str) -> str:
        try:
            return (self.directory / name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        try:
            self.process.start(timeout=20)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\nnginx error.log:\n{self.error_log()[-3000:]}") from None

    def stop(self) -> None:
        self.process.stop(timeout=10)

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
