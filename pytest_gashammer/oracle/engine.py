"""The Engine API invariants and figures, from the calls the plugin's consensus driver made.

Pure: the run's :class:`~pytest_gashammer.chain.engine.EngineCall` and
:class:`~pytest_gashammer.chain.engine.BlockBuild` records in (the driver's log between the run's
start and the end of the drain), :class:`~pytest_gashammer.results.EngineFigures` and verdicts out.
Every failure names the call: method, block, payload id, the status the client gave. A run in which
the driver built nothing, or whose pool could not be read, makes the checks it touches
inconclusive, with the reason, never a silent pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pytest_gashammer.chain.engine import ZERO_HASH, BlockBuild, EngineCall
from pytest_gashammer.results import EngineBlockRow, EngineCallRow, EngineFigures, LatencyStats, Verdict
from pytest_gashammer.telemetry.sketch import EVIDENCE_LIMIT
from pytest_gashammer.vocabulary import (
    ENGINE_HEAD,
    ENGINE_LATEST_VALID_HASH,
    ENGINE_PAYLOAD_IDS,
    ENGINE_PAYLOAD_VALID,
    ENGINE_POOL_DRAINED,
    selected_invariants,
)

FORKCHOICE = "forkchoiceUpdated"
GET_PAYLOAD = "getPayload"
NEW_PAYLOAD = "newPayload"
#: Calls that failed: no answer, a JSON-RPC error, or an answer the client should not have given.
ERROR = "ERROR"


@dataclasses.dataclass(frozen=True)
class PoolAfterDrain:
    """What the client's pool held once the driver had built blocks after the run.

    ``pending`` is None when the pool could not be read (``problem`` says why); ``examples`` are
    hashes of transactions still in it, where the client lists them.
    """

    pending: int | None
    queued: int = 0
    waited_s: float = 0.0
    examples: tuple[str, ...] = ()
    problem: str | None = None


@dataclasses.dataclass(frozen=True)
class EngineRun:
    """The driver's records of one run, what the invariants and figures are computed from."""

    calls: Sequence[EngineCall]
    builds: Sequence[BlockBuild]
    version: int
    pool: PoolAfterDrain | None = None
    #: Records the driver's bounded log had already let go of when the run ended.
    dropped: int = 0


def _limited(items: Sequence[Any]) -> list[Any]:
    return list(items[:EVIDENCE_LIMIT])


def _describe(call: EngineCall) -> str:
    block = f" block {call.block_number}" if call.block_number is not None else ""
    what = f"{call.method}V{call.version}{block}"
    if call.block_hash:
        what += f" ({call.block_hash})"
    if call.status == ERROR:
        return f"{what}: failed: {call.error or 'no reason given'}"
    return f"{what}: {call.status}" + (f" ({call.error})" if call.error else "")


# ----------------------------------------------------------------------------------------------
# the invariants


def payload_valid(run: EngineRun) -> Verdict:
    """Every payload the client built is VALID when handed back to it (newPayload)."""
    imports = [call for call in run.calls if call.method == NEW_PAYLOAD]
    if not imports:
        return Verdict(
            ENGINE_PAYLOAD_VALID, "inconclusive", "the driver handed the client no payload during the run"
        )
    refused = [call for call in imports if call.status != "VALID"]
    evidence: dict[str, Any] = {"imported": len(imports), "not_valid": len(refused)}
    if refused:
        evidence["calls"] = _limited([_describe(call) for call in refused])
        evidence["statuses"] = dict(Counter(call.status for call in refused))
        return Verdict(
            ENGINE_PAYLOAD_VALID,
            "failed",
            f"{len(refused)} of {len(imports)} payload(s) the client built were not VALID on import; "
            f"first: {_describe(refused[0])}",
            evidence,
        )
    return Verdict(
        ENGINE_PAYLOAD_VALID,
        "passed",
        f"all {len(imports)} payload(s) the client built were VALID on import",
        evidence,
    )


def head_follows(run: EngineRun) -> Verdict:
    """After forkchoiceUpdated to a new block, the call said VALID and the node names that block its head."""
    selections = [call for call in run.calls if call.method == FORKCHOICE and not call.with_attributes]
    if not selections and not run.builds:
        return Verdict(ENGINE_HEAD, "inconclusive", "the driver moved no head during the run")
    # Any answered forkchoiceUpdated (with payload attributes too) that is not VALID left the head unselected.
    findings = [
        f"{_describe(call)}: the head was not selected"
        for call in run.calls
        if call.method == FORKCHOICE and call.status not in ("VALID", ERROR)
    ]
    checked = 0
    for build in run.builds:
        if build.head_after is None:
            continue
        checked += 1
        if build.head_after != build.block_hash:
            findings.append(
                f"block {build.number} ({build.block_hash}) selected, yet the node's head right after was "
                f"{build.head_after}"
            )
    evidence: dict[str, Any] = {"selections": len(selections), "heads_read": checked}
    if findings:
        evidence["findings"] = _limited(findings)
        return Verdict(ENGINE_HEAD, "failed", findings[0], evidence)
    if not checked:
        return Verdict(
            ENGINE_HEAD,
            "inconclusive",
            f"{len(selections)} head selection(s) VALID, but the node's head was never read after one",
            evidence,
        )
    return Verdict(
        ENGINE_HEAD,
        "passed",
        f"{len(selections)} head selection(s) VALID; the node named each new block its head ({checked} read)",
        evidence,
    )


