"""End-to-end throughput and CPU cost of the edge runtime against the embedded devnet.

Run with ``python benchmarks/bench_hot_path.py [--seconds N] [--rates 2M,10M,...] [--rounds N]``. One
embedded anvil devnet (without its feed relay, which nothing follows here) is started and, in the
same run and on the same node, the script measures:

1. a raw baseline: native transfers pre-signed up front with eth-account, then submitted as fast as
   possible in JSON-RPC batches over a few keep-alive aiohttp connections, with no tracking; the
   figure is included tx/s = count / (first send .. last inclusion), which bounds what this node,
   this machine and this transport can do without the edge's per-transaction work;
2. the edge (:class:`~pytest_gashammer.edge.runtime.EdgeRuntime`) at each target gas rate, for
   ``--seconds`` of sustain with no warmup: target, offered, sent and included gas/s, included tx/s,
   lost transactions, inclusion latency, and the edge process's CPU time per transaction sent;
3. one more edge run at half of the best included gas rate: the included gas rate's error against
   the target and the coefficient of variation of included gas per second over the sustain phase;
4. ``--rounds`` interleaved rounds of raw baseline, the edge at its best target, and the raw baseline
   beside a process keeping the edge's CPU share of a core busy: the ratio of the medians, and the
   ceiling that CPU share alone puts on it on this machine.

``--profile PATH`` also writes a CPU profile of the edge thread (cProfile timed by the thread's CPU
clock; a profiler started on the command line would see only the main thread waiting in ``join``).

Every edge run uses a fresh seed, so it derives, funds and uses senders of its own, starting at
nonce 0. An edge keeps no row once it is final (its report carries a digest), so each edge run
streams its rows as a run that stores telemetry does: a ``telemetry_sink`` on the runtime and a
``telemetry_run_id`` on the assignment; the script keeps the ``transactions`` frames and decodes
them after the run (:class:`TxRows`) for the figures the digest does not carry (send rate and lag,
requests, per-second gas on this script's windows). The edge's CPU therefore includes building and
encoding those frames. The script reports and never gates: its exit code is 0 whatever it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import cProfile
import dataclasses
import io
import json
import math
import multiprocessing
import os
import pstats
import random
import statistics
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Imported up front so that no measured edge run pays for the first import.
import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
from eth_account import Account  # noqa: E402

from benchmarks.pinning import GENERATOR_CPU, NODE_CPU, pin_self, pin_to  # noqa: E402
from pytest_gashammer.chain.rpc import RpcError, TransportError, call  # noqa: E402
from pytest_gashammer.devnet.embedded import EmbeddedDevnet  # noqa: E402
from pytest_gashammer.edge.runtime import EdgeAssignment, EdgeRuntime  # noqa: E402
from pytest_gashammer.hive.aggregate import build_result  # noqa: E402
from pytest_gashammer.oracle.invariants import evaluate  # noqa: E402
from pytest_gashammer.results import RunResult  # noqa: E402
from pytest_gashammer.scenario.spec import ScenarioPlan, compile_plan, parse_spec  # noqa: E402
from pytest_gashammer.scenario.units import parse_gas_rate  # noqa: E402
from pytest_gashammer.telemetry.records import NOT_YET, EdgeReport  # noqa: E402
from pytest_gashammer.telemetry.schema import TRANSACTIONS  # noqa: E402
from pytest_gashammer.telemetry.stream import GAP_FILLER_TEMPLATE, frames_to_columns  # noqa: E402

TRANSFER_GAS = 21_000
BASELINE_SENDERS = 32
BASELINE_BATCH = 200
SEED_BASE = 0x6A5_0000  # run i uses SEED_BASE + i: fresh senders per run, reproducible per invocation
SETUP_LIMIT = 90.0  # seconds an edge may spend deriving, calibrating and funding before its clock starts
STOP_GRACE = 30.0  # seconds an edge may take to wrap up after it was asked to stop
INCLUSION_TIMEOUT = 20.0
IDLE_POOL_LIMIT = 20.0  # seconds to wait for the node's pool to empty between measurements
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


# ----------------------------------------------------------------------------------------------
# small helpers


def fmt_rate(gas_per_sec: float) -> str:
    return f"{gas_per_sec / 1e6:.2f}"


def fmt_ms(seconds: float) -> str:
    return "-" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.0f}"


def fmt_share(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.0f}%"


def rate_label(gas_per_sec: float) -> str:
    return f"{gas_per_sec / 1e6:g}M"


class NodeCpu:
    """CPU seconds used by the node process (Linux ``/proc``); ``None`` elsewhere."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def seconds(self) -> float | None:
        if self.pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        if fields[0] in ("Z", "X"):  # exited, not yet reaped
            return None
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime


def devnet_gone(devnet: EmbeddedDevnet) -> str | None:
    """Why the node cannot be measured any more, or ``None`` while it is alive (Linux only)."""
    if devnet.pid is None or not Path("/proc/self/stat").exists():
        return None
    if NodeCpu(devnet.pid).seconds() is None:
        return (
            f"the devnet's anvil (pid {devnet.pid}) is gone: killed from outside this script? "
            "(for one, a test fixture that kills every anvil it did not see before it started)"
        )
    return None


def rpc_batch(url: str, calls: Sequence[tuple[str, list[Any]]], timeout: float = 10.0) -> list[Any]:
    """One blocking JSON-RPC batch; each entry is the result, or ``None`` for an error."""
    body = json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": m, "params": params} for i, (m, params) in enumerate(calls)]
    ).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answers = json.loads(response.read())
    by_id = {answer.get("id"): answer for answer in answers if isinstance(answer, dict)}
    return [by_id.get(i, {}).get("result") for i in range(len(calls))]


def process_cpu() -> tuple[float, float]:
    """(user + system, system) CPU seconds of this process, all threads; anvil is not counted."""
    try:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime, usage.ru_stime
    except ImportError:  # not Unix: no split
        return time.process_time(), 0.0


