"""Benchmarks of ws4py_integrations against ws4py, gevent-websocket, websockets and raw TCP.

``python -m tools.bench --help``; ``python -m tools.bench --quick`` for a smoke run;
``python -m tools.bench profile --help`` to profile our server's hot path.
"""
