"""The Django example in headless Chromium, on ``manage.py runserver``: log in through the
form, the page's script (a static file) opens the WebSocket, two users talk.

Needs Debian's ``chromium`` and Playwright for Python (as tests/test_chat_browser.py):
without them the test skips, except under CI, where it fails.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import in_ci
from tests.support.django_chat import USERS, create_database, server
from tests.support.process import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
STEP_MS = 10_000

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    problem = None if executable else f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        problem = "Playwright for Python is missing (pip install playwright)"
    if problem is not None:
        if in_ci():
            pytest.fail(f"browser tests cannot run: {problem}")
        pytest.skip(problem)
    expect.set_options(timeout=STEP_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def runserver(tmp_path: Path) -> Iterator[ServerProcess]:
    db = tmp_path / "chat.sqlite3"
    create_database(db)
    with server("runserver", db, tmp_path / "server.log", "--noreload") as process:
        yield process


def logged_in_page(browser: Browser, process: ServerProcess, user: str) -> Page:
    page = browser.new_context().new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(f"http://{process.host}:{process.port}/")  # redirected to the login form
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", USERS[user])
    page.click("form button")
    page.wait_for_url(f"http://{process.host}:{process.port}/")
    return page


def test_two_users_chat_in_the_browser(browser: Browser, runserver: ServerProcess) -> None:
    from playwright.sync_api import expect

    alice = logged_in_page(browser, runserver, "alice")
    alice.fill("input[name=nickname]", "Alice")
    alice.click("text=set nickname")  # the session keeps it; the page reloads and reconnects
    alice.wait_for_url(f"http://{runserver.host}:{runserver.port}/")
    bob = logged_in_page(browser, runserver, "bob")
    for page in (alice, bob):
        page.wait_for_function("ws.readyState === WebSocket.OPEN")
    alice.fill("#m", "hello from Chromium")
    alice.click("#f button")
    for page in (alice, bob):
        expect(page.locator("#log")).to_contain_text("Alice: hello from Chromium")
    bob.fill("#m", "hi Alice")
    bob.click("#f button")
    expect(alice.locator("#log")).to_contain_text("bob: hi Alice")