def wait_for_idle_pool(rpc_url: str, limit: float = IDLE_POOL_LIMIT) -> None:
    """Wait (bounded) until the node's pool holds nothing, so one measurement does not feed the next."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            status = call(rpc_url, "txpool_status", timeout=5)
            if int(status.get("pending", "0x0"), 16) + int(status.get("queued", "0x0"), 16) == 0:
                return
        except (RpcError, TransportError, AttributeError, ValueError):
            return  # a node without txpool_status: nothing to wait for
        time.sleep(0.1)
    print(f"  (the node's pool was still not empty after {limit:.0f} s)")


def node_idle_share(devnet: EmbeddedDevnet, seconds: float = 1.0) -> float | None:
    """The node's CPU, as a share of one core, while nobody sends to it: its cost of mining empty blocks.

    It grows with the chain's state (anvil's per-block work grows with the number of accounts, and
    every transfer to a fresh recipient adds one), so it shows how much earlier measurements in the
    same run have slowed the node down for later ones.
    """
    node_cpu = NodeCpu(devnet.pid)
    before = node_cpu.seconds()
    time.sleep(seconds)
    after = node_cpu.seconds()
    return None if before is None or after is None else (after - before) / seconds


# ----------------------------------------------------------------------------------------------
# 1. raw baseline


@dataclasses.dataclass
class BaselineResult:
    txs: int
    accepted: int
    rejected: int
    included: int
    sign_us_per_tx: float
    send_seconds: float
    span_seconds: float
    node_cpu_share: float | None
    node_idle_share: float | None
    client_cpu_share: float
    errors: dict[str, int]

    @property
    def submit_tx_per_sec(self) -> float:
        return self.accepted / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def included_tx_per_sec(self) -> float:
        return self.included / self.span_seconds if self.span_seconds > 0 else 0.0


@dataclasses.dataclass
class Paired:
    """Rounds of: raw baseline, the edge at its best target, raw baseline beside a CPU burner.

    The node's speed drifts by tens of percent between identical baselines on this kind of machine,
    so the ratio is read from medians of interleaved rounds on the same node state, not from one
    baseline taken minutes earlier on a fresher node.
    """

    baselines: list[BaselineResult] = dataclasses.field(default_factory=list)
    edges: list[EdgeRun] = dataclasses.field(default_factory=list)
    #: The raw baseline while a burner process takes that round's edge CPU share of a core.
    contended: list[BaselineResult] = dataclasses.field(default_factory=list)

    @property
    def baseline_tx_per_sec(self) -> float:
        return statistics.median(b.included_tx_per_sec for b in self.baselines) if self.baselines else 0.0

    @property
    def edge_tx_per_sec(self) -> float:
        return statistics.median(e.span_tx_per_sec for e in self.edges) if self.edges else 0.0

    @property
    def contended_tx_per_sec(self) -> float:
        return statistics.median(b.included_tx_per_sec for b in self.contended) if self.contended else 0.0


def baseline_key(index: int, salt: int = 0) -> str:
    from pytest_gashammer.chain.keccak import keccak256

    counter = 0
    while True:
        prefix = b"gashammer/bench-hot-path/" + salt.to_bytes(8, "big")
        digest = keccak256(prefix + index.to_bytes(8, "big") + bytes([counter]))
        if 0 < int.from_bytes(digest, "big") < _SECP256K1_ORDER:
            return "0x" + digest.hex()
        counter += 1


def baseline_recipients() -> list[bytes]:
    """A fixed pool of recipients, as the ``transfer`` template uses: fresh addresses per transfer
    would grow the node's state run after run and measure that growth, not the submission path."""
    from pytest_gashammer.chain.keccak import keccak256

    return [keccak256(b"gashammer/bench-recipient" + index.to_bytes(8, "big"))[12:] for index in range(1024)]


def sign_sender_transfers(job: tuple[str, int, int, int, int, int]) -> tuple[list[str], float]:
    """Worker: sign ``count`` transfers of one sender from nonce 0. Returns raw hex and CPU seconds."""
    key, chain_id, count, max_fee, tip, seed = job
    account = Account.from_key(key)
    rng = random.Random(seed)
    recipients = baseline_recipients()
    started = time.process_time()
    raws = []
    for nonce in range(count):
        signed = account.sign_transaction(
            {
                "type": 2,
                "chainId": chain_id,
                "nonce": nonce,
                "to": recipients[rng.randrange(len(recipients))],
                "value": 1,
                "gas": TRANSFER_GAS,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
                "data": b"",
            }
        )
        raws.append("0x" + bytes(signed.raw_transaction).hex())
    return raws, time.process_time() - started


def fund_accounts(
    devnet: EmbeddedDevnet, addresses: Sequence[str], amount: int, max_fee: int, tip: int
) -> None:
    funder = Account.from_key(devnet.funder.key)
    nonce = int(call(devnet.rpc_url, "eth_getTransactionCount", [funder.address, "pending"]), 16)
    for offset, address in enumerate(addresses):
        signed = funder.sign_transaction(
            {
                "type": 2,
                "chainId": devnet.chain_id,
                "nonce": nonce + offset,
                "to": address,
                "value": amount,
                "gas": TRANSFER_GAS,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
        )
        call(devnet.rpc_url, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
    last = nonce + len(addresses)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if int(call(devnet.rpc_url, "eth_getTransactionCount", [funder.address, "latest"]), 16) >= last:
            return
        time.sleep(0.05)
    raise RuntimeError("baseline funding transfers were not mined within 30 s")


async def submit_and_wait(
    url: str, bodies: list[bytes], connections: int, addresses: list[str], expected: list[int]
) -> tuple[int, int, dict[str, int], float, float, int]:
    """Send every body over ``connections`` keep-alive connections, then poll the senders' mined nonces.

    Returns accepted, rejected, error counts, send seconds, first-send-to-last-inclusion seconds and
    the number of transactions mined.
    """
    accepted = rejected = 0
    errors: dict[str, int] = {}
    pending = iter(bodies)
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"Content-Type": "application/json"}
    ) as session:

        async def post(body: bytes) -> Any:
            for attempt in range(3):  # a refused connect sent nothing, so it is safe to retry
                try:
                    async with session.post(url, data=body) as response:
                        return json.loads(await response.read())
                except aiohttp.ClientConnectorError as exc:
                    kind = f"connect: {exc.os_error}"[:60]
                    errors[kind] = errors.get(kind, 0) + 1
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.1)
            return None

        async def worker() -> None:
            nonlocal accepted, rejected
            for body in pending:  # one shared iterator: each connection takes the next batch
                answers = await post(body)
                for answer in answers if isinstance(answers, list) else [answers]:
                    if "result" in answer:
                        accepted += 1
                    else:
                        rejected += 1
                        message = str(answer.get("error", {}).get("message", "?"))[:60]
                        errors[message] = errors.get(message, 0) + 1

        first_send = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        sent_done = time.perf_counter()

        poll = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionCount", "params": [a, "latest"]}
                for i, a in enumerate(addresses)
            ]
        ).encode()
        target = sum(expected)
        mined = 0
        last_progress = sent_done
        deadline = sent_done + 60
        while time.perf_counter() < deadline and time.perf_counter() - last_progress < 5:
            answers = sorted(await post(poll), key=lambda item: item["id"])
            now = time.perf_counter()
            counts = [
                min(int(item.get("result") or "0x0", 16), cap)
                for item, cap in zip(answers, expected, strict=True)
            ]
            if sum(counts) > mined:
                mined, last_progress = sum(counts), now
            if mined >= target:
                break
            await asyncio.sleep(0.02)
    return accepted, rejected, errors, sent_done - first_send, last_progress - first_send, mined


def burn_cpu(share: float, stop: Any) -> None:
    """Worker: keep ``share`` of one core busy (in 10 ms periods) until ``stop`` is set."""
    period = 0.010
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < period * share:
            pass
        time.sleep(period * (1.0 - share))


class CpuBurner:
    """A separate process taking ``share`` of one core, stopped on exit whatever happens."""

    def __init__(self, share: float) -> None:
        self.share = min(max(share, 0.0), 1.0)
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._process = context.Process(target=burn_cpu, args=(self.share, self._stop), daemon=True)

    def __enter__(self) -> CpuBurner:
        self._process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


