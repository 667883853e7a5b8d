"""Competitor servers, each run with its own virtualenv's python (see ``tools/bench/venvs.py``).

Every script takes ``--host`` and ``--port`` (0 picks a free port), serves echo
at ``/ws`` and broadcast at ``/broadcast`` (the contract of ``examples.echo``),
prints a ready line with the URL and stops on SIGINT or SIGTERM.
"""
