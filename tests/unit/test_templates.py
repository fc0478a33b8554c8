"""The built-in template catalogue: registry, deterministic builds, parameters, gas models, setup."""

from __future__ import annotations

import asyncio
import math
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.scenario.spec import parse_spec
from pytest_gashammer.workload import BUILTIN, Template, TemplateContext, resolve_template
from pytest_gashammer.workload.calldata import SINK, CalldataTemplate
from pytest_gashammer.workload.contracts import artifact, load_artifacts, source_digest, source_files
from pytest_gashammer.workload.deploy import DeployTemplate, init_execution_gas
from pytest_gashammer.workload.erc20 import MINT_AMOUNT, TRANSFER_EXECUTION_GAS, holder_addresses
from pytest_gashammer.workload.revert import REVERT_EXECUTION_GAS
from pytest_gashammer.workload.storage import STORAGE_BASE_GAS, STORAGE_SLOT_GAS

SENDERS = [f"0x{index:040x}" for index in range(1, 451)]
CONTRACT = "0x" + "c0" * 20
TEMPLATE_NAMES = sorted(BUILTIN)


def context(seed: int = 7, senders: Sequence[str] = SENDERS[:8]) -> TemplateContext:
    return TemplateContext(chain_id=412346, seed=seed, sender_addresses=list(senders))


def fake_setup(name: str, seed: int) -> dict[str, Any]:
    """What each template's setup would return on a chain."""
    if name == "erc20":
        return {"token": CONTRACT, "holders": holder_addresses(seed, 64)}
    if name in ("storage", "revert"):
        return {"contract": CONTRACT}
    return {}


def prepared(name: str, params: Mapping[str, Any] | None = None, seed: int = 7) -> Template:
    template = resolve_template(name)(context(seed), params)
    template.use_setup(fake_setup(name, seed))
    return template


def builds(template: Template, seed: int, count: int = 25) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [template.build(index % 8, rng) for index in range(count)]


def tx_gas(data: bytes, execution: int = 0, *, create: bool = False, floor: bool = True) -> int:
    """Gas of a transaction computed from scratch: 4/16 per byte, creation, execution, EIP-7623 floor."""
    zeros = sum(1 for byte in data if byte == 0)
    nonzeros = len(data) - zeros
    standard = 21_000 + 4 * zeros + 16 * nonzeros + execution
    if create:
        standard += 32_000 + 2 * math.ceil(len(data) / 32)
    return max(standard, 21_000 + 10 * (zeros + 4 * nonzeros)) if floor else standard


# ----------------------------------------------------------------------------------------------
# registry


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_registry_resolves_every_builtin_name(name: str) -> None:
    template = resolve_template(name)
    assert issubclass(template, Template)
    assert template.name == name
    assert template.expected_status in (0, 1)
    assert template.gas_tolerance >= 0
    assert template.nominal_gas_for(template.params) >= 21_000


def test_the_catalogue_is_complete() -> None:
    assert set(BUILTIN) == {"transfer", "erc20", "storage", "calldata", "deploy", "revert"}
    assert resolve_template("revert").expected_status == 0
    assert resolve_template("revert").calibrate is False


# ----------------------------------------------------------------------------------------------
# deterministic builds


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_same_seed_builds_the_same_transactions(name: str) -> None:
    first = builds(prepared(name), seed=99)
    second = builds(prepared(name), seed=99)
    assert first == second
    for fields in first:
        assert set(fields) == {"to", "value", "data"}
        assert isinstance(fields["value"], int)
        assert isinstance(fields["data"], bytes)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_different_seeds_build_different_transactions(name: str) -> None:
    assert builds(prepared(name), seed=1) != builds(prepared(name), seed=2)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_build_draws_only_from_the_rng_it_is_given(name: str) -> None:
    template = prepared(name)
    rng = random.Random(5)
    template.build(0, rng)
    state = rng.getstate()
    # The same generator state gives the same transaction, whatever the template did before.
    assert template.build(3, random.Random(5)) == prepared(name).build(3, random.Random(5))
    assert rng.getstate() == state


@pytest.mark.parametrize("name", ["erc20", "storage", "revert"])
def test_contract_templates_need_their_setup_before_building(name: str) -> None:
    template = resolve_template(name)(context())
    with pytest.raises(RuntimeError, match="use_setup"):
        template.build(0, random.Random(1))


def test_setup_data_stays_with_its_template() -> None:
    shared = context()
    storage = resolve_template("storage")(shared)
    revert = resolve_template("revert")(shared)
    storage.use_setup({"contract": "0x" + "aa" * 20})
    revert.use_setup({"contract": "0x" + "bb" * 20})
    assert storage.context.setup == {"contract": "0x" + "aa" * 20}
    assert revert.context.setup == {"contract": "0x" + "bb" * 20}
    assert storage.build(0, random.Random(1))["to"] == "0x" + "aa" * 20


