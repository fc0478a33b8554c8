"""The real Nitro L1 contracts, from the npm package's compiled artifacts, deployed on a devnet's L1.

``@arbitrum/nitro-contracts`` (pinned: :data:`NITRO_CONTRACTS_VERSION`) ships Hardhat artifacts (ABI
and init code, no link references). :func:`deploy_l1` deploys, on an L1 such as an anvil:

1. Reader4844 (compiled Yul). SequencerInbox's constructor needs a reader on a host chain that is
   not Arbitrum (it reverts ``InitParamZero("Reader4844")`` otherwise).
2. ProxyAdmin (OpenZeppelin 4.7.3), owned by the deployer: the admin of both proxies.
3. Bridge logic, then a TransparentUpgradeableProxy whose constructor calls
   ``Bridge.initialize(rollup)``. Both ``initialize`` functions are ``onlyDelegated``, so proxies are
   required; initialising in the proxy's constructor saves a transaction.
4. The rollup stand-in (``l1/solidity/StandInRollup.sol``, docs/l1.md says why it is not the real
   rollup), built on the Bridge's address. It is the Bridge's ``rollup``; its ``owner()`` (the
   deployer) may configure the Bridge and the SequencerInbox, as the real rollup's owner may.
5. SequencerInbox logic ``(maxDataSize, reader4844, isUsingFeeToken=false, isDelayBufferable=false)``
   and its proxy, initialised with the Bridge, :class:`MaxTimeVariation`, an empty buffer config and
   no fee-token pricer.
6. ``Bridge.setSequencerInbox(inbox)`` and ``SequencerInbox.setIsBatchPoster(poster, true)``, both
   by the rollup's owner.

Every address is known in advance (``CREATE`` addresses follow the deployer's nonce), so the nine
transactions are signed up front and sent together: an L1 that mines every second takes them in
one or two blocks, and an automining one in nine. Installing the package is the devnet's business
(``devnet/nitro_contracts.py``, with the other pinned npm tools); this module only reads a directory.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_gashammer.errors import DevnetError
from pytest_gashammer.l1 import solidity
from pytest_gashammer.l1.abi import (
    call_data,
    canonical_signature,
    canonical_type,
    decode,
    encode,
    error_table,
)
from pytest_gashammer.l1.sender import L1Account, create_address

NITRO_CONTRACTS_VERSION = "3.2.0"
NITRO_CONTRACTS_NPM = "@arbitrum/nitro-contracts"

#: Contract name → artifact path inside the installed package.
ARTIFACT_PATHS: Mapping[str, str] = {
    "Bridge": "build/contracts/src/bridge/Bridge.sol/Bridge.json",
    "SequencerInbox": "build/contracts/src/bridge/SequencerInbox.sol/SequencerInbox.json",
    "ProxyAdmin": "build/contracts/@openzeppelin/contracts/proxy/transparent/ProxyAdmin.sol/ProxyAdmin.json",
    "TransparentUpgradeableProxy": (
        "build/contracts/@openzeppelin/contracts/proxy/transparent/"
        "TransparentUpgradeableProxy.sol/TransparentUpgradeableProxy.json"
    ),
    "RollupCore": "build/contracts/src/rollup/RollupCore.sol/RollupCore.json",  # ABI only: the events
    "Reader4844": "out/yul/Reader4844.yul/Reader4844.json",
}

#: Arbitrum One's largest batch (bytes of calldata) and the SequencerInbox's own default.
MAX_DATA_SIZE = 117_964

# Canonical signatures the deployment, the poster and the monitor use (checked against the ABIs).
SEQUENCER_BATCH_DELIVERED = (
    "SequencerBatchDelivered(uint256,bytes32,bytes32,bytes32,uint256,(uint64,uint64,uint64,uint64),uint8)"
)
ASSERTION_CREATED = (
    "AssertionCreated(bytes32,bytes32,((bytes32,bytes32,(bytes32,uint256,address,uint64,uint64)),"
    "((bytes32[2],uint64[2]),uint8,bytes32),((bytes32[2],uint64[2]),uint8,bytes32)),bytes32,uint256,"
    "bytes32,uint256,address,uint64)"
)
ASSERTION_CONFIRMED = "AssertionConfirmed(bytes32,bytes32,bytes32)"
ADD_BATCH = "addSequencerL2BatchFromOrigin(uint256,bytes,uint256,address,uint256,uint256)"
#: A delayed-inbox message as a delay proof names it (``DelayProof``: the accumulator before it, the message).
_DELAY_PROOF = "(bytes32,(uint8,address,uint64,uint64,uint256,uint256,bytes32))"
#: The SequencerInbox's other batch entry points, whose arguments start as ADD_BATCH's do (the blob
#: ones carry no ``data``: the batch is in the transaction's EIP-4844 blobs).
ADD_BATCH_FROM_CONTRACT = "addSequencerL2Batch(uint256,bytes,uint256,address,uint256,uint256)"
ADD_BATCH_DELAY_PROOF = (
    f"addSequencerL2BatchFromOriginDelayProof(uint256,bytes,uint256,address,uint256,uint256,{_DELAY_PROOF})"
)
ADD_BATCH_FROM_CONTRACT_DELAY_PROOF = (
    f"addSequencerL2BatchDelayProof(uint256,bytes,uint256,address,uint256,uint256,{_DELAY_PROOF})"
)
ADD_BATCH_FROM_BLOBS = "addSequencerL2BatchFromBlobs(uint256,uint256,address,uint256,uint256)"
ADD_BATCH_FROM_BLOBS_DELAY_PROOF = (
    f"addSequencerL2BatchFromBlobsDelayProof(uint256,uint256,address,uint256,uint256,{_DELAY_PROOF})"
)
#: The batch's data, emitted when the batch came through a contract (``BatchDataLocation.SeparateBatchEvent``).
SEQUENCER_BATCH_DATA = "SequencerBatchData(uint256,bytes)"
#: Where a SequencerBatchDelivered's data is (``IBridge.BatchDataLocation``), by its enum value.
BATCH_DATA_LOCATIONS = ("TxInput", "SeparateBatchEvent", "NoData", "Blob")
#: The custom errors a batch can meet (SequencerInbox, then Bridge): the poster names them in its errors.
POSTING_ERRORS = (
    "BadSequencerNumber(uint256,uint256)",
    "DataTooLarge(uint256,uint256)",
    "DelayProofRequired()",
    "DelayedBackwards()",
    "DelayedTooFar()",
    "InvalidHeaderFlag(bytes1)",
    "NotBatchPoster()",
    "NotCodelessOrigin()",
    "BadSequencerMessageNumber(uint256,uint256)",
)
SEQUENCER_INBOX_INIT = "initialize(address,(uint256,uint256,uint256,uint256),(uint64,uint64,uint64),address)"

# Gas limits of the deployment's transactions (measured use on anvil 1.7.1, about a third added):
# they are sent before the earlier ones are mined, so they cannot be estimated.
_DEPLOY_GAS = {
    "Reader4844": 150_000,
    "ProxyAdmin": 700_000,
    "Bridge logic": 2_200_000,
    "Bridge proxy": 900_000,
    "StandInRollup": 1_900_000,
    "SequencerInbox logic": 6_500_000,
    "SequencerInbox proxy": 900_000,
    "setSequencerInbox": 120_000,
    "setIsBatchPoster": 120_000,
}


class NitroContractsError(DevnetError):
    """The nitro-contracts artifacts are missing, of another version, or not what this module expects."""


@dataclasses.dataclass(frozen=True)
class ContractArtifact:
    """One compiled contract: ``abi`` (empty for Reader4844) and its init code."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes

    def has(self, kind: str, signature: str) -> bool:
        """Whether the ABI declares the ``kind`` (function, event, error) with this canonical signature."""
        return any(
            entry.get("type") == kind and canonical_signature(entry) == signature for entry in self.abi
        )