def run_baseline(
    devnet: EmbeddedDevnet,
    txs: int,
    connections: int,
    batch: int = BASELINE_BATCH,
    salt: int = 0,
    burn_share: float = 0.0,
) -> BaselineResult:
    """``burn_share`` > 0 runs a process taking that share of one core while the baseline submits."""
    keys = [baseline_key(index, salt) for index in range(BASELINE_SENDERS)]
    addresses = [Account.from_key(key).address for key in keys]
    per_sender = [
        txs // BASELINE_SENDERS + (1 if i < txs % BASELINE_SENDERS else 0) for i in range(BASELINE_SENDERS)
    ]
    tip = int(call(devnet.rpc_url, "eth_maxPriorityFeePerGas"), 16)
    base_fee = int(
        call(devnet.rpc_url, "eth_getBlockByNumber", ["latest", False]).get("baseFeePerGas", "0x0"), 16
    )
    max_fee = max(2 * base_fee + tip, 1)
    amount = (max(per_sender) + 10) * (TRANSFER_GAS * max_fee + 1) + 10**15
    fund_accounts(devnet, addresses, amount, max_fee, tip)

    print(f"  pre-signing {txs} transfers from {BASELINE_SENDERS} senders with eth-account ...", flush=True)
    jobs = [
        (key, devnet.chain_id, count, max_fee, tip, index)
        for index, (key, count) in enumerate(zip(keys, per_sender, strict=True))
    ]
    workers = max(1, min(os.cpu_count() or 1, 4))
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        signed = list(pool.map(sign_sender_transfers, jobs))
    sign_cpu = sum(cpu for _, cpu in signed)
    # Interleave senders nonce by nonce so each batch carries every sender's next nonces.
    ordered = [
        signed[s][0][n] for n in range(max(per_sender)) for s in range(BASELINE_SENDERS) if n < per_sender[s]
    ]
    bodies = []
    for start in range(0, len(ordered), batch):
        chunk = ordered[start : start + batch]
        bodies.append(
            json.dumps(
                [
                    {"jsonrpc": "2.0", "id": start + i, "method": "eth_sendRawTransaction", "params": [raw]}
                    for i, raw in enumerate(chunk)
                ]
            ).encode()
        )

    wait_for_idle_pool(devnet.rpc_url)
    idle = node_idle_share(devnet)
    node_cpu = NodeCpu(devnet.pid)
    node_before = node_cpu.seconds()
    burner = CpuBurner(burn_share) if burn_share > 0 else contextlib.nullcontext()
    with burner:
        client_before = time.process_time()
        accepted, rejected, errors, send_s, span_s, mined = asyncio.run(
            submit_and_wait(devnet.rpc_url, bodies, connections, addresses, per_sender)
        )
        client_cpu = time.process_time() - client_before
    node_after = node_cpu.seconds()
    share = None
    if node_before is not None and node_after is not None and span_s > 0:
        share = (node_after - node_before) / span_s
    return BaselineResult(
        txs=len(ordered),
        accepted=accepted,
        rejected=rejected,
        included=mined,
        sign_us_per_tx=sign_cpu / max(len(ordered), 1) * 1e6,
        send_seconds=send_s,
        span_seconds=span_s,
        node_cpu_share=share,
        node_idle_share=idle,
        client_cpu_share=client_cpu / span_s if span_s > 0 else math.nan,
        errors=errors,
    )


# ----------------------------------------------------------------------------------------------
# 2. the edge


class ProfiledEdgeRuntime(EdgeRuntime):
    """The edge with cProfile on its own thread, timed by that thread's CPU clock (``--profile``).

    A wall-clock sampler (pyinstrument) run on the command line sees only the main thread, which
    waits in ``join()``; run inside the edge thread, it charges the time the thread is not running
    (on a busy 2-core machine, seconds of wall time in ``socket.send`` that are a tenth of that in
    CPU) to whatever it was doing. The per-transaction cost is CPU, so the profile counts
    ``time.thread_time``; its own overhead inflates code that makes many small Python calls.
    """

    def __init__(self, assignment: EdgeAssignment, **kwargs: Any) -> None:
        super().__init__(assignment, **kwargs)
        self.profile: cProfile.Profile | None = None
        self.profile_done = threading.Event()

    def _thread_main(self) -> None:
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        try:
            super()._thread_main()
        finally:
            profiler.disable()
            self.profile = profiler
            self.profile_done.set()


#: The streamed ``transactions`` columns the figures are computed from.
ROW_COLUMNS = (
    "row",
    "template",
    "sender_index",
    "nonce",
    "gas_planned",
    "gas_used",
    "scheduled_ns",
    "sent_ns",
    "accepted_ns",
    "included_ns",
    "block_number",
)


