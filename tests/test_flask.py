"""The Flask extension on real servers, with the real Flask and Flask-Login."""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

flask = pytest.importorskip("flask")
flask_login = pytest.importorskip("flask_login")

from flask import Blueprint, Flask, abort, g, request, session  # noqa: E402
from flask_login import LoginManager, UserMixin, current_user, login_user  # noqa: E402

from tests.support.client import RawClient, handshake_request  # noqa: E402
from tests.support.frameworks import example, post_form, refused_at  # noqa: E402
from tests.support.servers import RunningServer, available, serve  # noqa: E402
from ws4py_integrations import BlockingWebSocket  # noqa: E402
from ws4py_integrations.flask import WebSockets  # noqa: E402

SERVERS = available()
#: What the app saw: (what, details).
seen: queue.Queue[tuple[str, Any]] = queue.Queue()


def expect(what: str, timeout: float = 10.0, where: Callable[[Any], bool] = lambda details: True) -> Any:
    """The next ``what`` event whose details satisfy ``where``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, details = seen.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            raise TimeoutError(f"no {what!r} within {timeout}s") from None
        if got == what and where(details):
            return details


def on_worker(path: str) -> Callable[[tuple[str, str]], bool]:
    """Matches the teardown of ``path`` on a handler pool worker."""
    return lambda details: details[0] == path and details[1].startswith("ws4py-handler")


def refused(
    server: RunningServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A WebSocket handshake the server refuses: status, headers, body."""
    return refused_at(server.host, server.port, path, headers)


