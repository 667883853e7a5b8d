"""Each server behind a real nginx, configured with docs/nginx/websocket.conf.

The servers: ``python -m examples.echo --server`` wsgiref, cherrypy and gevent,
and the echo app under gunicorn's gevent worker and (when this checkout has it)
``ws4py_integrations.gunicorn.ThreadWorker``.

Plain HTTP and TLS terminated at nginx (a trustme certificate the clients
verify). nginx connects to the application from 127.0.0.2 (``proxy_bind``) and
the application trusts that address only (``--trusted-proxy 127.0.0.2``), so a
client connecting from 127.0.0.1 is "anyone else".
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from tests.support.client import RawClient
from tests.support.nginx import CONFIG, Nginx, nginx_binary, render
from tests.support.process import ServerProcess, _gunicorn_has_control_socket, echo_example
from tests.support.servers import TLSFiles

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed (scripts/setup.sh --test)")

#: gunicorn's workers: ``-k`` class and the extra arguments each takes.
GUNICORN_WORKERS = {
    "gunicorn-gevent": ("ws4py_integrations.gevent.GunicornWorker", []),
    # gunicorn's own forwarded handling (on from 127.0.0.1 by default) is off: trusted_proxies is under test.
    "gunicorn-thread": ("ws4py_integrations.gunicorn.ThreadWorker", ["--threads", "4", "--forwarded-allow-ips", ""]),
}
SERVERS = [
    "wsgiref",
    "cherrypy",
    "gevent",
    "gunicorn-gevent",
    pytest.param(
        "gunicorn-thread",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("ws4py_integrations.gunicorn") is None,
            reason="ws4py_integrations.gunicorn.ThreadWorker is not in this checkout",
        ),
    ),
]
PROXY = "127.0.0.2"
#: nginx's proxy_read_timeout in these tests, and the application's ping interval under it.
READ_TIMEOUT = 1.0
PING_INTERVAL = 0.25
MODES = [pytest.param(False, id="http"), pytest.param(True, id="tls")]


def application(server: str, log_path: Path, args: list[str]) -> ServerProcess:
    """``python -m examples.echo --server NAME ARGS``, or the echo app under one of gunicorn's workers."""
    if server not in GUNICORN_WORKERS:
        return echo_example(server, log_path=log_path, args=args)
    worker, worker_args = GUNICORN_WORKERS[server]
    trusted = [args[i + 1] for i, arg in enumerate(args) if arg == "--trusted-proxy"]
    ping = next((float(args[i + 1]) for i, arg in enumerate(args) if arg == "--ping-interval"), 20.0)
    factory = f"examples.echo:make_app(trusted_proxies={trusted or None!r}, ping_interval={ping!r})"
    command = [
        sys.executable, "-m", "gunicorn", "-k", worker, *worker_args,
        "-b", "127.0.0.1:0", "-w", "1", "--graceful-timeout", "5",
        *(["--no-control-socket"] if _gunicorn_has_control_socket() else []), factory,
    ]  # fmt: skip
    # The worker loads the application after "Listening at": ready once it serves the echo page, so that
    # the first upgrade through nginx is not answered late (nginx's 1 s proxy_read_timeout covers the 101).
    return ServerProcess(
        command,
        ready=r"Listening at: http://127\.0\.0\.1:(?P<port>\d+)",
        ready_stream="stderr",
        probe=lambda process: _serves_page(process.port),
        log_path=log_path,
        name=f"echo on {server}",
    )


