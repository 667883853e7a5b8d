"""CherryPy specifics: the tool and its configuration, tools that refuse before the
upgrade, the plugin and the engine, many WebSockets on few worker threads, TLS,
and the cheroot gateway on a bare ``cheroot.wsgi.Server``."""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

cherrypy = pytest.importorskip("cherrypy")

from cheroot.ssl.builtin import BuiltinSSLAdapter  # noqa: E402
from cherrypy.lib.auth_basic import checkpassword_dict  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.frames import Frame, Opcode  # noqa: E402
from websockets.sync.client import ClientConnection, connect  # noqa: E402

from tests.support import app as apps  # noqa: E402
from tests.support.client import RawClient, handshake_request  # noqa: E402
from tests.support.process import echo_example  # noqa: E402
from tests.support.servers import RunningServer, TLSFiles, no_session_tickets  # noqa: E402
from tests.support.servers.cherrypy import run_cherrypy  # noqa: E402
from ws4py_integrations import WebSocket  # noqa: E402
from ws4py_integrations.cherrypy import WebSocketPlugin, WebSocketTool, WSGIServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# As ws4py users do it.
cherrypy.tools.websocket = WebSocketTool()


def require_login() -> None:
    """A site's own tool: WebSocket only for logged-in sessions."""
    if not cherrypy.session.get("user"):
        raise cherrypy.HTTPError(403, "log in first")


cherrypy.tools.require_login = cherrypy.Tool("before_handler", require_login)

#: Page handlers that ran: (path, ``cherrypy.request.ws_handler``).
page_handlers: queue.Queue[tuple[str, Any]] = queue.Queue()
#: What a later hook saw of ``cherrypy.request.ws_handler``: (path, handler).
later_hooks: queue.Queue[tuple[str, Any]] = queue.Queue()


def record_ws_handler() -> None:
    request = cherrypy.serving.request
    later_hooks.put((request.path_info, getattr(request, "ws_handler", None)))


cherrypy.tools.record_ws_handler = cherrypy.Tool("on_end_request", record_ws_handler)


class Root:
    @cherrypy.expose  # type: ignore[untyped-decorator]
    def index(self) -> str:
        return "hello from cherrypy"

    @cherrypy.expose  # type: ignore[untyped-decorator]
    def login(self) -> str:
        cherrypy.session["user"] = "alice"
        return "logged in"

    @cherrypy.expose  # type: ignore[untyped-decorator]
    def ws(self) -> str:
        page_handlers.put(("/ws", getattr(cherrypy.request, "ws_handler", None)))
        return "ignored: the connection is a WebSocket now"

    @cherrypy.expose  # type: ignore[untyped-decorator]
    @cherrypy.tools.websocket(handler_cls=apps.Recording, protocols=["chat", "superchat"], max_message_size=1024)  # type: ignore[untyped-decorator]
    def small(self) -> None:
        page_handlers.put(("/small", getattr(cherrypy.request, "ws_handler", None)))

    @cherrypy.expose  # type: ignore[untyped-decorator]
    def keepalive(self) -> None:
        pass

    @cherrypy.expose  # type: ignore[untyped-decorator]
    def members(self) -> None:
        page_handlers.put(("/members", getattr(cherrypy.request, "ws_handler", None)))

    @cherrypy.expose  # type: ignore[untyped-decorator]
    def basic(self) -> None:
        page_handlers.put(("/basic", getattr(cherrypy.request, "ws_handler", None)))

    @cherrypy.expose  # type: ignore[untyped-decorator]
    def origins(self) -> None:
        pass

    @cherrypy.expose  # type: ignore[untyped-decorator]
    def misconfigured(self) -> None:
        page_handlers.put(("/misconfigured", None))

    @cherrypy.expose  # type: ignore[untyped-decorator]
    def broken(self) -> None:
        raise RuntimeError("a page handler that must not run for an upgrade")


def ws_config(handler_cls: type[WebSocket], **options: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"tools.websocket.on": True, "tools.websocket.handler_cls": handler_cls}
    config.update({f"tools.websocket.{name}": value for name, value in options.items()})
    return config


