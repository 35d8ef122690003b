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


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan")])
def test_a_stall_timeout_that_is_not_positive_is_refused(seconds: float) -> None:
    key = SigningKey.generate("test.example").verifier
    with pytest.raises(ValueError, match="stall_timeout must be positive seconds"):
        subscribe("nats://127.0.0.1:1", verify=True, verifier_key=key, stall_timeout=seconds)


def test_the_stall_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = SigningKey.generate("test.example").verifier
    monkeypatch.setenv("LEDGER_VERIFY_STALL_TIMEOUT", "2m")
    subscription = subscribe("nats://127.0.0.1:1", verify=True, verifier_key=key)
    assert subscription.stall_timeout == 120.0
    given = subscribe("nats://127.0.0.1:1", verify=True, verifier_key=key, stall_timeout=5)
    assert given.stall_timeout == 5