class FrameSink:
    """The edge's telemetry sink: keeps its ``transactions`` frames, drops the other tables.

    Called on the edge's event-loop thread about once a second; it only appends, so it costs the
    measured run nothing beyond what the edge spends making the frames. They are decoded after the
    run, outside the CPU window.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def __call__(self, table: str, frame: bytes) -> None:
        if table == "transactions":
            self.frames.append(frame)


@dataclasses.dataclass
class TxRows:
    """An edge run's transactions in row order, one numpy column each, decoded from what it streamed.

    Times are ns on the run clock, which for an edge run alone (no hive setting a shared origin)
    is ns since its plan's t=0; ``NOT_YET`` where a thing did not happen, as in the edge's TxLog.
    ``sender`` is the edge's local sender index (its ``report.sender_addresses`` order).
    """

    sender: np.ndarray
    nonce: np.ndarray
    gas_planned: np.ndarray
    gas_used: np.ndarray
    scheduled_ns: np.ndarray
    sent_ns: np.ndarray
    accepted_ns: np.ndarray
    included_ns: np.ndarray
    block_number: np.ndarray
    #: The edge's self-transfers that filled a nonce hole: not part of the workload's gas.
    filler: np.ndarray

    @classmethod
    def from_frames(cls, frames: Sequence[bytes], report: EdgeReport, sender_start: int = 0) -> TxRows:
        """Every row of the run exactly once, or ``RuntimeError``: figures from a partial stream
        would be wrong without saying so."""
        columns = frames_to_columns(frames, TRANSACTIONS, names=ROW_COLUMNS, sort_by="row")
        rows = columns["row"]
        if rows.size != report.digest.rows or not np.array_equal(rows, np.arange(rows.size)):
            notes = [note for note in report.notes if note.startswith("telemetry")]
            raise RuntimeError(
                f"the edge streamed {rows.size} rows ({np.unique(rows).size} distinct) of the "
                f"{report.digest.rows} it digested; telemetry errors: "
                f"{report.errors.get('telemetry', 0)} {notes or ''}".rstrip()
            )
        return cls(
            sender=columns["sender_index"] - sender_start,
            nonce=columns["nonce"],
            gas_planned=columns["gas_planned"],
            gas_used=columns["gas_used"],
            scheduled_ns=columns["scheduled_ns"],
            sent_ns=columns["sent_ns"],
            accepted_ns=columns["accepted_ns"],
            included_ns=columns["included_ns"],
            block_number=columns["block_number"],
            filler=columns["template"] == GAP_FILLER_TEMPLATE,
        )

    def __len__(self) -> int:
        return int(self.nonce.size)

    @property
    def gas(self) -> np.ndarray:
        """Gas per row: as its receipt reported when one was checked, else as planned (``TxLog.gas``)."""
        return np.where(self.gas_used != NOT_YET, self.gas_used, self.gas_planned)


@dataclasses.dataclass
class EdgeRun:
    label: str
    plan: ScenarioPlan
    result: RunResult | None = None
    report: EdgeReport | None = None
    rows: TxRows | None = None  # decoded from the frames the edge streamed
    failure: str | None = None
    stopped: str | None = None
    setup_seconds: float = 0.0
    run_seconds: float = 0.0
    run_cpu: float = 0.0  # process CPU (user + system) from the start gate to the end of the run
    run_cpu_sys: float = 0.0  # of which in the kernel (syscalls, loopback TCP)
    requests: int = 0  # eth_sendRawTransaction batches (rows that share one sent_ns)
    node_cpu_share: float | None = None
    node_idle_share: float | None = None  # measured just before the run
    sent_gas_per_sec: float = 0.0
    send_lag_p99: float = math.nan
    mined: int = 0
    mined_after_edge: int = 0  # accepted, not seen by the edge, but mined (found by polling nonces)
    chain_lost: int = 0  # accepted and never mined
    span_tx_per_sec: float = 0.0
    mean_gas: float = float(TRANSFER_GAS)
    per_second_gas: list[float] = dataclasses.field(default_factory=list)  # window as the RunResult's
    per_second_gas_aligned: list[float] = dataclasses.field(default_factory=list)  # edges between blocks
    per_chain_second_gas: list[float] = dataclasses.field(default_factory=list)  # by block timestamp

    @property
    def us_per_tx(self) -> float:
        sent = self.result.sent if self.result else 0
        return self.run_cpu / sent * 1e6 if sent else math.nan

    @property
    def cpu_share(self) -> float:
        return self.run_cpu / self.run_seconds if self.run_seconds > 0 else math.nan

    @property
    def span_gas_per_sec(self) -> float:
        return self.span_tx_per_sec * self.mean_gas

    @property
    def cv(self) -> float:
        return coefficient_of_variation(self.per_second_gas)

    @property
    def cv_aligned(self) -> float:
        return coefficient_of_variation(self.per_second_gas_aligned)

    @property
    def cv_chain(self) -> float:
        return coefficient_of_variation(self.per_chain_second_gas)


def coefficient_of_variation(values: Sequence[float]) -> float:
    if len(values) < 2 or statistics.fmean(values) <= 0:
        return math.nan
    return statistics.pstdev(values) / statistics.fmean(values)


def run_edge(
    devnet: EmbeddedDevnet,
    gas_per_sec: float,
    seconds: float,
    seed: int,
    connections: int,
    profiles: list[cProfile.Profile] | None,
) -> EdgeRun:
    spec = parse_spec(
        {
            "gas_per_sec": gas_per_sec,
            "duration": seconds,
            "warmup": 0,
            "seed": seed,
            "inclusion_timeout": INCLUSION_TIMEOUT,
        }
    )
    label = rate_label(gas_per_sec)
    plan = compile_plan(spec, name=f"hot-path-{label}", seed=seed)
    run = EdgeRun(label=label, plan=plan)
    assignment = EdgeAssignment(
        edge_id="bench",
        plan=plan.to_dict(),
        rpc_url=devnet.rpc_url,
        ws_url=devnet.ws_url,
        chain_id=devnet.chain_id,
        funder_key=devnet.funder.key,
        sender_start=0,
        sender_count=plan.senders,
        gas_share=1.0,
        connections=connections,
        # With a sink on the runtime, a run id makes the edge stream its final rows (see FrameSink).
        telemetry_run_id=f"bench-{label}-{seed:x}",
    )
    sink = FrameSink()
    gate: dict[str, float] = {}
    node_cpu = NodeCpu(devnet.pid)
    wait_for_idle_pool(devnet.rpc_url)
    run.node_idle_share = node_idle_share(devnet)

    def start_gate() -> None:  # called on an executor thread once setup is done, just before the clock starts
        gate["node"] = node_cpu.seconds() or 0.0
        gate["wall"] = time.perf_counter()
        gate["cpu"], gate["sys"] = process_cpu()

    runtime_class = ProfiledEdgeRuntime if profiles is not None else EdgeRuntime
    runtime = runtime_class(assignment, start_gate=start_gate, telemetry_sink=sink)
    started = time.perf_counter()
    # If the edge (or the node) cannot keep up, the open-loop schedule keeps it sending, or waiting
    # for inclusions, long after the sustain phase; stop it at 1.5 x the plan plus 5 s so the
    # benchmark stays bounded. What it sent and did not see mined is then counted on chain.
    send_limit = plan.sending_time * 1.5 + 5.0
    stop_at: float | None = None
    runtime.start()
    while not runtime.join(0.1):
        now = time.perf_counter()
        if stop_at is None and "wall" not in gate and now - started > SETUP_LIMIT:
            run.stopped, stop_at = "setup exceeded its time limit", now
            runtime.stop(run.stopped)
        elif stop_at is None and "wall" in gate and now - gate["wall"] > send_limit:
            run.stopped, stop_at = f"still running {send_limit:.0f} s after its clock started", now
            runtime.stop(run.stopped)
        if stop_at is not None and now - stop_at > STOP_GRACE:
            run.failure = f"the edge did not stop within {STOP_GRACE:.0f} s"
            return run
    finished = time.perf_counter()
    cpu_end, sys_end = process_cpu()
    node_end = node_cpu.seconds()
    if isinstance(runtime, ProfiledEdgeRuntime) and profiles is not None:
        runtime.profile_done.wait(10)
        if runtime.profile is not None:
            profiles.append(runtime.profile)
    try:
        report = runtime.result()
    except Exception as exc:  # the edge's own error, re-raised here
        run.failure = f"{type(exc).__name__}: {exc}"
        return run
    if "wall" not in gate:
        run.failure = "the edge never finished its setup"
        return run
    run.report = report
    try:
        run.rows = TxRows.from_frames(sink.frames, report, assignment.sender_start)
    except RuntimeError as exc:
        run.failure = str(exc)
        return run
    run.setup_seconds = gate["wall"] - started
    run.run_seconds = finished - gate["wall"]
    run.run_cpu = cpu_end - gate["cpu"]
    run.run_cpu_sys = sys_end - gate["sys"]
    if node_end is not None and run.run_seconds > 0:
        run.node_cpu_share = (node_end - gate["node"]) / run.run_seconds
    verdicts = evaluate([report], plan.inclusion_timeout)
    run.result = build_result(
        plan,
        [report],
        verdicts,
        chain_id=devnet.chain_id,
        devnet_kind=devnet.kind,
        node_version=devnet.node_version,
        duration=finished - started,
    )
    latest, last_progress_ns, poll_start_ns = settle_on_chain(devnet.rpc_url, report)
    analyse(run, latest, last_progress_ns, poll_start_ns)
    return run


def settle_on_chain(
    rpc_url: str, report: EdgeReport, limit: float = 20.0
) -> tuple[list[int], int | None, int]:
    """Poll the senders' mined nonces until everything the node accepted is mined (bounded in time).

    The chain's own count is the truth the edge's view is checked against: after an early stop the
    edge stops following blocks, so what it last sent is mined without it seeing it. What the node
    took per sender is in the digest (its highest accepted or included nonce). Returns the mined
    nonce per sender, when the count last grew (``None`` if it never grew while polling) and when
    polling started, both in ns on the run clock (since the edge's plan t=0, as its rows).
    """
    expected = list(report.sender_start_nonces)
    for sender, highest in report.digest.highest_taken.items():
        expected[sender] = max(expected[sender], highest + 1)
    calls = [("eth_getTransactionCount", [address, "latest"]) for address in report.sender_addresses]
    poll_start = time.monotonic_ns()
    last_progress: int | None = None
    latest: list[int] | None = None
    deadline = time.monotonic() + limit
    stalled_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - stalled_since < 3.0:
        try:
            counts = [int(answer, 16) if answer else 0 for answer in rpc_batch(rpc_url, calls)]
        except (OSError, ValueError):
            time.sleep(0.1)
            continue
        if latest is None or sum(counts) > sum(latest):
            if latest is not None:
                last_progress = time.monotonic_ns()
            latest, stalled_since = counts, time.monotonic()
        if all(have >= want for have, want in zip(latest, expected, strict=True)):
            break
        time.sleep(0.05)
    if latest is None:
        latest = list(report.sender_start_nonces)
    origin = report.clock_origin_ns
    return latest, None if last_progress is None else last_progress - origin, poll_start - origin


def analyse(run: EdgeRun, latest: list[int], last_progress_ns: int | None, poll_start_ns: int) -> None:
    """Figures the RunResult does not carry: achieved send rate, send lag, chain-side rate, per-second gas.

    ``last_progress_ns`` and ``poll_start_ns`` are on the run clock (:func:`settle_on_chain`).
    """
    assert run.report is not None and run.result is not None and run.rows is not None
    report, rows, sustain = run.report, run.rows, run.plan.sustain
    sent = rows.sent_ns != NOT_YET
    first_sent = NOT_YET
    if sent.any():
        sent_at = rows.sent_ns[sent]
        first_sent, last_sent = int(sent_at.min()), int(sent_at.max())
        run.sent_gas_per_sec = float(rows.gas_planned[sent].sum()) / max(last_sent / 1e9, sustain.length)
        # One request carries a batch of rows marked sent with one timestamp.
        run.requests = int(np.unique(sent_at).size)
        lags = np.sort((sent_at - rows.scheduled_ns[sent]) / 1e9)
        run.send_lag_p99 = float(lags[max(0, math.ceil(0.99 * lags.size) - 1)])
    included = rows.included_ns != NOT_YET
    # Accepted but never seen in a block by the edge: mined after all (below the sender's mined
    # nonce) or lost on chain too.
    unseen = (rows.accepted_ns != NOT_YET) & ~included
    if unseen.any():
        mined_below = rows.nonce[unseen] < np.asarray(latest, dtype=np.int64)[rows.sender[unseen]]
        run.mined_after_edge = int(mined_below.sum())
        run.chain_lost = int((~mined_below).sum())
    if included.any():
        run.mean_gas = float(rows.gas[included].mean())
    run.mined = sum(have - start for have, start in zip(latest, report.sender_start_nonces, strict=True))
    # Chain-side rate, defined as for the baseline: mined / (first send .. last inclusion). The last
    # inclusion is the edge's last sighting, or later when polling saw more mined after the edge
    # stopped following blocks (bounded by when polling started if it happened before that).
    end = int(rows.included_ns[included].max()) if included.any() else NOT_YET
    if run.mined > int(included.sum()):
        end = max(end, last_progress_ns if last_progress_ns is not None else poll_start_ns)
    if run.mined and sent.any() and end > first_sent:
        run.span_tx_per_sec = run.mined / ((end - first_sent) / 1e9)
    # Per-second included gas over the sustain phase. First with the RunResult's window (shifted by
    # the median inclusion latency); then with the bucket edges moved (by < 1 block) to fall midway
    # between block sightings, so that a block seen a few ms either side of an edge does not move
    # a whole block's gas (1/4 of a second's at 250 ms blocks) from one bucket to the next.
    shift = run.result.latency.inclusion.p50
    start = sustain.start + (0.0 if math.isnan(shift) else shift)
    run.per_second_gas = per_second_gas(rows, start, sustain.length)
    run.per_second_gas_aligned = per_second_gas(
        rows, start + between_blocks_offset(report, start), sustain.length
    )
    run.per_chain_second_gas = per_chain_second_gas(rows, report, start, sustain.length)


def per_second_gas(rows: TxRows, start: float, length: float) -> list[float]:
    """Included gas (gas used, else planned) per whole second from ``start`` s after the plan's t=0."""
    count = max(int(math.floor(length)), 1)
    counted = (rows.included_ns != NOT_YET) & ~rows.filler
    second = np.floor(rows.included_ns[counted] / 1e9 - start).astype(np.int64)
    inside = (second >= 0) & (second < count)
    buckets = np.bincount(second[inside], weights=rows.gas[counted][inside], minlength=count)
    return [float(gas) for gas in buckets]


def per_chain_second_gas(rows: TxRows, report: EdgeReport, start: float, length: float) -> list[float]:
    """Included gas per second of chain time: bucketed by the timestamp of the block each transaction
    is in, over the whole seconds inside the window ``start .. start + length`` (seconds after the
    plan's t=0, mapped to wall time). Unlike the sighting-time buckets, a block's gas counts in the
    second the chain stamped it with, whatever moment the edge happened to see it."""
    window_start = report.wall_origin_ns / 1e9 + start
    first, last = math.ceil(window_start), math.floor(window_start + length)
    if last <= first:
        return []
    numbers = np.array(sorted({block.number for block in report.blocks}), dtype=np.int64)
    stamp = {block.number: block.timestamp for block in report.blocks}
    stamps = np.array([stamp[number] for number in numbers.tolist()], dtype=np.int64)
    counted = (rows.block_number != NOT_YET) & ~rows.filler
    block = rows.block_number[counted]
    at = np.searchsorted(numbers, block)
    known = at < numbers.size
    known[known] = numbers[at[known]] == block[known]
    second = stamps[at[known]] - first
    inside = (second >= 0) & (second < last - first)
    buckets = np.bincount(second[inside], weights=rows.gas[counted][known][inside], minlength=last - first)
    return [float(gas) for gas in buckets]


def between_blocks_offset(report: EdgeReport, start: float) -> float:
    """How far (0 .. one block interval) to move ``start`` so it falls midway between block sightings."""
    seen = sorted((block.observed_ns - report.clock_origin_ns) / 1e9 for block in report.blocks)
    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False) if b - a > 0.02]
    if len(gaps) < 4:
        return 0.0
    interval = statistics.median(gaps)
    # Circular mean of the sightings' phase within the block interval.
    angles = [2 * math.pi * ((t - start) % interval) / interval for t in seen]
    phase = math.atan2(sum(map(math.sin, angles)), sum(map(math.cos, angles))) / (2 * math.pi) * interval
    return (phase + interval / 2) % interval


