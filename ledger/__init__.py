"""ledger: an event-sourced export-control compliance ledger.

``import ledger`` is light; the public client API loads on first use::

    from ledger import subscribe, Delivery, Subscription   # NATS subscriber client
    from ledger import Relay, EmbeddedNats                  # publishing, embedded server
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.nats_server import EmbeddedNats
    from ledger.relay import Relay
    from ledger.subscriber import Delivery, Start, SubscriberError, Subscription, subscribe

_LAZY: dict[str, str] = {
    "subscribe": "ledger.subscriber",
    "Subscription": "ledger.subscriber",
    "Delivery": "ledger.subscriber",
    "Start": "ledger.subscriber",
    "SubscriberError": "ledger.subscriber",
    "Relay": "ledger.relay",
    "EmbeddedNats": "ledger.nats_server",
}

__all__ = [
    "Delivery",
    "EmbeddedNats",
    "Relay",
    "Start",
    "SubscriberError",
    "Subscription",
    "subscribe",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
