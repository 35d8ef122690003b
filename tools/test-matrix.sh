#!/bin/sh
# Run the test suite, installed through constraints.txt, on each Python version given
# (default: 3.11 and 3.12, the Dockerfile's), each in a fresh venv.  A version whose
# interpreter (pythonX.Y) is not on PATH is reported and skipped.  Property tests run at
# the 'dev' Hypothesis profile unless LEDGER_HYPOTHESIS_PROFILE says otherwise.
#
#   tools/test-matrix.sh [3.11 3.12 ...]
set -eu
cd "$(dirname "$0")/.."
versions=${*:-"3.11 3.12"}
status=0
# The interpreter of a version: pythonX.Y on PATH if it runs (a pyenv shim of a version
# that is installed but not selected is on PATH and does not), else pyenv's own copy.
find_python() {
  if "python$1" -c 'import sys' >/dev/null 2>&1; then echo "python$1"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    for dir in "$(pyenv root)/versions/$1" "$(pyenv root)"/versions/"$1".*; do
      if [ -x "$dir/bin/python$1" ]; then echo "$dir/bin/python$1"; return; fi
    done
  fi
}
for version in $versions; do
  python=$(find_python "$version")
  if [ -z "$python" ]; then
    echo "Python $version: not installed here, skipped"; continue
  fi
  venv=".venv-$version"
  echo "== Python $version ($venv)"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q -c constraints.txt -e '.[test]'
  # Property tests at the quick 'dev' profile: this run is about the Python version; the
  # README's command already ran them at full strength.
  LEDGER_HYPOTHESIS_PROFILE=${LEDGER_HYPOTHESIS_PROFILE:-dev} \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider || status=1
done
exit $status