def latest_valid_hash(run: EngineRun) -> Verdict:
    """VALID names the block validated; INVALID names an ancestor (or nothing); SYNCING and ACCEPTED name nothing."""
    known = {build.block_hash for build in run.builds} | {build.parent_hash for build in run.builds}
    known |= {call.block_hash for call in run.calls if call.block_hash and call.status == "VALID"}
    findings: list[str] = []
    not_given = 0
    judged = 0
    for call in run.calls:
        if call.method not in (FORKCHOICE, NEW_PAYLOAD) or call.status in (ERROR, "OK"):
            continue
        judged += 1
        named = call.latest_valid_hash
        if call.status == "VALID":
            if named is None:
                not_given += 1
            elif call.block_hash and named.lower() != call.block_hash.lower():
                findings.append(
                    f"{_describe(call)} named latestValidHash {named}, not the block it validated"
                )
        elif call.status == "INVALID":
            if named is not None and named != ZERO_HASH and named not in known:
                findings.append(
                    f"{_describe(call)} named latestValidHash {named}, which is no block of the chain seen"
                )
            if named is not None and named == call.block_hash:
                findings.append(
                    f"{_describe(call)} named the invalid block itself as its latest valid ancestor"
                )
        elif call.status in ("SYNCING", "ACCEPTED") and named is not None:
            findings.append(f"{_describe(call)} named latestValidHash {named}; {call.status} must name none")
    evidence: dict[str, Any] = {"statuses_judged": judged, "valid_without_latest_valid_hash": not_given}
    if findings:
        evidence["findings"] = _limited(findings)
        return Verdict(ENGINE_LATEST_VALID_HASH, "failed", findings[0], evidence)
    if not judged:
        return Verdict(
            ENGINE_LATEST_VALID_HASH, "inconclusive", "no payload status was given during the run", evidence
        )
    summary = f"{judged} payload status(es) consistent with the chain"
    if not_given:
        summary += f"; {not_given} VALID without latestValidHash"
    return Verdict(ENGINE_LATEST_VALID_HASH, "passed", summary, evidence)


def payload_ids(run: EngineRun) -> Verdict:
    """Every build asked for (fcU with attributes, VALID) got a payload id, and getPayload served it."""
    asked = [call for call in run.calls if call.method == FORKCHOICE and call.with_attributes]
    if not asked:
        return Verdict(ENGINE_PAYLOAD_IDS, "inconclusive", "the driver asked for no build during the run")
    served = {call.payload_id for call in run.calls if call.method == GET_PAYLOAD and call.status != ERROR}
    refused = [call for call in run.calls if call.method == GET_PAYLOAD and call.status == ERROR]
    findings = [
        f"{_describe(call)}: VALID with payload attributes but no payload id"
        for call in asked
        if call.status == "VALID" and not call.payload_id
    ]
    findings += [
        f"getPayloadV{call.version} of payload id {call.payload_id}: {call.error}" for call in refused
    ]
    last_started = max(call.started_at for call in run.calls)
    refused_ids = {call.payload_id for call in refused}
    for call in asked:
        # A build still in progress when the log was read has no getPayload yet: not a finding.
        fetched = call.payload_id in served or call.payload_id in refused_ids
        if call.payload_id and not fetched and call.started_at < last_started:
            findings.append(
                f"payload id {call.payload_id} (fcU at block {call.block_number}) was never fetched"
            )
    evidence: dict[str, Any] = {"builds_asked": len(asked), "payloads_served": len(served)}
    if findings:
        evidence["findings"] = _limited(findings)
        return Verdict(
            ENGINE_PAYLOAD_IDS, "failed", f"{len(findings)} problem(s); first: {findings[0]}", evidence
        )
    return Verdict(
        ENGINE_PAYLOAD_IDS,
        "passed",
        f"{len(asked)} build(s) asked for, each given a payload id that getPayload served",
        evidence,
    )


