"""An idle connection's protocol object stays small.

CPython shares the keys of instance dicts between instances of a class
while they have fewer than 30 attributes; past that, every instance holds
a dict of its own (about 1.5 KiB instead of 0.3 KiB on 3.11). websockets'
protocol already sets 29 of them with ours, so one more attribute in
``MessageProtocol.__init__`` costs every connection more than a kilobyte
(it did: idle RSS per connection went from 3.0 to 4.9 KiB on wsgiref).
"""

from __future__ import annotations

import sys

from ws4py_integrations.protocol import MessageProtocol

from .helpers import OP_PING, OP_TEXT, accept, client_frame


def _shares_keys(obj: object) -> bool:
    # A dict with shared keys is smaller than its own copy, which never shares.
    attrs = vars(obj)
    return sys.getsizeof(attrs) < sys.getsizeof(dict(attrs))


def test_a_new_protocol_shares_its_dict_keys() -> None:
    protocol = MessageProtocol.accepted(accept(), 2**20)
    assert _shares_keys(protocol), f"{len(vars(protocol))} attributes: {sorted(vars(protocol))}"


def test_small_messages_and_pings_keep_it_shared() -> None:
    protocol = MessageProtocol.accepted(accept(), 2**20)
    protocol.receive_data(client_frame(OP_TEXT, b"hello") + client_frame(OP_PING, b"p"))
    # A fragment goes through websockets' parser, started lazily.
    protocol.receive_data(client_frame(OP_TEXT, b"frag", fin=False))
    assert protocol.inbox and protocol.data_to_send()
    assert _shares_keys(protocol), f"{len(vars(protocol))} attributes: {sorted(vars(protocol))}"
