"""The committed contract artifacts are exactly what the pinned solc makes of the committed sources."""

from __future__ import annotations

import shutil

import pytest

from pytest_gashammer.devnet.solc import SOLC_VERSION
from pytest_gashammer.l1 import solidity
from pytest_gashammer.workload.contracts import load_artifacts
from pytest_gashammer.workload.contracts.build import PACKAGES, compile_artifacts, render

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None and shutil.which("npm") is None,
    reason=f"neither node nor npm is available to install and run solc {SOLC_VERSION} (solcjs)",
)


@pytest.fixture(scope="module")
def recompiled() -> dict:
    return compile_artifacts()


@pytest.fixture(scope="module")
def recompiled_l1() -> dict:
    return compile_artifacts(package="pytest_gashammer.l1.solidity")


def test_recompiling_gives_the_committed_bytecode_and_abi(recompiled: dict) -> None:
    committed = load_artifacts()
    assert committed["compiler"] == recompiled["compiler"]
    assert committed["compiler"]["version"].startswith(SOLC_VERSION + "+")
    assert (
        sorted(committed["contracts"])
        == sorted(recompiled["contracts"])
        == [
            "HammerToken",
            "Reverter",
            "SlotFiller",
        ]
    )
    for name, fresh in recompiled["contracts"].items():
        kept = committed["contracts"][name]
        hint = f"{name} differs; run python -m pytest_gashammer.workload.contracts.build"
        assert kept["bytecode"] == fresh["bytecode"], hint
        assert kept["deployedBytecode"] == fresh["deployedBytecode"], hint
        assert kept["abi"] == fresh["abi"], hint
        assert kept["methodIdentifiers"] == fresh["methodIdentifiers"], hint


def test_the_artifacts_file_is_byte_for_byte_what_the_build_writes(recompiled: dict) -> None:
    from importlib import resources

    committed_text = (
        resources.files("pytest_gashammer.workload.contracts").joinpath("artifacts.json").read_text()
    )
    assert committed_text == render(recompiled)


def test_the_l1_rollup_stand_in_is_built_the_same_way(recompiled: dict, recompiled_l1: dict) -> None:
    from importlib import resources

    assert PACKAGES == ("pytest_gashammer.workload.contracts", "pytest_gashammer.l1.solidity")
    assert recompiled_l1["compiler"] == recompiled["compiler"]
    assert sorted(recompiled_l1["contracts"]) == ["IBridgeAccumulators", "StandInRollup"]
    committed_text = resources.files("pytest_gashammer.l1.solidity").joinpath("artifacts.json").read_text()
    assert committed_text == render(recompiled_l1), (
        "StandInRollup differs; run python -m pytest_gashammer.workload.contracts.build"
    )
    assert solidity.load_artifacts() == recompiled_l1


def test_a_source_that_does_not_compile_is_one_line_naming_the_error() -> None:
    from pytest_gashammer.devnet.solc import SolcError, compile_sources

    with pytest.raises(SolcError, match=r"solc 0\.8\.\d+: 1 error\(s\); first: ParserError") as raised:
        compile_sources({"Broken.sol": "contract Broken { function f( }"}, {"outputSelection": {}})
    assert "\n" not in str(raised.value)
