"""The transaction invariants evaluated after every run.

Each invariant has a stable name, looks at the edges' reports, and returns a
:class:`~pytest_gashammer.hive.result.Verdict` whose evidence lists the first offending items,
so a failure says which promise broke, for which transactions, and where to look.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pytest_gashammer.hive.result import Verdict
from pytest_gashammer.telemetry.records import NOT_YET, STATUS_REJECTED, EdgeReport

EVIDENCE_LIMIT = 20

Invariant = Callable[[Sequence[EdgeReport], float], Verdict]


def inclusion(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Every transaction the node accepted is included, within ``inclusion_timeout`` of its sending."""
    lost: list[str] = []
    late: list[str] = []
    accepted = 0
    limit_ns = int(inclusion_timeout * 1e9)
    for report in reports:
        log = report.txs
        for row in range(len(log)):
            if log.accepted_ns[row] == NOT_YET and log.included_ns[row] == NOT_YET:
                continue
            accepted += 1
            if log.included_ns[row] == NOT_YET:
                lost.append(log.tx_hash(row))
            elif log.included_ns[row] - log.sent_ns[row] > limit_ns:
                late.append(log.tx_hash(row))
    stopped = next((r.stopped_early for r in reports if r.stopped_early), None)
    if accepted == 0:
        return Verdict("inclusion", "inconclusive", "no transaction was accepted, so none could be tracked")
    if lost and stopped:
        return Verdict(
            "inclusion",
            "inconclusive",
            f"{len(lost)} accepted transaction(s) not seen in a block, but the run was stopped early ({stopped})",
            {"not_included": lost[:EVIDENCE_LIMIT]},
        )
    if lost or late:
        evidence: dict[str, object] = {}
        if lost:
            evidence["lost"] = lost[:EVIDENCE_LIMIT]
            evidence["lost_count"] = len(lost)
        if late:
            evidence["late"] = late[:EVIDENCE_LIMIT]
            evidence["late_count"] = len(late)
        return Verdict(
            "inclusion",
            "failed",
            f"{len(lost)} of {accepted} accepted transaction(s) never included and {len(late)} included later than "
            f"{inclusion_timeout:g} s",
            evidence,
        )
    return Verdict(
        "inclusion", "passed", f"all {accepted} accepted transactions included within {inclusion_timeout:g} s"
    )


def no_duplicate_inclusion(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """No transaction appears in more than one block (or twice in one)."""
    duplicates = [tx_hash for report in reports for tx_hash in report.duplicates]
    if duplicates:
        return Verdict(
            "no_duplicate_inclusion",
            "failed",
            f"{len(duplicates)} transaction(s) included more than once",
            {"duplicated": duplicates[:EVIDENCE_LIMIT]},
        )
    return Verdict("no_duplicate_inclusion", "passed", "no transaction was included twice")


def nonce_contiguity(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Per sender, the included nonces run from its starting nonce with no gap and no nonce used twice."""
    gaps: list[str] = []
    reused: list[str] = []
    senders_checked = 0
    for report in reports:
        log = report.txs
        included: dict[int, list[int]] = {}
        for row in range(len(log)):
            if log.included_ns[row] != NOT_YET:
                included.setdefault(log.sender[row], []).append(log.nonce[row])
        for sender, nonces in included.items():
            senders_checked += 1
            address = report.sender_addresses[sender]
            nonces.sort()
            seen: set[int] = set()
            for nonce in nonces:
                if nonce in seen:
                    reused.append(f"{address} nonce {nonce}")
                seen.add(nonce)
            start = report.sender_start_nonces[sender]
            foreign = set(report.sender_foreign_nonces[sender]) if report.sender_foreign_nonces else set()
            missing = sorted(set(range(start, max(seen) + 1)) - seen - foreign)
            if missing:
                shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
                gaps.append(f"{address} missing nonce(s) {shown} below {max(seen)}")
    if not senders_checked:
        return Verdict("nonce_contiguity", "inconclusive", "no included transaction to check")
    if gaps or reused:
        evidence: dict[str, object] = {}
        if gaps:
            evidence["gaps"] = gaps[:EVIDENCE_LIMIT]
        if reused:
            evidence["reused"] = reused[:EVIDENCE_LIMIT]
        return Verdict(
            "nonce_contiguity",
            "failed",
            f"{len(gaps)} sender(s) with a nonce gap, {len(reused)} nonce(s) included twice",
            evidence,
        )
    return Verdict("nonce_contiguity", "passed", f"nonces contiguous for all {senders_checked} senders")


def receipt_status(reports: Sequence[EdgeReport], inclusion_timeout: float) -> Verdict:
    """Each checked receipt has the status its template expects (1 for success, 0 for an intended revert)."""
    wrong: list[str] = []
    checked = 0
    for report in reports:
        log = report.txs
        for row in range(len(log)):
            status = log.receipt_status[row]
            if status == NOT_YET:
                continue
            checked += 1
            template = log.template[row]
            expected = report.template_expected_status[template] if template >= 0 else 1
            if status != expected:
                name = report.templates[template] if template >= 0 else "nonce-gap filler"
                wrong.append(f"{log.tx_hash(row)} ({name}: status {status}, expected {expected})")
    if checked == 0:
        return Verdict(
            "receipt_status", "inconclusive", "no receipt was checked (receipts=0 or nothing included)"
        )
    if wrong:
        return Verdict(
            "receipt_status",
            "failed",
            f"{len(wrong)} of {checked} receipt(s) with an unexpected status",
            {"unexpected": wrong[:EVIDENCE_LIMIT]},
        )
    return Verdict("receipt_status", "passed", f"all {checked} checked receipts have the expected status")


BASIC_INVARIANTS: dict[str, Invariant] = {
    "inclusion": inclusion,
    "no_duplicate_inclusion": no_duplicate_inclusion,
    "nonce_contiguity": nonce_contiguity,
    "receipt_status": receipt_status,
}


def evaluate(reports: Sequence[EdgeReport], inclusion_timeout: float) -> list[Verdict]:
    return [check(reports, inclusion_timeout) for check in BASIC_INVARIANTS.values()]


def rejected_count(reports: Sequence[EdgeReport]) -> int:
    return sum(sum(1 for state in report.txs.state if state == STATUS_REJECTED) for report in reports)