# ----------------------------------------------------------------------------------------------
# 3. report


def print_baseline(baseline: BaselineResult) -> None:
    node = f"{baseline.node_cpu_share * 100:.0f}%" if baseline.node_cpu_share is not None else "n/a"
    print(
        f"  {baseline.txs} pre-signed transfers: accepted {baseline.accepted}, rejected {baseline.rejected}, "
        f"mined {baseline.included}"
    )
    print(
        f"  submit: {baseline.send_seconds:.2f} s ({baseline.submit_tx_per_sec:,.0f} tx/s accepted); "
        f"first send to last inclusion: {baseline.span_seconds:.2f} s"
    )
    print(
        f"  included: {baseline.included_tx_per_sec:,.0f} tx/s = "
        f"{baseline.included_tx_per_sec * TRANSFER_GAS / 1e6:.1f} Mgas/s; CPU as a share of one core: "
        f"node {node} (idle before: {fmt_share(baseline.node_idle_share)}), submitter "
        f"{baseline.client_cpu_share * 100:.0f}%"
    )
    print(f"  eth-account signing (pre-signing, worker processes): {baseline.sign_us_per_tx:.0f} us/tx")
    if baseline.errors:
        print(f"  errors: {dict(list(baseline.errors.items())[:5])}")


VERDICT_NAMES = {
    "inclusion": "incl",
    "no_duplicate_inclusion": "dup",
    "nonce_contiguity": "nonce",
    "receipt_status": "rcpt",
}
RATE_COLUMNS = (
    ("target", "Mgas/s", 7),
    ("offered", "Mgas/s", 7),
    ("sent", "Mgas/s", 7),
    ("incl", "Mgas/s", 7),
    ("incl", "tx/s", 6),
    ("chain", "tx/s", 6),
    ("lost", "edge", 5),
    ("lost", "chain", 5),
    ("p50", "ms", 6),
    ("p99", "ms", 6),
    ("CV/s", "%", 5),
    ("CV/ts", "%", 5),
)
COST_COLUMNS = (
    ("target", "Mgas/s", 7),
    ("sent", "txs", 6),
    ("tx per", "batch", 6),
    ("lag99", "ms", 6),
    ("edge", "us/tx", 6),
    ("of it", "kernel", 6),
    ("edge", "CPU", 5),
    ("node", "CPU", 5),
    ("node", "idle", 5),
    ("setup", "s", 6),
)


