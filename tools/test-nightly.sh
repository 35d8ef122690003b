#!/bin/sh
# The nightly job: every property with 5,000 examples and a fresh random seed (the
# 'nightly' Hypothesis profile of tests/conftest.py), then mutation testing of the domain
# and view logic.  Needs the venv of the README's test command (.venv).
#
#   tools/test-nightly.sh [PYTEST ARGS ...]
set -eu
cd "$(dirname "$0")/.."
# Every test module that uses Hypothesis.
modules=$(grep -rl --include='test_*.py' -e '^from hypothesis' -e '^import hypothesis' tests)
LEDGER_HYPOTHESIS_PROFILE=nightly .venv/bin/python -m pytest -q -p no:cacheprovider $modules "$@"
.venv/bin/python -m tools.mutation run
