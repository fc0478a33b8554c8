"""Engine API runs on the real EthereumJS execution client: the driver set by ``engine={...}``, the engine
figures and invariants, the engine SLOs, the Parquet tables and the report section, and the one-line
error where the plugin does not build the blocks."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="the EthereumJS devnet needs Node.js and npm on PATH (the plugin installs the client with npm)",
)

ENGINE_RUNS = """
import json
import os

import pytest

from pytest_gashammer.chain.rpc import call
from pytest_gashammer.vocabulary import ENGINE_INVARIANT_NAMES

NO_FEED = {"feed_sequence", "feed_exactly_once", "feed_order", "feed_block_hash", "feed_matches_chain"}
RECIPIENT = "0x" + "fe" * 20


@pytest.mark.gashammer(
    gas_per_sec="200k", duration="8s", warmup=0, seed=21,
    engine={"block_interval": "2s", "withdrawals": 2, "fee_recipient": RECIPIENT},
    slo={"engine_new_payload_p99": "30s", "engine_block_build_max": "1ms"},
)
def test_an_engine_run(hammer, devnet):
    result = hammer.run(check=False)
    statuses = {verdict.name: verdict.status for verdict in result.verdicts}
    for verdict in result.verdicts:
        print("VERDICT", verdict.describe().splitlines()[0])
    # Every engine invariant applied and held on the healthy client.
    assert [name for name in statuses if name.startswith("engine_")] == list(ENGINE_INVARIANT_NAMES)
    assert {name: statuses[name] for name in ENGINE_INVARIANT_NAMES} == dict.fromkeys(ENGINE_INVARIANT_NAMES, "passed")
    # A generous bound passes; a bound no client meets fails, in one line naming the figure.
    assert statuses["slo.engine_new_payload_p99"] == "passed"
    failed = result.verdict("slo.engine_block_build_max")
    assert failed.status == "failed" and failed.summary.startswith("Engine API block build max "), failed.summary
    others = {n for n, s in statuses.items() if s != "passed"} - NO_FEED - {"balance_conservation", "slo.engine_block_build_max"}
    assert not others, statuses
    engine = result.engine
    assert engine is not None and engine.version >= 3
    assert engine.blocks_built >= 3 and engine.statuses["newPayload"] == {"VALID": engine.blocks_built}
    assert engine.new_payload.count == engine.blocks_built and engine.block_build.p50 > 0
    assert sum(row.transactions for row in engine.block_rows) >= result.included
    # The marker's interval: blocks two seconds apart (whole-second timestamps).
    numbers = [row.number for row in engine.block_rows]
    stamps = [int(call(devnet.rpc_url, "eth_getBlockByNumber", [hex(n), False])["timestamp"], 16) for n in numbers]
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    assert gaps and min(gaps) >= 2, gaps
    # Its withdrawals and fee recipient, on chain.
    block = call(devnet.rpc_url, "eth_getBlockByNumber", [hex(numbers[-1]), False])
    assert len(block["withdrawals"]) == 2 and block["miner"].lower() == RECIPIENT
    with open(os.environ["GASHAMMER_TEST_OUT"], "w") as out:
        json.dump({"blocks": engine.blocks_built, "interval_after": devnet.consensus.interval}, out)


@pytest.mark.gashammer(gas_per_sec="100k", duration="2s", warmup=0, seed=22)
def test_the_driver_settings_were_given_back(devnet, hammer):
    assert devnet.consensus.interval == 1.0
    result = hammer.run()
    assert result.engine is not None and result.engine.blocks_built >= 1
"""


def test_an_engine_run_measures_and_judges_the_engine_api(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engine_runs=ENGINE_RUNS)
    out = pytester.path / "out.json"
    pytester._monkeypatch.setenv("GASHAMMER_TEST_OUT", str(out))
    report, parquet = pytester.path / "report.html", pytester.path / "telemetry"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-s",
        "--gashammer-devnet",
        "ethereumjs",
        "--gashammer-report",
        str(report),
        "--gashammer-parquet",
        str(parquet),
        timeout=600,
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*engine     V* blocks (* tx each)  build p50 *  import p50 *newPayload p50 *"]
    )
    facts = json.loads(out.read_text())
    assert facts["blocks"] >= 3
    page = report.read_text()
    assert 'id="run-1-engine"' in page and 'id="run-1-chart-engine-build"' in page
    import pyarrow.parquet as pq

    calls = pq.read_table(parquet / "engine_calls").to_pylist()
    assert {row["method"] for row in calls} >= {"forkchoiceUpdated", "getPayload", "newPayload"}


def test_engine_settings_where_the_plugin_builds_no_block_are_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_no_engine="""
import pytest

@pytest.mark.gashammer(gas_per_sec="100k", duration="1s", warmup=0, engine={"version": 3})
def test_engine_on_anvil(hammer):
    hammer.run()
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gashammer-no-l1", timeout=300)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*engine={'version': 3} needs a target whose blocks the plugin builds over the Engine API "
            "(--gashammer-devnet ethereumjs, or --gashammer-engine-url); the embedded devnet builds its own*"
        ]
    )
    assert "Traceback" not in result.stdout.str()


STUCK_IN_THE_POOL = """
import time

import pytest
from eth_account import Account

from pytest_gashammer.chain.rpc import call


@pytest.mark.gashammer(gas_per_sec="100k", duration="3s", warmup=0, seed=23)
def test_a_transaction_never_built(hammer, devnet):
    # Accepted into the client's pool, never buildable: an account of its own (a gap in the funder's
    # nonces would move the pending nonce EthereumJS gives the run's funding) sends with nonce 5 of 0.
    funder, loner = Account.from_key(devnet.funder.key), Account.from_key(b"\x42" * 32)
    fee = {"maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": devnet.chain_id, "type": 2, "gas": 21_000}
    nonce = int(call(devnet.rpc_url, "eth_getTransactionCount", [funder.address, "pending"]), 16)
    funding = funder.sign_transaction({**fee, "to": loner.address, "value": 10**17, "nonce": nonce})
    funded = call(devnet.rpc_url, "eth_sendRawTransaction", ["0x" + funding.raw_transaction.hex()])
    deadline = time.monotonic() + 60
    while call(devnet.rpc_url, "eth_getTransactionReceipt", [funded]) is None:
        assert time.monotonic() < deadline, "the funding transfer was not mined"
        time.sleep(0.2)
    gapped = loner.sign_transaction({**fee, "to": "0x" + "11" * 20, "value": 1, "nonce": 5})
    stuck = call(devnet.rpc_url, "eth_sendRawTransaction", ["0x" + gapped.raw_transaction.hex()])
    result = hammer.run(check=False)
    verdict = result.verdict("engine_pool_drained")
    print("POOL", verdict.describe().splitlines()[0])
    assert verdict.status == "failed", verdict.describe()
    assert "1 transaction(s) still in the client's pool" in verdict.summary and verdict.evidence["examples"] == [stuck]
    assert result.verdict("inclusion").status == "passed"  # the run's own transactions were all built
"""


def test_a_transaction_the_client_accepts_and_never_builds_fails_the_pool_drain(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_stuck=STUCK_IN_THE_POOL)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s", "--gashammer-devnet", "ethereumjs", timeout=300
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["POOL [[]FAILED[]] engine_pool_drained: 1 transaction(s) still in the client's pool *"]
    )
