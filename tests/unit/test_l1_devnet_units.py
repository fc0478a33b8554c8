"""The devnet's L1 without a node: L1Endpoint, the L1 options and their checks, the keys, incidents, the encoder."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from pytest_gashammer import options
from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.chain.rpc import TransportError
from pytest_gashammer.chain.tx import rebuilt_raw_transaction
from pytest_gashammer.devnet.base import NITRO_DEV_KEY, Devnet, Funder, SharedDevnet, free_port
from pytest_gashammer.devnet.embedded import EmbeddedDevnet
from pytest_gashammer.devnet.factory import DevnetOptions, check_l1_options, open_devnet
from pytest_gashammer.devnet.l1_chain import (
    L1_DEPLOYER_KEY,
    L1_POSTER_KEY,
    EmbeddedL1,
    named_l1,
)
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.hive.session import devnet_options
from pytest_gashammer.l1.batch import decode_batch
from pytest_gashammer.l1.endpoint import L1Endpoint, address_problem, l1_url_problem
from pytest_gashammer.l1.l2_batches import L2BlockEncoder

INBOX = "0x" + "ab" * 20
ROLLUP = "0x" + "Cd" * 20
ENDPOINT = L1Endpoint(
    rpc_url="http://127.0.0.1:1",
    chain_id=1337,
    sequencer_inbox=INBOX,
    bridge="0x" + "01" * 20,
    rollup="0x" + "02" * 20,
    deployed_at_block=7,
    owned=True,
)

# ----------------------------------------------------------------------------------------------
# L1Endpoint


def test_an_l1_endpoint_is_frozen_plain_data_that_survives_a_dict() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ENDPOINT.chain_id = 1  # type: ignore[misc]
    assert L1Endpoint.from_dict(ENDPOINT.as_dict()) == ENDPOINT
    bare = L1Endpoint("http://l1:8545", 1, INBOX)
    assert (bare.bridge, bare.rollup, bare.deployed_at_block, bare.owned) == (None, None, 0, False)


@pytest.mark.parametrize("good", [INBOX, ROLLUP, " " + INBOX + " "])
def test_an_address_is_0x_and_40_hex_digits(good: str) -> None:
    assert address_problem(good) is None


@pytest.mark.parametrize("bad", ["ab" * 20, "0x" + "ab" * 19, "0x" + "ab" * 21, "0x" + "zz" * 20, ""])
def test_anything_else_is_not_an_address_and_says_what_is(bad: str) -> None:
    problem = address_problem(bad)
    assert problem is not None and "0x and 40 hex digits" in problem and "\n" not in problem


@pytest.mark.parametrize("good", ["http://127.0.0.1:8545", "https://l1.example/rpc", "HTTP://node:1"])
def test_an_l1_url_is_http_or_https_with_a_host(good: str) -> None:
    assert l1_url_problem(good) is None


@pytest.mark.parametrize("bad", ["ws://127.0.0.1:8546", "127.0.0.1:8545", "http://", "http:///path", ""])
def test_other_l1_urls_are_refused(bad: str) -> None:
    problem = l1_url_problem(bad)
    assert problem is not None and "is not an http(s) URL" in problem


# ----------------------------------------------------------------------------------------------
# the base class and the worker's view


class _Chain(Devnet):
    kind = "test"

    @property
    def rpc_url(self) -> str:
        return "http://127.0.0.1:1"

    @property
    def ws_url(self) -> str | None:
        return None

    @property
    def chain_id(self) -> int:
        return 412346

    @property
    def funder(self) -> Funder:
        return Funder("0x" + "00" * 20, "0x01")

    @property
    def node_version(self) -> str:
        return "test"


def test_a_devnet_has_no_l1_and_no_poster_unless_one_is_named() -> None:
    chain = _Chain()
    assert chain.l1 is None and chain.batch_poster is None
    assert chain.endpoints()["l1"] is None
    assert SharedDevnet(chain.endpoints()).l1 is None
    chain.use_l1(ENDPOINT)
    assert chain.l1 == ENDPOINT


def test_a_worker_sees_the_hive_devnets_l1_but_runs_no_poster() -> None:
    chain = _Chain()
    chain.use_l1(ENDPOINT)
    shared = SharedDevnet(chain.endpoints())
    assert shared.l1 == ENDPOINT and shared.batch_poster is None


def test_an_embedded_devnet_not_started_has_no_l1_of_its_own() -> None:
    devnet = EmbeddedDevnet()
    assert devnet.l1 is None and devnet.batch_poster is None and devnet.l1_pid is None
    devnet.use_l1(dataclasses.replace(ENDPOINT, owned=False))
    assert devnet.l1 is not None and not devnet.l1.owned


@pytest.mark.parametrize(
    "settings",
    [{"batch_interval": 0}, {"assert_every": 0}, {"confirm_delay": -1}, {"l1_block_time": 0}],
)
def test_bad_poster_settings_are_refused_at_construction(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        EmbeddedDevnet(**settings)


# ----------------------------------------------------------------------------------------------
# the keys


def test_the_l1_keys_are_the_declared_labels_and_neither_is_the_l2_funders() -> None:
    assert "0x" + keccak256(b"gashammer devnet L1 deployer").hex() == L1_DEPLOYER_KEY
    assert "0x" + keccak256(b"gashammer devnet L1 batch poster").hex() == L1_POSTER_KEY
    assert len({L1_DEPLOYER_KEY, L1_POSTER_KEY, NITRO_DEV_KEY}) == 3


# ----------------------------------------------------------------------------------------------
# the options


def _refused(devnet: DevnetOptions) -> str:
    with pytest.raises(DevnetError) as info:
        open_devnet(devnet)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("devnet", "expected"),
    [
        (DevnetOptions(sequencer_inbox=INBOX), f"{options.SEQUENCER_INBOX} names a contract on the L1 of"),
        (DevnetOptions(rollup=ROLLUP), f"pass {options.L1_URL} too, or drop {options.ROLLUP}"),
        (
            DevnetOptions(l1_url="http://127.0.0.1:1"),
            f"{options.L1_URL} needs {options.SEQUENCER_INBOX} ADDR",
        ),
        (
            DevnetOptions(l1_url="http://127.0.0.1:1", sequencer_inbox=INBOX, l1=False),
            f"{options.NO_L1} and {options.L1_URL} both say where the L1 is; drop one of them",
        ),
        (
            DevnetOptions(backend="ethereumjs", l1=False),
            f"{options.NO_L1} turns off the embedded devnet's own L1; {options.DEVNET} ethereumjs starts none",
        ),
        (
            DevnetOptions(rpc_url="http://127.0.0.1:1", funder_key="0x01", l1=False),
            f"{options.RPC_URL} starts none. Drop {options.NO_L1}",
        ),
        (
            DevnetOptions(batch_interval=0.5, l1=False),
            f"{options.BATCH_INTERVAL} paces the embedded devnet's batch poster; with {options.NO_L1} none runs",
        ),
        (
            DevnetOptions(batch_interval=0.5, l1_url="http://127.0.0.1:1", sequencer_inbox=INBOX),
            f"with {options.L1_URL} none runs. Drop {options.BATCH_INTERVAL}",
        ),
        (
            DevnetOptions(batch_interval=0.5, backend="container:anvil"),
            f"with {options.DEVNET} container:anvil none runs",
        ),
        (DevnetOptions(batch_interval=-1.0), "must be a positive number of seconds"),
    ],
)
def test_l1_options_that_do_not_fit_are_refused_before_anything_starts(
    devnet: DevnetOptions, expected: str
) -> None:
    assert expected in _refused(devnet)


def test_the_default_and_an_embedded_batch_interval_fit() -> None:
    check_l1_options(DevnetOptions())
    check_l1_options(DevnetOptions(batch_interval=0.25))
    check_l1_options(DevnetOptions(l1=False))
    check_l1_options(DevnetOptions(backend="ethereumjs", l1_url="http://l1:1", sequencer_inbox=INBOX))


def test_a_named_l1_that_does_not_answer_is_one_line_naming_the_option() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DevnetError) as info:
        named_l1(url, INBOX)
    message = str(info.value)
    assert message.startswith(f"{options.L1_URL} {url} is unreachable") and "\n" not in message


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("ws://l1:1", INBOX), f"{options.L1_URL}: 'ws://l1:1' is not an http(s) URL"),
        (("http://l1:1", "0x12"), f"{options.SEQUENCER_INBOX}: '0x12' is not an address"),
        (("http://l1:1", INBOX, "rollup"), f"{options.ROLLUP}: 'rollup' is not an address"),
    ],
)
def test_a_named_l1_with_a_malformed_value_is_refused_before_any_request(
    arguments: tuple[str, ...], expected: str
) -> None:
    with pytest.raises(DevnetError) as info:
        named_l1(*arguments)
    assert str(info.value).startswith(expected)


def test_the_options_reach_the_devnet_options(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig(
        options.L1_URL, "https://l1.example:8545", options.SEQUENCER_INBOX, INBOX,
        options.ROLLUP, ROLLUP, options.BATCH_INTERVAL, "0.5",
    )  # fmt: skip
    devnet = devnet_options(config, None)
    assert (devnet.l1, devnet.l1_url, devnet.sequencer_inbox, devnet.rollup, devnet.batch_interval) == (
        True, "https://l1.example:8545", INBOX, ROLLUP, 0.5,
    )  # fmt: skip
    plain = devnet_options(pytester.parseconfig(options.NO_L1), None)
    assert (plain.l1, plain.l1_url, plain.sequencer_inbox, plain.rollup, plain.batch_interval) == (
        False, None, None, None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ((options.L1_URL, "l1:8545"), f"argument {options.L1_URL}: 'l1:8545' is not an http(s) URL"),
        (
            (options.SEQUENCER_INBOX, "0xabc"),
            f"argument {options.SEQUENCER_INBOX}: '0xabc' is not an address",
        ),
        ((options.BATCH_INTERVAL, "0"), f"argument {options.BATCH_INTERVAL}: '0' must be a positive number"),
        ((options.BATCH_INTERVAL, "soon"), f"argument {options.BATCH_INTERVAL}: 'soon' is not a number"),
    ],
)
def test_a_malformed_option_is_a_one_line_usage_error(
    pytester: pytest.Pytester, argv: tuple[str, str], expected: str
) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.stderr.lines if argv[1] in line and "argument" in line]
    assert expected in line


def test_a_malformed_environment_value_is_refused_the_same_way(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    pytester._monkeypatch.setenv("GASHAMMER_ROLLUP", "nowhere")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'nowhere' is not an address" in result.stderr.str()


# ----------------------------------------------------------------------------------------------
# incidents: one append-only list, in the order seen


class _Poster:
    def __init__(self) -> None:
        self.failure_count = 0
        self.kept: list[str] = []
        self.error: str | None = None

    def fail(self, text: str) -> None:
        self.failure_count += 1
        self.kept = [*self.kept, text][-20:]

    def failures(self) -> list[str]:
        return list(self.kept)


def _l1_with(poster: _Poster) -> EmbeddedL1:
    l1 = EmbeddedL1(Path("anvil"), workdir=Path("."))
    l1.poster = poster  # type: ignore[assignment]
    return l1


def test_poster_failures_become_incidents_once_each_even_past_the_posters_memory() -> None:
    poster = _Poster()
    l1 = _l1_with(poster)
    assert l1.incidents() == []
    poster.fail("L1 eth_blockNumber failed: refused")
    poster.fail("L1 eth_blockNumber failed: refused")
    assert l1.incidents() == ["L1 batch poster: L1 eth_blockNumber failed: refused (2 times)"]
    poster.fail("L1 eth_blockNumber failed: refused")
    assert l1.incidents()[1:] == ["L1 batch poster: L1 eth_blockNumber failed: refused"]
    for index in range(25):
        poster.fail(f"failure {index}")
    incidents = l1.incidents()
    assert incidents[2] == "L1 batch poster: 5 earlier failures not kept"
    assert incidents[3:] == [f"L1 batch poster: failure {index}" for index in range(5, 25)]
    poster.error = "the batch poster stopped after 5 failures in a row; last: failure 24"
    assert l1.incidents()[-1] == "L1 the batch poster stopped after 5 failures in a row; last: failure 24"
    assert l1.incidents() == l1.incidents(), "nothing is reported twice"


class _Watch:
    def __init__(self) -> None:
        self.incidents: list[str] = []


def test_the_embedded_devnets_incidents_only_grow_whichever_part_reports() -> None:
    devnet = EmbeddedDevnet()
    watch, poster = _Watch(), _Poster()
    devnet._pool_watch = watch  # type: ignore[assignment]
    devnet._l1 = _l1_with(poster)
    poster.fail("posting batch 3: timed out")
    first = len(devnet.incidents())
    watch.incidents.append("stranded A")
    # Runs slice the list by its length at their start: what came since is after it, whoever said it.
    assert devnet.incidents()[first:] == ["stranded A"]
    second = len(devnet.incidents())
    poster.fail("posting batch 4: timed out")
    watch.incidents.append("stranded B")
    assert sorted(devnet.incidents()[second:]) == [
        "L1 batch poster: posting batch 4: timed out",
        "stranded B",
    ]
    assert devnet.incidents()[:second] == ["L1 batch poster: posting batch 3: timed out", "stranded A"]


# ----------------------------------------------------------------------------------------------
# the encoder


def _signed_block(number: int, timestamp: int, count: int) -> dict[str, Any]:
    account = Account.from_key(NITRO_DEV_KEY)
    transactions = []
    for nonce in range(count):
        fields = {
            "chainId": 412346, "nonce": nonce, "gas": 21_000, "to": "0x" + "11" * 20, "value": nonce + 1,
            "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "type": 2,
        }  # fmt: skip
        signed = account.sign_transaction(fields)
        transactions.append(
            {
                "hash": "0x" + bytes(signed.hash).hex(),
                "type": "0x2",
                "chainId": hex(412346),
                "nonce": hex(nonce),
                "gas": hex(21_000),
                "to": fields["to"],
                "value": hex(nonce + 1),
                "input": "0x",
                "maxFeePerGas": hex(10**10),
                "maxPriorityFeePerGas": hex(10**9),
                "accessList": [],
                "yParity": hex(signed.v),
                "v": hex(signed.v),
                "r": hex(signed.r),
                "s": hex(signed.s),
            }
        )
    return {"number": hex(number), "hash": "0x" + f"{number:064x}", "timestamp": hex(timestamp),
            "transactions": transactions}  # fmt: skip


def test_the_encoder_rebuilds_each_transaction_from_its_object_in_block_order() -> None:
    blocks = [_signed_block(5, 1_700_000_000, 3), _signed_block(6, 1_700_000_001, 0)]
    encoder = L2BlockEncoder(f"http://127.0.0.1:{free_port()}")  # never asked: every object rebuilds
    decoded = decode_batch(encoder(blocks))
    assert [block.timestamp for block in decoded.blocks] == [1_700_000_000, 1_700_000_001]
    assert [block.l1_block_number for block in decoded.blocks] == [0, 0]
    assert [["0x" + keccak256(raw).hex() for raw in block.transactions] for block in decoded.blocks] == [
        [tx["hash"] for tx in block["transactions"]] for block in blocks
    ]
    assert (encoder.rebuilt, encoder.fetched) == (3, 0)
    encoder(blocks[:1])  # the poster halving a batch: the kept bytes serve again
    assert encoder.rebuilt == 3


def _hashes_only(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "transactions": [tx["hash"] for tx in block["transactions"]]}


def test_blocks_with_hashes_only_take_their_bytes_from_what_already_has_them() -> None:
    full = _signed_block(7, 1_700_000_000, 3)
    raws = {full["hash"]: [rebuilt_raw_transaction(tx) for tx in full["transactions"]]}
    encoder = L2BlockEncoder(f"http://127.0.0.1:{free_port()}", known_raw=raws.get)  # the node is never asked
    decoded = decode_batch(encoder([_hashes_only(full)]))
    assert [["0x" + keccak256(raw).hex() for raw in block.transactions] for block in decoded.blocks] == [
        [tx["hash"] for tx in full["transactions"]]
    ]
    assert (encoder.known, encoder.rebuilt, encoder.fetched) == (3, 0, 0)


def test_bytes_that_are_not_the_blocks_own_send_the_encoder_to_the_node() -> None:
    full = _signed_block(8, 1_700_000_000, 2)
    wrong = {full["hash"]: [b"\x02" + bytes(40), b"\x02" + bytes(41)]}
    encoder = L2BlockEncoder(f"http://127.0.0.1:{free_port()}", known_raw=wrong.get, rpc_timeout=1)
    encoder.known_wait = 0.2
    with pytest.raises(TransportError, match="cannot reach"):
        encoder([_hashes_only(full)])
    assert encoder.known == 0


def test_the_encoder_refuses_transactions_that_are_neither_objects_nor_hashes() -> None:
    block = {"number": "0x5", "hash": "0x" + "05" * 32, "timestamp": "0x1", "transactions": [5]}
    with pytest.raises(DevnetError, match="neither objects nor hashes"):
        L2BlockEncoder("http://127.0.0.1:1")([block])
