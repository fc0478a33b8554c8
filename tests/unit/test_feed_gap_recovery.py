"""The feed client's sequence bookkeeping when it recovers a gap (no socket: the client's own
bookkeeping driven as its connection loop drives it), and the verdict on recovered gaps."""

from __future__ import annotations

import pytest

from pytest_gashammer.feed.client import FeedClient
from pytest_gashammer.oracle.invariants import feed_sequence
from pytest_gashammer.telemetry.records import EdgeReport
from tests.unit.edge_reports import digest_of

MS = 1_000_000


def client(**options: object) -> FeedClient:
    return FeedClient("ws://127.0.0.1:1", expected_chain_id=1, start_sequence=10, **options)  # type: ignore[arg-type]


def feed(c: FeedClient, *numbers: int, at: int = 0) -> list[int]:
    """Offer ``numbers`` as one frame's messages; the ones delivered."""
    return [seq for seq in numbers if c._admit(seq, at)]


def test_a_gap_asks_for_its_first_missing_number_once_it_waited() -> None:
    c = client()
    assert feed(c, 10, 11, 13, 14, at=0) == [10, 11, 13, 14]
    assert c.stats.gaps == [(12, 13)]
    assert c.next_sequence == 12 and c.contiguous_sequence == 11  # not 15: 12 is asked for again
    assert c._recovery_wait(100 * MS) == pytest.approx(0.15)
    assert c._recovery_wait(250 * MS) == 0.0


def test_a_recovery_delivers_the_missing_message_and_skips_the_replay() -> None:
    c = client()
    feed(c, 10, 11, 13, 14)
    c._start_recovery(c.next_sequence)  # type: ignore[arg-type]
    assert c._recovery_wait(10**12) is None  # no second recovery while one is under way
    # The backlog from 12: the missing one, then what was delivered already, then live messages.
    assert feed(c, 12, 13, 14, 15, at=300 * MS) == [12, 15]
    stats = c.stats
    assert stats.recovered_gaps == [(12, 13)] and stats.recovered_gap_count == 1
    assert stats.recovered_messages == 1 and stats.replayed == 2 and stats.recoveries == 1
    assert stats.duplicates == [] and stats.late == [] and stats.gaps == [(12, 13)]
    assert c.next_sequence == 16 and c.contiguous_sequence == 15
    assert [e.kind for e in c.events] == ["gap", "gap_recovered"]


def test_a_number_the_server_never_serves_again_stays_a_gap_after_the_attempts() -> None:
    c = client(recovery_attempts=2)
    feed(c, 10, 11, 13, 14)
    for attempt in (1, 2):
        c._start_recovery(c.next_sequence)  # type: ignore[arg-type]
        assert feed(c, 13, 14, 14 + attempt, at=attempt * 1000 * MS) == [14 + attempt]
    stats = c.stats
    assert stats.recovered_gaps == [] and stats.recoveries == 2 and stats.duplicates == []
    assert c.next_sequence == 17 and c.contiguous_sequence == 16  # given up: no longer held back
    assert c._recovery_wait(10**12) is None
    # It may still arrive on its own later: then it is late, as before.
    assert feed(c, 12) == [12] and c.stats.late == [12]


def test_a_gap_filled_in_the_same_frame_is_a_late_message_never_a_recovery() -> None:
    c = client()
    assert feed(c, 10, 12, 11) == [10, 12, 11]
    stats = c.stats
    # Every skipped number came late on its own: messages out of order, no loss.
    assert stats.gaps == [] and stats.out_of_order == [(11, 12)] and stats.late == [11]
    assert stats.recovered_gaps == [] and stats.missing_messages == 0
    assert c._recovery_wait(10**12) is None and c.next_sequence == 13


def test_a_partly_recovered_gap_is_not_a_recovered_gap() -> None:
    c = client()
    feed(c, 10, 14)  # 11, 12, 13 missing
    feed(c, 12)  # late on its own
    c._start_recovery(c.next_sequence)  # type: ignore[arg-type]
    assert feed(c, 11, 13, 14, 15) == [11, 13, 15]
    assert c.stats.recovered_messages == 2 and c.stats.recovered_gaps == []


def test_without_recovery_the_client_resumes_after_its_last_message() -> None:
    c = client(recover_gaps=False)
    feed(c, 10, 12)
    assert c.next_sequence == 13 and c.contiguous_sequence == 12
    assert c._recovery_wait(10**12) is None


def test_a_repeat_outside_a_recovery_is_still_a_duplicate() -> None:
    c = client()
    feed(c, 10, 11, 12)
    assert feed(c, 11) == [] and c.stats.duplicates == [11] and c.stats.replayed == 0


def report_with(stats: dict[str, object]) -> EdgeReport:
    from pytest_gashammer.telemetry.records import TxLog

    return EdgeReport(
        edge_id="e0",
        host="h",
        clock_origin_ns=0,
        wall_origin_ns=0,
        digest=digest_of(TxLog()),
        feed_stats=stats,
    )


def test_the_verdict_passes_recovered_gaps_and_says_so() -> None:
    stats = {
        "gaps": [[12, 13]],
        "gap_count": 1,
        "recovered_gaps": [[12, 13]],
        "recovered_gap_count": 1,
        "duplicates": [],
    }
    verdict = feed_sequence([report_with(stats)], 3.0)
    assert verdict.status == "passed"
    assert "1 gap(s) lost in transit were recovered" in verdict.summary


def test_the_verdict_fails_a_gap_that_was_not_recovered() -> None:
    stats = {
        "gaps": [[12, 13], [20, 22]],
        "gap_count": 2,
        "recovered_gaps": [[12, 13]],
        "recovered_gap_count": 1,
        "duplicates": [],
    }
    verdict = feed_sequence([report_with(stats)], 3.0)
    assert verdict.status == "failed"
    assert verdict.evidence["problems"] == ["e0: gap: expected sequence 20, got 22"]
