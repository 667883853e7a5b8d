"""Tools and benchmarks: ``tools.bench``, ``tools.conformance``, ``tools.hardening``, ``tools.fanout``.

They import the library, ``examples`` and ``tests.support`` (the shared test
app and runners), never test modules; see README.md, Layout.
"""
