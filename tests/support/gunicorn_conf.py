"""gunicorn configuration: gevent workers whose managers share rooms through Redis.

``REDIS_URL`` (required) and ``WS4PY_PREFIX`` (default ``ws4py:``) come from
the environment.
"""

from __future__ import annotations

import os
from typing import Any

worker_class = "ws4py_integrations.gevent.GunicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
graceful_timeout = 10


def post_worker_init(worker: Any) -> None:
    from ws4py_integrations.redis_broker import RedisBroker

    prefix = os.environ.get("WS4PY_PREFIX", "ws4py:")
    worker.ws4py_manager.broker = RedisBroker.from_url(os.environ["REDIS_URL"], prefix=prefix)
