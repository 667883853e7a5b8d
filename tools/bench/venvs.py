"""The benchmark's own virtualenvs under ``tools/bench/.venvs`` (never project dependencies).

Each competitor gets a venv with pinned packages; the load client gets one
with picows and uvloop. Servers shared with the project (websockets, gevent,
CherryPy) are pinned to the versions installed in the project's ``.venv``, so
every competitor runs on the same server code as ours.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / "tools" / "bench" / ".venvs"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"

#: Defaults when the project venv does not have the package.
DEFAULT_PINS = {
    "websockets": "17.4",
    "gevent": "26.9.0",
    "CherryPy": "18.10.0",
    "cheroot": "11.1.2",
}

#: venv name -> requirements (a name alone is pinned from the project venv or DEFAULT_PINS).
SPECS: dict[str, list[str]] = {
    "client": ["picows==2.3.1", "uvloop==0.23.0"],
    "websockets": ["websockets"],
    "ws4py": ["ws4py==0.6.0", "CherryPy", "cheroot", "gevent"],
    "gevent-websocket": ["gevent-websocket==0.10.1", "gevent"],
    "tools": ["py-spy==0.4.3"],
    # tools/bench/gthread.py: Flask-Sock on gunicorn gthread and on werkzeug.
    "flask-sock": ["flask-sock==0.7.0", "flask", "werkzeug", "gunicorn"],
    # tools/bench/socketio.py: python-socketio on gevent + gevent-websocket, and threading on gunicorn gthread.
    "python-socketio": [
        "python-socketio==5.18.1",
        "python-engineio==4.15.1",
        "simple-websocket==1.1.0",
        "gevent-websocket==0.10.1",
        "gevent",
        "gunicorn",
    ],
}

INSTALL_TIMEOUT = 900.0


def project_versions(names: list[str]) -> dict[str, str]:
    """Versions of ``names`` installed in the project venv (those it has)."""
    python = PROJECT_PYTHON if PROJECT_PYTHON.exists() else Path(sys.executable)
    return installed_versions(python, names)


def installed_versions(python: Path, names: list[str]) -> dict[str, str]:
    """Versions of ``names`` installed for ``python`` (those it has)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    try:
        proc = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return {}
    result: dict[str, str] = json.loads(proc.stdout)
    return result


def requirements(name: str) -> list[str]:
    """The pinned requirement lines of venv ``name``."""
    specs = SPECS[name]
    unpinned = [s for s in specs if "==" not in s]
    pins = {**DEFAULT_PINS, **project_versions(unpinned)} if unpinned else {}
    return [s if "==" in s else f"{s}=={pins[s]}" for s in specs]


def python_of(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure(name: str, *, log: bool = True) -> Path:
    """Create or update venv ``name``; return its python. Reused when its pins did not change."""
    reqs = requirements(name)
    path = VENVS / name
    python = python_of(name)
    stamp = path / ".bench-requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(reqs):
        return python
    if log:
        print(f"bench: preparing venv {name}: {' '.join(reqs)}", flush=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(path)], check=True, timeout=INSTALL_TIMEOUT)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install into tools/bench/.venvs/{name} failed:\n{proc.stderr[-4000:]}")
    stamp.write_text("\n".join(reqs))
    return python