def _serves_page(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Stack:
    """An application and the nginx in front of it."""

    def __init__(self, app: ServerProcess, nginx: Nginx, tls: TLSFiles) -> None:
        self.app, self.nginx, self.tls = app, nginx, tls

    def connect(self, *, tls: bool, origin: str | None = None, **headers: str) -> ClientConnection:
        return connect(
            self.nginx.url("/ws", tls=tls),
            ssl=self.tls.client_context if tls else None,
            origin=origin,  # type: ignore[arg-type]
            additional_headers=headers or None,
            open_timeout=10,
            close_timeout=5,
        )

    def logs(self) -> str:
        return f"application log:\n{self.app.log()[-3000:]}\nnginx error.log:\n{self.nginx.error_log()[-3000:]}"


def start_stack(server: str, directory: Path, tls_files: TLSFiles, args: list[str]) -> Iterator[Stack]:
    directory.mkdir(parents=True, exist_ok=True)
    app = application(server, directory / "app.log", args)
    with app:
        nginx = Nginx(
            directory / "nginx",
            app.port,
            certfile=tls_files.certfile,
            keyfile=tls_files.keyfile,
            read_timeout=f"{READ_TIMEOUT:g}s",
            source=PROXY,
        )
        with nginx:
            yield Stack(app, nginx, tls_files)


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def stack(server: str, tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> Iterator[Stack]:
    """The echo example trusting nginx, with keepalive pings well inside nginx's read timeout."""
    args = ["--trusted-proxy", PROXY, "--ping-interval", str(PING_INTERVAL)]
    yield from start_stack(server, tmp_path_factory.mktemp(f"nginx-{server}"), tls_files, args)


@pytest.fixture(scope="module")
def untrusting(server: str, tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> Iterator[Stack]:
    """The echo example with its defaults: no trusted proxy, keepalive every 20 s."""
    yield from start_stack(server, tmp_path_factory.mktemp(f"nginx-plain-{server}"), tls_files, [])


def test_the_documented_config_is_the_tested_file() -> None:
    with pytest.raises(KeyError, match="placeholder left"):
        render(CONFIG.read_text(), {"UPSTREAM": "127.0.0.1:1"})
    # The deployment page shows this very file.
    assert "literalinclude:: nginx/websocket.conf" in (CONFIG.parent.parent / "deployment.rst").read_text()


@pytest.mark.parametrize("tls", MODES)
def test_echo_and_close_codes_through_nginx(stack: Stack, tls: bool) -> None:
    with stack.connect(tls=tls) as ws:
        ws.send("hello through nginx")
        assert ws.recv(timeout=10) == "hello through nginx"
        big = os.urandom(300_000)  # larger than nginx's relay buffers
        ws.send(big)
        assert ws.recv(timeout=10) == big
        ws.close(4321, "done here")
        assert ws.protocol.close_rcvd is not None, stack.logs()
        assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (4321, "done here")


@pytest.mark.parametrize("tls", MODES)
def test_frames_sent_with_the_handshake_and_server_close_codes(stack: Stack, tls: bool) -> None:
    port = stack.nginx.https_port if tls else stack.nginx.http_port
    client = RawClient("127.0.0.1", port, tls=stack.tls.client_context if tls else None)
    try:
        early = Frame(Opcode.TEXT, b"sent with the handshake").serialize(mask=True)
        assert client.upgrade("/ws", extra=early) == 101
        frame = next_data_frame(client)
        assert (frame.opcode, frame.data) == (Opcode.TEXT, b"sent with the handshake"), stack.logs()
        # The server fails the connection (invalid UTF-8): its close code reaches us through nginx.
        client.send_frame(Opcode.TEXT, b"\xff\xfe")
        assert client.recv_close(timeout=10).code == 1007
    finally:
        client.close()


def test_a_restart_reaches_clients_as_1001_through_nginx(server: str, tmp_path: Path, tls_files: TLSFiles) -> None:
    # A stack of its own: the application is stopped (SIGTERM, by PID) while clients are connected.
    stack = start_stack(server, tmp_path, tls_files, ["--trusted-proxy", PROXY, "--ping-interval", str(PING_INTERVAL)])
    running = next(stack)
    try:
        with running.connect(tls=False) as plain, running.connect(tls=True) as secure:
            for ws in (plain, secure):
                ws.send("before the restart")
                assert ws.recv(timeout=10) == "before the restart"
            running.app.signal(signal.SIGTERM)
            for ws in (plain, secure):
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=20)
                assert ws.protocol.close_rcvd is not None, running.logs()
                assert ws.protocol.close_rcvd.code == 1001
            assert running.app.wait(20) == 0
    finally:
        stack.close()


def next_data_frame(client: RawClient) -> Frame:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = client.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
        assert frame is not None, "connection ended"
        if frame.opcode not in (Opcode.PING, Opcode.PONG):
            return frame
    raise TimeoutError("no data frame in time")


def test_keepalive_pings_keep_an_idle_connection_past_proxy_read_timeout(stack: Stack) -> None:
    with stack.connect(tls=False) as plain, stack.connect(tls=True) as secure:
        # Idle for over twice nginx's proxy_read_timeout: only the pings cross it.
        with pytest.raises(TimeoutError):
            plain.recv(timeout=READ_TIMEOUT * 2.2)
        for ws in (plain, secure):
            ws.send("still here")
            assert ws.recv(timeout=10) == "still here", stack.logs()


def test_without_pings_nginx_cuts_the_idle_connection_at_proxy_read_timeout(untrusting: Stack) -> None:
    # The control for the test above: the default ping_interval (20 s) is longer than this nginx's 1 s.
    # nginx's timer starts once it has relayed the 101, which is after this.
    started = time.monotonic()
    with untrusting.connect(tls=False) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=15)
        elapsed = time.monotonic() - started
        # 0.9: nginx's timers may fire up to its timer resolution early.
        assert READ_TIMEOUT * 0.9 < elapsed < READ_TIMEOUT + 10, elapsed
        assert ws.protocol.close_rcvd is None  # no closing handshake: nginx dropped TCP


def test_https_origin_behind_tls_termination_needs_trusted_proxies(stack: Stack, untrusting: Stack) -> None:
    # What a browser sends for a page on https://127.0.0.1:PORT (nginx's TLS port).
    with stack.connect(tls=True, origin=stack.nginx.origin(tls=True)) as ws:
        ws.send("same origin")
        assert ws.recv(timeout=10) == "same origin"
    with (
        pytest.raises(InvalidStatus) as refused,
        untrusting.connect(tls=True, origin=untrusting.nginx.origin(tls=True)),
    ):
        pass
    assert refused.value.response.status_code == 403
    body = refused.value.response.body or b""
    assert b"is not allowed (not this request's scheme, host and port)" in body
    assert b"list the proxy's address in trusted_proxies" in body


def test_plain_http_origin_works_either_way(stack: Stack) -> None:
    with stack.connect(tls=False, origin=stack.nginx.origin(tls=False)) as ws:
        ws.send("plain")
        assert ws.recv(timeout=10) == "plain"


def test_a_client_cannot_claim_https_through_nginx(stack: Stack) -> None:
    # Over plain http, a client's own forwarded headers are replaced by nginx's.
    claims = {"X-Forwarded-Proto": "https", "Forwarded": "proto=https", "X-Forwarded-Host": "127.0.0.1"}
    with (
        pytest.raises(InvalidStatus) as refused,
        stack.connect(tls=False, origin=f"https://127.0.0.1:{stack.nginx.http_port}", **claims),
    ):
        pass
    assert refused.value.response.status_code == 403


def test_a_client_cannot_claim_https_directly(stack: Stack) -> None:
    # Straight to the application from 127.0.0.1, which is not the trusted proxy.
    https_origin = f"https://127.0.0.1:{stack.app.port}"
    for claim in ({"X-Forwarded-Proto": "https"}, {"Forwarded": "proto=https"}):
        client = RawClient("127.0.0.1", stack.app.port)
        try:
            assert client.upgrade("/ws", {"Origin": https_origin, **claim}) == 403, claim
        finally:
            client.close()
    # Its malformed Forwarded is not even parsed: a plain same-origin request is accepted.
    client = RawClient("127.0.0.1", stack.app.port)
    try:
        assert client.upgrade("/ws", {"Origin": f"http://127.0.0.1:{stack.app.port}", "Forwarded": "(junk"}) == 101
    finally:
        client.close()


# -- a real browser --------------------------------------------------------------------------


def _spki_hash(certfile: str) -> str:
    """The base64 SHA-256 of the certificate's public key, for Chromium's per-key exception."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    certificate = x509.load_pem_x509_certificates(Path(certfile).read_bytes())[0]
    digest = hashes.Hash(hashes.SHA256())
    digest.update(
        certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return base64.b64encode(digest.finalize()).decode()


@pytest.fixture(scope="module")
def browser(tls_files: TLSFiles) -> Iterator[Browser]:
    """Debian's headless Chromium, accepting exactly the test certificate's key (nothing else)."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh --test)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    args.append(f"--ignore-certificate-errors-spki-list={_spki_hash(tls_files.certfile)}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=args, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


def test_a_browser_on_the_https_page_needs_trusted_proxies(stack: Stack, untrusting: Stack, browser: Browser) -> None:
    # The echo page opens wss://<its host>/ws: Chromium sends the Origin it really has.
    from playwright.sync_api import expect

    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(stack.nginx.origin(tls=True) + "/", timeout=10_000)
        log = page.locator("#log")
        expect(log).to_contain_text("open", timeout=10_000)
        page.fill("#m", "from chromium")
        page.click("button")
        expect(log).to_contain_text("< from chromium", timeout=10_000)
        # Without trusted_proxies the same page's WebSocket is refused (403), which a browser reports as 1006.
        page = context.new_page()
        page.goto(untrusting.nginx.origin(tls=True) + "/", timeout=10_000)
        expect(page.locator("#log")).to_contain_text("closed 1006", timeout=10_000)
        assert "open" not in page.locator("#log").inner_text()
    finally:
        context.close()
    # The refusal, as nginx logged it: Chromium's upgrade answered 403 by the application.
    refusals = [
        line
        for line in untrusting.nginx.access_log().splitlines()
        if '"GET /ws HTTP/1.1" 403' in line and "HeadlessChrome" in line
    ]
    assert refusals, untrusting.nginx.access_log()
