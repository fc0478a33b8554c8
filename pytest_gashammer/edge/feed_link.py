"""The edge's view of the sequencer feed: a feed client and the correlator it feeds, for one run."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from pytest_gashammer.errors import GashammerError

if TYPE_CHECKING:
    from pytest_gashammer.feed.client import FeedClient
    from pytest_gashammer.feed.correlator import Correlator

#: How long the edge waits for the feed before its clock starts; it keeps trying during the run.
CONNECT_SECONDS = 5.0


class FeedLink:
    """Follows the feed from ``start_sequence`` on, correlating what the edge registers with it."""

    def __init__(self, url: str, *, chain_id: int, start_sequence: int) -> None:
        from pytest_gashammer.feed.client import FeedClient
        from pytest_gashammer.feed.correlator import Correlator

        self.url = url
        self.correlator: Correlator = Correlator()
        self.client: FeedClient = FeedClient(
            url,
            expected_chain_id=chain_id,
            start_sequence=start_sequence,
            on_message=self.correlator.on_message,
        )
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        #: The correlator's check against the chain, once the link is closed.
        self.findings: dict[str, Any] | None = None

    async def open(self, notes: list[str]) -> None:
        """Start following; a fatal handshake problem (wrong chain id) raises here, before the clock."""
        task = self.task = asyncio.create_task(self.client.run(self.stop_event))
        deadline = time.monotonic() + CONNECT_SECONDS
        while not self.client.connected and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if task.done():
            task.result()
        if not self.client.connected:
            notes.append(f"feed {self.url} not connected after 5 s; still trying during the run")

    async def close(
        self,
        included: int,
        chain_blocks: list[tuple[int, str, list[str]]],
        errors: Counter[str],
        notes: list[str],
    ) -> None:
        """Give the feed a moment to show the ``included`` transactions, stop, and check it against the chain."""
        if self.task is None:
            return
        deadline = time.monotonic() + 3.0
        while self.correlator.matched < included and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.stop_event.set()
        try:
            await asyncio.wait_for(self.task, 5.0)
        except GashammerError as exc:
            errors["feed_fatal"] += 1
            notes.append(str(exc))
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()
        self.findings = self.correlator.check_against_chain(chain_blocks).as_dict()