CONFIG: dict[str, dict[str, Any]] = {
    "/": {"tools.sessions.on": True},
    "/ws": {**ws_config(apps.Commands), "tools.record_ws_handler.on": True},
    "/keepalive": ws_config(apps.Recording, heartbeat_freq=0.5, ping_timeout=0.5),
    "/members": {**ws_config(apps.Recording), "tools.require_login.on": True},
    "/basic": {
        **ws_config(apps.Recording),
        "tools.auth_basic.on": True,
        "tools.auth_basic.realm": "test",
        "tools.auth_basic.checkpassword": checkpassword_dict({"alice": "secret"}),
    },
    "/origins": ws_config(apps.Recording, origins=["https://app.example"]),
    "/broken": ws_config(apps.Commands),
    "/misconfigured": ws_config(apps.Recording, max_size=5),
}


def mount_root() -> None:
    cherrypy.tree.mount(Root(), "", CONFIG)


@pytest.fixture(autouse=True)
def _drain_page_handlers() -> None:
    for recorded in (page_handlers, later_hooks):
        while not recorded.empty():
            recorded.get_nowait()


@pytest.fixture(params=["ws", "wss"])
def site(request: pytest.FixtureRequest, tls_files: TLSFiles) -> Iterator[RunningServer]:
    """The tool-configured CherryPy site, over ws or wss."""
    tls = tls_files if request.param == "wss" else None
    with run_cherrypy(mount_root, tls) as running:
        running.extra["client_ssl"] = tls_files.client_context if tls else None
        yield running


@pytest.fixture
def plain_site() -> Iterator[RunningServer]:
    with run_cherrypy(mount_root) as running:
        running.extra["client_ssl"] = None
        yield running


@contextmanager
def client(server: RunningServer, path: str, **kwargs: Any) -> Iterator[ClientConnection]:
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 10)
    with connect(server.ws_url(path), ssl=server.extra.get("client_ssl"), **kwargs) as ws:
        yield ws


def raw(server: RunningServer) -> RawClient:
    return RawClient(server.host, server.port, server.extra.get("client_ssl"))


