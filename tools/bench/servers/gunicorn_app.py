"""The echo example's WSGI application as a module-level ``app`` for gunicorn.

``examples.echo`` builds its application with ``make_app()`` and has no
module-level ``app``; gunicorn needs one (``gunicorn_app:app``). gunicorn
imports this module in the worker, after the worker monkey-patched the process.
"""

from __future__ import annotations

from examples.echo import make_app

app = make_app()
