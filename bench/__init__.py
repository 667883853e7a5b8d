"""Benchmarks of ws4py_integrations against ws4py, gevent-websocket, websockets and raw TCP.

``python -m bench --help``; ``python -m bench --quick`` for a smoke run;
``python -m bench profile --help`` to profile our server's hot path.
"""