def header(columns: Sequence[tuple[str, str, int]], tail: tuple[str, str] = ("", "")) -> str:
    first = " ".join(f"{name:>{width}}" for name, _, width in columns)
    second = " ".join(f"{unit:>{width}}" for _, unit, width in columns)
    return f"{first}  {tail[0]}".rstrip() + "\n" + f"{second}  {tail[1]}".rstrip()


def rate_row(run: EdgeRun) -> str:
    if run.result is None:
        return f"{run.label:>7}  failed: {run.failure}"
    r = run.result
    lost = f"{r.lost}*" if run.stopped else str(r.lost)
    verdicts = ", ".join(
        f"{VERDICT_NAMES.get(v.name, v.name)} {v.status}" for v in r.verdicts if v.status != "passed"
    )
    return (
        f"{fmt_rate(r.target_gas_per_sec):>7} {fmt_rate(r.offered_gas_per_sec):>7} "
        f"{fmt_rate(run.sent_gas_per_sec):>7} {fmt_rate(r.included_gas_per_sec):>7} "
        f"{r.included_tx_per_sec:>6.0f} {run.span_tx_per_sec:>6.0f} {lost:>5} {run.chain_lost:>5} "
        f"{fmt_ms(r.latency.inclusion.p50):>6} {fmt_ms(r.latency.inclusion.p99):>6} {run.cv * 100:>5.1f} "
        f"{run.cv_chain * 100:>5.1f}  "
        f"{verdicts or '-'}"
    )


def cost_row(run: EdgeRun) -> str:
    if run.result is None:
        return f"{run.label:>7}  failed: {run.failure}"
    node = f"{run.node_cpu_share * 100:.0f}%" if run.node_cpu_share is not None else "n/a"
    idle = fmt_share(run.node_idle_share)
    per_batch = run.result.sent / run.requests if run.requests else math.nan
    kernel = run.run_cpu_sys / run.run_cpu * 100 if run.run_cpu > 0 else math.nan
    return (
        f"{fmt_rate(run.plan.target_gas_per_sec):>7} {run.result.sent:>6} {per_batch:>6.1f} "
        f"{fmt_ms(run.send_lag_p99):>6} {run.us_per_tx:>6.0f} {kernel:>5.0f}% {run.cpu_share * 100:>4.0f}% "
        f"{node:>5} {idle:>5} {run.setup_seconds:>6.1f}"
    )


LEGEND = """\
  offered: planned gas in the sustain phase / its length (RunResult); sent: gas submitted / send span;
  incl: included in the sustain window (RunResult, from when the edge saw each block); chain tx/s:
  mined / (first send .. last inclusion), as for the baseline; lost edge: accepted but not seen in a
  block by the edge (RunResult); lost chain: accepted and not mined per the senders' nonces; p50/p99:
  inclusion latency from the intended send time (RunResult); CV/s: coefficient of variation of the
  included gas per second over the RunResult's sustain window, by when the edge saw each block;
  CV/ts: the same by block timestamp (the chain's own seconds); tx per batch: transactions per
  eth_sendRawTransaction request; lag99: p99 of sent - intended; edge us/tx: process CPU (user +
  kernel) after setup / sent; edge and node CPU: share of one core over the run; node idle: the node's
  CPU mining empty blocks just before the run (it grows with the accounts earlier runs created);
  setup: deriving, calibrating and funding the senders."""


