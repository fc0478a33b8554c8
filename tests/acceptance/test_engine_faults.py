"""Engine API faults against the real EthereumJS client: its consensus driver builds through an
EngineProxy, fails the way each fault says while it is armed (its incidents name the call and the
status), and builds again once it is disarmed; disarmed, blocks pass through the proxy VALID and
untouched. Then a marked scenario with an engine fault on ``--gashammer-devnet ethereumjs`` reports
the fault in ``RunResult.faults`` with its times and effect.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.devnet.ethereumjs import EthereumJSDevnet
from pytest_gashammer.fault import (
    EngineInvalid,
    EngineProxy,
    EngineSyncing,
    EngineWithholdPayload,
    RpcCall,
    RpcFault,
)
from pytest_gashammer.fault.engine_proxy import EngineFault, client_through

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the EthereumJS devnet needs Node.js and npm on PATH (the plugin installs the client with npm)",
)

#: Fast enough to see several failed builds in a second or two; the client makes ~10 empty blocks/s.
INTERVAL = 0.25


class NewPayloadStatuses(RpcFault):
    """Breaks nothing: notes the status the client gave to every newPayload that reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[str] = []

    def on_answer(self, call: RpcCall) -> None:
        if call.method.startswith("engine_newPayload") and call.answered_by is None and call.has_result:
            self.statuses.append(str(call.result.get("status")))


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EthereumJSDevnet]:
    node = EthereumJSDevnet(workdir=tmp_path_factory.mktemp("ejs"), block_interval=INTERVAL).start()
    try:
        yield node
    finally:
        node.close()


@contextlib.contextmanager
def through_proxy(devnet: EthereumJSDevnet, *faults: RpcFault) -> Iterator[EngineProxy]:
    """The driver builds through a proxy holding ``faults`` while the block lasts, then on its own again."""
    driver = devnet.consensus
    with EngineProxy(driver.engine.url, faults=list(faults)) as proxy:
        own = driver.use_engine(client_through(driver.engine, proxy.url))
        try:
            yield proxy
        finally:
            driver.use_engine(own)


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} within {seconds} s")


def chain_head(devnet: EthereumJSDevnet) -> int:
    return int(call(devnet.rpc_url, "eth_getBlockByNumber", ["latest", False], timeout=10)["number"], 16)


def test_disarmed_faults_let_blocks_through_valid_and_untouched(devnet: EthereumJSDevnet) -> None:
    driver = devnet.consensus
    faults: list[EngineFault] = [
        EngineSyncing(armed=False),
        EngineInvalid(armed=False),
        EngineWithholdPayload(armed=False),
        EngineWithholdPayload(how="unknown", armed=False),
    ]
    statuses = NewPayloadStatuses()
    failures, incidents = driver.stats().failures, len(devnet.incidents())
    with through_proxy(devnet, *faults, statuses) as proxy:
        start = chain_head(devnet)
        wait_for(lambda: len(statuses.statuses) >= 5, 30, "five blocks built through the proxy")
    assert set(statuses.statuses) == {"VALID"}, statuses.statuses
    assert chain_head(devnet) >= start + 5
    assert driver.stats().failures == failures and devnet.incidents()[incidents:] == []
    assert [fault.touched for fault in faults] == [0, 0, 0, 0]
    methods = proxy.stats.methods
    assert methods["engine_getPayloadV3"] >= 5 and methods["engine_forkchoiceUpdatedV3"] >= 10, methods
    assert proxy.stats.local_answers == 0 and proxy.stats.upstream_failures == 0


