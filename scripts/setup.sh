#!/usr/bin/env bash
# Set up everything the project needs, idempotently:
#   scripts/setup.sh          the virtualenv (.venv) with the package and all extras
#   scripts/setup.sh --test   also what the test suite needs from Debian
#                             (chromium for the browser tests, redis-server for pub/sub,
#                             nginx for the reverse-proxy tests; no service is started)
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
[ "${1:-}" = "--test" ] && want_system=1

PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "setup: Python >= 3.11 is required (set PYTHON=...)" >&2; exit 2; }
import sys
sys.exit(sys.version_info < (3, 11))
PY

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  echo "setup: installing the package and its extras into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[cherrypy,gevent,gunicorn,redis,django,test,docs]"
  touch "$stamp"
fi

if [ "$want_system" = 1 ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  # Debian puts nginx in /usr/sbin, which is not on every user's PATH.
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${missing[*]} from Debian"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The tests start their own nginx and redis-server on 127.0.0.1 when they
    # need one: the system services that apt may have just started are not used.
    if [[ " ${missing[*]} " == *" nginx "* ]] && [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
  fi
fi

# Node packages (socket.io-client) for the Socket.IO browser and Node tests.
if [ "$want_system" = 1 ]; then
  bash scripts/setup-node.sh
fi
