#!/usr/bin/env bash
# The socket.io-protocol test suite against our server (see protocol_suite.sh):
#   tools/conformance/socketio.sh PATH_TO_SOCKET_IO_PROTOCOL_CHECKOUT [SERVER...]
exec bash "$(dirname "$0")/protocol_suite.sh" socketio "$@"
