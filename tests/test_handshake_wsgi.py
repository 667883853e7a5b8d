"""The upgrade middleware at the WSGI level, with WebTest (no server, no socket)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from webtest import TestApp

from ws4py_integrations import HandshakeRejected, WebSocket, WebSocketMiddleware, WebSocketOptions, negotiate
from ws4py_integrations.handshake import Accept, Reject

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
GOOD = {
    "Upgrade": "websocket",
    "Connection": "keep-alive, Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
}


HTTP11 = {"SERVER_PROTOCOL": "HTTP/1.1"}


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-From", "app")])
    return [b"plain " + environ["PATH_INFO"].encode()]


def authorize(environ: dict[str, Any]) -> bool:
    if environ.get("HTTP_AUTHORIZATION") == "Bearer good":
        return True
    raise HandshakeRejected(401, "token required", [("WWW-Authenticate", "Bearer")])


@pytest.fixture
def app() -> TestApp:
    return TestApp(WebSocketMiddleware(plain, {"/ws": WebSocket}, authorize=None), lint=False, extra_environ=HTTP11)


def headers(**changes: str | None) -> dict[str, str]:
    result = dict(GOOD)
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def test_plain_http_passes_through_untouched(app: TestApp) -> None:
    response = app.get("/page")
    assert response.status_int == 200
    assert response.headers["X-From"] == "app"
    assert response.text == "plain /page"
    # An upgrade request to a path without a route is the application's too.
    assert app.get("/other", headers=GOOD).text == "plain /other"


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({"Sec-WebSocket-Key": None}, 400, "missing Sec-WebSocket-Key"),
        ({"Sec-WebSocket-Key": "!!!"}, 400, "16 bytes"),
        ({"Sec-WebSocket-Key": "AAAA"}, 400, "16 bytes"),
        ({"Upgrade": None}, 400, "Upgrade: websocket"),
        ({"Upgrade": "h2c"}, 400, "Upgrade: websocket"),
        ({"Connection": "keep-alive"}, 400, "Connection: Upgrade"),
        ({"Sec-WebSocket-Version": None}, 400, "Sec-WebSocket-Version"),
        ({"Sec-WebSocket-Version": "12"}, 426, "speaks 13"),
        ({"Sec-WebSocket-Version": "8, 13"}, 426, "speaks 13"),
        ({"Origin": "http://evil.example"}, 403, "not allowed"),
        ({"Origin": "null"}, 403, "not allowed"),
    ],
)
def test_rejections_have_status_and_one_line_reason(
    app: TestApp, changes: dict[str, str | None], status: int, reason: str
) -> None:
    response = app.get("/ws", headers=headers(**changes), expect_errors=True)
    assert response.status_int == status
    assert reason in response.text
    assert response.text.count("\n") == 1
    if status == 426:
        assert response.headers["Sec-WebSocket-Version"] == "13"


def test_post_and_http_10_are_400(app: TestApp) -> None:
    response = app.post("/ws", params=b"x", headers=GOOD, expect_errors=True)
    assert response.status_int == 400 and "GET" in response.text
    response = app.get("/ws", headers=GOOD, extra_environ={"SERVER_PROTOCOL": "HTTP/1.0"}, expect_errors=True)
    assert response.status_int == 400 and "HTTP/1.1" in response.text


def test_valid_handshake_without_an_adapter_is_501_not_500(app: TestApp) -> None:
    response = app.get("/ws", headers=GOOD, expect_errors=True)
    assert response.status_int == 501
    assert "cannot hand over" in response.text


def test_raw_socket_keys_are_recognized_but_not_trusted(app: TestApp) -> None:
    import socket

    with socket.socket() as raw:
        response = app.get("/ws", headers=GOOD, extra_environ={"gunicorn.socket": raw}, expect_errors=True)
    assert response.status_int == 501
    # The raw socket alone is not trusted: the 501 names the worker that can hand over.
    assert "-k ws4py_integrations.gunicorn.ThreadWorker" in response.text


def test_authorize_hook() -> None:
    app = TestApp(WebSocketMiddleware(plain, {"/ws": WebSocket}, authorize=authorize), lint=False, extra_environ=HTTP11)
    response = app.get("/ws", headers=GOOD, expect_errors=True)
    assert response.status_int == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # Accepted by the hook: the request reaches the upgrade (501: no adapter here).
    response = app.get("/ws", headers={**GOOD, "Authorization": "Bearer good"}, expect_errors=True)
    assert response.status_int == 501


def test_authorize_returning_false_is_403_and_a_crashing_hook_fails_closed() -> None:
    refuse = TestApp(
        WebSocketMiddleware(plain, {"/ws": WebSocket}, authorize=lambda environ: False),
        lint=False,
        extra_environ=HTTP11,
    )
    assert refuse.get("/ws", headers=GOOD, expect_errors=True).status_int == 403

    def crash(environ: dict[str, Any]) -> bool:
        raise RuntimeError("bug in the application's hook")

    crashing = TestApp(
        WebSocketMiddleware(plain, {"/ws": WebSocket}, authorize=crash), lint=False, extra_environ=HTTP11
    )
    assert crashing.get("/ws", headers=GOOD, expect_errors=True).status_int == 403


def test_unknown_option_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="max_mesage_size"):
        WebSocketMiddleware(plain, {"/ws": WebSocket}, max_mesage_size=10)
    with pytest.raises(ValueError, match="max_message_size"):
        WebSocketOptions.from_kwargs(max_message_size=0)


# -- negotiation, directly ------------------------------------------------------------


def environ(**changes: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/ws",
        "HTTP_HOST": "localhost:8080",
        "wsgi.url_scheme": "http",
    }
    for name, value in headers(**changes).items():
        result["HTTP_" + name.upper().replace("-", "_")] = value
    return result


def accept(env: dict[str, Any], **options: Any) -> Accept:
    result = negotiate(env, WebSocketOptions.from_kwargs(**options))
    assert isinstance(result, Accept), result
    return result


def test_accept_key_and_response_head() -> None:
    result = accept(environ())
    # The RFC 6455 section 1.3 example key and its accept value.
    assert ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in result.headers
    head = result.response.decode()
    assert head.startswith("HTTP/1.1 101 Switching Protocols\r\n") and head.endswith("\r\n\r\n")
    assert "Content-Length" not in head and "Transfer-Encoding" not in head


@pytest.mark.parametrize(
    ("origin", "policy", "allowed"),
    [
        (None, None, True),
        ("http://localhost:8080", None, True),
        ("http://LOCALHOST:8080", None, True),
        ("http://localhost", None, False),
        ("http://localhost:8080.evil.com", None, False),
        ("https://other.example", "*", True),
        ("https://app.example", ["https://app.example"], True),
        ("https://app.example.evil", ["https://app.example"], False),
        ("https://a.example", re.compile(r"https://[a-z]+\.example"), True),
        ("https://a.b.example", [re.compile(r"https://[a-z]+\.example")], False),
        ("https://x", lambda origin, env: origin == "https://x", True),
        (None, ["https://app.example"], False),
    ],
)
def test_origin_policies(origin: str | None, policy: Any, allowed: bool) -> None:
    result = negotiate(environ(Origin=origin), WebSocketOptions.from_kwargs(origins=policy))
    assert isinstance(result, Accept) == allowed
    if not allowed:
        assert isinstance(result, Reject) and result.status == 403


def test_same_origin_uses_default_ports() -> None:
    env = environ(Origin="https://secure.example")
    env.update(HTTP_HOST="secure.example", **{"wsgi.url_scheme": "https"})
    assert isinstance(negotiate(env, WebSocketOptions(allowed_hosts=["secure.example"])), Accept)


def test_subprotocol_preference_list_and_callable() -> None:
    env = environ(**{"Sec-WebSocket-Protocol": "b, a"})
    assert accept(env, protocols=["a", "b"]).subprotocol == "a"
    assert accept(env, protocols=["c"]).subprotocol is None
    assert accept(env).subprotocol is None
    assert accept(env, protocols=lambda offered, env: offered[0]).subprotocol == "b"
    chosen = accept(env, protocols=["a"])
    assert ("Sec-WebSocket-Protocol", "a") in chosen.headers


def test_permessage_deflate_on_by_default_and_configurable() -> None:
    env = environ(**{"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
    result = accept(env)
    assert [extension.name for extension in result.extensions] == ["permessage-deflate"]
    assert any(name == "Sec-WebSocket-Extensions" for name, _ in result.headers)
    assert accept(env, compression=False).extensions == []
    assert accept(environ()).extensions == []


def test_malformed_extension_header_is_400() -> None:
    result = negotiate(environ(**{"Sec-WebSocket-Extensions": "permessage-deflate; ="}), WebSocketOptions())
    assert isinstance(result, Reject) and result.status == 400


def test_host_checks_give_the_same_answer_cached_and_uncached() -> None:
    # Values up to a host name's length are cached (every handshake repeats
    # them); longer ones are parsed each time: both answer the same, twice over.
    label = "a" * 63
    long_name = ".".join([label] * 5) + ".localhost"  # over the cached length
    for host, allowed in [
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("app.localhost:8080", True),
        ("example.com", False),
        (long_name + ":8080", True),
        ("1" * 300, False),
    ]:
        for _ in range(2):
            env = environ()
            env["HTTP_HOST"] = host
            result = negotiate(env, WebSocketOptions())
            assert isinstance(result, Accept) == allowed, (host, result)