# ----------------------------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("storage", {"slots": 0}, r"workload\['storage'\]: parameter slots=0 must be between 1 and 500"),
        ("storage", {"slots": 501}, r"parameter slots=501 must be between 1 and 500"),
        ("storage", {"slots": "10"}, r"parameter slots='10' must be a int"),
        ("storage", {"slots": True}, r"parameter slots=True must be a int"),
        ("storage", {"slot": 3}, r"unknown parameter 'slot'; accepted: slots"),
        (
            "calldata",
            {"bytes": -1},
            r"workload\['calldata'\]: parameter bytes=-1 must be between 0 and 120000",
        ),
        ("calldata", {"bytes": 200_000}, r"parameter bytes=200000 must be between 0 and 120000"),
        ("calldata", {"zero_fraction": 1.5}, r"parameter zero_fraction=1.5 must be between 0.0 and 1.0"),
        ("calldata", {"zero_fraction": -0.1}, r"parameter zero_fraction=-0.1 must be between 0.0 and 1.0"),
        ("calldata", {"zero_fraction": math.nan}, r"parameter zero_fraction=nan must be between 0.0 and 1.0"),
        ("calldata", {"zero_fraction": "half"}, r"parameter zero_fraction='half' must be a float"),
        (
            "deploy",
            {"code_size": 0},
            r"workload\['deploy'\]: parameter code_size=0 must be between 1 and 24576",
        ),
        ("deploy", {"code_size": 24_577}, r"code_size=24577 must be between 1 and 24576 .*EIP-170"),
        ("erc20", {"holders": 0}, r"workload\['erc20'\]: parameter holders=0 must be between 1 and 10000"),
        ("revert", {"tag": 1}, r"workload\['revert'\]: unknown parameter 'tag'; accepted: none"),
    ],
)
def test_bad_parameters_are_one_line_naming_template_parameter_and_fix(
    name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_spec({"gas_per_sec": "2M", "workload": {name: {"share": 1.0, **params}}})
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("storage", {"slots": 1}),
        ("storage", {"slots": 500}),
        ("calldata", {"bytes": 0}),
        ("calldata", {"bytes": 120_000, "zero_fraction": 1}),
        ("calldata", {"zero_fraction": 0.25}),
        ("deploy", {"code_size": 1}),
        ("deploy", {"code_size": 24_576}),
        ("erc20", {"holders": 1}),
    ],
)
def test_good_parameters_are_accepted(name: str, params: dict[str, Any]) -> None:
    spec = parse_spec({"gas_per_sec": "2M", "workload": {name: {"share": 1.0, **params}}})
    ((entry_name, _share, checked),) = spec.workload
    assert entry_name == name
    assert checked == params


# ----------------------------------------------------------------------------------------------
# gas models


@pytest.mark.parametrize("size", [0, 1, 7, 31, 32, 1024, 4097])
@pytest.mark.parametrize("zero_fraction", [0.0, 0.1, 0.25, 0.5, 0.999, 1.0])
def test_calldata_gas_model_is_exact(size: int, zero_fraction: float) -> None:
    params = {"bytes": size, "zero_fraction": zero_fraction}
    template = prepared("calldata", params)
    nominal = CalldataTemplate.nominal_gas_for(params)
    expected_zeros = math.floor(size * zero_fraction + 0.5)
    for fields in builds(template, seed=size + 1, count=10):
        data = fields["data"]
        assert fields["to"] == SINK and fields["value"] == 0
        assert len(data) == size
        assert data.count(0) == expected_zeros
        assert tx_gas(data) == nominal
    # The floor (10 gas per token) always wins when nothing executes.
    assert nominal == 21_000 + 10 * expected_zeros + 40 * (size - expected_zeros)


def test_calldata_gas_before_prague_is_the_standard_price() -> None:
    from pytest_gashammer.workload.gas import transaction_gas

    data = prepared("calldata", {"bytes": 100, "zero_fraction": 0.5}).build(0, random.Random(3))["data"]
    assert transaction_gas(data, floor=False) == 21_000 + 4 * 50 + 16 * 50


