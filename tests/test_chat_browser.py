"""The chat example end to end: ``python -m examples.chat`` driven by headless Chromium.

Runs once per server whose ``examples/_servers/<name>.py`` imports. Needs
Debian's ``chromium`` and Playwright for Python (never ``playwright install``);
without them the tests skip, except under CI (``CI=true``), where they fail.
On failure each page's screenshot and the server's output go to
``.artifacts/chat-browser/``.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from examples._servers import SERVERS
from tests.support import in_ci
from tests.support.process import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / ".artifacts" / "chat-browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Milliseconds, for Playwright: one UI step, and a reconnection (backoff tops at 8 s).
STEP_MS = 10_000
RECONNECT_MS = 30_000
START_TIMEOUT = 30.0
URL_LINE = r"open (?P<url>https?://\S+) in a browser"
STOP_TIMEOUT = 20.0


def _server_runs(name: str) -> bool:
    """Whether the example runner for ``name`` imports (checked in a child: a
    runner may patch the process it is imported in, as gevent's does)."""
    if not (ROOT / "examples" / "_servers" / f"{name}.py").exists():
        return False
    probe = subprocess.run(
        [sys.executable, "-c", f"import examples._servers.{name}"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0


BROWSER_SERVERS = [name for name in SERVERS if _server_runs(name)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ChatProcess:
    """``python -m examples.chat`` as a child process, stopped by its PID."""

    def __init__(self, server: str, log: Path) -> None:
        self.server = server
        self.log = log
        self.port = 0
        self.url = ""
        self.proc: ServerProcess | None = None

    def start(self) -> None:
        """Start on ``self.port`` (0 the first time) and learn the URL from the printed line."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._start_once(deadline)
                return
            except OSError:
                # Restarting on the same port: the old socket may linger a moment.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def _start_once(self, deadline: float) -> None:
        with self.log.open("a") as log:
            log.write(f"--- starting on port {self.port}\n")
        command = [sys.executable, "-m", "examples.chat", "--server", self.server, "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "INFO"]
        process = ServerProcess(command, ready=URL_LINE, log_path=self.log, name=f"chat on {self.server}")
        try:
            process.start(max(0.0, deadline - time.monotonic()))
        except RuntimeError as exc:
            raise OSError(str(exc)) from exc  # exited at start: retried (the old port may linger)
        ready = process.ready_match
        assert ready is not None
        self.proc, self.url = process, ready["url"]
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])

    def stop(self) -> None:
        """SIGTERM (a graceful stop: WebSockets get 1001), SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.process is None or proc.process.poll() is not None:
            return
        proc.signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.stop(STOP_TIMEOUT)
            raise AssertionError(f"the chat on {self.server} ignored SIGTERM for {STOP_TIMEOUT} s") from None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    problem = None
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "Playwright for Python is missing (pip install playwright)"
    if problem is not None:
        if in_ci():
            pytest.fail(f"browser tests cannot run: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import expect

    # expect() waits 5 s by default: too tight on a loaded two-core CI machine.
    expect.set_options(timeout=STEP_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(params=[pytest.param(name, id=name) for name in BROWSER_SERVERS])
def chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChatProcess]:
    process = ChatProcess(request.param, tmp_path / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


class Pages:
    """Browser pages (one context each: separate storage) that report their problems."""

    def __init__(self, browser: Browser, stack: ExitStack) -> None:
        self.browser = browser
        self.stack = stack
        self.pages: list[Page] = []
        self.problems: list[str] = []

    def open(self, url: str) -> Page:
        context = self.browser.new_context(viewport={"width": 1100, "height": 640})
        self.stack.callback(context.close)
        context.set_default_timeout(STEP_MS)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

        def console(message: Any) -> None:
            # Refused connections while the server restarts are expected; a
            # Content-Security-Policy violation is not.
            if message.type == "error" and "Content Security Policy" in message.text:
                self.problems.append(f"console: {message.text}")

        page.on("console", console)
        page.goto(url)
        self.pages.append(page)
        return page


@contextmanager
def browser_session(request: pytest.FixtureRequest, browser: Browser, chat: ChatProcess) -> Iterator[Pages]:
    """Pages for one test; on failure their screenshots and the server log are saved."""
    with ExitStack() as stack:
        pages = Pages(browser, stack)
        try:
            yield pages
            assert not pages.problems, pages.problems
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
            for n, page in enumerate(pages.pages):
                try:
                    page.screenshot(path=str(ARTIFACTS / f"{stem}-page{n}.png"), timeout=STEP_MS)
                except Exception as exc:  # the page may be what broke
                    (ARTIFACTS / f"{stem}-page{n}.txt").write_text(f"no screenshot: {exc}\n")
            if chat.log.exists():
                shutil.copyfile(chat.log, ARTIFACTS / f"{stem}-server.log")
            raise


def log_in(page: Page, nick: str) -> None:
    """Pick a nickname; the page joins #lobby."""
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    page.fill("#nick", nick)
    page.click("#login-button")
    expect(page.locator("#room-title")).to_have_text("#lobby")
    expect(page.locator("#member-list li", has_text=nick)).to_have_count(1)


def join(page: Page, room: str) -> None:
    from playwright.sync_api import expect

    page.fill("#room-input", room)
    page.press("#room-input", "Enter")
    expect(page.locator("#room-title")).to_have_text(f"#{room}")


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_two_users_chat_in_a_room(request: pytest.FixtureRequest, browser: Browser, chat: ChatProcess) -> None:
    from playwright.sync_api import expect

    with browser_session(request, browser, chat) as pages:
        alice = pages.open(chat.url)
        log_in(alice, "alice")
        say(alice, "first, before bob")  # kept in #lobby's history
        expect(alice.locator("#log .msg .text")).to_have_text(["first, before bob"])

        bob = pages.open(chat.url)
        log_in(bob, "bob")
        expect(bob.locator("#log .msg .text")).to_have_text(["first, before bob"])

        join(alice, "garden")
        join(bob, "garden")
        expect(alice.locator("#member-list li")).to_have_text(["alice", "bob"])
        expect(bob.locator("#member-list li")).to_have_text(["alice", "bob"])
        expect(alice.locator("#log .notice .text").last).to_have_text("bob joined.")

        hostile = 'hi bob <img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
        say(alice, hostile)
        expect(bob.locator("#log .msg .text").last).to_have_text(hostile)
        expect(bob.locator("#log .msg .nick").last).to_have_text("alice")
        # Shown as text: no element was made from it.
        assert bob.locator("#log img, #log script").count() == 0
        assert bob.title() != "pwned"

        say(bob, "hello alice")
        expect(alice.locator("#log .msg .text").last).to_have_text("hello alice")
        expect(alice.locator("#log .msg").last).not_to_have_class(re.compile(r"\bown\b"))
        expect(bob.locator("#log .msg").last).to_have_class(re.compile(r"\bown\b"))

        # #lobby got nothing of this: its unread badge stays away.
        expect(alice.locator("#joined .tab", has_text="#lobby").locator(".badge")).to_have_count(0)

        bob.click("#leave-button")
        expect(bob.locator("#room-title")).to_have_text("#lobby")
        expect(alice.locator("#log .notice .text").last).to_have_text("bob left.")
        expect(alice.locator("#member-list li")).to_have_text(["alice"])
        expect(alice.locator("#status")).to_have_attribute("data-state", "connected")


def test_a_bad_nickname_is_refused_on_the_page(
    request: pytest.FixtureRequest, browser: Browser, chat: ChatProcess
) -> None:
    from playwright.sync_api import expect

    with browser_session(request, browser, chat) as pages:
        page = pages.open(chat.url)
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        page.fill("#nick", "no spaces please")
        page.click("#login-button")
        expect(page.locator("#login-error")).to_contain_text("nickname")
        expect(page.locator("#chat")).to_be_hidden()
        log_in(page, "fine_name")


def test_pages_reconnect_after_the_server_restarts(
    request: pytest.FixtureRequest, browser: Browser, chat: ChatProcess
) -> None:
    from playwright.sync_api import expect

    # A server that bound port 0 may not set SO_REUSEADDR (cheroot does not),
    # and then its TIME_WAIT connections hold the port for a minute after it
    # stops: start on an explicit free port so the restart can take it again.
    chat.stop()
    chat.port = free_port()
    chat.start()
    with browser_session(request, browser, chat) as pages:
        alice, bob = pages.open(chat.url), pages.open(chat.url)
        log_in(alice, "alice")
        log_in(bob, "bob")
        join(alice, "den")
        join(bob, "den")
        say(alice, "before the restart")
        expect(bob.locator("#log .msg .text").last).to_have_text("before the restart")

        chat.stop()
        for page in (alice, bob):
            expect(page.locator("#status")).to_have_attribute("data-state", "disconnected", timeout=RECONNECT_MS)
            expect(page.locator("#status")).to_contain_text("reconnecting in")
        chat.start()  # the same port

        for page in (alice, bob):
            expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=RECONNECT_MS)
            # The page rejoined its rooms under the same name.
            expect(page.locator("#member-list li")).to_have_text(["alice", "bob"], timeout=RECONNECT_MS)
            expect(page.locator("#log .notice .text", has_text="Reconnected.")).to_have_count(1)
        expect(alice.locator("#room-title")).to_have_text("#den")

        say(bob, "after the restart")
        expect(alice.locator("#log .msg .text").last).to_have_text("after the restart")
        # What was shown before the restart is still there, once.
        expect(alice.locator("#log .msg .text", has_text="before the restart")).to_have_count(1)