class User(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = b"test secret, not for production"
    login_manager = LoginManager(app)
    loads: list[str] = []

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        loads.append(user_id)
        seen.put(("user-loaded", (user_id, threading.current_thread().name)))
        return User(user_id) if user_id != "banned" else None

    sockets = WebSockets(app, max_message_size=1024)
    bp = Blueprint("api", __name__, url_prefix="/api")

    @app.before_request
    def handshake_hook() -> Any:
        g.request_tag = f"tag-{request.args.get('tag', 'none')}"
        if request.path.startswith("/ws/private") and not current_user.is_authenticated:
            return "log in first\n", 401
        if request.args.get("refuse") == "abort":
            abort(403)
        return None

    @app.after_request
    def mark(response: Any) -> Any:
        response.headers["X-Through-Flask"] = "yes"
        return response

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        if request.path.startswith(("/ws/", "/api/")):
            seen.put(("teardown", (request.path, threading.current_thread().name)))

    @app.get("/login/<name>")
    def login(name: str) -> str:
        login_user(User(name))
        session["motto"] = f"{name} was here"
        return "ok"

    @sockets.route("/ws/room/<room>")
    def room(ws: BlockingWebSocket, room: str) -> None:
        user = current_user.get_id() if current_user.is_authenticated else None
        ws.send(
            f"room={room} user={user} tag={g.request_tag} motto={session.get('motto')} "
            f"path={request.path} args={request.view_args}"
        )
        for message in ws:
            if message == "raise":
                raise RuntimeError("handler failure requested by the test")
            ws.send(message)

    @sockets.route("/ws/private/<int:number>")
    def private(ws: BlockingWebSocket, number: int) -> None:
        ws.send(f"private {number + 1} for {current_user.get_id()}")

    @bp.before_request
    def bp_hook() -> None:
        g.blueprint = "api"

    @sockets.route("/echo", bp=bp, max_message_size=64)
    def api_echo(ws: BlockingWebSocket) -> None:
        ws.send(f"blueprint={g.blueprint} endpoint={request.endpoint}")
        for message in ws:
            ws.send(message)

    app.register_blueprint(bp)
    return app


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve(request.param, create_app()) as running:
        yield running


def client(server: RunningServer, path: str, cookie: str | None = None) -> ClientConnection:
    headers = {"Cookie": cookie} if cookie else None
    return connect(server.ws_url(path), open_timeout=10, close_timeout=10, additional_headers=headers)


def login(server: RunningServer, name: str) -> str:
    with urllib.request.urlopen(server.http_url(f"/login/{name}"), timeout=10) as response:
        assert response.read() == b"ok"
        cookie = response.headers["Set-Cookie"]
    return str(cookie.split(";")[0])


@pytest.fixture(autouse=True)
def _drain() -> None:
    while not seen.empty():
        seen.get_nowait()


def test_url_parameters_g_session_and_current_user(server: RunningServer) -> None:
    cookie = login(server, "ada")
    with client(server, "/ws/room/garden?tag=7", cookie) as ws:
        assert ws.recv(timeout=10) == (
            "room=garden user=ada tag=tag-7 motto=ada was here path=/ws/room/garden args={'room': 'garden'}"
        )
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
    # The handler ran on a pool worker, and its request context was torn down there.
    expect("teardown", where=on_worker("/ws/room/garden"))


def test_anonymous_user_in_the_handler(server: RunningServer) -> None:
    with client(server, "/ws/room/hall") as ws:
        assert ws.recv(timeout=10).startswith("room=hall user=None tag=tag-none motto=None")


def test_before_request_refuses_the_handshake(server: RunningServer) -> None:
    status, headers, body = refused(server, "/ws/private/1")
    assert (status, body) == (401, b"log in first\n")
    assert headers["x-through-flask"] == "yes"
    assert refused(server, "/ws/room/x?refuse=abort")[0] == 403
    # Flask-Login loaded no user: its loader returns None for "banned".
    assert refused(server, "/ws/private/1", {"Cookie": login(server, "banned")})[0] == 401
    cookie = login(server, "grace")
    with client(server, "/ws/private/41", cookie) as ws:
        assert ws.recv(timeout=10) == "private 42 for grace"


def test_handshake_errors_are_flask_responses(server: RunningServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.http_url("/ws/room/x"), timeout=10)
    assert info.value.code == 400
    assert info.value.headers["X-Through-Flask"] == "yes"
    # A URL that matches no rule is Flask's 404; a bad handshake is ours, as a Flask response.
    assert refused(server, "/ws/room/a/b")[0] == 404
    status, headers, body = refused(server, "/ws/room/x", {"Sec-WebSocket-Version": "12"})
    assert (status, headers["sec-websocket-version"], headers["x-through-flask"]) == (426, "13", "yes")
    assert body.strip()
    # POST is not routed to the WebSocket view.
    post = urllib.request.Request(server.http_url("/ws/room/x"), data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(post, timeout=10)
    assert info.value.code == 405


def test_101_is_ours(server: RunningServer) -> None:
    peer = RawClient(server.host, server.port)
    try:
        peer.send(handshake_request(server.host, server.port, "/ws/room/raw"))
        status, headers, _ = peer.read_response_head()
        assert status == 101
        assert "content-length" not in headers and "transfer-encoding" not in headers
        assert "x-through-flask" not in headers
    finally:
        peer.close()


def test_blueprint_route_options_and_hooks(server: RunningServer) -> None:
    with client(server, "/api/echo") as ws:
        assert ws.recv(timeout=10) == "blueprint=api endpoint=api.api_echo"
        ws.send("x" * 64)
        assert ws.recv(timeout=10) == "x" * 64
        ws.send("x" * 65)  # the route's own max_message_size
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_handler_exception_closes_with_1011(server: RunningServer) -> None:
    with client(server, "/ws/room/err") as ws:
        ws.recv(timeout=10)
        ws.send("raise")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    expect("teardown", where=on_worker("/ws/room/err"))


def test_init_app_later() -> None:
    sockets = WebSockets()

    @sockets.route("/ws/later")
    def later(ws: BlockingWebSocket) -> None:
        ws.send("later")

    app = Flask(__name__)
    sockets.init_app(app)
    assert app.extensions["ws4py_integrations"] is sockets
    assert [r.rule for r in app.url_map.iter_rules() if r.endpoint == "later"] == ["/ws/later"]
    # Without a server adapter the route answers 501 (with the fix in the body), through Flask.
    response = app.test_client().get(
        "/ws/later",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        },
    )
    assert response.status_code == 501
    assert b"hand over" in response.data


# -- the example, as users start it ----------------------------------------------------------


@pytest.mark.parametrize("server_name", [name for name in ("wsgiref", "gevent") if name in SERVERS])
def test_flask_chat_example(server_name: str, tmp_path: Path) -> None:
    with example("flask_chat", server_name, log_path=tmp_path / "server.log") as process:
        base = f"http://{process.host}:{process.port}"
        with urllib.request.urlopen(base + "/", timeout=10) as response:
            assert b"Flask chat" in response.read()
        # No name yet: before_request refuses the handshake.
        status, _, body = refused_at(process.host, process.port, "/ws/lobby")
        assert (status, body) == (401, b"pick a name first\n")
        status, ada = post_form(base + "/login", {"name": "ada"})
        assert status == 302 and ada is not None
        _, bob = post_form(base + "/login", {"name": "bob"})
        url = f"ws://{process.host}:{process.port}/ws/lobby"
        with connect(url, additional_headers={"Cookie": ada}, open_timeout=10) as first:
            assert first.recv(timeout=10) == "* ada joined lobby"
            with connect(url, additional_headers={"Cookie": bob}, open_timeout=10) as second:
                assert second.recv(timeout=10) == "* bob joined lobby"
                assert first.recv(timeout=10) == "* bob joined lobby"
                second.send("hi all")
                assert first.recv(timeout=10) == "bob: hi all"
                assert second.recv(timeout=10) == "bob: hi all"
            assert first.recv(timeout=10) == "* bob left"
