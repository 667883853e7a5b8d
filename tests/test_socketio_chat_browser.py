"""The Socket.IO chat example in headless Chromium with the official socket.io-client:
forced long-polling once and upgrading to WebSocket once, on every server.

Needs what tests/test_chat_browser.py needs, plus socket.io-client from
``bash scripts/setup-node.sh``; without them the tests skip, except under CI.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from examples.chat_socketio import CLIENT
from tests.support import in_ci
from tests.support.process import ServerProcess
from tests.test_chat_browser import BROWSER_SERVERS, browser, browser_session

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = ["browser"]  # the fixture, shared with the plain chat's browser test

URL_LINE = r"open (?P<url>https?://\S+) in a browser"


class ChatSocketIO(ServerProcess):
    """``python -m examples.chat_socketio`` (``log`` and ``url`` as browser_session expects)."""

    def __init__(self, server: str, log: Path) -> None:
        command = [sys.executable, "-m", "examples.chat_socketio", "--server", server, "--port", "0"]
        super().__init__(command, ready=URL_LINE, log_path=log, name=f"chat_socketio on {server}")
        self.log = log

    @property
    def page_url(self) -> str:
        assert self.ready_match is not None
        return self.ready_match["url"]


@pytest.fixture(params=BROWSER_SERVERS)
def chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChatSocketIO]:
    if not CLIENT.exists():
        message = "socket.io-client is not installed (bash scripts/setup-node.sh)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    process = ChatSocketIO(request.param, tmp_path / "server.log")
    with process:
        yield process


def log_in(page: Page, nick: str, transport: str) -> None:
    from playwright.sync_api import expect

    page.fill("#nick", nick)
    page.click("#login-button")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#room-title")).to_have_text("#lobby")
    expect(page.locator("#transport")).to_have_text(transport)


@pytest.mark.parametrize("mode", ["polling", "upgrade"])
def test_two_users_chat(request: pytest.FixtureRequest, browser: Browser, chat: ChatSocketIO, mode: str) -> None:
    from playwright.sync_api import expect

    query = "?transport=polling" if mode == "polling" else ""
    transport = "polling" if mode == "polling" else "websocket"
    with browser_session(request, browser, chat) as pages:
        alice = pages.open(chat.page_url + query)
        log_in(alice, "alice", transport)
        bob = pages.open(chat.page_url + query)
        log_in(bob, "bob", transport)
        expect(alice.locator("#member-list li")).to_have_text(["alice", "bob"])
        expect(alice.locator("#log .notice .text").last).to_have_text("bob joined.")

        hostile = "hi <img src=x onerror=\"document.title='pwned'\">"
        alice.fill("#text", hostile)
        alice.press("#text", "Enter")
        expect(bob.locator("#log .msg .text").last).to_have_text(hostile)
        expect(alice.locator("#log .msg.delivered .text")).to_have_text([hostile])  # the ack came back

        bob.fill("#room-input", "garden")
        bob.press("#room-input", "Enter")
        expect(bob.locator("#room-title")).to_have_text("#garden")
        expect(bob.locator("#member-list li")).to_have_text(["bob"])
        expect(alice.locator("#member-list li")).to_have_text(["alice"])
        expect(alice.locator("#log .notice .text").last).to_have_text("bob left.")
        assert bob.title() != "pwned"


@pytest.mark.parametrize("chat", BROWSER_SERVERS[:1], indirect=True)  # page logic: one server is enough
def test_refused_nickname(request: pytest.FixtureRequest, browser: Browser, chat: ChatSocketIO) -> None:
    from playwright.sync_api import expect

    with browser_session(request, browser, chat) as pages:
        page = pages.open(chat.page_url)
        page.fill("#nick", "   ")
        page.evaluate("document.getElementById('nick').required = false")
        page.click("#login-button")
        expect(page.locator("#login-error")).to_have_text("invalid nickname")
