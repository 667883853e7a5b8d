"""The behaviour suite again, on blocking function handlers (:mod:`ws4py_integrations.blocking`).

Every test of :mod:`tests.test_behaviour` runs here against
:mod:`tests.support.blocking_app`: the same endpoints and commands, each a
function looping on ``receive()``. Limits, keepalive, ordering and close
codes must not depend on the style. Over wss it is marked slow.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SERVERS
from tests.support import blocking_app
from tests.support.servers import RunningServer, TLSFiles, serve
from tests.test_behaviour import *  # noqa: F403  (the suite, collected again here)


def _params() -> list[pytest.param]:  # type: ignore[valid-type]
    # The handler style never meets TLS: over wss the suite is marked slow (pytest -m slow runs it).
    return [
        pytest.param(
            (name, transport), id=f"{name}-{transport}", marks=[pytest.mark.slow] if transport == "wss" else []
        )
        for name in SERVERS
        for transport in ("ws", "wss")
    ]


@pytest.fixture(scope="module", params=_params())
def server(request: pytest.FixtureRequest, tls_files: TLSFiles) -> Iterator[RunningServer]:
    """The blocking-style app on one server adapter, over ws or wss."""
    name, transport = request.param
    with serve(name, blocking_app.make_app(), tls_files if transport == "wss" else None) as running:
        running.extra["client_ssl"] = tls_files.client_context if running.tls else None
        yield running
