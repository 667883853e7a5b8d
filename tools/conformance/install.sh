#!/usr/bin/env bash
# Install Autobahn|Testsuite's wstest into tools/conformance/.venv-wstest, idempotently.
#
# wstest (autobahntestsuite 25.10.1) is Python 2.7 code whose sdist declares no
# dependencies, so it needs a CPython 2.7 interpreter and an explicit, pinned
# dependency set (the last releases that still support 2.7).
#
#   tools/conformance/install.sh           install if needed; quick no-op when done
#   PY27=/path/to/python2.7 ...      use that interpreter
#   WSTEST_VENV=DIR ...              install there instead
#   PYTHON3=python3 ...              the Python 3 that runs virtualenv
#
# Exit codes: 0 ready, 3 no Python 2.7 found, anything else an install failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${WSTEST_VENV:-$here/.venv-wstest}
tools=$here/.venv-virtualenv
stamp=$venv/.installed

# The stamp records these exact pins, so editing them forces a reinstall.
pins=(
  setuptools==44.0.0 txaio==2.1.0 incremental==16.10.1 pyOpenSSL==19.1.0
  cryptography==3.3.2 Twisted==19.10.0 zope.interface==4.6.0 jinja2==2.11.3
  markupsafe==1.1.1 Werkzeug==1.0.1 klein==17.10.0 service_identity==18.1.0
  unittest2==1.1.0 six==1.16.0 "autobahn[accelerate,twisted]==0.10.9"
)
suite=autobahntestsuite==25.10.1
want="${pins[*]} $suite"

# Runs started together (one per server) would otherwise install into the same
# venv at once, and one of them fail; the second waits, then finds it done.
if command -v flock >/dev/null 2>&1; then
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/wstest" ]; then
  exit 0
fi

find_py27() {
  if [ -n "${PY27:-}" ]; then
    echo "$PY27"
    return
  fi
  local roots=("${PYENV_ROOT:-$HOME/.pyenv}") root candidate
  # pyenv itself may be off PATH (CI runs with a trimmed environment).
  command -v pyenv >/dev/null 2>&1 && roots=("$(pyenv root)" "${roots[@]}")
  for root in "${roots[@]}"; do
    for candidate in "$root"/versions/2.7*/bin/python2.7; do
      [ -x "$candidate" ] && { echo "$candidate"; return; }
    done
  done
  command -v python2.7 2>/dev/null || true
}
py27=$(find_py27)
# A pyenv shim exists even when no 2.7 is installed: ask it to run.
if [ -z "$py27" ] || ! "$py27" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
  cat >&2 <<MSG
conformance: Python 2.7 is missing${py27:+ ($py27 does not run as Python 2.7)}.
  Autobahn|Testsuite (wstest) runs only on CPython 2.7. Install it, e.g.
    pyenv install 2.7.18
  or point PY27 at a python2.7 binary, then run this again.
MSG
  exit 3
fi

# This machine's pip configuration may name package indexes that do not exist
# here; pip warns about each one on every lookup. Keep the rest of stderr.
quiet_pip() {
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

echo "conformance: installing wstest into $venv (Python 2.7 at $py27)"
# A venv whose interpreter no longer runs (its 2.7 was removed) is rebuilt.
if [ -e "$venv" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  # virtualenv 20.21.1 is the last release that can create 2.7 environments;
  # it lives in its own Python 3 venv so the project's .venv stays clean.
  if [ ! -x "$tools/bin/virtualenv" ]; then
    "${PYTHON3:-python3}" -m venv "$tools"
    quiet_pip "$tools/bin/pip" install -q --disable-pip-version-check "virtualenv==20.21.1"
  fi
  "$tools/bin/virtualenv" -q --no-periodic-update -p "$py27" "$venv"
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check --no-python-version-warning)
quiet_pip "${pip[@]}" "${pins[@]}"
# The sdist's setup.py reads a requirements file it does not ship: the pins
# above are its dependencies, so it is installed without resolving any.
quiet_pip "${pip[@]}" --no-deps "$suite"
"$venv/bin/wstest" --help >/dev/null
echo "$want" >"$stamp"
echo "conformance: wstest ready at $venv/bin/wstest"
