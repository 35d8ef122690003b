"""``subscribe``'s bound on unverified events is checked before anything connects: 0
cannot quietly mean the default (nothing would ever be released either way)."""

from __future__ import annotations

import pytest

from ledger.checkpoint import SigningKey
from ledger.subscriber import subscribe


@pytest.mark.parametrize("bound", [0, -1])
def test_a_bound_below_one_is_refused(bound: int) -> None:
    key = SigningKey.generate("test.example").verifier
    with pytest.raises(ValueError, match="max_pending must be at least 1"):
        subscribe("nats://127.0.0.1:1", verify=True, verifier_key=key, max_pending=bound)


def test_a_given_bound_is_kept() -> None:
    key = SigningKey.generate("test.example").verifier
    subscription = subscribe("nats://127.0.0.1:1", verify=True, verifier_key=key, max_pending=7)
    assert subscription.max_pending == 7