def read_response(peer: RawClient, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a request, read the complete response (head and Content-Length body)."""
    peer.send(request)
    status, headers, body = peer.read_response_head()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = peer.sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def http_get(server: RunningServer, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn: http.client.HTTPConnection
    if server.tls:
        conn = http.client.HTTPSConnection(server.host, server.port, timeout=10, context=server.extra["client_ssl"])
    else:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


# -- the tool ------------------------------------------------------------------------


def test_plugin_registers_the_tool_and_plain_pages_work(site: RunningServer) -> None:
    assert isinstance(cherrypy.tools.websocket, WebSocketTool)
    response = http_get(site, "/")
    assert response.status == 200


def test_tool_configured_endpoint_echoes_and_later_hooks_see_ws_handler(site: RunningServer) -> None:
    with client(site, "/ws") as ws:
        messages: list[str | bytes] = ["hello", "é€𝄞", b"\x00\xff" * 100, ""]
        for message in messages:
            ws.send(message)
            assert ws.recv(timeout=10) == message
        path, handler = later_hooks.get(timeout=10)
    assert path == "/ws"
    assert isinstance(handler, apps.Commands)
    assert apps.wait_event("closed", "/ws")[0] == 1000
    # The page handler routes the request but does not run for an upgrade.
    assert page_handlers.empty()


def test_tool_decorator_options_protocols_and_size_limit(site: RunningServer) -> None:
    with client(site, "/small", subprotocols=["superchat", "chat"]) as ws:
        assert ws.subprotocol == "chat"
        assert apps.wait_event("opened", "/small") == "chat"
        ws.send("x" * 1024)
        assert ws.recv(timeout=10) == "x" * 1024
        ws.send("x" * 1025)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_tool_keepalive_from_heartbeat_freq(site: RunningServer) -> None:
    peer = raw(site)
    try:
        assert peer.upgrade("/keepalive") == 101
        started = time.monotonic()
        frame = peer.recv_frame(timeout=5)
        assert frame is not None and frame.opcode is Opcode.PING
        # No pong from this peer: the server gives up with 1011.
        assert peer.recv_close(timeout=5).code == 1011
        assert time.monotonic() - started < 4.0
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/ws", {"Sec-WebSocket-Key": None}, 400),
        ("/ws", {"Sec-WebSocket-Key": "not base64!"}, 400),
        ("/ws", {"Sec-WebSocket-Version": "12"}, 426),
        ("/ws", {"Upgrade": None}, 400),
        ("/ws", {"Connection": "keep-alive"}, 400),
        ("/origins", {"Origin": "https://evil.example"}, 403),
    ],
    ids=["no-key", "bad-key", "version-12", "no-upgrade", "no-connection", "origin"],
)
def test_tool_refuses_bad_handshakes_like_the_middleware(
    site: RunningServer, path: str, headers: dict[str, str | None], status: int
) -> None:
    peer = raw(site)
    try:
        got, response_headers, body = read_response(peer, handshake_request(site.host, site.port, path, headers))  # type: ignore[arg-type]
    finally:
        peer.close()
    assert got == status
    assert response_headers["content-type"].startswith("text/plain")
    assert body.strip() and b"<html" not in body.lower()  # the middleware's one-line reason
    if status == 426:
        assert response_headers["sec-websocket-version"] == "13"
    # The page handler did not run and no WebSocket opened.
    assert page_handlers.empty()
    with pytest.raises(TimeoutError):
        apps.wait_event("opened", path, timeout=0.2)


def test_plain_get_on_tool_endpoint_is_400(plain_site: RunningServer) -> None:
    assert http_get(plain_site, "/ws").status == 400
    assert page_handlers.empty()


def test_unknown_tool_option_is_a_server_error_and_nothing_upgrades(plain_site: RunningServer) -> None:
    peer = raw(plain_site)
    try:
        status, _, _ = read_response(peer, handshake_request(plain_site.host, plain_site.port, "/misconfigured"))
    finally:
        peer.close()
    assert status == 500  # a configuration error, not the client's
    assert page_handlers.empty()
    with pytest.raises(TimeoutError):
        apps.wait_event("opened", "/misconfigured", timeout=0.2)


def test_accepted_origin_is_upgraded(plain_site: RunningServer) -> None:
    with client(plain_site, "/origins", origin="https://app.example") as ws:
        ws.send("from the app")
        assert ws.recv(timeout=10) == "from the app"


def test_other_tool_refuses_before_upgrade_then_session_allows_it(plain_site: RunningServer) -> None:
    peer = raw(plain_site)
    try:
        status, _, _ = read_response(peer, handshake_request(plain_site.host, plain_site.port, "/members"))
    finally:
        peer.close()
    assert status == 403
    with pytest.raises(TimeoutError):
        apps.wait_event("opened", "/members", timeout=0.2)
    assert page_handlers.empty()

    # Log in: the sessions tool runs before the upgrade and the login tool sees the user.
    login = http_get(plain_site, "/login")
    cookie = login.getheader("Set-Cookie", "").split(";")[0]
    assert cookie.startswith("session_id=")
    with client(plain_site, "/members", additional_headers={"Cookie": cookie}) as ws:
        apps.wait_event("opened", "/members")
        ws.send("member message")
        assert ws.recv(timeout=10) == "member message"
    assert page_handlers.empty()


def test_auth_basic_refuses_before_upgrade(plain_site: RunningServer) -> None:
    peer = raw(plain_site)
    try:
        status, headers, _ = read_response(peer, handshake_request(plain_site.host, plain_site.port, "/basic"))
    finally:
        peer.close()
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic")
    credentials = base64.b64encode(b"alice:secret").decode()
    with client(plain_site, "/basic", additional_headers={"Authorization": f"Basic {credentials}"}) as ws:
        ws.send("authenticated")
        assert ws.recv(timeout=10) == "authenticated"


def test_page_handler_does_not_run_for_an_upgrade(plain_site: RunningServer) -> None:
    with client(plain_site, "/broken") as ws:
        for n in range(3):
            ws.send(f"still fine {n}")
            assert ws.recv(timeout=10) == f"still fine {n}"


# -- the connection hand-over -----------------------------------------------------------


def test_upgrade_on_a_kept_alive_connection_with_a_frame_in_the_same_write(site: RunningServer) -> None:
    peer = raw(site)
    try:
        host = f"{site.host}:{site.port}"
        status, _, body = read_response(peer, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert (status, body) == (200, b"hello from cherrypy")
        # Second request on the same connection: the upgrade, with a frame right behind it.
        assert peer.upgrade("/ws", extra=Frame(Opcode.TEXT, b"early").serialize(mask=True)) == 101
        frame = peer.recv_frame()
        assert frame is not None and (frame.opcode, frame.data) == (Opcode.TEXT, b"early")
    finally:
        peer.close()


def test_tls_bytes_buffered_past_the_socket_are_delivered(tls_files: TLSFiles) -> None:
    """Handshake and a 12 KB frame in one TLS record: cheroot's reader takes 8 KiB of
    it, the rest waits inside the TLS object where select() does not see it."""
    with run_cherrypy(mount_root, tls_files) as running:
        running.extra["client_ssl"] = tls_files.client_context
        payload = os.urandom(12000)
        head = handshake_request(running.host, running.port, "/ws")
        record = head + Frame(Opcode.BINARY, payload).serialize(mask=True)
        assert len(record) <= 16384  # one TLS record
        peer = raw(running)
        try:
            assert peer.upgrade("/ws", extra=record[len(head) :]) == 101
            started = time.monotonic()
            frame = peer.recv_frame(timeout=5)
            assert frame is not None and frame.data == payload
            assert time.monotonic() - started < 1.0
        finally:
            peer.close()


def test_wss_small_messages_are_not_delayed(tls_files: TLSFiles) -> None:
    with run_cherrypy(mount_root, tls_files) as running:
        running.extra["client_ssl"] = tls_files.client_context
        with client(running, "/ws", compression=None) as ws:
            worst = 0.0
            for n in range(200):
                started = time.monotonic()
                ws.send(f"m{n}")
                assert ws.recv(timeout=5) == f"m{n}"
                worst = max(worst, time.monotonic() - started)
        assert worst < 0.5, f"slowest wss round trip {worst:.3f}s"


def test_detached_socket_does_not_keep_cheroots_timeout() -> None:
    with (
        run_cherrypy(mount_root, config={"server.socket_timeout": 1}) as running,
        client(running, "/ws", ping_interval=None) as ws,
    ):
        # Idle for longer than the server's socket timeout.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=2.5)
        ws.send("after the timeout")
        assert ws.recv(timeout=10) == "after the timeout"


def test_server_without_the_gateway_refuses_with_501_until_a_plugin_subscribes() -> None:
    # The plugin is told to leave every HTTP server alone: no hand-over possible.
    plugin = WebSocketPlugin(cherrypy.engine, servers=[])
    with run_cherrypy(mount_root, plugin=plugin) as running:
        peer = RawClient(running.host, running.port)
        try:
            status, _, body = read_response(peer, handshake_request(running.host, running.port, "/ws"))
        finally:
            peer.close()
        assert status == 501
        assert b"cannot hand over" in body
        # A plugin subscribed to the running engine equips its server at once.
        late = WebSocketPlugin(cherrypy.engine)
        late.subscribe()
        try:
            with client(running, "/ws") as ws:
                ws.send("late but fine")
                assert ws.recv(timeout=10) == "late but fine"
        finally:
            late.unsubscribe()
            late.stop()


# -- many WebSockets, few threads ---------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _eventually(predicate: Any, timeout: float = 10.0) -> bool:
    """For states no event announces (thread idle, descriptor closed)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_thousand_websockets_on_ten_worker_threads_and_plain_http_stays_prompt() -> None:
    count = 1000
    with run_cherrypy(mount_root, thread_pool=10) as running:
        manager = running.manager
        assert manager is not None
        httpserver = cherrypy.server.httpserver
        assert httpserver.requests.min == 10
        baseline = _open_fds()
        peers: list[RawClient] = []
        try:
            started = time.monotonic()
            for _ in range(count):
                peer = RawClient(running.host, running.port)
                peers.append(peer)
                assert peer.upgrade("/ws") == 101
            opened = time.monotonic() - started
            # Every connection is live and served by the manager.
            for n, peer in enumerate(peers):
                peer.send_frame(Opcode.TEXT, f"ping {n}".encode())
            for n, peer in enumerate(peers):
                frame = peer.recv_frame()
                assert frame is not None and frame.data == f"ping {n}".encode()
            assert manager.stats()["connections"] == count
            # Every cheroot worker is free again: no thread is held by a WebSocket.
            assert _eventually(lambda: httpserver.requests.idle == 10), httpserver.requests.idle

            latencies = []
            for _ in range(50):
                t0 = time.monotonic()
                assert http_get(running, "/").status == 200
                latencies.append(time.monotonic() - t0)
            assert max(latencies) < 0.5, latencies
        finally:
            for peer in peers:
                peer.close()
        # Closed by the clients: the server side lets go of every socket.
        assert manager.wait_closed(20)
        assert _eventually(lambda: _open_fds() <= baseline + 5), (_open_fds(), baseline)
        print(
            f"\n{count} WebSockets opened in {opened:.2f}s on 10 worker threads; plain HTTP while held "
            f"(50 requests): median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )


# -- the engine -----------------------------------------------------------------------------


def test_engine_stop_closes_every_websocket_with_1001() -> None:
    with run_cherrypy(mount_root) as running, client(running, "/ws") as ws, client(running, "/small") as other:
        apps.wait_event("opened", "/small")
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        running.stop()
        for conn in (ws, other):
            with pytest.raises(ConnectionClosed) as info:
                conn.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert apps.wait_event("closed", "/small")[0] == 1001
        assert cherrypy.engine.state == cherrypy.engine.states.STOPPED


def test_graceful_closes_with_1001_and_new_websockets_get_a_fresh_manager() -> None:
    with run_cherrypy(mount_root) as running:
        plugin: WebSocketPlugin = running.extra["plugin"]
        before = plugin.manager
        with client(running, "/ws") as ws:
            ws.send("before")
            assert ws.recv(timeout=10) == "before"
            cherrypy.engine.graceful()
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        with client(running, "/ws") as ws:
            ws.send("after")
            assert ws.recv(timeout=10) == "after"
        assert plugin.manager is not before


def test_engine_start_after_stop_uses_a_fresh_manager() -> None:
    with run_cherrypy(mount_root) as running:
        plugin: WebSocketPlugin = running.extra["plugin"]
        first = plugin.manager
        with client(running, "/ws") as ws:
            ws.send("first run")
            assert ws.recv(timeout=10) == "first run"
        running.stop()
        # cheroot cannot bind its old ephemeral port again: a new HTTP server.
        cherrypy.server.httpserver = None
        cherrypy.engine.start()
        host, port = cherrypy.server.bound_addr
        second_run = RunningServer("cherrypy", str(host), int(port), False, None, cherrypy.engine.stop)
        with client(second_run, "/ws") as ws:
            ws.send("second run")
            assert ws.recv(timeout=10) == "second run"
        assert plugin.manager is not first


def test_websocket_broadcast_channel(plain_site: RunningServer) -> None:
    with client(plain_site, "/ws") as first, client(plain_site, "/ws") as second:
        for ws in (first, second):
            ws.send("ready")
            assert ws.recv(timeout=10) == "ready"
        assert cherrypy.engine.publish("websocket-broadcast", "to everyone") == [2]
        assert first.recv(timeout=10) == "to everyone"
        assert second.recv(timeout=10) == "to everyone"


# -- a bare cheroot server --------------------------------------------------------------------


@contextmanager
def bare_cheroot(transport: str, tls_files: TLSFiles) -> Iterator[tuple[WSGIServer, RunningServer]]:
    """Our ``WSGIServer`` (cheroot's own TLS adapter for wss) serving the test app on a thread."""
    server = WSGIServer(("127.0.0.1", 0), apps.make_app(), numthreads=4)
    if transport == "wss":
        adapter = BuiltinSSLAdapter(tls_files.certfile, tls_files.keyfile)
        # As every TLS server of the suite: websockets' sync client can lose its
        # handshake request to a session ticket (see no_session_tickets).
        no_session_tickets(adapter.context)
        server.ssl_adapter = adapter
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        host, port = server.bind_addr[:2]
        running = RunningServer("cheroot", host, port, transport == "wss", server.manager, server.stop)
        running.extra["client_ssl"] = tls_files.client_context if transport == "wss" else None
        yield server, running
    finally:
        server.stop()
        thread.join(10)


@pytest.mark.parametrize("transport", ["ws", "wss"])
def test_bare_cheroot_server_runs_the_middleware(transport: str, tls_files: TLSFiles) -> None:
    with bare_cheroot(transport, tls_files) as (server, running):
        assert http_get(running, "/page").status == 200
        with client(running, "/echo") as ws:
            ws.send("on bare cheroot")
            assert ws.recv(timeout=10) == "on bare cheroot"
            peer = raw(running)
            try:
                frames = Frame(Opcode.TEXT, b"with the handshake").serialize(mask=True)
                assert peer.upgrade("/echo", extra=frames) == 101
                frame = peer.recv_frame()
                assert frame is not None and frame.data == b"with the handshake"
            finally:
                peer.close()
            server.stop()
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001


@pytest.mark.parametrize("where", ["bare cheroot", "cherrypy"])
def test_tls_servers_send_no_session_tickets(where: str, tls_files: TLSFiles) -> None:
    # websockets' sync client reads its TLS socket on one thread while it writes
    # the handshake request on another; a TLS 1.3 session ticket arriving then
    # can make the request vanish ("timed out during handshake", about one
    # connection in a hundred with websockets 14). The suite's TLS servers send none.
    with contextlib.ExitStack() as stack:
        if where == "bare cheroot":
            _, running = stack.enter_context(bare_cheroot("wss", tls_files))
        else:
            running = stack.enter_context(run_cherrypy(mount_root, tls_files))
        plain = stack.enter_context(socket.create_connection((running.host, running.port), timeout=10))
        sock = stack.enter_context(tls_files.client_context.wrap_socket(plain, server_hostname="127.0.0.1"))
        assert sock.version() == "TLSv1.3"
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):  # to the end: any ticket came before the response
            received += chunk
        assert received.startswith(b"HTTP/1.1 ")
        assert sock.session is not None and not sock.session.has_ticket


# -- packaging and the example ------------------------------------------------------------------


def test_importing_the_package_does_not_import_cherrypy() -> None:
    code = (
        "import sys, ws4py_integrations\n"
        "assert 'cherrypy' not in sys.modules\n"
        "import ws4py_integrations.cherrypy as c\n"
        "assert 'cherrypy' not in sys.modules, 'the cheroot part needs no CherryPy'\n"
        "c.WebSocketTool\n"
        "assert 'cherrypy' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("transport", ["ws", "wss"])
def test_echo_example_on_cherrypy(transport: str, tls_files: TLSFiles, tmp_path: Path) -> None:
    tls = (tls_files.certfile, tls_files.keyfile) if transport == "wss" else None
    with echo_example("cherrypy", tls=tls, log_path=tmp_path / "echo.log") as proc:
        running = RunningServer("cherrypy", "127.0.0.1", proc.port, transport == "wss", None, lambda: None)
        running.extra["client_ssl"] = tls_files.client_context if transport == "wss" else None
        assert http_get(running, "/").status == 200
        with client(running, "/ws") as ws:
            ws.send("example")
            assert ws.recv(timeout=10) == "example"
            proc.signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=15)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert proc.wait(timeout=20) == 0


def test_the_unknown_tool_option_error_lists_every_valid_name() -> None:
    with pytest.raises(TypeError) as info:
        WebSocketTool._build(handler_cls=apps.Recording, max_mesage_size=10)
    message = str(info.value)
    assert "unknown tools.websocket option(s): max_mesage_size" in message
    for name in ("handler_cls", "manager", "heartbeat_freq", "max_message_size", "allowed_hosts", "max_queue"):
        assert name in message
