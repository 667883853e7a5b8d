"""A missing extra says which one to install, the same way for every adapter.

Each case runs in a fresh interpreter where the optional dependency cannot be
imported (``sys.modules[name] = None`` makes ``import name`` fail, as on a
machine without it).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.process import ROOT

CASES = [
    # (what the user imports or touches, the module that is missing, the extra)
    ("import ws4py_integrations.gevent", "gevent", "gevent"),
    ("from ws4py_integrations.manager import GeventManager", "gevent", "gevent"),
    ("import ws4py_integrations.cherrypy", "cheroot", "cherrypy"),
    ("from ws4py_integrations.cherrypy import WebSocketPlugin", "cherrypy", "cherrypy"),
    ("from ws4py_integrations.cherrypy import WebSocketTool", "cherrypy", "cherrypy"),
    ("from ws4py_integrations.gevent import GunicornWorker", "gunicorn", "gunicorn"),
    ("from ws4py_integrations.gunicorn import ThreadWorker", "gunicorn", "gunicorn"),
    ("from ws4py_integrations.redis_broker import RedisBroker; RedisBroker()", "redis", "redis"),
]


@pytest.mark.parametrize(("statement", "missing", "extra"), CASES, ids=[case[0] for case in CASES])
def test_a_missing_extra_names_the_extra_to_install(statement: str, missing: str, extra: str) -> None:
    code = (
        f"import sys\nsys.modules[{missing!r}] = None\n"
        f"try:\n    {statement}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "    print('name:', exc.name)\n"
        "else:\n    print('no error')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    message, name = result.stdout.strip().splitlines()
    assert f"pip install 'ws4py_integrations[{extra}]'" in message
    assert missing in message
    assert name == f"name: {missing}"


@pytest.mark.parametrize(
    "module", ["ws4py_integrations.manager", "ws4py_integrations.cherrypy", "ws4py_integrations.gevent"]
)
def test_lazy_modules_refuse_unknown_names(module: str) -> None:
    imported = __import__(module, fromlist=["x"])
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        imported.Nope  # noqa: B018
