"""Flat, columnar per-transaction bookkeeping for the hot path.

One row per transaction, one typed array per column, no object per transaction: memory stays
bounded and predictable on long runs, and the columns convert to Arrow without copying row by
row. Times are nanoseconds on the edge's monotonic clock; ``-1`` means "not (yet) happened".
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from pytest_gashammer.telemetry.digest import RunDigest

NOT_YET = -1

# Status codes of a transaction in the edge's view.
STATUS_SCHEDULED = 0
STATUS_SENT = 1
STATUS_ACCEPTED = 2
STATUS_REJECTED = 3
STATUS_INCLUDED = 4

#: Why an edge stopped before its plan ended, as a value the hive acts on (the text says the detail):
#: ``fail-fast`` a hard invariant broke (the hive stops the run's other edges too), ``time-budget``
#: the run overran, ``not-armed`` the edge was not ready in time, ``interrupted`` Ctrl-C,
#: ``shutdown`` the edge's host closed, ``drain`` stop sending and drain as at the plan's end (a
#: stop through the live API), ``requested`` any other stop.
StopKind = Literal["fail-fast", "time-budget", "not-armed", "interrupted", "shutdown", "drain", "requested"]


class Stored(NamedTuple):
    """A ``transactions`` column (``telemetry/schema.py``) made from a :class:`TxLog` column."""

    column: str
    #: ``int64``, ``int32``, ``int8``, ``bool`` or ``dict`` (a dictionary-encoded string).
    type: str
    #: Never null.
    required: bool = False


class TxColumn(NamedTuple):
    """One :class:`TxLog` column: its array type, what a new row holds, what it is stored as."""

    name: str
    #: The ``array`` typecode.
    typecode: str
    #: What a new row holds; ``None`` when ``append``/``extend`` take it (in declaration order).
    initial: int | None
    #: The ``transactions`` columns the telemetry cursor makes of it, in the table's order.
    stored: tuple[Stored, ...]


class TxLog:
    """Columns of the transactions an edge scheduled, from row :attr:`base` on.

    :attr:`COLUMNS` declares them once: the log's arrays, ``append``/``extend``, shipping
    (``to_columns``), the telemetry cursor and the stored ``transactions`` schema follow it. The
    annotations below only name the arrays for type checkers (a test holds them equal).

    Rows are numbered over the whole run; the log holds rows ``base .. len(log) - 1``. Once a
    prefix of rows is final (streamed and digested), :meth:`forget_before` drops it, so an edge's
    memory is bounded by what is in flight, not by the run's length. Row ``r`` sits at index
    ``r - base`` of every array; :meth:`at` says so in one place.
    """

    COLUMNS: tuple[TxColumn, ...] = (
        TxColumn("template", "h", None, (Stored("template", "dict", True),)),
        TxColumn("sender", "l", None, (Stored("sender_index", "int32", True), Stored("sender", "dict"))),
        TxColumn("nonce", "q", None, (Stored("nonce", "int64", True),)),
        TxColumn("gas_planned", "q", None, (Stored("gas_planned", "int64", True),)),
        TxColumn("gas_used", "q", NOT_YET, (Stored("gas_used", "int64"),)),
        TxColumn(
            "receipt_status",
            "b",
            NOT_YET,
            (Stored("receipt_status", "int8"), Stored("receipt_sampled", "bool", True)),
        ),
        TxColumn("state", "b", STATUS_SCHEDULED, (Stored("state", "dict", True),)),
        TxColumn("error", "h", NOT_YET, (Stored("error_kind", "dict"),)),
        # The phase is where the intended send time falls on the plan's timeline.
        TxColumn("intended_ns", "q", None, (Stored("phase", "dict"), Stored("scheduled_ns", "int64", True))),
        TxColumn("sent_ns", "q", NOT_YET, (Stored("sent_ns", "int64"),)),
        TxColumn("accepted_ns", "q", NOT_YET, (Stored("accepted_ns", "int64"),)),
        TxColumn("included_ns", "q", NOT_YET, (Stored("included_ns", "int64"),)),
        TxColumn("block_number", "q", NOT_YET, (Stored("block_number", "int64"),)),
        TxColumn("inclusions", "b", 0, (Stored("inclusions", "int8", True),)),
    )

    template: array[int]
    sender: array[int]
    nonce: array[int]
    gas_planned: array[int]
    gas_used: array[int]
    receipt_status: array[int]
    state: array[int]
    error: array[int]
    intended_ns: array[int]
    sent_ns: array[int]
    accepted_ns: array[int]
    included_ns: array[int]
    block_number: array[int]
    inclusions: array[int]

    def __init__(self) -> None:
        for column in self.COLUMNS:
            setattr(self, column.name, array(column.typecode))
        self.hashes = bytearray()
        self.error_kinds: list[str] = []
        self._error_codes: dict[str, int] = {}
        #: The first row still held; rows below it were final and are forgotten.
        self.base = 0

    def __len__(self) -> int:
        """Rows logged over the whole run (the next row's number), forgotten ones included."""
        return self.base + len(self.template)

    @property
    def held(self) -> int:
        """Rows still held (``len(self) - base``)."""
        return len(self.template)

    def at(self, row: int) -> int:
        """The array index of ``row``."""
        return row - self.base

    def forget_before(self, row: int) -> None:
        """Drop every row below ``row`` (they are final and digested); later rows keep their numbers."""
        count = min(row, len(self)) - self.base
        if count <= 0:
            return
        for column in self.COLUMNS:
            del getattr(self, column.name)[:count]
        del self.hashes[: count * 32]
        self.base += count

    def append(
        self, template: int, sender: int, nonce: int, gas_planned: int, intended_ns: int, tx_hash: bytes
    ) -> int:
        row = len(self)
        given = iter((template, sender, nonce, gas_planned, intended_ns))
        for column in self.COLUMNS:
            getattr(self, column.name).append(next(given) if column.initial is None else column.initial)
        self.hashes += tx_hash
        return row

    def extend(
        self,
        templates: Sequence[int],
        senders: Sequence[int],
        nonces: Sequence[int],
        gas_planned: Sequence[int],
        intended_ns: Sequence[int],
        hashes: bytes,
    ) -> int:
        """Append a block of scheduled transactions at once; the row of the first one.

        The hot path signs transactions in chunks; one ``array.extend`` per column and chunk costs a
        fraction of fourteen ``append`` calls per transaction.
        """
        count = len(templates)
        lengths = {len(senders), len(nonces), len(gas_planned), len(intended_ns)}
        if lengths != {count} or len(hashes) != 32 * count:
            raise ValueError("TxLog.extend: every column needs one value per transaction")
        first = len(self)
        given = iter((templates, senders, nonces, gas_planned, intended_ns))
        for column, fill in zip(self.COLUMNS, _FILLS, strict=True):
            getattr(self, column.name).extend(next(given) if fill is None else fill * count)
        self.hashes += hashes
        return first

    def truncate(self, rows: int) -> None:
        """Forget every row from ``rows`` on (transactions signed ahead that were never sent)."""
        index = max(rows - self.base, 0)
        for column in self.COLUMNS:
            del getattr(self, column.name)[index:]
        del self.hashes[index * 32 :]

    def mark_sent(self, first: int, count: int, sent_ns: int) -> None:
        """Rows ``first .. first+count-1`` went out in one request at ``sent_ns``."""
        first -= self.base
        end = first + count
        self.sent_ns[first:end] = array("q", (sent_ns,)) * count
        self.state[first:end] = array("b", (STATUS_SENT,)) * count

    def mark_accepted(self, first: int, count: int, accepted_ns: int) -> int:
        """The node accepted rows ``first .. first+count-1`` (freshly sent, none answered before).

        A row may already be in a block the tracker saw before the answer arrived; it keeps its
        state. Returns how many rows are now accepted and waiting for inclusion.
        """
        first -= self.base
        end = first + count
        self.accepted_ns[first:end] = array("q", (accepted_ns,)) * count
        state = self.state
        if STATUS_INCLUDED not in state[first:end]:
            state[first:end] = array("b", (STATUS_ACCEPTED,)) * count
            return count
        waiting = 0
        for row in range(first, end):
            if state[row] != STATUS_INCLUDED:
                state[row] = STATUS_ACCEPTED
                waiting += 1
        return waiting

    def gas(self, row: int) -> int:
        """Gas of ``row``: as its receipt reported when one was checked, else as planned."""
        index = row - self.base
        used = self.gas_used[index]
        return used if used != NOT_YET else self.gas_planned[index]

    def hash_bytes(self, row: int) -> bytes:
        index = row - self.base
        return bytes(self.hashes[index * 32 : index * 32 + 32])

    def tx_hash(self, row: int) -> str:
        return "0x" + self.hash_bytes(row).hex()

    def error_code(self, kind: str) -> int:
        code = self._error_codes.get(kind)
        if code is None:
            code = self._error_codes[kind] = len(self.error_kinds)
            self.error_kinds.append(kind)
        return code

    def to_columns(self) -> dict[str, Any]:
        """Plain-data columns (bytes per array, of the rows held) for shipping to another process."""
        columns: dict[str, Any] = {
            column.name: getattr(self, column.name).tobytes() for column in self.COLUMNS
        }
        columns["hashes"] = bytes(self.hashes)
        columns["error_kinds"] = list(self.error_kinds)
        columns["base"] = self.base
        return columns

    @classmethod
    def from_columns(cls, columns: dict[str, Any]) -> TxLog:
        log = cls()
        for column in cls.COLUMNS:
            getattr(log, column.name).frombytes(columns[column.name])
        log.hashes = bytearray(columns["hashes"])
        log.base = columns.get("base", 0)
        for kind in columns["error_kinds"]:
            log.error_code(kind)
        return log


#: Per column, one new row's value as a one-item array (``None``: given), for ``extend``.
_FILLS: tuple[array[int] | None, ...] = tuple(
    None if column.initial is None else array(column.typecode, (column.initial,)) for column in TxLog.COLUMNS
)
#: The columns ``append`` and ``extend`` take, in their parameters' order.
GIVEN_COLUMNS: tuple[str, ...] = tuple(column.name for column in TxLog.COLUMNS if column.initial is None)


@dataclass
class BlockRecord:
    """A block the edge observed, with when it saw it."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int
    gas_used: int
    gas_limit: int
    tx_count: int
    observed_ns: int
    base_fee: int | None = None


#: Distinct verbatim messages kept per rejection kind; later new wordings only add to the kind's count.
REJECTION_SAMPLES_PER_KIND = 10


class RejectionSample:
    """The node's own words for the transactions it refused: per kind, the first distinct messages.

    The kind (``chain/node_errors.py``) is what the edge reacts to; the message and code are what a
    person needs to see why. Counting stays exact per message kept; a kind's total is in the
    edge's ``errors``. Off the hot path: only refused transactions come here.
    """

    def __init__(self, limit: int = REJECTION_SAMPLES_PER_KIND) -> None:
        self.limit = limit
        self._entries: dict[tuple[str, int | None, str], dict[str, Any]] = {}
        self._per_kind: dict[str, int] = {}

    def add(self, kind: str, code: int | None, message: str, tx_hash: str, sender: str, nonce: int) -> None:
        key = (kind, code, message)
        entry = self._entries.get(key)
        if entry is not None:
            entry["count"] += 1
            return
        if self._per_kind.get(kind, 0) >= self.limit:
            return
        self._per_kind[kind] = self._per_kind.get(kind, 0) + 1
        self._entries[key] = {
            "kind": kind,
            "code": code,
            "message": message,
            "count": 1,
            "first_tx": tx_hash,
            "sender": sender,
            "nonce": nonce,
        }

    def to_list(self) -> list[dict[str, Any]]:
        """Plain data, in the order first seen."""
        return [dict(entry) for entry in self._entries.values()]


def merge_rejections(
    samples: Sequence[Sequence[dict[str, Any]]], limit: int = REJECTION_SAMPLES_PER_KIND
) -> list[dict[str, Any]]:
    """Several edges' samples as one: equal (kind, code, message) add up, ``limit`` messages per kind,
    the most frequent first."""
    merged: dict[tuple[str, Any, str], dict[str, Any]] = {}
    for sample in samples:
        for entry in sample:
            key = (entry["kind"], entry["code"], entry["message"])
            if key in merged:
                merged[key]["count"] += entry["count"]
            else:
                merged[key] = dict(entry)
    ordered = sorted(merged.values(), key=lambda entry: -entry["count"])
    per_kind: dict[str, int] = {}
    kept = []
    for entry in ordered:
        per_kind[entry["kind"]] = per_kind.get(entry["kind"], 0) + 1
        if per_kind[entry["kind"]] <= limit:
            kept.append(entry)
    return kept


def describe_rejection(entry: dict[str, Any]) -> str:
    """One line: ``kind (code C): 'message' x N, first 0x.. (sender 0x.. nonce N)``."""
    code = "no JSON-RPC answer" if entry["code"] is None else f"code {entry['code']}"
    return (
        f"{entry['kind']} ({code}): {entry['message']!r} x{entry['count']}, first {entry['first_tx']} "
        f"(sender {entry['sender']} nonce {entry['nonce']})"
    )


def describe_stall(seconds: float, head: int) -> str:
    """The one way a stall is written, in evidence and verdicts alike."""
    return f"no new block for {seconds:.1f} s (head stuck at #{head})"


@dataclass
class EdgeReport:
    """Everything an edge hands back to the hive after a run. Plain data."""

    edge_id: str
    host: str
    clock_origin_ns: int  # edge monotonic ns at the plan's t=0
    wall_origin_ns: int  # wall clock at the same instant
    #: The edge's rows, digested as each became final (the rows themselves stay on the edge only
    #: while in flight; the hive's Parquet store has every one).
    digest: RunDigest
    blocks: list[BlockRecord] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    template_expected_status: list[int] = field(default_factory=list)
    template_gas_model: list[float] = field(default_factory=list)  # after correction from receipts
    template_gas_estimate: list[float] = field(default_factory=list)  # calibrated before the clock started
    template_gas_tolerance: list[float] = field(default_factory=list)
    sender_addresses: list[str] = field(default_factory=list)
    sender_start_nonces: list[int] = field(default_factory=list)
    sender_foreign_nonces: list[list[int]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    #: Receipts: ``expected`` rows were included and on the receipt sample; of those, ``checked``
    #: were obtained and checked, ``missing`` never served by the node within the drain's deadline,
    #: ``abandoned`` no longer asked for because the run was stopped (the three add up to it).
    receipts_checked: int = 0
    #: Included rows not on the receipt sample.
    receipts_skipped: int = 0
    receipts_expected: int = 0
    receipts_missing: int = 0
    receipts_abandoned: int = 0
    #: The method the receipts were fetched with (``eth_getBlockReceipts``, or
    #: ``eth_getTransactionReceipt`` when the node refused it); empty when none were wanted.
    receipts_via: str = ""
    duplicates: list[str] = field(default_factory=list)
    #: Checked receipts whose ``blockNumber`` / ``blockHash`` name another block than the one the
    #: transaction was seen in: how many, and the first ones (``"0x<tx> receipt: block N 0x..; seen
    #: in: block M 0x.."``).
    receipt_block_mismatches: int = 0
    receipt_block_items: list[str] = field(default_factory=list)
    sending_finished_ns: int = NOT_YET
    stopped_early: str | None = None
    stop_kind: StopKind | None = None  # set together with stopped_early
    notes: list[str] = field(default_factory=list)
    feed_stats: dict[str, Any] | None = None
    feed_events: list[tuple[str, int, str, int | None]] = field(default_factory=list)
    feed_findings: dict[str, Any] | None = None
    #: Value conservation facts of a transfer-only run with every receipt checked, else None.
    balance_check: dict[str, int] | None = None
    #: Why there are no value-conservation facts (``balance_check`` is None), in words; None when
    #: there are.
    balance_check_skipped: str | None = None
    #: What the node said, after the drain, about the first accepted transactions never seen in a
    #: block: ``{tx_hash: "sender 0x.. nonce N: <diagnosis>"}``.
    lost_probe: dict[str, str] = field(default_factory=dict)
    #: The node's verbatim refusals (:meth:`RejectionSample.to_list`): kind, code, message, count,
    #: the first refused transaction with its sender and nonce.
    rejections: list[dict[str, Any]] = field(default_factory=list)

    #: The longest wait for a new block while transactions were outstanding:
    #: ``{"longest_s", "head", "open_s", "last_head", "bound_s"}`` (``head``: the block the chain
    #: was stuck at; ``open_s``: the wait still on when the run ended; ``bound_s``: the marker's
    #: ``max_block_gap``). None when the edge did not follow blocks.
    chain_stall: dict[str, Any] | None = None
    #: The fee caps this edge signed with: ``{"first", "low", "high", "changes", "ceiling",
    #: "follows_base_fee"}`` (wei); None before the run signed anything.
    fee_caps: dict[str, Any] | None = None
    #: What the edge rode out: JSON-RPC calls asked again, by ``"method: reason"``
    #: (``{"retried": {...}, "gave_up": {...}, "resolved": {...}}``, see ``chain/retry.py``);
    #: empty when nothing failed.
    rpc_retries: dict[str, Any] = field(default_factory=dict)


@dataclass
class Progress:
    """A consistent-enough view of a running edge, read by the host for progress lines."""

    phase: str = "setup"
    elapsed: float = 0.0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    included: int = 0
    included_gas: int = 0
    errors: int = 0
    recent_inclusion_p99: float | None = None
    queued: int = 0  # runs waiting behind this one at the hive
    edges: int = 1
