"""Edge reports built by hand from the transaction log columns, so each test states exactly what the
edges saw (the oracle, aggregation and TxLog tests share them)."""

from __future__ import annotations

from pytest_gashammer.telemetry.digest import RunDigest
from pytest_gashammer.telemetry.records import (
    STATUS_ACCEPTED,
    STATUS_INCLUDED,
    STATUS_REJECTED,
    STATUS_SENT,
    EdgeReport,
    TxLog,
)

ALICE = "0xA11CE00000000000000000000000000000000001"
BOB = "0xB0B0000000000000000000000000000000000002"
ORIGIN = 1_000_000_000_000
GAP_FILLER = -1
#: The sustain phase of the tests' plans (warmup 1 s, sustain 10 s), in seconds from the origin.
SUSTAIN = (1.0, 11.0)


def ns(seconds: float, origin: int = ORIGIN) -> int:
    return origin + round(seconds * 1e9)


def tx_hash(n: int) -> bytes:
    return bytes([0xAB]) + n.to_bytes(31, "big")


class Log:
    """Builds a :class:`TxLog` one transaction at a time, times in seconds after ``origin``."""

    def __init__(self, origin: int = ORIGIN) -> None:
        self.txs = TxLog()
        self.origin = origin

    def add(
        self,
        *,
        intended: float,
        sent: float | None = None,
        accepted: float | None = None,
        included: float | None = None,
        rejected: str | None = None,
        status: int | None = None,
        gas_used: int | None = None,
        gas_planned: int = 21_000,
        template: int = 0,
        sender: int = 0,
        nonce: int = 0,
    ) -> str:
        log = self.txs
        row = log.append(template, sender, nonce, gas_planned, ns(intended, self.origin), tx_hash(len(log)))
        if sent is not None:
            log.sent_ns[row] = ns(sent, self.origin)
            log.state[row] = STATUS_SENT
        if accepted is not None:
            log.accepted_ns[row] = ns(accepted, self.origin)
            log.state[row] = STATUS_ACCEPTED
        if rejected is not None:
            log.error[row] = log.error_code(rejected)
            log.state[row] = STATUS_REJECTED
        if included is not None:
            log.included_ns[row] = ns(included, self.origin)
            log.block_number[row] = 100 + row
            log.inclusions[row] = 1
            log.state[row] = STATUS_INCLUDED
        if status is not None:
            log.receipt_status[row] = status
        if gas_used is not None:
            log.gas_used[row] = gas_used
        return log.tx_hash(row)

    def ok(
        self, intended: float, *, nonce: int = 0, sender: int = 0, template: int = 0, latency: float = 1.0
    ) -> str:
        """A transaction sent on time, accepted, included ``latency`` later with status 1."""
        return self.add(
            intended=intended,
            sent=intended,
            accepted=intended + 0.01,
            included=intended + latency,
            status=1,
            gas_used=21_000,
            nonce=nonce,
            sender=sender,
            template=template,
        )


def report_of(
    log: Log,
    *,
    edge_id: str = "edge-0",
    senders: tuple[str, ...] = (ALICE, BOB),
    starts: tuple[int, ...] = (0, 0),
    foreign: list[list[int]] | None = None,
    templates: tuple[str, ...] = ("transfer",),
    expected_status: tuple[int, ...] = (1,),
    sustain: tuple[float, float] = SUSTAIN,
    inclusion_timeout: float = 30.0,
    fault_windows: tuple[tuple[float, float], ...] = (),
    **fields: object,
) -> EdgeReport:
    """The report an edge would send after digesting every row of ``log`` (``sustain`` and
    ``inclusion_timeout`` are the plan's, as the edge has them)."""
    gas_model = [21_000.0] * len(templates)
    estimate = fields.get("template_gas_estimate") or gas_model
    digest = RunDigest.of_log(
        log.txs,
        origin_ns=log.origin,
        sustain=sustain,
        inclusion_timeout=inclusion_timeout,
        templates=templates,
        expected_status=expected_status,
        gas_estimate=estimate,  # type: ignore[arg-type]
        gas_tolerance=[0.0] * len(templates),
        fault_windows=fault_windows,
    )
    return EdgeReport(
        edge_id=edge_id,
        host="localhost",
        clock_origin_ns=log.origin,
        wall_origin_ns=1_700_000_000_000_000_000,
        digest=digest,
        templates=list(templates),
        template_expected_status=list(expected_status),
        template_gas_model=gas_model,
        template_gas_tolerance=[0.0] * len(templates),
        sender_addresses=list(senders),
        sender_start_nonces=list(starts),
        sender_foreign_nonces=foreign if foreign is not None else [[] for _ in senders],
        **fields,  # type: ignore[arg-type]
    )


def digest_of(txs: TxLog, *, templates: tuple[str, ...] = ("transfer",)) -> RunDigest:
    """Every row of ``txs`` digested, with the tests' usual plan (origin :data:`ORIGIN`)."""
    return RunDigest.of_log(
        txs,
        origin_ns=ORIGIN,
        sustain=SUSTAIN,
        inclusion_timeout=30.0,
        templates=templates,
        expected_status=[1] * len(templates),
        gas_estimate=[21_000.0] * len(templates),
        gas_tolerance=[0.0] * len(templates),
    )
