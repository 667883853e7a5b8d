"""gunicorn settings for the benchmark (``gunicorn -c tools/bench/servers/gunicorn_conf.py``).

The benchmark measures the worker process (CPU time, RSS), not the arbiter,
so the worker prints its pid and address once it has loaded the application:
``gunicorn-gevent worker PID: http://HOST:PORT/``. Nothing here imports the
application or gevent (this file runs in the arbiter, before any fork).
"""

from __future__ import annotations

from typing import Any

#: Enough for the 5,000 idle connections (the default, 1,000, would queue the rest).
worker_connections = 20000
#: gunicorn 27's control socket is one path per user (~/.gunicorn); concurrent runs would share it.
control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    import sys

    library = getattr(sys.modules.get("ws4py_integrations"), "__file__", None)
    print(f"gunicorn-gevent worker {worker.pid} runs ws4py_integrations from {library}", flush=True)
    for sock in worker.sockets:
        host, port = sock.getsockname()[:2]
        print(
            f"gunicorn-gevent worker {worker.pid}: http://{host}:{port}/ (WebSocket at /ws and /broadcast)", flush=True
        )
