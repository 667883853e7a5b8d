"""Django in this process: refusals through WebTest, routes on our wsgiref adapter,
database connections per thread, the runserver command and its server class."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from tests.support.client import RawClient
from tests.support.process import ROOT

pytestmark = pytest.mark.timeout(60)

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@pytest.fixture(scope="module")
def application(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The example project's WSGI application (with tests.support.django_urls), on a fresh database."""
    db = tmp_path_factory.mktemp("django-inprocess") / "db.sqlite3"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_SETTINGS_MODULE", "examples.django_chat.settings")
        patch.setenv("DJANGO_CHAT_DB", str(db))
        import django
        from django.conf import settings

        django.setup()
        assert settings.DATABASES["default"]["NAME"] == str(db), "settings were loaded before this module"
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.core.wsgi import get_wsgi_application
        from django.db import connections
        from django.test.utils import override_settings

        call_command("migrate", verbosity=0, interactive=False)
        User.objects.create_user("carol", password="carol-password")
        connections.close_all()
        middleware = [*settings.MIDDLEWARE, "tests.support.django_urls.TenantMiddleware"]
        with override_settings(ROOT_URLCONF="tests.support.django_urls", MIDDLEWARE=middleware):
            yield get_wsgi_application()


@pytest.fixture
def webtest(application: Any) -> Any:
    import webtest

    return webtest.TestApp(application, extra_environ={"SERVER_PROTOCOL": "HTTP/1.1"})


def logged_in(app: Any) -> Any:
    form = app.get("/login/").form
    form["username"], form["password"] = "carol", "carol-password"
    assert form.submit().status_int == 302
    return app


def test_an_anonymous_handshake_gets_the_middleware_or_decorators_answer(webtest: Any) -> None:
    response = webtest.get("/ws/chat/lobby/", headers=UPGRADE, status=403)
    assert response.text == "log in first\n"


def test_a_middleware_that_answers_refuses_the_upgrade_with_its_response(webtest: Any) -> None:
    response = webtest.get("/ws/args/1/", headers={**UPGRADE, "X-Block": "1"}, status=403)
    assert response.text == "blocked by middleware\n"


def test_a_plain_get_of_a_route_is_refused_with_the_reason(webtest: Any) -> None:
    response = logged_in(webtest).get("/ws/chat/lobby/", status=400)
    assert response.content_type == "text/plain"
    assert "Upgrade: websocket" in response.text


def test_a_cross_site_handshake_is_refused(webtest: Any) -> None:
    headers = {**UPGRADE, "Origin": "http://evil.example"}
    response = logged_in(webtest).get("/ws/chat/lobby/", headers=headers, status=403)
    assert "evil.example" in response.text


def test_a_server_that_cannot_hand_over_gets_501(webtest: Any) -> None:
    response = logged_in(webtest).get("/ws/chat/lobby/", headers=UPGRADE, status=501)
    assert "hand over" in response.text


def test_a_route_refuses_an_unknown_subprotocol_with_the_negotiations_status(webtest: Any) -> None:
    headers = {**UPGRADE, "Sec-WebSocket-Protocol": "other"}
    response = webtest.get("/ws/args/1/", headers=headers, expect_errors=True)
    assert response.status_int >= 400
    assert response.text.strip()


@pytest.fixture(scope="module")
def served(application: Any) -> Iterator[tuple[str, int]]:
    """The application on our wsgiref adapter, in this process."""
    from ws4py_integrations.wsgiref import make_server

    server = make_server("127.0.0.1", 0, application)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_class_route_gets_positional_url_arguments_the_anonymous_user_and_what_middleware_set(
    served: tuple[str, int],
) -> None:
    host, port = served
    url = f"ws://{host}:{port}/ws/args/42/"
    with connect(url, subprotocols=["chat.v1"], additional_headers={"X-Tenant": "acme"}, open_timeout=10) as ws:  # type: ignore[list-item]
        assert json.loads(ws.recv(timeout=10)) == {
            "args": ["42"],
            "kwargs": {},
            "user": None,
            "subprotocol": "chat.v1",
            "tenant": "acme",  # set by the project's middleware on the handshake
        }


