"""Errors the ledger reports to operators.

Every rejection names the field and the rule, and (for a batch) the line.  Exit codes:
2 for malformed input, 1 for a rule violation or conflict.
"""

from __future__ import annotations


class LedgerError(Exception):
    exit_code = 1

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line

    def located(self, line: int | None) -> LedgerError:
        """The same error, naming the line of a batch it came from."""
        self.line = line
        return self

    def __str__(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(self.field)
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "field": self.field,
            "line": self.line,
        }


class InputError(LedgerError):
    """Malformed input: not JSON, wrong types, unknown event type or field."""

    exit_code = 2


class RuleViolation(LedgerError):
    """Well-formed input that cannot be a fact (an invariant of the domain)."""

    def __init__(
        self,
        rule: str,
        message: str,
        *,
        field: str | None = None,
        line: int | None = None,
    ):
        super().__init__(message, field=field, line=line)
        self.rule = rule

    def __str__(self) -> str:
        return f"{super().__str__()} [rule: {self.rule}]"

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "rule": self.rule}


class ConflictError(RuleViolation):
    """An event id already recorded with different content."""


class StoreError(LedgerError):
    """The store could not be reached or written (after retries)."""
