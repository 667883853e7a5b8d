"""The manager grows the descriptor table up front (Linux): checked in fresh
processes through ``FDSize`` in ``/proc/self/status``, the table's size."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the descriptor table is Linux's")


def run(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; its printed lines."""
    prelude = textwrap.dedent(
        """
        import os, resource
        def fdsize():
            with open("/proc/self/status") as status:
                return int(next(l for l in status if l.startswith("FDSize:")).split()[1])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.split()


def test_reserving_grows_the_table_to_the_count() -> None:
    before, reserved, after = run(
        """
        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        from ws4py_integrations.manager import reserve_descriptor_table
        print(fdsize(), reserve_descriptor_table(10000), fdsize())
        """
    )
    assert int(before) < 10000
    assert reserved == "10000"
    assert int(after) >= 10000


def test_the_soft_limit_caps_the_reservation() -> None:
    reserved, after = run(
        """
        resource.setrlimit(resource.RLIMIT_NOFILE, (2000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        from ws4py_integrations.manager import reserve_descriptor_table
        print(reserve_descriptor_table(65536), fdsize())
        """
    )
    assert reserved == "2000"
    assert 2000 <= int(after) < 65536


def test_a_manager_reserves_when_made_and_a_forked_child_again_when_it_starts() -> None:
    parent, child_before, child_after = run(
        """
        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        from ws4py_integrations import ThreadedManager
        manager = ThreadedManager()
        print(fdsize(), flush=True)
        pid = os.fork()
        if pid == 0:
            before = fdsize()
            manager.start()
            print(before, fdsize(), flush=True)
            manager.stop()
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    assert int(parent) >= 20000
    # A forked child's table fits the descriptors it has open, not the parent's table.
    assert int(child_before) < 20000
    assert int(child_after) >= 20000


def test_zero_turns_it_off() -> None:
    (size,) = run(
        """
        from ws4py_integrations import ThreadedManager
        ThreadedManager.descriptor_reserve = 0
        ThreadedManager().stop()
        print(fdsize())
        """
    )
    assert int(size) < 1024


def test_a_refused_reservation_is_no_error() -> None:
    (reserved,) = run(
        """
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        os.dup2(0, 63)  # the only descriptor at or above 63 that the limit allows
        from ws4py_integrations.manager import reserve_descriptor_table
        print(reserve_descriptor_table(64))
        """
    )
    assert reserved == "0"


def test_a_gevent_manager_leaves_a_single_threaded_process_alone_until_it_has_threads() -> None:
    alone, threaded = run(
        """
        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        import threading
        from ws4py_integrations.manager.gevent import GeventManager
        manager = GeventManager()
        print(fdsize(), flush=True)
        release = threading.Event()
        thread = threading.Thread(target=release.wait)
        thread.start()
        manager.start()  # a second OS thread now: the table is grown
        print(fdsize(), flush=True)
        release.set()
        thread.join()
        manager.stop()
        """
    )
    assert int(alone) < 1024
    assert int(threaded) >= 20000
