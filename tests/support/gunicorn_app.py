"""The test app for gunicorn: ``gunicorn -k ws4py_integrations.gevent.GunicornWorker tests.support.gunicorn_app:app``.

The application leaves the manager to the server: with
``-c tests/support/gunicorn_conf.py`` each worker's own ``GeventManager`` gets
a Redis broker in ``post_worker_init`` (see docs/scaling.rst). An Engine.IO
echo endpoint answers at ``/engine.io/`` (tests/test_engineio_keepalive.py).
"""

from __future__ import annotations

from tests.support.app import make_app
from ws4py_integrations.engineio import EchoHandler, EngineIOServer

app = EngineIOServer(EchoHandler(), make_app(), path="/engine.io/")