def run_init_code(code: bytes) -> tuple[bytes, int]:
    """A tiny EVM for the deploy prefix's opcodes: the returned bytes and the gas used."""
    stack: list[int] = []
    memory = bytearray()
    gas = 0
    pc = 0

    def grow(end: int) -> int:
        old_words, new_words = math.ceil(len(memory) / 32), math.ceil(end / 32)
        if new_words <= old_words:
            return 0
        memory.extend(bytes(32 * new_words - len(memory)))
        return (3 * new_words + new_words**2 // 512) - (3 * old_words + old_words**2 // 512)

    while True:
        op = code[pc]
        if op == 0x60:  # PUSH1
            stack.append(code[pc + 1])
            pc, gas = pc + 2, gas + 3
        elif op == 0x61:  # PUSH2
            stack.append(int.from_bytes(code[pc + 1 : pc + 3], "big"))
            pc, gas = pc + 3, gas + 3
        elif op == 0x5F:  # PUSH0
            stack.append(0)
            pc, gas = pc + 1, gas + 2
        elif op == 0x80:  # DUP1
            stack.append(stack[-1])
            pc, gas = pc + 1, gas + 3
        elif op == 0x39:  # CODECOPY dest, offset, size
            dest, offset, size = stack.pop(), stack.pop(), stack.pop()
            gas += 3 + 3 * math.ceil(size / 32) + grow(dest + size)
            chunk = code[offset : offset + size]
            memory[dest : dest + size] = chunk + bytes(size - len(chunk))
            pc += 1
        elif op == 0xF3:  # RETURN offset, size
            offset, size = stack.pop(), stack.pop()
            gas += grow(offset + size)
            return bytes(memory[offset : offset + size]), gas
        else:
            raise AssertionError(f"unexpected opcode {op:#x} at {pc}")


@pytest.mark.parametrize("code_size", [1, 2, 31, 32, 33, 255, 256, 1024, 5000, 24_576])
def test_deploy_init_code_returns_exactly_code_size_bytes(code_size: int) -> None:
    params = {"code_size": code_size}
    template = prepared("deploy", params)
    for fields in builds(template, seed=code_size, count=3):
        init_code = fields["data"]
        assert fields["to"] is None and fields["value"] == 0
        # Layout: PUSH2 size, DUP1, PUSH1 10, PUSH0, CODECOPY, PUSH0, RETURN, then the runtime code.
        assert init_code[:10] == bytes(
            [0x61, code_size >> 8, code_size & 0xFF, 0x80, 0x60, 10, 0x5F, 0x39, 0x5F, 0xF3]
        )
        runtime = init_code[10:]
        assert len(runtime) == code_size
        assert runtime[0] == 0x00  # STOP: the contract does nothing when called (and never starts with 0xEF)
        assert 0 not in runtime[1:]
        returned, execution = run_init_code(init_code)
        assert returned == runtime
        assert execution + 200 * code_size == init_execution_gas(code_size)
        assert DeployTemplate.nominal_gas_for(params) == tx_gas(
            init_code, execution + 200 * code_size, create=True
        )


def test_erc20_gas_model_is_intrinsic_plus_the_transfer() -> None:
    for fields in builds(prepared("erc20"), seed=4, count=50):
        data = fields["data"]
        assert len(data) == 68
        assert data[:4] == artifact("HammerToken").selector("transfer(address,uint256)")
        assert data[4:16] == bytes(12) and 0 not in data[16:36]  # holder addresses have no zero byte
        assert data[36:67] == bytes(31) and 1 <= data[67] <= 255  # amount 1..255
        assert tx_gas(data, TRANSFER_EXECUTION_GAS) == resolve_template("erc20").nominal_gas_for({})


@pytest.mark.parametrize("slots", [1, 2, 10, 100, 500])
def test_storage_gas_model_is_linear_in_fresh_slots(slots: int) -> None:
    params = {"slots": slots}
    data = prepared("storage", params).build(0, random.Random(slots))["data"]
    assert data[:4] == artifact("SlotFiller").selector("fill(uint256,uint256)")
    assert int.from_bytes(data[4:36], "big") == slots
    assert 0 not in data[36:68]  # the salt: nonzero values, constant calldata cost
    nominal = resolve_template("storage").nominal_gas_for(params)
    assert nominal == tx_gas(data, STORAGE_BASE_GAS + slots * STORAGE_SLOT_GAS)
    # Each fresh slot: 22,100 for the cold zero-to-nonzero write, plus the loop's bookkeeping.
    assert 22_100 < STORAGE_SLOT_GAS < 22_400


def test_revert_gas_model_and_gas_limit() -> None:
    template = prepared("revert")
    data = template.build(0, random.Random(1))["data"]
    assert data[:4] == artifact("Reverter").selector("fail(uint256)") and 0 not in data
    nominal = resolve_template("revert").nominal_gas_for({})
    assert nominal == tx_gas(data, REVERT_EXECUTION_GAS)
    # On Prague chains the calldata floor is what this short call pays.
    assert nominal == 21_000 + 10 * 4 * len(data) > tx_gas(data, REVERT_EXECUTION_GAS, floor=False)
    # The limit leaves room for the call to reach its REVERT whatever the model says.
    assert template.gas_limit(nominal) >= nominal + 20_000
    assert template.gas_limit(1.0) >= nominal + 20_000


# ----------------------------------------------------------------------------------------------
# setup, against a recording fake chain


class RecordingChain:
    def __init__(self, senders: Sequence[str]) -> None:
        self.chain_id = 412346
        self.sender_addresses = list(senders)
        self.deployed: list[bytes] = []
        self.funder_calls: list[Mapping[str, Any]] = []

    async def deploy(self, init_code: bytes, *, gas: int | None = None) -> str:
        self.deployed.append(init_code)
        return CONTRACT

    async def send_from_funder(self, calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        self.funder_calls.extend(calls)
        return [{"status": "0x1"} for _ in calls]

    async def send_from_senders(self, calls: Sequence[tuple[int, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        raise AssertionError("built-in templates set up from the funder only")

    async def call(self, to: str, data: bytes) -> bytes:
        raise AssertionError("not used")


def decode_address_array(data: bytes, words_before_tail: int) -> tuple[list[str], list[int]]:
    body = data[4:]
    head = [int.from_bytes(body[32 * i : 32 * i + 32], "big") for i in range(words_before_tail)]
    offset = head[0]
    length = int.from_bytes(body[offset : offset + 32], "big")
    items = [body[offset + 32 + 32 * i + 12 : offset + 64 + 32 * i] for i in range(length)]
    return ["0x" + item.hex() for item in items], head[1:]


def test_erc20_setup_deploys_the_token_and_mints_to_every_sender_and_holder_in_batches() -> None:
    template = resolve_template("erc20")(context(senders=SENDERS))
    chain = RecordingChain(SENDERS)
    data = asyncio.run(template.setup(chain))
    assert chain.deployed == [artifact("HammerToken").bytecode]
    minted: list[str] = []
    mint = artifact("HammerToken").selector("mint(address[],uint256)")
    for call in chain.funder_calls:
        assert call["to"] == CONTRACT and call["data"][:4] == mint
        holders, (amount,) = decode_address_array(call["data"], 2)
        assert amount == MINT_AMOUNT and len(holders) <= 200
        minted += holders
    assert len(chain.funder_calls) == 3  # 450 senders + 64 holders, 200 per transaction
    assert minted == SENDERS + holder_addresses(7, 64)
    assert data == {"token": CONTRACT, "holders": holder_addresses(7, 64)}


def test_storage_setup_primes_every_sender_cursor() -> None:
    template = resolve_template("storage")(context(senders=SENDERS))
    chain = RecordingChain(SENDERS)
    assert asyncio.run(template.setup(chain)) == {"contract": CONTRACT}
    assert chain.deployed == [artifact("SlotFiller").bytecode]
    primed: list[str] = []
    for call in chain.funder_calls:
        assert call["data"][:4] == artifact("SlotFiller").selector("prime(address[])")
        primed += decode_address_array(call["data"], 1)[0]
    assert primed == SENDERS


def test_revert_setup_deploys_the_reverter() -> None:
    chain = RecordingChain(SENDERS[:2])
    assert asyncio.run(resolve_template("revert")(context()).setup(chain)) == {"contract": CONTRACT}
    assert chain.deployed == [artifact("Reverter").bytecode] and chain.funder_calls == []


# ----------------------------------------------------------------------------------------------
# artifacts and import weight


def test_committed_artifacts_were_built_from_the_committed_sources() -> None:
    document = load_artifacts()
    sources = source_files()
    assert set(sources) == {"HammerToken.sol", "SlotFiller.sol", "Reverter.sol"}
    stale = [
        name for name, text in sources.items() if document["sources"][name]["sha256"] != source_digest(text)
    ]
    assert not stale, f"{stale} changed; run python -m pytest_gashammer.workload.contracts.build"
    assert document["compiler"]["settings"]["metadata"] == {"bytecodeHash": "none"}
    for name in ("HammerToken", "SlotFiller", "Reverter"):
        compiled = artifact(name)
        assert compiled.bytecode and compiled.deployed_bytecode
        assert compiled.deployed_bytecode[0] != 0xEF


def test_templates_build_without_heavy_imports() -> None:
    code = (
        "import random, sys\n"
        "from pytest_gashammer.workload import TemplateContext, resolve_template, BUILTIN\n"
        "ctx = TemplateContext(chain_id=1, seed=1, sender_addresses=['0x' + '11' * 20])\n"
        "for name in BUILTIN:\n"
        "    t = resolve_template(name)(ctx)\n"
        "    t.use_setup({'token': '0x' + '22' * 20, 'contract': '0x' + '22' * 20})\n"
        "    t.build(0, random.Random(1)); t.nominal_gas_for(t.options)\n"
        "print(','.join(m for m in ('web3', 'eth_abi', 'eth_account', 'aiohttp') if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == ""
