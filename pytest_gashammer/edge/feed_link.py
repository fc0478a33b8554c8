"""The edge's view of the sequencer feed: a feed client and the correlator it feeds, for one run."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from pytest_gashammer.errors import GashammerError

if TYPE_CHECKING:
    from pytest_gashammer.feed.client import FeedClient
    from pytest_gashammer.feed.correlator import Correlator

#: How long the edge waits for the feed before its clock starts; it keeps trying during the run.
CONNECT_SECONDS = 5.0
#: A block is checked against the feed once the feed has carried it (or a later one) and the grace
#: period passed; or, if the feed never gets there, this long after the block was seen: a feed that
#: far behind has failed the block, and the check must not wait forever in a soak. Generous: an
#: overloaded node slows the feed's relay too (seen: 38 s behind), and what waits costs memory only
#: while the feed lags.
SETTLE_AT_THE_LATEST_SECONDS = 120.0

#: At the end of a run, how long the edge waits at most for the feed to carry the last block it saw,
#: and how long it keeps waiting once nothing new arrives: an overloaded node's relay trails the chain
#: by seconds (seen: 4 s at 1.3 times what anvil sustains), and a block checked before its messages
#: came would call them missing.
CATCH_UP_SECONDS = 30.0
CATCH_UP_SILENCE_SECONDS = 3.0

#: ``(observed_ns, (number, hash, transaction hashes))`` of a block the edge saw.
SeenBlock = tuple[int, tuple[int, str, list[str]]]


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
        #: The highest block number checked against the feed so far.
        self.settled_through = -1
        #: Blocks seen more than once (a follower that asked for one number and got another, a
        #: reorganisation): checked once, counted here.
        self.blocks_seen_again = 0

    def settle_due(self, seen: deque[SeenBlock], now_ns: int, grace_ns: int) -> None:
        """Check the blocks of ``seen`` (oldest first) that are due against the feed, and drop them.

        Due: seen at least ``grace_ns`` ago and carried by the feed (the message that stands for it, or
        a later one, arrived, and no gap below it is still being recovered: :meth:`feed_reach`), or
        seen :data:`SETTLE_AT_THE_LATEST_SECONDS` ago.
        """
        self.calibrate(seen)
        reach = self.feed_reach()
        if reach is None:
            reach = -1
        latest_ns = now_ns - int(SETTLE_AT_THE_LATEST_SECONDS * 1e9)
        due: list[tuple[int, str, list[str]]] = []
        while seen:
            observed_ns, block = seen[0]
            if observed_ns > now_ns - grace_ns or (block[0] > reach and observed_ns > latest_ns):
                break
            seen.popleft()
            due.append(block)
        self._settle(due)

    def calibrate(self, seen: deque[SeenBlock]) -> None:
        """Measure once, before the first check, which block the feed's sequence numbers stand for.

        The lowest-numbered message whose hash names a block the edge saw fixes it. A relay that split
        an oversize block before this run numbers every later message ahead of its block (see
        :meth:`Correlator.calibrate`); taking ``start_sequence`` for the start block's successor would
        check blocks before their messages came and compare messages with the wrong blocks.
        """
        correlator = self.correlator
        if correlator.calibrated or self.settled_through >= 0 or not seen:
            return
        number_of = {block_hash.lower(): number for _, (number, block_hash, _) in seen}
        for seq, block_hash in sorted(correlator.block_hashes.items()):
            number = number_of.get(block_hash.lower()) if block_hash is not None else None
            if number is not None:
                correlator.calibrate(seq, number)
                return

    def feed_reach(self) -> int | None:
        """The newest block the feed has carried, by the sequence number of its last message; None when
        the feed sent nothing yet, or names block hashes but none the edge could calibrate on yet."""
        # Up to where everything arrived: a gap still being recovered holds its blocks back.
        carried = self.client.contiguous_sequence
        if carried is None:
            return None
        correlator = self.correlator
        if not correlator.calibrated and any(h is not None for h in correlator.block_hashes.values()):
            return None
        # Calibrated, or a feed without block hashes: its numbering is all there is to go on.
        return correlator.block_of(carried)

    def first_unsettled_row(self, seen: deque[SeenBlock]) -> int | None:
        """The lowest correlator row among the blocks not checked yet (what must not be forgotten)."""
        row_of = self.correlator.row_of
        rows = [row for _, (_, _, hashes) in seen for row in map(row_of, hashes) if row is not None]
        return min(rows) if rows else None

    def _settle(self, blocks: list[tuple[int, str, list[str]]]) -> None:
        fresh = []
        for block in sorted(blocks, key=lambda block: block[0]):
            if block[0] <= self.settled_through:
                self.blocks_seen_again += 1
                continue
            fresh.append(block)
            self.settled_through = block[0]
        if fresh:
            self.correlator.settle(fresh)

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
        seen: deque[SeenBlock],
        errors: Counter[str],
        notes: list[str],
    ) -> None:
        """Let the feed catch up with the blocks seen (see :meth:`_catch_up`), stop, and check it
        against the chain."""
        if self.task is None:
            return
        waited = time.monotonic()
        if not await self._catch_up(included, seen):
            reach = self.feed_reach()
            carried = "no block" if reach is None else f"blocks up to {reach}"
            notes.append(
                f"feed check: the feed had carried {carried} and the chain was at block {seen[-1][1][0]} "
                f"when the edge stopped waiting for it ({time.monotonic() - waited:.1f} s): the blocks "
                "after the feed's last message are checked without it"
            )
        self.stop_event.set()
        try:
            await asyncio.wait_for(self.task, 5.0)
        except GashammerError as exc:
            errors["feed_fatal"] += 1
            notes.append(str(exc))
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()
        self.calibrate(seen)
        self._settle([block for _, block in seen])
        seen.clear()
        self.findings = self.correlator.findings().as_dict()
        if self.blocks_seen_again:
            notes.append(
                f"feed check: {self.blocks_seen_again} block number(s) seen more than once, checked once"
            )

    async def _catch_up(self, included: int, seen: deque[SeenBlock]) -> bool:
        """Wait until the feed carried the last block seen (when it cannot tell, the ``included``
        transactions), while the feed makes progress: at most :data:`CATCH_UP_SECONDS`, and
        :data:`CATCH_UP_SILENCE_SECONDS` after its sequence number last moved on (repeats are no
        progress). ``False`` when it stopped waiting short of that."""
        correlator = self.correlator
        now = time.monotonic()
        deadline, quiet_since, heard = now + CATCH_UP_SECONDS, now, self.client.last_sequence
        while seen and now < deadline and now - quiet_since < CATCH_UP_SILENCE_SECONDS:
            self.calibrate(seen)
            reach = self.feed_reach()
            if reach is not None and reach >= seen[-1][1][0]:
                return True
            if reach is None and correlator.matched >= included:
                return True
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if self.client.last_sequence != heard:
                quiet_since, heard = now, self.client.last_sequence
        return not seen
