"""A minimal Django project with a WebSocket chat in its ``urls.py``.

``python -m examples.django_chat`` creates the SQLite database, then serves
on Django's ``runserver`` (or ``--server wsgiref|cherrypy|gevent``). Log in
at ``/login/`` (``python -m examples.django_chat createsuperuser`` makes a
user), open ``/``: the chat at ``/ws/chat/<room>/`` knows who you are from
your session, and keeps each room's history in the database.
"""
