#!/usr/bin/env bash
# The engine.io-protocol test suite against our server (see protocol_suite.sh):
#   tools/conformance/engineio.sh PATH_TO_ENGINE_IO_PROTOCOL_CHECKOUT [SERVER...]
exec bash "$(dirname "$0")/protocol_suite.sh" engineio "$@"
