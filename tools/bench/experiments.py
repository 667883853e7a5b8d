"""A/B experiments on our server's hot path, applied at start-up (``--variant NAME:tools.bench.experiments.FUNC()``).

They monkeypatch the library in the benchmarked process only, to measure a
suggested change before anybody edits ``ws4py_integrations``. Nothing here is
imported by the library or the tests.
"""

from __future__ import annotations

import threading


def recv_into() -> None:
    """``Connection.read`` receiving into a reused per-thread buffer instead of ``recv(_RECV_SIZE)``.

    ``recv(256 KiB)`` allocates (and glibc maps) 256 KiB per call before
    shrinking it; ``recv_into`` a reused buffer plus a copy of what arrived
    does not. Otherwise the same as the library's ``Connection.read``.
    """
    from ws4py_integrations import connection as c

    local = threading.local()

    def read(self: c.Connection) -> bool:
        view = getattr(local, "view", None)
        if view is None:
            view = local.view = memoryview(bytearray(c._RECV_SIZE))
        while True:
            with self.lock:
                if self.finalized:
                    return False
                try:
                    n = self.sock.recv_into(view)
                except c._WOULD_BLOCK:
                    return True
                except OSError as exc:
                    c.logger.debug("recv failed on %s: %s", self.peer_address, exc)
                    self.abort()
                    return False
                self.feed(bytes(view[:n]))
                more = bool(n) and self.is_tls and not self.finalized and self.sock.pending() > 0  # type: ignore[attr-defined]
            if not more:
                return not self.finalized

    c.Connection.read = read  # type: ignore[method-assign]