def print_table(runs: Sequence[EdgeRun]) -> None:
    print(header(RATE_COLUMNS, ("verdicts", "(not passed)")))
    for run in runs:
        print(rate_row(run))
    for run in runs:
        if run.stopped:
            unseen = run.result.lost if run.result else 0
            detail = (
                f"; {run.mined_after_edge} of the {unseen} it had not seen in a block were mined"
                if unseen
                else ""
            )
            print(f"  * {run.label}: stopped, {run.stopped}{detail}")
    print()
    print(header(COST_COLUMNS))
    for run in runs:
        print(cost_row(run))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="sustain length of each edge run (default 8)"
    )
    parser.add_argument(
        "--rates",
        default="2M,10M,50M,100M,150M,200M",
        help="comma-separated target gas rates for the edge sweep (default 2M,10M,50M,100M,150M,200M)",
    )
    parser.add_argument("--baseline-txs", type=int, default=24_000, help="raw baseline size, 0 skips it")
    parser.add_argument(
        "--baseline-batch", type=int, default=BASELINE_BATCH, help="transactions per baseline request (200)"
    )
    parser.add_argument(
        "--connections", type=int, default=4, help="keep-alive connections, baseline and edge (default 4)"
    )
    parser.add_argument("--no-half", action="store_true", help="skip the run at half the measured capacity")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved baseline / edge / contended rounds (default 3)"
    )
    parser.add_argument("--profile", metavar="PATH", help="write a CPU profile of the edge thread to PATH")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help=f"leave anvil and this script unpinned (default: anvil on CPU {NODE_CPU}, this script on CPU "
        f"{GENERATOR_CPU})",
    )
    args = parser.parse_args()
    # Before any thread starts: every thread of this script (the edge's included) inherits it.
    pin_problem = "--no-pin" if args.no_pin else pin_self(GENERATOR_CPU)

    seconds = min(max(args.seconds, 1.0), 120.0)
    args.rounds = min(max(args.rounds, 0), 10)
    rates = [parse_gas_rate(text.strip(), what="--rates") for text in args.rates.split(",") if text.strip()]
    connections = min(max(args.connections, 1), 16)
    profiles: list[cProfile.Profile] | None = [] if args.profile else None
    wall_start = time.perf_counter()

    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {load_average()}")
    print(f"edge signer: {edge_signer()}")
    # No feed relay and no L1: nothing here follows the feed or reads the L1, and the relay (asking
    # the node for every block's full transactions) and the batch poster would run in threads of
    # this process, counted as edge CPU.
    with EmbeddedDevnet(feed=False, l1=False).start() as devnet:
        print(f"devnet: {devnet.node_version} at {devnet.rpc_url}, chain id {devnet.chain_id}")
        if pin_problem is None and devnet.pid is not None:
            print(f"pinning: anvil {pin_to(devnet.pid, NODE_CPU)}; this script on CPU {GENERATOR_CPU}\n")
        else:
            print(f"pinning: none ({pin_problem}); anvil and this script share every core\n")

        baseline: BaselineResult | None = None
        if args.baseline_txs > 0:
            print(
                f"[1] raw baseline: pre-signed batches of {args.baseline_batch} over {connections} "
                "connections"
            )
            try:
                baseline = run_baseline(
                    devnet, min(args.baseline_txs, 200_000), connections, max(args.baseline_batch, 1)
                )
                print_baseline(baseline)
            except Exception:
                print("  baseline failed:\n" + traceback.format_exc() + (devnet_gone(devnet) or ""))

        print(
            f"\n[2] edge sweep: {len(rates)} rate(s), {seconds:g} s sustain each, warmup 0, "
            "fresh seed per run"
        )
        runs: list[EdgeRun] = []
        for index, rate in enumerate(rates):
            if gone := devnet_gone(devnet):
                print(f"  stopping: {gone}")
                break
            print(f"  running {rate_label(rate)}gas/s ...", flush=True)
            try:
                runs.append(run_edge(devnet, rate, seconds, SEED_BASE + index, connections, profiles))
            except Exception:
                print("  run failed:\n" + traceback.format_exc())
        print()
        print_table(runs)
        print(LEGEND)

        measured = [run for run in runs if run.result is not None]
        half: EdgeRun | None = None
        capacity = max((run.span_gas_per_sec for run in measured), default=0.0)
        if measured and not args.no_half and capacity > 0 and not devnet_gone(devnet):
            target = max(round(capacity / 2 / 1e5) * 1e5, 1e5)
            print(
                f"\n[3] half of the measured capacity ({capacity / 1e6:.2f} Mgas/s): "
                f"{target / 1e6:.1f} Mgas/s"
            )
            try:
                half = run_edge(devnet, target, seconds, SEED_BASE + len(rates), connections, profiles)
                print_table([half])
            except Exception:
                print("  run failed:\n" + traceback.format_exc())

        paired: Paired | None = None
        best = max(measured, key=lambda run: run.span_tx_per_sec, default=None)
        if baseline is not None and best is not None and args.rounds > 0 and not devnet_gone(devnet):
            print(
                f"\n[4] {args.rounds} round(s) of: raw baseline, the edge at {best.label}gas/s, raw "
                "baseline beside a process taking the edge's CPU share (the ratios are read from these)"
            )
            paired = Paired()
            batch_size = max(args.baseline_batch, 1)
            try:
                for round_index in range(args.rounds):
                    salt = 10 + 2 * round_index
                    paired.baselines.append(run_baseline(devnet, baseline.txs, connections, batch_size, salt))
                    print_baseline(paired.baselines[-1])
                    edge = run_edge(
                        devnet,
                        best.plan.target_gas_per_sec,
                        seconds,
                        SEED_BASE + len(rates) + 1 + round_index,
                        connections,
                        None,
                    )
                    paired.edges.append(edge)
                    print_table([edge])
                    if math.isnan(edge.cpu_share) or edge.cpu_share <= 0:
                        continue
                    # What the node loses when another process takes what the edge took of the same
                    # cores: the ceiling of the ratio on this machine.
                    print(
                        f"  raw baseline beside a process keeping {edge.cpu_share * 100:.0f}% of a core busy:"
                    )
                    paired.contended.append(
                        run_baseline(
                            devnet, baseline.txs, connections, batch_size, salt + 1, burn_share=edge.cpu_share
                        )
                    )
                    print_baseline(paired.contended[-1])
            except Exception:
                print("  interleaved measurement failed:\n" + traceback.format_exc())

    print_summary(baseline, paired, measured, half)
    if profiles:
        write_profile(args.profile, profiles)
    print(f"\ntotal wall time {time.perf_counter() - wall_start:.0f} s; load average {load_average()}")
    print("figures are from one run on one machine: noisy when other work shares the cores")
    return 0


