"""The Django example as a server process, its database, and logging in as a browser does."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.process import ROOT, ServerProcess

READY = {
    "runserver": r"Starting development server at http://(?P<host>[\d.]+):(?P<port>\d+)/",
    "adapter": r"django_chat on \w+: http://(?P<host>[\d.]+):(?P<port>\d+)/",
}
USERS = {"alice": "alice-password", "bob": "bob-password"}


def manage(db: Path, *args: str) -> str:
    """``python -m examples.django_chat ARGS`` (a Django command) on the database ``db``."""
    result = subprocess.run(
        [sys.executable, "-m", "examples.django_chat", *args],
        cwd=ROOT,
        env=env(db),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def env(db: Path) -> dict[str, str]:
    """This process's environment, with the example's settings on the database ``db``."""
    return {**os.environ, "DJANGO_CHAT_DB": str(db), "DJANGO_SETTINGS_MODULE": "examples.django_chat.settings"}


def create_database(db: Path) -> None:
    """Migrate ``db`` and create the users of :data:`USERS`, through Django's own commands."""
    creates = "; ".join(
        f"User.objects.create_user({name!r}, password={password!r})" for name, password in USERS.items()
    )
    script = (
        "from django.core.management import call_command; call_command('migrate', verbosity=0); "
        f"from django.contrib.auth.models import User; {creates}"
    )
    manage(db, "shell", "-c", script)


def server(kind: str, db: Path, log_path: Path, *args: str) -> ServerProcess:
    """The example on ``kind`` (``runserver`` or one of our adapters), port 0."""
    command = [sys.executable, "-m", "examples.django_chat", "--server", kind, "--port", "0", *args]
    ready = READY["runserver" if kind == "runserver" else "adapter"]
    return ServerProcess(command, ready=ready, env=env(db), log_path=log_path, name=f"django_chat on {kind}")


def log_in(base: str, user: str, nickname: str | None = None) -> str:
    """Log ``user`` in through the login form (CSRF and all); the ``Cookie`` header to send."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def post(page: str, path: str, fields: dict[str, str]) -> None:
        # The form's CSRF token comes from the page that shows it, as in a browser.
        with opener.open(base + page, timeout=10) as response:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode())
        assert token, f"no CSRF token on {page}"
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token.group(1)}).encode()
        with opener.open(urllib.request.Request(base + path, data), timeout=10):
            pass

    post("/login/", "/login/", {"username": user, "password": USERS[user]})
    if nickname is not None:
        post("/", "/nickname/", {"nickname": nickname})
    cookies = {cookie.name: cookie.value for cookie in jar}
    assert "sessionid" in cookies, "login failed"
    return "; ".join(f"{name}={value}" for name, value in cookies.items())