CASES: dict[str, tuple[Callable[[], EngineFault], str]] = {
    "syncing": (
        lambda: EngineSyncing(armed=False),
        # A block begun before the arm meets it at newPayload; every later one at its first call.
        r"engine_(forkchoiceUpdated|newPayload)V\d returned status SYNCING \(expected VALID\): "
        r"no validationError given",
    ),
    "invalid": (
        lambda: EngineInvalid(armed=False),
        r"engine_newPayloadV\d returned status INVALID \(expected VALID\): made up by the gashammer "
        r"engine.invalid fault: the proxy answered INVALID for block 0x[0-9a-f]{64} without asking",
    ),
    "withhold_payload": (
        lambda: EngineWithholdPayload(armed=False),
        r"engine_forkchoiceUpdatedV\d: VALID with payload attributes but no payloadId",
    ),
    "withhold_payload_unknown": (
        lambda: EngineWithholdPayload(how="unknown", armed=False),
        r"engine_getPayloadV\d: .*-38001.*Unknown payload|engine_getPayloadV\d: .*Unknown payload.*-38001",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_armed_fault_stops_block_building_saying_why_and_disarmed_the_chain_goes_on(
    devnet: EthereumJSDevnet, case: str
) -> None:
    make, reason = CASES[case]
    fault = make()
    driver = devnet.consensus
    incidents = len(devnet.incidents())
    with through_proxy(devnet, fault):
        fault.arm()
        wait_for(lambda: fault.touched >= 3, 20, f"{fault.kind} acting three times")
        stuck = chain_head(devnet)
        wait_for(lambda: fault.touched >= 6, 20, f"{fault.kind} acting three more times")
        assert chain_head(devnet) == stuck  # no block imported while it is armed
        fault.disarm()
        built = driver.stats().blocks_built
        wait_for(lambda: driver.stats().blocks_built >= built + 3, 20, "three blocks again after the fault")
    assert chain_head(devnet) >= stuck + 3
    new = devnet.incidents()[incidents:]
    print("INCIDENTS", case, new)
    failed = [line for line in new if line.startswith("consensus: building a block failed: ")]
    assert failed and all(re.search(reason, line) for line in failed), new
    assert re.fullmatch(r"consensus: blocks again after \d+ failed attempt\(s\)", new[-1]), new
    assert fault.summary().startswith(fault.kind) and not fault.armed


INNER = """
import pytest


@pytest.mark.gashammer(gas_per_sec="200k", duration="6s", warmup=0, seed=31,
                       faults=[{"kind": "engine.syncing", "at": 2, "duration": 2}])
def test_syncing_for_two_seconds(hammer, devnet):
    own = devnet.consensus.engine
    result = hammer.run(check=False)
    assert devnet.consensus.engine is own  # switched back once the run is over
    (fault,) = result.faults
    print("FAULT", fault.label, fault.started_at, fault.ended_at, fault.effect)
    for verdict in result.verdicts:
        print("VERDICT", verdict.describe().splitlines()[0])
    for note in result.notes:
        print("NOTE", note)
    assert fault.kind == "engine.syncing" and fault.error is None
    assert 1.9 <= fault.started_at <= 2.5 and 3.9 <= fault.ended_at <= 4.5
    assert fault.effect["kind"] == "engine.syncing" and fault.effect["calls"] >= 1
    assert fault.effect["summary"].startswith("engine.syncing answered ")
    assert result.verdict("faults").status == "passed"
    # The engine invariants catch what no other verdict does (the chain only paused for two seconds).
    head = result.verdict("engine_head")
    assert head.status == "failed" and "SYNCING" in head.summary, head.describe()
    assert result.verdict("block_production").status == "passed"
    assert any("returned status SYNCING" in note for note in result.notes), result.notes
    assert any("blocks again after" in note for note in result.notes), result.notes
"""


def test_a_marked_run_reports_its_engine_fault_with_times_and_effect(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engine_fault_run=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s", "--gashammer-devnet", "ethereumjs", timeout=300
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["FAULT engine.syncing #0 * {*'summary': 'engine.syncing answered *"])


EACH_FAULT = """
import pytest

CAUGHT_BY = {
    "engine.invalid": ("engine_payload_valid", "INVALID"),
    "engine.withhold_payload": ("engine_payload_ids", "no payload id"),
}


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "engine.invalid"},
        {"kind": "engine.withhold_payload", "how": "null"},
        {"kind": "engine.withhold_payload", "how": "unknown"},
    ],
    ids=["invalid", "withhold-null", "withhold-unknown"],
)
@pytest.mark.gashammer(gas_per_sec="150k", duration="5s", warmup=0, seed=32)
def test_each_fault_fails_the_invariant_that_catches_it(hammer, fault):
    result = hammer.run(check=False, faults=[{**fault, "at": 1.5, "duration": 1.5}])
    statuses = {verdict.name: verdict.status for verdict in result.verdicts}
    caught, words = CAUGHT_BY[fault["kind"]]
    verdict = result.verdict(caught)
    print("CAUGHT", fault, verdict.describe().splitlines()[0])
    assert verdict.status == "failed", verdict.describe()
    if fault.get("how") == "unknown":
        words = "Unknown payload"
    assert words in verdict.summary or any(words in str(item) for item in verdict.evidence.get("findings", [])), verdict.describe()
    # The chain itself came back: the transactions were all included, nothing else failed.
    assert result.lost == 0 and statuses["inclusion"] == "passed" and statuses["faults"] == "passed", statuses
"""


def test_each_engine_fault_fails_the_engine_invariant_named_in_its_help(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_each_engine_fault=EACH_FAULT)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s", "--gashammer-devnet", "ethereumjs", timeout=600
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["CAUGHT *engine.invalid* [[]FAILED[]] engine_payload_valid: *"])
