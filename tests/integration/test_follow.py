"""Following the store: commits of other processes are handed out at once (the store's
commit hints), not at the next poll."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

from ledger.app import Ledger
from ledger.store.follow import StoreFollower
from ledger.store.wake import watch_appends
from tests import factory as f
from tests.conftest import Backend

APPEND = (
    "import json, sys; from ledger.app import Ledger; "
    "Ledger().append_objects(json.loads(sys.argv[1]))"
)


def append_in_another_process(env: dict[str, str], objects: list[dict]) -> None:
    subprocess.run(
        [sys.executable, "-c", APPEND, json.dumps(objects)],
        env={**os.environ, **env},
        check=True,
        timeout=60,
    )


def test_a_waiting_follower_gets_commits_of_another_process_before_its_poll(
    backend: Backend,
) -> None:
    """With a ten-minute poll and a 30 s wait, only the store's hint (file notification
    on SQLite, NOTIFY after LISTEN on PostgreSQL) can hand the events out."""
    env = backend.env()
    app = Ledger(backend.settings(env))
    try:
        app.append_objects([f.party("before")])
        with StoreFollower(app, app.head(), poll_seconds=600) as follower:
            assert follower.next_batch(timeout=0.1) == []
            for n in range(3):
                got: list[list[tuple[int, str, bytes | None]]] = []
                waiting = threading.Thread(
                    target=lambda got=got: got.append(follower.next_batch(30))
                )
                waiting.start()
                time.sleep(0.3)  # the follower is waiting
                append_in_another_process(env, [f.party(f"p{n}-a"), f.party(f"p{n}-b")])
                waiting.join(60)
                rows = got[0]
                assert [topic for _, topic, _ in rows] == ["PartyRegistered"] * 2
                assert [b"p%d-a" % n in (state or b"") for _, _, state in rows] == [True, False]
                assert rows[-1][0] == app.head() == follower.position
    finally:
        app.close()


def test_without_hints_the_follower_polls(backend: Backend) -> None:
    app = Ledger(backend.settings())
    try:
        with StoreFollower(app, 0, poll_seconds=0.05, hints=False) as follower:
            app.append_objects([f.party("a")])
            rows = follower.next_batch(timeout=10)
            assert [position for position, _, _ in rows] == [app.head()]
            assert follower.next_batch(timeout=0.2) == []
    finally:
        app.close()


class CountingEvent(asyncio.Event):
    """An ``asyncio.Event`` that counts the hints that set it."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def set(self) -> None:
        self.count += 1
        super().set()


def test_on_postgresql_a_commit_wakes_the_followers_of_its_own_ledger_only(
    postgres_backend: Backend,
) -> None:
    """A NOTIFY channel is database-wide: named after the events table alone, it was the
    same for the ledgers of every schema, and a commit in one woke the followers of all
    (each then read its log for nothing).  Two ledgers in two schemas of one database:
    a commit in A wakes A's listener and not B's, which B's own commit wakes."""
    apps = {name: Ledger(postgres_backend.settings()) for name in "AB"}
    channels = {name: app.recorder.channel_name for name, app in apps.items()}  # type: ignore[attr-defined]
    assert channels["A"] != channels["B"]

    async def follow_both() -> dict[str, int]:
        woken = {name: CountingEvent() for name in apps}
        listeners = [asyncio.create_task(watch_appends(apps[n], woken[n])) for n in apps]
        try:
            for event in woken.values():  # (each wakes once when its LISTEN is in place)
                await asyncio.wait_for(event.wait(), 30)
                event.clear()
                event.count = 0
            await asyncio.to_thread(apps["A"].append_objects, [f.party("in-a")])
            await asyncio.wait_for(woken["A"].wait(), 30)
            # B's hint, if any, was sent at the same commit: B has had time to get it.
            await asyncio.sleep(2)
            assert woken["B"].count == 0
            await asyncio.to_thread(apps["B"].append_objects, [f.party("in-b")])
            await asyncio.wait_for(woken["B"].wait(), 30)
            return {name: event.count for name, event in woken.items()}
        finally:
            for listener in listeners:
                listener.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)

    try:
        assert asyncio.run(follow_both()) == {"A": 1, "B": 1}
    finally:
        for app in apps.values():
            app.close()
