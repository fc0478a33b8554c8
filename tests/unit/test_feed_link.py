"""The edge's feed link checks blocks against the feed as they become due, not at the end."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque

import pytest

from pytest_gashammer.edge import feed_link
from pytest_gashammer.edge.feed_link import SETTLE_AT_THE_LATEST_SECONDS, FeedLink, SeenBlock

SECOND = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Msg:
    sequence_number: int
    block_hash: str | None
    tx_hashes: tuple[str, ...]


class Client:
    """Stands in for the feed client: only how far the feed got (and a gap it is recovering)."""

    last_sequence: int | None = None
    recovering_from: int | None = None

    @property
    def contiguous_sequence(self) -> int | None:
        return self.last_sequence if self.recovering_from is None else self.recovering_from - 1


def link() -> FeedLink:
    feed = FeedLink.__new__(FeedLink)  # no connection: the check's bookkeeping only
    FeedLink.__init__(feed, "ws://127.0.0.1:1", chain_id=1, start_sequence=1)
    feed.client = Client()  # type: ignore[assignment]
    return feed


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def block(number: int) -> tuple[int, str, list[str]]:
    return (number, "0x" + f"{number:064x}"[::-1], [tx(number)])


def test_a_block_is_checked_once_the_feed_carried_it_and_the_grace_passed() -> None:
    feed = link()
    for row, number in enumerate((1, 2, 3)):
        feed.correlator.register(tx(number), row, 0)
    seen: deque[SeenBlock] = deque((number * SECOND, block(number)) for number in (1, 2, 3))
    feed.correlator.on_message(Msg(1, block(1)[1], (tx(1),)), 0)  # type: ignore[arg-type]
    feed.client.last_sequence = 1
    feed.settle_due(seen, now_ns=10 * SECOND, grace_ns=2 * SECOND)
    # Block 1 was carried: checked; blocks 2 and 3 wait for the feed.
    assert [number for _, (number, _, _) in seen] == [2, 3] and feed.settled_through == 1
    assert feed.first_unsettled_row(seen) == 1
    # A feed that never gets there fails them once they are old enough, it does not hold them forever.
    late = int((3 + SETTLE_AT_THE_LATEST_SECONDS) * SECOND)
    feed.settle_due(seen, now_ns=late - 1, grace_ns=2 * SECOND)
    assert [number for _, (number, _, _) in seen] == [3]
    feed.settle_due(seen, now_ns=late, grace_ns=2 * SECOND)
    assert not seen and feed.first_unsettled_row(seen) is None
    assert feed.correlator.findings().missing_from_feed == 2


def test_a_block_number_seen_twice_is_checked_once_and_said() -> None:
    feed = link()
    feed.client.last_sequence = 10
    seen: deque[SeenBlock] = deque([(0, block(4)), (0, block(5))])
    feed.settle_due(seen, now_ns=10 * SECOND, grace_ns=SECOND)
    seen.extend([(0, block(5)), (0, block(6))])
    feed.settle_due(seen, now_ns=10 * SECOND, grace_ns=SECOND)
    assert not seen and feed.settled_through == 6 and feed.blocks_seen_again == 1


def test_a_block_whose_message_is_being_recovered_waits_for_it() -> None:
    """The feed got past block 2's message but lost it in transit and is asking for it again: block 2
    is not judged missing from the feed meanwhile; once the message is back, it is checked."""
    feed = link()
    for row, number in enumerate((1, 2, 3)):
        feed.correlator.register(tx(number), row, 0)
    seen: deque[SeenBlock] = deque((number * SECOND, block(number)) for number in (1, 2, 3))
    for number in (1, 3):
        feed.correlator.on_message(Msg(number, block(number)[1], (tx(number),)), 0)  # type: ignore[arg-type]
    feed.client.last_sequence, feed.client.recovering_from = 3, 2
    feed.settle_due(seen, now_ns=10 * SECOND, grace_ns=2 * SECOND)
    assert [number for _, (number, _, _) in seen] == [2, 3] and feed.settled_through == 1
    feed.correlator.on_message(Msg(2, block(2)[1], (tx(2),)), 0)  # type: ignore[arg-type]
    feed.client.recovering_from = None
    feed.settle_due(seen, now_ns=10 * SECOND, grace_ns=2 * SECOND)
    assert not seen and feed.settled_through == 3
    assert feed.correlator.findings().missing_from_feed == 0


def test_a_feed_numbered_ahead_by_an_earlier_split_is_calibrated_on_a_hash_it_knows() -> None:
    """Issue #15: the relay split blocks before this run, so block 5 is sequence 21. Taking sequence
    22 for block 22 would check blocks 6 and 7 before their messages came."""
    feed = link()
    seen: deque[SeenBlock] = deque((0, block(number)) for number in (5, 6, 7))
    feed.correlator.on_message(Msg(20, block(4)[1], ()), 0)  # type: ignore[arg-type]  # before the run
    feed.correlator.on_message(Msg(21, block(5)[1], ()), 0)  # type: ignore[arg-type]
    feed.correlator.on_message(Msg(22, block(6)[1], ()), 0)  # type: ignore[arg-type]
    feed.client.last_sequence = 22
    feed.settle_due(seen, now_ns=10 * SECOND, grace_ns=SECOND)
    assert feed.correlator.calibrated and feed.correlator.block_of(21) == 5
    assert [number for _, (number, _, _) in seen] == [7] and feed.settled_through == 6
    # A split during the run: block 7 in two messages. The second one does not stand for block 8.
    feed.correlator.on_message(Msg(23, block(7)[1], ()), 0)  # type: ignore[arg-type]
    feed.correlator.on_message(Msg(24, block(7)[1], ()), 0)  # type: ignore[arg-type]
    feed.client.last_sequence = 24
    seen.append((0, block(8)))
    feed.settle_due(seen, now_ns=10 * SECOND, grace_ns=SECOND)
    assert feed.feed_reach() == 7 and [number for _, (number, _, _) in seen] == [8]
    findings = feed.correlator.findings()
    assert findings.hash_mismatches == 0 and findings.messages_checked == 4


def test_a_feed_whose_hashes_name_no_block_seen_yet_settles_nothing_early() -> None:
    feed = link()
    seen: deque[SeenBlock] = deque([(0, block(5))])
    feed.correlator.on_message(Msg(5, "0x" + "ee" * 32, ()), 0)  # type: ignore[arg-type]
    feed.client.last_sequence = 5
    feed.settle_due(seen, now_ns=10 * SECOND, grace_ns=SECOND)
    assert feed.feed_reach() is None and len(seen) == 1
    # ... until the latest moment, when the block is checked by the numbers it has.
    feed.settle_due(seen, now_ns=int(SETTLE_AT_THE_LATEST_SECONDS * SECOND), grace_ns=SECOND)
    assert not seen and feed.correlator.findings().hash_mismatches == 1


def test_the_end_of_a_run_waits_for_a_feed_that_lags_while_it_makes_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay of an overloaded node trails the chain by seconds: the edge waits for it to carry the
    last block seen (as long as messages keep coming), and for a silent feed only a moment."""
    monkeypatch.setattr(feed_link, "CATCH_UP_SILENCE_SECONDS", 0.3)
    feed = link()
    seen: deque[SeenBlock] = deque((0, block(number)) for number in (1, 2, 3, 4))

    async def lagging() -> float:
        async def relay() -> None:
            for number in (1, 2, 3, 4):
                await asyncio.sleep(0.2)
                feed.correlator.on_message(Msg(number, block(number)[1], ()), 0)  # type: ignore[arg-type]
                feed.client.last_sequence = number

        sending = asyncio.create_task(relay())
        started = time.monotonic()
        assert await feed._catch_up(1, seen)  # one transaction included: it waits for the feed
        await sending
        return time.monotonic() - started

    waited = asyncio.run(lagging())
    assert 0.7 < waited < 1.5 and feed.feed_reach() == 4

    silent = link()
    started = time.monotonic()
    assert not asyncio.run(silent._catch_up(5, deque([(0, block(1))])))  # said in the run's notes
    assert 0.25 < time.monotonic() - started < 1.0
