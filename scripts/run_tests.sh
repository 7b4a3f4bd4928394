#!/usr/bin/env bash
# `make test`: the suite on the project venv and on the Kit venv, side by side.
#
# Both runs are mostly single-threaded Python (Warp's CPU kernels run on one thread), so on a 2-core CI machine
# running them one after the other left a core idle for ~15 minutes; side by side they take about as long as the
# longer one. Each gets its own --basetemp, so neither can touch the other's files. The Kit run's output is kept in
# a log and printed after the project run, so the two never interleave; the exit status is non-zero if either failed.
set -uo pipefail
cd "$(dirname "$0")/.."

venv=${VENV:-.venv}
work=$(mktemp -d "${TMPDIR:-/tmp}/simgap-tests.XXXXXX")
trap 'rm -rf "$work"' EXIT

PYTHONPATH=$PWD .venv-kit/bin/python -m pytest -q -p no:cacheprovider --ignore=tests/test_kit_headless.py \
    --basetemp="$work/kit" >"$work/kit.log" 2>&1 &
kit_pid=$!

echo "== project venv ($("$venv"/bin/python -c 'import sys; print(sys.version.split()[0])')); the Kit venv runs alongside"
"$venv"/bin/python -m pytest -q --basetemp="$work/project" "$@"
project_rc=$?

wait "$kit_pid"
kit_rc=$?
echo "== Kit venv ($(.venv-kit/bin/python -c 'import sys; print(sys.version.split()[0])'), isaacsim-kernel, no torch)"
cat "$work/kit.log"

if [ "$project_rc" -ne 0 ] || [ "$kit_rc" -ne 0 ]; then
    echo "make test: FAILED (project venv exit $project_rc, Kit venv exit $kit_rc)" >&2
    exit 1
fi
