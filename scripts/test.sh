#!/usr/bin/env bash
# The whole test suite, as CI runs it (make test, .ci/run): lint, types, the
# covered tests, the rest, the benchmark guard, the dependency floors, the
# built distributions, the docs.
#
#   COVERED_TESTS="tests/unit tests/test_x.py ..." scripts/test.sh
#
# make test passes COVERED_TESTS from the Makefile, where each feature lists
# its test files. The two steps that mostly wait on pip (installing the floors'
# virtualenv, and scripts/check-dist.sh, which installs the built wheel once per
# extra) run in the background under nice while the covered tests run, which
# saves their minutes on a 2-core CI machine; their output is shown when they
# are waited for, and a failure there fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${COVERED_TESTS:?set COVERED_TESTS (make test does)}"
PY=.venv/bin/python
read -r -a covered <<<"$COVERED_TESTS"

bash scripts/setup.sh --test

logs=$(mktemp -d /tmp/ws4py-test.XXXXXX)
background=
cleanup() {
  if [ -n "$background" ] && kill -0 "$background" 2>/dev/null; then
    # Only our own background job: its process group, started below with setsid.
    kill -TERM -- "-$background" 2>/dev/null || true
  fi
  rm -rf "$logs"
}
trap cleanup EXIT
setsid bash -c 'nice -n 10 bash scripts/min-versions.sh --install-only && nice -n 10 bash scripts/check-dist.sh' \
  >"$logs/background.log" 2>&1 &
background=$!

"$PY" -m ruff check ws4py_integrations examples tests tools
"$PY" -m ruff format --check ws4py_integrations examples tests tools
"$PY" -m mypy
"$PY" -m coverage erase
"$PY" -m coverage run -m pytest -p no:cacheprovider "${covered[@]}"
"$PY" -m coverage combine -q
"$PY" -m coverage report
ignore=()
for path in "${covered[@]}"; do ignore+=("--ignore=$path"); done
"$PY" -m pytest -p no:cacheprovider "${ignore[@]}"

# The floors' install and check-dist: usually long done by now.
status=0
wait "$background" || status=$?
background=
echo "== the floors' virtualenv and scripts/check-dist.sh (run in the background) =="
cat "$logs/background.log"
if [ "$status" != 0 ]; then
  echo "test: the floors' install or check-dist failed (exit $status), see above" >&2
  exit "$status"
fi

"$PY" -m tools.bench guard
bash scripts/min-versions.sh
if [ -f docs/conf.py ]; then "$PY" -m sphinx -W --keep-going -q -b html docs docs/_build/html; fi