@dataclasses.dataclass(frozen=True)
class MaxTimeVariation:
    """How far a batch's L1 block and time may lag or lead (SequencerInbox ``maxTimeVariation``).

    The defaults are nitro-testnode's: a day (5760 blocks of 15 s, 86400 s) late, an hour early.
    """

    delay_blocks: int = 5760
    future_blocks: int = 64
    delay_seconds: int = 86_400
    future_seconds: int = 3600

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.delay_blocks, self.future_blocks, self.delay_seconds, self.future_seconds)


@dataclasses.dataclass(frozen=True)
class L1Deployment:
    """Where the contracts are and who may use them: plain data (``as_dict`` for JSON)."""

    rpc_url: str
    chain_id: int
    bridge: str
    sequencer_inbox: str
    rollup: str
    proxy_admin: str
    reader4844: str
    bridge_logic: str
    sequencer_inbox_logic: str
    owner: str
    batch_poster: str
    validator: str
    max_data_size: int
    confirm_period_blocks: int
    #: L1 block of the first deployment transaction: where a reader of the events starts (the rollup's
    #: genesis AssertionCreated is emitted by the deployment itself).
    deployed_at_block: int
    deploy_seconds: float
    deploy_gas: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def artifacts_present(package_dir: Path) -> bool:
    """Whether ``package_dir`` (the installed ``@arbitrum/nitro-contracts``) holds every artifact."""
    return all((package_dir / relative).is_file() for relative in ARTIFACT_PATHS.values())


