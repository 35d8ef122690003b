#!/bin/sh
# Run the test suite against the newest releases of every dependency, ignoring
# constraints.txt: the check before a deliberate upgrade.  With --write, a green run
# rewrites constraints.txt with the versions it used (commit that with the upgrade).
#
#   tools/test-latest.sh [--write] [PYTEST ARGS ...]
set -eu
cd "$(dirname "$0")/.."
write=no
if [ "${1:-}" = "--write" ]; then write=yes; shift; fi
venv=$(mktemp -d "${TMPDIR:-/tmp}/ledger-latest-XXXXXX")
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q --upgrade -e '.[test,dev,postgres]'
echo "newest releases:"; "$venv/bin/pip" freeze --exclude-editable | sed 's/^/  /'
"$venv/bin/python" -m pytest "$@"
if [ "$write" = yes ]; then
  "$venv/bin/pip" freeze --exclude-editable | grep -iv '^export-control-ledger' > constraints.txt
  echo "constraints.txt rewritten"
fi
