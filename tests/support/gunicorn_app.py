"""The test app for gunicorn: ``gunicorn -k ws4py_integrations.gevent.GunicornWorker tests.support.gunicorn_app:app``.

The application leaves the manager to the server: with
``-c tests/support/gunicorn_conf.py`` each worker's own ``GeventManager`` gets
a Redis broker in ``post_worker_init`` (see docs/scaling.rst).
"""

from __future__ import annotations

from tests.support.app import make_app

app = make_app()