def test_the_decorator_form_takes_options(served: tuple[str, int]) -> None:
    host, port = served
    with connect(f"ws://{host}:{port}/ws/decorated/hi/", subprotocols=["chat.v1"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.recv(timeout=10) == "hi chat.v1 GET"
        ws.send("there")
        assert ws.recv(timeout=10) == "got 'there'"


def test_a_function_that_raises_closes_with_1011_and_logs(
    served: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    host, port = served
    with caplog.at_level(logging.ERROR, logger="ws4py_integrations"):
        with connect(f"ws://{host}:{port}/ws/decorated/x/", subprotocols=["chat.v1"], open_timeout=10) as ws:  # type: ignore[list-item]
            ws.recv(timeout=10)
            ws.send("raise")
            with contextlib.suppress(Exception):
                ws.recv(timeout=10)
        assert ws.close_code == 1011
    assert "broken function" in caplog.text


def test_a_class_handler_that_raises_closes_with_1011(
    served: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    host, port = served
    with caplog.at_level(logging.ERROR, logger="ws4py_integrations"):
        with connect(f"ws://{host}:{port}/ws/broken/", open_timeout=10) as ws:
            ws.send("boom")
            with contextlib.suppress(Exception):
                ws.recv(timeout=10)
        assert ws.close_code == 1011
    assert "broken handler" in caplog.text
    assert "Broken.received_message" in caplog.text


def test_a_handler_that_cannot_be_built_gets_500(served: tuple[str, int]) -> None:
    host, port = served
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://{host}:{port}/ws/unbuildable/", open_timeout=10)
    assert refused.value.response.status_code == 500


def test_release_connections_closes_as_the_request_cycle_but_not_inside_a_transaction(application: Any) -> None:
    """``django.db.connections`` are per thread: check a fresh thread's, as a manager thread's."""
    from django.contrib.auth.models import User
    from django.db import connections, transaction

    from ws4py_integrations.django import release_connections

    seen: dict[str, bool] = {}

    def work() -> None:
        User.objects.count()
        seen["opened"] = connections["default"].connection is not None
        with transaction.atomic():
            User.objects.count()
            release_connections()
            seen["kept in a transaction"] = connections["default"].connection is not None
        release_connections()
        seen["closed after"] = connections["default"].connection is None

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert seen == {"opened": True, "kept in a transaction": True, "closed after": True}


def test_websocket_refuses_what_is_not_a_handler() -> None:
    from ws4py_integrations.django import websocket

    with pytest.raises(TypeError, match="WebSocket subclass or a function"):
        websocket(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="WebSocket subclass or a function"):
        websocket("chat")  # type: ignore[arg-type]


def test_a_django_websocket_outside_a_django_route_says_how_to_route_it(
    application: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.django_urls import Args
    from ws4py_integrations import WebSocketMiddleware
    from ws4py_integrations.wsgiref import make_server

    server = make_server("127.0.0.1", 0, WebSocketMiddleware(application, {"/not-django/": Args}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"ws://127.0.0.1:{server.server_address[1]}/not-django/"
        with caplog.at_level(logging.ERROR), connect(url) as ws, pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1011
        assert "Args has no Django request: route it with ws4py_integrations.django.websocket()" in caplog.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_runserver_command_is_djangos_with_our_server(application: Any) -> None:
    from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesCommand
    from django.core.management import get_commands, load_command_class

    from ws4py_integrations.django.server import WSGIServer

    assert get_commands()["runserver"] == "ws4py_integrations.django"
    command = load_command_class("ws4py_integrations.django", "runserver")
    assert isinstance(command, StaticfilesCommand)  # static files and its options stay
    assert command.server_cls is WSGIServer


def test_a_check_warns_when_another_runserver_wins(application: Any) -> None:
    from django.core.management import get_commands
    from django.test.utils import override_settings

    from ws4py_integrations.django.apps import check_runserver

    assert check_runserver() == []
    from django.conf import settings

    apps_list = list(settings.INSTALLED_APPS)
    apps_list.remove("ws4py_integrations.django")
    staticfiles = apps_list.index("django.contrib.staticfiles")
    apps_list.insert(staticfiles + 1, "ws4py_integrations.django")
    get_commands.cache_clear()
    try:
        with override_settings(INSTALLED_APPS=apps_list):
            get_commands.cache_clear()
            warnings = check_runserver()
    finally:
        get_commands.cache_clear()
    assert [w.id for w in warnings] == ["ws4py_integrations.W001"]
    assert "django.contrib.staticfiles" in warnings[0].msg


@pytest.fixture
def runserver_server(application: Any) -> Iterator[Any]:
    """Our runserver server class as Django's ``run()`` builds it (threading), serving a raw WSGI app:
    ``/`` plain, ``/raise`` raises, ``/ws`` upgrades to an echo, ``/ws-raise`` upgrades and then raises."""
    import socketserver

    from django.core.servers import basehttp

    from ws4py_integrations import Message, ThreadedManager, WebSocket, WebSocketWSGIApplication
    from ws4py_integrations.django.server import WSGIServer

    class Echo(WebSocket):
        def received_message(self, message: Message) -> None:
            self.send(message.data)

    upgrade = WebSocketWSGIApplication(Echo)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        if path == "/raise":
            raise RuntimeError("before any upgrade")
        if path.startswith("/ws"):
            response = upgrade(environ, start_response)
            if path == "/ws-raise":
                raise RuntimeError("after the upgrade")
            return response
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"plain"]

    server_cls = type("WSGIServer", (socketserver.ThreadingMixIn, WSGIServer), {"daemon_threads": True})
    server = server_cls(("127.0.0.1", 0), basehttp.WSGIRequestHandler, manager=ThreadedManager(name="test-runserver"))
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_runserver_server_survives_a_view_that_raises_after_the_upgrade(
    runserver_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The WebSocket stays up; the traceback is logged; nothing is written into the WebSocket."""
    port = runserver_server.server_address[1]
    with caplog.at_level(logging.ERROR), connect(f"ws://127.0.0.1:{port}/ws-raise", open_timeout=10) as ws:
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"
        # Logged by the request thread, which may finish after the echo.
        deadline = time.monotonic() + 10
        while "after the upgrade" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "after the upgrade" in caplog.text


def test_the_runserver_server_upgrades_a_kept_alive_connection(runserver_server: Any) -> None:
    """A browser may send the handshake on a connection that served plain requests before."""
    port = runserver_server.server_address[1]
    client = RawClient("127.0.0.1", port)
    try:
        client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = client.read_response_head()
        assert (status, headers.get("connection")) == (200, None)
        while len(body) < int(headers["content-length"]):
            body += client.sock.recv(4096)
        assert body == b"plain"
        frame = Frame(Opcode.TEXT, b"eager").serialize(mask=True)
        assert client.upgrade("/ws", extra=frame) == 101
        echoed = client.recv_frame()
        assert echoed is not None and echoed.data == b"eager"
    finally:
        client.close()


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.x\r\n\r\n", 400),
        (b"GET /raise HTTP/1.1\r\n\r\n", 500),
    ],
    ids=["414", "400", "500"],
)
def test_the_runserver_server_answers_bad_requests_as_django_does(
    runserver_server: Any, request_head: bytes, status: int
) -> None:
    client = RawClient("127.0.0.1", runserver_server.server_address[1])
    try:
        client.send(request_head)
        # A request line that does not parse gets an HTTP/0.9-style answer: the error page alone.
        expected = (f" {status} ".encode(), f"Error code: {status}".encode())
        data = b""
        while not any(part in data for part in expected):
            chunk = client.sock.recv(65536)
            assert chunk, data
            data += chunk
    finally:
        client.close()
    # And the next client is served.
    with connect(f"ws://127.0.0.1:{runserver_server.server_address[1]}/ws", open_timeout=10) as ws:
        ws.send("next")
        assert ws.recv(timeout=10) == "next"


def test_the_runserver_server_closes_websockets_with_1001(runserver_server: Any) -> None:
    port = runserver_server.server_address[1]
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
        runserver_server.shutdown()
        runserver_server.server_close()  # the closing handshake is awaited
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1001
    runserver_server.close_websockets()  # again: nothing left, nothing fails
    assert not runserver_server.manager.accepting


def test_the_runserver_server_keeps_a_request_handler_of_its_own(application: Any) -> None:
    from django.core.servers import basehttp

    from ws4py_integrations import ThreadedManager
    from ws4py_integrations.django.server import WSGIRequestHandler, WSGIServer

    class Custom(basehttp.WSGIRequestHandler):  # type: ignore[misc]
        pass

    for given, used in ((basehttp.WSGIRequestHandler, WSGIRequestHandler), (Custom, Custom)):
        server = WSGIServer(("127.0.0.1", 0), given, manager=ThreadedManager(name="unused"))
        server.server_close()
        assert server.RequestHandlerClass is used


def test_the_runserver_command_without_staticfiles_is_djangos(application: Any) -> None:
    import importlib

    from django.core.management.commands.runserver import Command as CoreCommand
    from django.test.utils import override_settings

    from ws4py_integrations.django.management.commands import runserver

    try:
        with override_settings(INSTALLED_APPS=["ws4py_integrations.django", "django.contrib.contenttypes"]):
            module = importlib.reload(runserver)
            assert module.Command.__mro__[1] is CoreCommand
    finally:
        importlib.reload(runserver)


def test_a_missing_django_names_the_extra() -> None:
    code = "import sys\nsys.modules['django'] = None\ntry:\n    import ws4py_integrations.django\nexcept ImportError as exc:\n    print(exc)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "pip install 'ws4py_integrations[django]'" in result.stdout, result.stderr