def pool_drained(run: EngineRun) -> Verdict:
    """Nothing accepted into the client's pool is left unbuilt once the driver has built past the run."""
    pool = run.pool
    if pool is None:
        return Verdict(ENGINE_POOL_DRAINED, "inconclusive", "the client's pool was not read after the run")
    if pool.pending is None:
        return Verdict(
            ENGINE_POOL_DRAINED, "inconclusive", f"the client's pool could not be read: {pool.problem}"
        )
    evidence: dict[str, Any] = {
        "pending": pool.pending,
        "queued": pool.queued,
        "waited_s": round(pool.waited_s, 3),
    }
    left = pool.pending + pool.queued
    if left:
        evidence["examples"] = list(pool.examples[:EVIDENCE_LIMIT])
        return Verdict(
            ENGINE_POOL_DRAINED,
            "failed",
            f"{left} transaction(s) still in the client's pool {pool.waited_s:.1f} s after the run "
            f"({pool.pending} pending, {pool.queued} queued): accepted, never built",
            evidence,
        )
    return Verdict(
        ENGINE_POOL_DRAINED, "passed", f"the pool was empty {pool.waited_s:.1f} s after the run", evidence
    )


ENGINE_INVARIANTS: dict[str, Callable[[EngineRun], Verdict]] = {
    ENGINE_PAYLOAD_VALID: payload_valid,
    ENGINE_HEAD: head_follows,
    ENGINE_LATEST_VALID_HASH: latest_valid_hash,
    ENGINE_PAYLOAD_IDS: payload_ids,
    ENGINE_POOL_DRAINED: pool_drained,
}


def wanted_engine_invariants(only: Sequence[str] | None, skip: Sequence[str]) -> list[str]:
    """The engine invariants a plan asks for (``invariants=`` / ``skip_invariants=``), in catalogue order."""
    return selected_invariants(ENGINE_INVARIANTS, only, skip)


def engine_verdicts(
    run: EngineRun, *, only: Sequence[str] | None = None, skip: Sequence[str] = ()
) -> list[Verdict]:
    """The verdicts of the engine invariants asked for."""
    return [ENGINE_INVARIANTS[name](run) for name in wanted_engine_invariants(only, skip)]


def engine_unavailable(
    reason: str, *, only: Sequence[str] | None = None, skip: Sequence[str] = ()
) -> list[Verdict]:
    """Every engine invariant asked for, inconclusive for ``reason``."""
    return [Verdict(name, "inconclusive", reason) for name in wanted_engine_invariants(only, skip)]


# ----------------------------------------------------------------------------------------------
# the figures


def engine_figures(run: EngineRun, *, time_origin: float) -> EngineFigures:
    """The run's engine figures; row times count from ``time_origin`` (unix seconds, the run's t=0)."""

    def latencies(method: str) -> LatencyStats:
        return LatencyStats.of([call.latency for call in run.calls if call.method == method])

    statuses: dict[str, dict[str, int]] = {}
    for call in run.calls:
        by_status = statuses.setdefault(call.method, {})
        by_status[call.status] = by_status.get(call.status, 0) + 1
    cpu = [build.driver_cpu_s for build in run.builds]
    return EngineFigures(
        version=run.version,
        blocks_built=len(run.builds),
        calls=len(run.calls),
        failed_calls=sum(1 for call in run.calls if call.status == ERROR),
        forkchoice_updated=latencies(FORKCHOICE),
        get_payload=latencies(GET_PAYLOAD),
        new_payload=latencies(NEW_PAYLOAD),
        block_build=LatencyStats.of([build.build_s for build in run.builds]),
        block_import=LatencyStats.of([build.import_s for build in run.builds]),
        transactions_per_block=(
            sum(build.transactions for build in run.builds) / len(run.builds) if run.builds else math.nan
        ),
        driver_cpu_per_block_s=sum(cpu) / len(cpu) if cpu else math.nan,
        statuses=statuses,
        call_rows=[
            EngineCallRow(
                t=call.started_at - time_origin,
                method=call.method,
                version=call.version,
                latency=call.latency,
                status=call.status,
                block_number=call.block_number,
                block_hash=call.block_hash,
                transactions=call.transactions,
                payload_id=call.payload_id,
                latest_valid_hash=call.latest_valid_hash,
                with_attributes=call.with_attributes,
                error=call.error,
            )
            for call in run.calls
        ],
        block_rows=[
            EngineBlockRow(
                t=build.started_at - time_origin,
                number=build.number,
                block_hash=build.block_hash,
                transactions=build.transactions,
                gas_used=build.gas_used,
                build_s=build.build_s,
                import_s=build.import_s,
                driver_cpu_s=build.driver_cpu_s,
                head_after=build.head_after,
            )
            for build in run.builds
        ],
        dropped=run.dropped,
    )


__all__ = [
    "ENGINE_INVARIANTS",
    "EngineRun",
    "PoolAfterDrain",
    "engine_figures",
    "engine_unavailable",
    "engine_verdicts",
    "wanted_engine_invariants",
]
