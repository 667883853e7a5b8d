"""python-socketio in threading mode for gunicorn's ``gthread`` worker (simple-websocket).

``gunicorn -k gthread -w 1 --threads N -c psio_gunicorn_conf.py psio_threading:app``,
as python-socketio documents for its threading mode (one thread per connection).
"""

from __future__ import annotations

from psio_app import make_app

app = make_app("threading")
