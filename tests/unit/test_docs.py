"""docs/cli.md is generated from every command's --help and must not go stale."""

from __future__ import annotations

import re

from ledger.cli.main import COMMANDS
from tools import cli_reference


def test_every_command_has_its_section() -> None:
    text = cli_reference.REFERENCE.read_text(encoding="utf-8")
    documented = re.findall(r"^## `ledger (\S+)`$", text, flags=re.MULTILINE)
    assert documented == list(COMMANDS)


def test_the_reference_is_current() -> None:
    # cog --check exits non-zero when regenerating would change the file.
    assert cli_reference.cog("--check") == 0, (
        "docs/cli.md is stale: run `python -m tools.cli_reference` and commit the result"
    )
