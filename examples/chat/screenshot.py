"""Remake the documentation's screenshot: ``python -m examples.chat.screenshot [PATH]``.

Starts the chat on wsgiref (a free port), lets two headless-Chromium users
talk, and saves the first user's page (default: ``docs/_static/chat.png``).
Needs Debian's ``chromium`` and Playwright for Python.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from examples.chat import make_app
from ws4py_integrations.wsgiref import make_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
DEFAULT = Path(__file__).resolve().parents[2] / "docs" / "_static" / "chat.png"

CONVERSATION = [
    ("bob", "Morning! Did the tomatoes survive the frost?"),
    ("alice", "Most of them. The ones by the wall did best."),
    ("bob", "Nice. I'll bring the <cover> fabric tonight, just in case."),
    ("alice", "Perfect, thanks. Tea at 6?"),
    ("bob", "See you then."),
]


def log_in(page: Page, url: str, nick: str) -> None:
    page.goto(url)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.fill("#nick", nick)
    page.click("#login-button")
    expect(page.locator("#room-title")).to_have_text("#lobby")


def join(page: Page, room: str) -> None:
    page.fill("#room-input", room)
    page.press("#room-input", "Enter")
    expect(page.locator("#room-title")).to_have_text(f"#{room}")


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else DEFAULT
    server = make_server("127.0.0.1", 0, make_app())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            pages = {}
            for nick in ("alice", "bob", "carol"):
                context = browser.new_context(viewport={"width": 1100, "height": 560})
                context.set_default_timeout(10_000)
                pages[nick] = context.new_page()
                log_in(pages[nick], url, nick)
            join(pages["carol"], "books")
            for nick in ("alice", "bob"):
                join(pages[nick], "garden")
            for n, (nick, text) in enumerate(CONVERSATION, 1):
                pages[nick].fill("#text", text)
                pages[nick].press("#text", "Enter")
                expect(pages["alice"].locator("#log .msg")).to_have_count(n)
            pages["alice"].fill("#text", "Bring the blue one")
            target.parent.mkdir(parents=True, exist_ok=True)
            pages["alice"].screenshot(path=str(target))
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    print(f"saved {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
