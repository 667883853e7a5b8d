"""gunicorn settings for python-socketio's threading mode in ``tools/bench/socketio.py``.

The worker prints ``psio-gthread worker PID: http://HOST:PORT/`` once loaded, so the
bench measures the worker (CPU, RSS), not the arbiter. Nothing here imports the app.
"""

from __future__ import annotations

from typing import Any

#: gthread caps its connections at worker_connections (default 1,000).
worker_connections = 20000
#: gunicorn 27's control socket is one path per user (~/.gunicorn); concurrent runs would share it.
control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    for sock in worker.sockets:
        host, port = sock.getsockname()[:2]
        print(f"psio-gthread worker {worker.pid}: http://{host}:{port}/ (Socket.IO at /socket.io/)", flush=True)