def edge_signer() -> str:
    """Which signer the edge runtime uses, so figures can be attributed (it is the main CPU cost)."""
    import pytest_gashammer.edge.submitter as submitter_module

    if hasattr(submitter_module, "FastSigner"):
        return "FastSigner (pytest_gashammer.chain.signer)"
    return "eth-account (LocalAccount.sign_transaction)"


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def print_summary(
    baseline: BaselineResult | None,
    paired: Paired | None,
    runs: Sequence[EdgeRun],
    half: EdgeRun | None,
) -> None:
    print("\nsummary")
    if baseline is not None:
        print(
            f"  raw baseline on the fresh node: {baseline.included_tx_per_sec:,.0f} included tx/s "
            f"({baseline.included_tx_per_sec * TRANSFER_GAS / 1e6:.1f} Mgas/s)"
        )
    if paired is not None and paired.baselines and paired.edges:
        base = paired.baseline_tx_per_sec
        figures = ", ".join(f"{b.included_tx_per_sec:,.0f}" for b in paired.baselines)
        edges = ", ".join(f"{e.span_tx_per_sec:,.0f}" for e in paired.edges)
        costs = ", ".join(f"{e.us_per_tx:.0f}" for e in paired.edges)
        print(
            f"  interleaved at {paired.edges[0].label}gas/s: raw baseline [{figures}] tx/s, edge [{edges}] "
            f"tx/s: median edge / median raw baseline = {paired.edge_tx_per_sec / base:.2f}; "
            f"edge CPU [{costs}] us/tx"
        )
        if paired.contended:
            contended = ", ".join(f"{b.included_tx_per_sec:,.0f}" for b in paired.contended)
            shares = ", ".join(f"{e.cpu_share * 100:.0f}%" for e in paired.edges)
            print(
                f"  ceiling on this machine: the raw baseline beside a process taking the edge's share of "
                f"a core [{shares}] reaches [{contended}] tx/s: median {paired.contended_tx_per_sec / base:.2f} "
                "of the raw baseline (the node has that much less CPU, as it has beside the edge)"
            )
    best = max(runs, key=lambda run: run.span_tx_per_sec, default=None)
    if best is not None and best.result is not None:
        ratio = ""
        if baseline is not None and baseline.included_tx_per_sec > 0:
            ratio = f"; / the fresh node's raw baseline = {best.span_tx_per_sec / baseline.included_tx_per_sec:.2f}"
        print(
            f"  edge best: {best.span_tx_per_sec:,.0f} included tx/s = "
            f"{best.span_gas_per_sec / 1e6:.2f} Mgas/s "
            f"(chain-side, first send to last inclusion) at target {best.label}gas/s{ratio}"
        )
        behind = [run for run in runs if run.sent_gas_per_sec < 0.9 * run.plan.target_gas_per_sec]
        top_sent = max(run.sent_gas_per_sec for run in runs)
        if behind:
            first = min(behind, key=lambda run: run.plan.target_gas_per_sec)
            print(
                f"  edge sending fell behind from target {first.label}gas/s: sent "
                f"{first.sent_gas_per_sec / 1e6:.2f} Mgas/s, edge CPU {first.cpu_share * 100:.0f}% of a core"
            )
        else:
            print(f"  edge sending kept up at every target (up to {top_sent / 1e6:.2f} Mgas/s sent)")
        node = f"{best.node_cpu_share * 100:.0f}%" if best.node_cpu_share is not None else "n/a"
        limit = "the edge" if best.sent_gas_per_sec < 0.9 * best.plan.target_gas_per_sec else "the node"
        if best.span_gas_per_sec >= 0.9 * best.plan.target_gas_per_sec:
            limit = "neither (the target was met)"
        print(
            f"  limit at the best rate: {limit} (target {best.plan.target_gas_per_sec / 1e6:.1f}, sent "
            f"{best.sent_gas_per_sec / 1e6:.1f}, included {best.span_gas_per_sec / 1e6:.1f} Mgas/s; "
            f"edge CPU {best.cpu_share * 100:.0f}%, node CPU {node} of a core, node idle before it "
            f"{fmt_share(best.node_idle_share)})"
        )
        costs = [run.us_per_tx for run in runs if not math.isnan(run.us_per_tx)]
        print(
            f"  edge CPU: {best.us_per_tx:.0f} us/tx at its best rate "
            f"(all runs {min(costs):.0f}..{max(costs):.0f})"
            + (f"; eth-account signing alone: {baseline.sign_us_per_tx:.0f} us/tx" if baseline else "")
        )
    if half is not None and half.result is not None:
        r = half.result
        error = (r.included_gas_per_sec - r.target_gas_per_sec) / r.target_gas_per_sec * 100
        seconds = ", ".join(f"{gas / 1e6:.2f}" for gas in half.per_second_gas)
        aligned = ", ".join(f"{gas / 1e6:.2f}" for gas in half.per_second_gas_aligned)
        chain = ", ".join(f"{gas / 1e6:.2f}" for gas in half.per_chain_second_gas)
        print(
            f"  at half capacity, target {r.target_gas_per_sec / 1e6:.1f} Mgas/s: included "
            f"{r.included_gas_per_sec / 1e6:.2f} Mgas/s ({error:+.1f}%); per-second CV of included gas: "
            f"{half.cv_chain * 100:.1f}% by block timestamp over {len(half.per_chain_second_gas)} s; by "
            f"when the edge saw each block over {len(half.per_second_gas)} s: {half.cv * 100:.1f}% "
            f"(RunResult window), {half.cv_aligned * 100:.1f}% (bucket edges between blocks); node idle "
            f"before it {fmt_share(half.node_idle_share)}"
        )
        print(
            f"    included Mgas per second: by block timestamp [{chain}]; by sighting [{seconds}]; "
            f"by sighting, edges between blocks [{aligned}]"
        )
        failed = [v.describe(3) for v in r.verdicts if v.status == "failed"]
        if failed:
            print("    failed verdicts:\n" + "\n".join(failed))


PROFILE_AREAS = (  # (label, file suffix, function): cumulative CPU time of that function
    ("edge thread, total", "edge/runtime.py", "_thread_main"),
    ("setup: derive, calibrate, fund", "edge/runtime.py", "open"),
    ("send loop (schedule, sign ahead, spawn submissions)", "edge/submitter.py", "send_loop"),
    ("  sign ahead: schedule, build, sign, log", "edge/submitter.py", "_sign_ahead"),
    ("    of which signing", "chain/signer.py", "sign_fields"),
    ("    arrival schedule", "workload/rate.py", "next"),
    ("submit: batch JSON, aiohttp request, answers", "edge/submitter.py", "_submit"),
    ("  aiohttp body writer task", "aiohttp/client_reqrep.py", "write_bytes"),
    ("block tracking: fetch and match blocks", "edge/tracker.py", "_fetch_pending"),
    ("newHeads subscription", "edge/tracker.py", "_subscribe_loop"),
    ("head polling", "edge/tracker.py", "_poll_loop"),
    ("receipt fetching", "edge/inclusion.py", "fetch_receipts"),
)


def write_profile(path: str, profiles: list[cProfile.Profile]) -> None:
    """The edge thread's CPU profile: time per area, then per function (self and cumulative)."""
    out = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=out)
    for other in profiles[1:]:
        stats.add(other)
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = max((v[3] for k, v in table.items() if k[2] == "_thread_main"), default=0.0)
    lines = ["edge thread CPU time by area (cumulative, time.thread_time; profiler overhead included)"]
    for label, suffix, function in PROFILE_AREAS:
        seconds = sum(v[3] for k, v in table.items() if k[0].endswith(suffix) and k[2] == function)
        share = seconds / total * 100 if total else math.nan
        lines.append(f"  {seconds:8.3f} s {share:5.1f}%  {label}")
    out.write("\n".join(lines) + "\n\n")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    Path(path).write_text(out.getvalue())
    print(f"\nedge-thread CPU profile written to {path} (CPU figures above include the profiler's overhead)")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
    sys.exit(0)
