#!/bin/sh
# Run the test suite, installed through constraints.txt, on each Python version given
# (default: 3.11 and 3.12, the Dockerfile's), each in a fresh venv.  A version whose
# interpreter (pythonX.Y) is not on PATH is reported and skipped.
#
#   tools/test-matrix.sh [3.11 3.12 ...]
set -eu
cd "$(dirname "$0")/.."
versions=${*:-"3.11 3.12"}
status=0
for version in $versions; do
  python="python$version"
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "Python $version: not installed here, skipped"; continue
  fi
  venv=".venv-$version"
  echo "== Python $version ($venv)"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q -c constraints.txt -e '.[test]'
  "$venv/bin/python" -m pytest -q -p no:cacheprovider || status=1
done
exit $status
