"""The feed client's sequence bookkeeping: gaps, late messages, messages out of order, repeats."""

from __future__ import annotations

from pytest_gashammer.feed.client import FeedClient
from pytest_gashammer.oracle.invariants import feed_sequence
from tests.unit.edge_reports import Log, report_of


def admitted(sequences: list[int], start: int | None = None) -> FeedClient:
    client = FeedClient("ws://127.0.0.1:1", expected_chain_id=1, start_sequence=start)
    for arrival, seq in enumerate(sequences):
        client._admit(seq, arrival)
    return client


def test_two_swapped_messages_are_out_of_order_not_a_gap() -> None:
    stats = admitted([12, 14, 13, 15]).stats
    assert stats.gaps == [] and stats.gap_count == 0 and stats.missing_messages == 0
    assert stats.out_of_order == [(13, 14)] and stats.out_of_order_count == 1 and stats.late == [13]


def test_a_gap_partly_filled_stays_a_gap_of_what_never_came() -> None:
    client = admitted([1, 5, 3])
    stats = client.stats
    assert stats.gaps == [(2, 5)] and stats.gap_count == 1 and stats.missing_messages == 2
    assert stats.out_of_order == [] and stats.late == [3]
    client._admit(2, 9)
    client._admit(4, 10)
    stats = client.stats
    assert stats.gaps == [] and stats.missing_messages == 0 and stats.out_of_order == [(2, 5)]
    assert [event.kind for event in client.events] == ["gap", "late", "late", "late"]


def test_a_gap_never_filled_and_a_repeat_are_still_said() -> None:
    stats = admitted([7, 9, 9, 10], start=7).stats
    assert stats.gaps == [(8, 9)] and stats.missing_messages == 1 and stats.duplicates == [9]


def verdict_for(stats: dict[str, object]) -> list[str]:
    report = report_of(Log(), edge_id="e0", feed_stats=stats, feed_findings={})
    return list(feed_sequence([report], 5.0).evidence["problems"])  # type: ignore[arg-type]


def test_the_verdict_says_out_of_order_with_the_message_count() -> None:
    """Issue #15: 13 and 14 swapped read "gap: expected 13, got 14" although 13 arrived, late."""
    swapped = admitted([12, 14, 13, 15]).stats.as_dict()
    assert verdict_for(swapped) == ["e0: out of order: sequence 13 arrived after 14 (1 message late)"]
    three = admitted([1, 5, 2, 3, 4]).stats.as_dict()
    assert verdict_for(three) == ["e0: out of order: sequences 2..4 arrived after 5 (3 messages late)"]
    lost = admitted([1, 3]).stats.as_dict()
    assert verdict_for(lost) == ["e0: gap: expected sequence 2, got 3"]