def load_nitro_artifacts(package_dir: Path) -> dict[str, ContractArtifact]:
    """The artifacts in ``package_dir``, after checking it is the pinned version and has what is used."""
    try:
        version = json.loads((package_dir / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError) as exc:
        raise NitroContractsError(
            f"{package_dir} is not an installed {NITRO_CONTRACTS_NPM} ({exc})"
        ) from None
    if version != NITRO_CONTRACTS_VERSION:
        raise NitroContractsError(
            f"{package_dir} holds {NITRO_CONTRACTS_NPM} {version}; the L1 deployment is made for "
            f"{NITRO_CONTRACTS_VERSION}"
        )
    artifacts: dict[str, ContractArtifact] = {}
    for name, relative in ARTIFACT_PATHS.items():
        try:
            document = json.loads((package_dir / relative).read_text())
        except (OSError, ValueError) as exc:
            raise NitroContractsError(
                f"cannot read the {name} artifact at {package_dir / relative}: {exc}"
            ) from None
        bytecode = document["bytecode"]
        if isinstance(bytecode, dict):  # forge's layout (Reader4844)
            bytecode = bytecode["object"]
        artifacts[name] = ContractArtifact(
            name, document.get("abi") or [], bytes.fromhex(bytecode.removeprefix("0x"))
        )
    _check_interfaces(artifacts)
    return artifacts


def _check_interfaces(artifacts: Mapping[str, ContractArtifact]) -> None:
    """The functions and events used here exist with these exact signatures (a package bump fails loudly)."""
    expected = [
        ("SequencerInbox", "function", ADD_BATCH),
        ("SequencerInbox", "function", SEQUENCER_INBOX_INIT),
        ("SequencerInbox", "function", "setIsBatchPoster(address,bool)"),
        ("SequencerInbox", "function", "batchCount()"),
        ("SequencerInbox", "event", SEQUENCER_BATCH_DELIVERED),
        ("SequencerInbox", "event", SEQUENCER_BATCH_DATA),
        ("SequencerInbox", "function", ADD_BATCH_FROM_CONTRACT),
        ("SequencerInbox", "function", ADD_BATCH_DELAY_PROOF),
        ("SequencerInbox", "function", ADD_BATCH_FROM_CONTRACT_DELAY_PROOF),
        ("SequencerInbox", "function", ADD_BATCH_FROM_BLOBS),
        ("SequencerInbox", "function", ADD_BATCH_FROM_BLOBS_DELAY_PROOF),
        ("Bridge", "function", "initialize(address)"),
        ("Bridge", "function", "setSequencerInbox(address)"),
        ("Bridge", "function", "sequencerInboxAccs(uint256)"),
        ("Bridge", "function", "sequencerReportedSubMessageCount()"),
        ("RollupCore", "event", ASSERTION_CREATED),
        ("RollupCore", "event", ASSERTION_CONFIRMED),
        ("RollupCore", "function", "latestConfirmed()"),
    ]
    missing = [
        f"{name}.{signature}"
        for name, kind, signature in expected
        if not artifacts[name].has(kind, signature)
    ]
    posting = {
        *error_table(artifacts["SequencerInbox"].abi).values(),
        *error_table(artifacts["Bridge"].abi).values(),
    }
    missing += [f"the error {signature}" for signature in POSTING_ERRORS if signature not in posting]
    if missing:
        raise NitroContractsError(f"{NITRO_CONTRACTS_NPM} lacks {', '.join(missing)}")
    for name in ("Bridge", "SequencerInbox", "ProxyAdmin", "TransparentUpgradeableProxy", "Reader4844"):
        if not artifacts[name].bytecode:
            raise NitroContractsError(f"the {name} artifact has no bytecode")


def stand_in_rollup_artifact() -> ContractArtifact:
    """Our rollup stand-in, from ``l1/solidity/artifacts.json``."""
    entry = solidity.compiled("StandInRollup")
    return ContractArtifact(
        "StandInRollup", entry["abi"], bytes.fromhex(entry["bytecode"].removeprefix("0x"))
    )


def combined_errors(artifacts: Mapping[str, ContractArtifact]) -> dict[bytes, str]:
    """Every custom error of the deployed contracts, for readable reverts."""
    table: dict[bytes, str] = {}
    for artifact in artifacts.values():
        table.update(error_table(artifact.abi))
    return table


def _constructor(artifact: ContractArtifact, *arguments: Any) -> bytes:
    entry = next((item for item in artifact.abi if item.get("type") == "constructor"), None)
    if entry is None:
        if arguments:
            raise NitroContractsError(f"{artifact.name} has no constructor arguments")
        return artifact.bytecode
    return artifact.bytecode + encode([canonical_type(item) for item in entry["inputs"]], arguments)


def deploy_l1(
    rpc_url: str,
    *,
    deployer_key: str,
    batch_poster: str,
    package_dir: Path,
    validator: str | None = None,
    max_data_size: int = MAX_DATA_SIZE,
    max_time_variation: MaxTimeVariation = MaxTimeVariation(),
    confirm_period_blocks: int = 1,
    receipt_timeout: float = 60.0,
) -> L1Deployment:
    """Deploy Bridge, SequencerInbox and the rollup stand-in on the L1 at ``rpc_url``.

    ``deployer_key`` pays and becomes the rollup's owner; ``batch_poster`` (a codeless account) may post
    batches; ``validator`` (default: the batch poster) asserts and confirms on the rollup stand-in.
    """
    started = time.perf_counter()
    artifacts = load_nitro_artifacts(package_dir)
    artifacts["StandInRollup"] = stand_in_rollup_artifact()
    account = L1Account(
        rpc_url, deployer_key, errors=combined_errors(artifacts), receipt_timeout=receipt_timeout
    )
    validator = validator or batch_poster
    owner = account.address
    first = account.next_nonce()
    at = {
        name: create_address(owner, first + index)
        for index, name in enumerate(
            [
                "Reader4844",
                "ProxyAdmin",
                "Bridge logic",
                "Bridge",
                "StandInRollup",
                "SequencerInbox logic",
                "SequencerInbox",
            ]
        )
    }
    proxy = artifacts["TransparentUpgradeableProxy"]
    zero = "0x" + "00" * 20
    steps: list[tuple[str | None, bytes, str]] = [
        (None, artifacts["Reader4844"].bytecode, "Reader4844"),
        (None, _constructor(artifacts["ProxyAdmin"]), "ProxyAdmin"),
        (None, _constructor(artifacts["Bridge"]), "Bridge logic"),
        (
            None,
            _constructor(
                proxy,
                at["Bridge logic"],
                at["ProxyAdmin"],
                call_data("initialize(address)", at["StandInRollup"]),
            ),
            "Bridge proxy",
        ),
        (
            None,
            _constructor(artifacts["StandInRollup"], at["Bridge"], owner, validator, confirm_period_blocks),
            "StandInRollup",
        ),
        (
            None,
            _constructor(artifacts["SequencerInbox"], max_data_size, at["Reader4844"], False, False),
            "SequencerInbox logic",
        ),
        (
            None,
            _constructor(
                proxy,
                at["SequencerInbox logic"],
                at["ProxyAdmin"],
                call_data(SEQUENCER_INBOX_INIT, at["Bridge"], max_time_variation.as_tuple(), (0, 0, 0), zero),
            ),
            "SequencerInbox proxy",
        ),
        (at["Bridge"], call_data("setSequencerInbox(address)", at["SequencerInbox"]), "setSequencerInbox"),
        (
            at["SequencerInbox"],
            call_data("setIsBatchPoster(address,bool)", batch_poster, True),
            "setIsBatchPoster",
        ),
    ]
    hashes = account.send_many(
        [(to, data, _DEPLOY_GAS[what], f"L1 deployment: {what}") for to, data, what in steps]
    )
    receipts = [
        account.wait(tx_hash, what=f"L1 deployment: {what}")
        for tx_hash, (_, _, what) in zip(hashes, steps, strict=True)
    ]
    for receipt, (to, _, what) in zip(receipts, steps, strict=True):
        if to is None and receipt.get("contractAddress") is None:
            raise NitroContractsError(f"L1 deployment: {what} created no contract")
    created = [
        receipt["contractAddress"].lower()
        for receipt, (to, _, _) in zip(receipts, steps, strict=True)
        if to is None
    ]
    if created != list(at.values()):
        raise NitroContractsError(
            f"L1 deployment: contracts landed at {created}, expected {list(at.values())}"
        )
    deployment = L1Deployment(
        rpc_url=rpc_url,
        chain_id=account.chain_id,
        bridge=at["Bridge"],
        sequencer_inbox=at["SequencerInbox"],
        rollup=at["StandInRollup"],
        proxy_admin=at["ProxyAdmin"],
        reader4844=at["Reader4844"],
        bridge_logic=at["Bridge logic"],
        sequencer_inbox_logic=at["SequencerInbox logic"],
        owner=owner.lower(),
        batch_poster=batch_poster.lower(),
        validator=validator.lower(),
        max_data_size=max_data_size,
        confirm_period_blocks=confirm_period_blocks,
        deployed_at_block=min(int(receipt["blockNumber"], 16) for receipt in receipts),
        deploy_seconds=0.0,
        deploy_gas=sum(int(receipt["gasUsed"], 16) for receipt in receipts),
    )
    _check_wiring(account, deployment)
    return dataclasses.replace(deployment, deploy_seconds=time.perf_counter() - started)


def _read(account: L1Account, to: str, signature: str, *arguments: Any, returns: str) -> Any:
    answer = account.call(to, call_data(signature, *arguments), what=f"L1 read {signature}")
    return decode([returns], answer)[0]


def _check_wiring(account: L1Account, deployment: L1Deployment) -> None:
    """Reads back what the deployment promised, so a wrong step fails here, not at the first batch."""
    checks = [
        (deployment.bridge, "rollup()", (), "address", deployment.rollup),
        (deployment.bridge, "sequencerInbox()", (), "address", deployment.sequencer_inbox),
        (deployment.sequencer_inbox, "bridge()", (), "address", deployment.bridge),
        (deployment.sequencer_inbox, "rollup()", (), "address", deployment.rollup),
        (deployment.sequencer_inbox, "isBatchPoster(address)", (deployment.batch_poster,), "bool", True),
        (deployment.sequencer_inbox, "batchCount()", (), "uint256", 0),
        (deployment.rollup, "owner()", (), "address", deployment.owner),
        (deployment.rollup, "bridge()", (), "address", deployment.bridge),
    ]
    for to, signature, arguments, returns, want in checks:
        got = _read(account, to, signature, *arguments, returns=returns)
        if got != want:
            raise NitroContractsError(f"L1 deployment: {signature} on {to} is {got!r}, expected {want!r}")
