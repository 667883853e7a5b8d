"""The room-commands app for gunicorn: ``gunicorn -c scaleout/gunicorn_conf.py scaleout.gunicorn_app:app``.

The application leaves the manager to the server: each worker's own
``GeventManager`` gets a Redis broker in ``post_worker_init`` (see
``scaleout/gunicorn_conf.py`` and docs/scaling.rst).
"""

from __future__ import annotations

from scaleout.app import make_app

app = make_app()
