"""The Engine API client's versions, negotiation and call records; the consensus driver's records
and settings; the JWT secret file and the options of a node driven by URL. Against a loopback
stand-in for a post-merge node that checks each request's token and each version's shape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest

from pytest_gashammer import options
from pytest_gashammer.chain.engine import (
    ZERO_HASH,
    EngineCall,
    EngineCallError,
    EngineClient,
    EngineStatusError,
    EngineVersionError,
    fork_version,
    negotiate_version,
    payload_attributes,
    served_versions,
)
from pytest_gashammer.chain.keccak import keccak256
from pytest_gashammer.devnet.consensus import (
    WITHDRAWAL_GWEI,
    ConsensusDriver,
    DriverSettings,
    synthetic_withdrawals,
    withdrawal_address,
)
from pytest_gashammer.devnet.engine_target import EngineTargetDevnet, read_jwt_secret
from pytest_gashammer.devnet.factory import DevnetOptions, engine_options_problem, open_devnet
from pytest_gashammer.errors import ConfigError, DevnetError
from tests.unit.loopback_http import LoopbackHttp, bearer_token, json_reply

SECRET = bytes(range(32))
FUNDER_KEY = "0x" + "11" * 32
#: What @ethereumjs/client 0.10.5 answers to engine_exchangeCapabilities (its Engine class's methods).
EJS_CAPABILITIES = [
    "engine_newPayloadV1", "engine_newPayloadV2", "engine_newPayloadV3", "engine_newPayloadV4",
    "engine_forkchoiceUpdatedV1", "engine_forkchoiceUpdatedV2", "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV1", "engine_getPayloadV2", "engine_getPayloadV3", "engine_getPayloadV4",
    "engine_getPayloadBodiesByHashV1", "engine_getPayloadBodiesByRangeV1", "engine_getBlobsV1",
]  # fmt: skip
#: The attribute and parameter counts each version must send (the Engine API spec, per fork).
ATTRIBUTE_KEYS = {
    1: {"timestamp", "prevRandao", "suggestedFeeRecipient"},
    2: {"timestamp", "prevRandao", "suggestedFeeRecipient", "withdrawals"},
    3: {"timestamp", "prevRandao", "suggestedFeeRecipient", "withdrawals", "parentBeaconBlockRoot"},
}
ATTRIBUTE_KEYS[4] = ATTRIBUTE_KEYS[3]
NEW_PAYLOAD_PARAMS = {1: 1, 2: 1, 3: 3, 4: 4}


def block_hash(number: int) -> str:
    return "0x" + keccak256(b"block" + number.to_bytes(8, "big")).hex()


class FakeNode:
    """A post-merge node in miniature: JSON-RPC (no token) and the Engine API (a valid HS256 token,
    else HTTP 401) on one loopback port. It builds on its head in the shape of its ``fork`` version
    and refuses any other version's methods with -38005, as EthereumJS does; it checks that every
    request of version V has V's shape (the attribute keys, the newPayload parameters)."""

    def __init__(self, fork: int = 3, capabilities: list[str] | None = None) -> None:
        self.fork = fork
        self.capabilities = EJS_CAPABILITIES if capabilities is None else capabilities
        self.requests: list[dict[str, Any]] = []
        self.shape_errors: list[str] = []
        self.blocks = [self._block(0, ZERO_HASH, 0, [])]
        self.head = 0
        self.pending: dict[str, dict[str, Any]] = {}
        self.delay = 0.0  # seconds the node takes per engine call
        self.balances: dict[str, int] = {}
        self.http = LoopbackHttp(self._respond)
        self.url = self.http.url

    def _respond(self, headers: Mapping[str, str], raw: bytes) -> tuple[int, bytes]:
        body = json.loads(raw)
        if body["method"].startswith("engine_"):
            try:
                claims = jwt.decode(bearer_token(headers), SECRET, algorithms=["HS256"])
                fresh = abs(claims["iat"] - time.time()) <= 60
            except (jwt.InvalidTokenError, KeyError):
                fresh = False
            if not fresh:
                return 401, b""
            time.sleep(self.delay)
        self.requests.append(body)
        return json_reply({"jsonrpc": "2.0", "id": body["id"], **self.answer(body["method"], body["params"])})

    def _block(
        self, number: int, parent: str, timestamp: int, withdrawals: list[dict[str, str]]
    ) -> dict[str, Any]:
        block: dict[str, Any] = {
            "number": hex(number),
            "hash": block_hash(number),
            "parentHash": parent,
            "timestamp": hex(timestamp),
            "gasUsed": hex(21_000 * (number % 3)),
            "transactions": ["0x02" + "00" * 10] * (number % 3),
        }
        if self.fork >= 2:
            block["withdrawalsRoot"] = "0x" + "56" * 32
            block["withdrawals"] = withdrawals
        if self.fork >= 3:
            block["parentBeaconBlockRoot"] = ZERO_HASH
        if self.fork >= 4:
            block["requestsHash"] = "0x" + "e3" * 32
        return block

    def answer(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_getBlockByNumber":
            block = {k: v for k, v in self.blocks[self.head].items() if k != "transactions"}
            return {"result": block}
        if method == "eth_chainId":
            return {"result": "0x539"}
        if method == "engine_exchangeCapabilities":
            return {"result": self.capabilities}
        name, version = method.removeprefix("engine_").rsplit("V", 1)
        wanted = min(self.fork, 3) if name == "forkchoiceUpdated" else self.fork
        if int(version) != wanted:
            return {"error": {"code": -38005, "message": f"Unsupported fork: V{version} on V{self.fork}"}}
        if name == "forkchoiceUpdated":
            state, attributes = params
            head = next(i for i, b in enumerate(self.blocks) if b["hash"] == state["headBlockHash"])
            self.head = head
            valid = {"status": "VALID", "latestValidHash": state["headBlockHash"], "validationError": None}
            if attributes is None:
                return {"result": {"payloadStatus": valid, "payloadId": None}}
            if set(attributes) != ATTRIBUTE_KEYS[self.fork]:
                self.shape_errors.append(f"{method} attributes {sorted(attributes)}")
            number = head + 1
            payload_id = hex(number)
            block = self._block(
                number,
                state["headBlockHash"],
                int(attributes["timestamp"], 16),
                attributes.get("withdrawals", []),
            )
            payload = {
                "blockNumber": block["number"],
                "blockHash": block["hash"],
                "parentHash": block["parentHash"],
                "timestamp": block["timestamp"],
                "gasUsed": block["gasUsed"],
                "transactions": block["transactions"],
            }
            if self.fork >= 2:
                payload["withdrawals"] = block["withdrawals"]
            self.pending[payload_id] = payload
            self.pending_blocks = getattr(self, "pending_blocks", {})
            self.pending_blocks[block["hash"]] = block
            return {"result": {"payloadStatus": valid, "payloadId": payload_id}}
        if name == "getPayload":
            if params[0] not in self.pending:
                return {"error": {"code": -38001, "message": "Unknown payload"}}
            payload = self.pending[params[0]]
            if self.fork == 1:
                return {"result": payload}
            envelope: dict[str, Any] = {"executionPayload": payload, "blockValue": "0x0"}
            if self.fork >= 4:
                envelope["executionRequests"] = []
            return {"result": envelope}
        if name == "newPayload":
            if len(params) != NEW_PAYLOAD_PARAMS[self.fork]:
                self.shape_errors.append(f"{method} with {len(params)} params")
            block = self.pending_blocks[params[0]["blockHash"]]
            if int(block["number"], 16) == len(self.blocks):
                self.blocks.append(block)
                for withdrawal in block.get("withdrawals", []):
                    address = withdrawal["address"]
                    self.balances[address] = (
                        self.balances.get(address, 0) + int(withdrawal["amount"], 16) * 10**9
                    )
            return {"result": {"status": "VALID", "latestValidHash": block["hash"], "validationError": None}}
        return {"error": {"code": -32601, "message": f"the method {method} does not exist"}}

    def __enter__(self) -> FakeNode:
        self.http.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.__exit__(*exc_info)


@pytest.fixture
def node() -> Iterator[FakeNode]:
    with FakeNode(fork=3) as running:
        yield running


# ----------------------------------------------------------------------------------------------
# versions: the shapes, negotiation, the fork


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_each_version_builds_a_block_in_its_own_shape(version: int) -> None:
    records: list[EngineCall] = []
    with FakeNode(fork=version) as fake:
        client = EngineClient(fake.url, SECRET, version=version, observer=records.append)
        withdrawals = synthetic_withdrawals(0, 2) if version >= 2 else []
        attributes = payload_attributes(
            version,
            timestamp=12,
            prev_randao=ZERO_HASH,
            fee_recipient="0x" + "00" * 20,
            withdrawals=withdrawals,
        )
        assert set(attributes) == ATTRIBUTE_KEYS[version]
        choice = client.forkchoice_updated(block_hash(0), attributes)
        envelope = client.get_payload(str(choice.payload_id))
        payload = envelope["executionPayload"]  # V1's bare payload comes back in an envelope too
        assert payload["blockNumber"] == "0x1"
        assert ("executionRequests" in envelope) is (version == 4)
        client.new_payload(payload, [], ZERO_HASH, envelope.get("executionRequests") or [])
        client.forkchoice_updated(payload["blockHash"])
        sent = [request["method"] for request in fake.requests]
        assert fake.shape_errors == []
    fcu = f"engine_forkchoiceUpdatedV{min(version, 3)}"
    assert sent == [fcu, f"engine_getPayloadV{version}", f"engine_newPayloadV{version}", fcu]
    assert [(r.method, r.version, r.status) for r in records] == [
        ("forkchoiceUpdated", min(version, 3), "VALID"),
        ("getPayload", version, "OK"),
        ("newPayload", version, "VALID"),
        ("forkchoiceUpdated", min(version, 3), "VALID"),
    ]
    assert records[1].withdrawals == records[2].withdrawals == (2 if version >= 2 else None)


def test_version_one_attributes_carry_no_withdrawals_and_versions_are_one_to_four() -> None:
    with pytest.raises(ValueError, match="carry no withdrawals"):
        payload_attributes(1, timestamp=1, prev_randao=ZERO_HASH, fee_recipient="0x" + "00" * 20,
                           withdrawals=synthetic_withdrawals(0, 1))  # fmt: skip
    for bad in (0, 5, True, "3"):
        with pytest.raises(ValueError, match="one of 1, 2, 3, 4"):
            EngineClient("http://127.0.0.1:1", SECRET, version=bad)  # type: ignore[arg-type]


def test_negotiation_takes_the_highest_complete_version() -> None:
    assert negotiate_version(EJS_CAPABILITIES) == 4
    assert served_versions(EJS_CAPABILITIES) == [1, 2, 3, 4]
    cancun = [f"engine_{m}V{v}" for v in (1, 2, 3) for m in ("forkchoiceUpdated", "getPayload", "newPayload")]
    assert negotiate_version(cancun) == 3
    # V4 needs getPayloadV4 and newPayloadV4, and forkchoiceUpdatedV3 (there is no V4 of it)
    assert negotiate_version([*cancun, "engine_getPayloadV4"]) == 3
    assert negotiate_version([*cancun, "engine_getPayloadV4", "engine_newPayloadV4"]) == 4
    no_fcu3 = [name for name in cancun if name != "engine_forkchoiceUpdatedV3"]
    assert negotiate_version([*no_fcu3, "engine_getPayloadV4", "engine_newPayloadV4"]) == 2


def test_a_node_serving_no_version_is_one_line() -> None:
    with pytest.raises(EngineVersionError) as info:
        negotiate_version(["engine_getPayloadV3", "engine_getBlobsV1", "eth_chainId"])
    message = str(info.value)
    assert "\n" not in message and "no Engine API version" in message
    assert "engine_getPayloadV3" in message and "eth_chainId" not in message


def test_connect_negotiates_and_refuses_a_version_the_node_does_not_serve() -> None:
    cancun = [f"engine_{m}V{v}" for v in (2, 3) for m in ("forkchoiceUpdated", "getPayload", "newPayload")]
    with FakeNode(capabilities=cancun) as fake:
        assert EngineClient.connect(fake.url, SECRET).version == 3
        assert EngineClient.connect(fake.url, SECRET, version=2).version == 2
        with pytest.raises(EngineVersionError) as info:
            EngineClient.connect(fake.url, SECRET, version=4)
        assert str(info.value) == (
            f"{fake.url} does not serve Engine API V4 (engine_forkchoiceUpdatedV3, engine_getPayloadV4, "
            "engine_newPayloadV4); it serves V2, V3"
        )
        with pytest.raises(EngineCallError) as refused:
            EngineClient.connect(fake.url, bytes(32))
        assert refused.value.unauthorized and "HTTP 401" in str(refused.value)


def test_the_fork_of_a_header() -> None:
    assert fork_version({"number": "0x0"}) == 1
    assert fork_version({"withdrawalsRoot": "0x1"}) == 2
    assert fork_version({"withdrawalsRoot": "0x1", "parentBeaconBlockRoot": "0x2"}) == 3
    assert (
        fork_version({"withdrawalsRoot": "0x1", "parentBeaconBlockRoot": "0x2", "requestsHash": "0x3"}) == 4
    )


# ----------------------------------------------------------------------------------------------
# the observer: one record per call, whatever happened


def test_every_call_is_recorded_also_when_it_fails(node: FakeNode) -> None:
    records: list[EngineCall] = []
    client = EngineClient(node.url, SECRET, version=3, observer=records.append)
    client.exchange_capabilities()
    with pytest.raises(EngineCallError):
        client.get_payload("0xdead")  # no such payload: -38001
    assert records[0].method == "exchangeCapabilities" and records[0].status == "OK"
    failed = records[1]
    assert (failed.method, failed.status, failed.payload_id) == ("getPayload", "ERROR", "0xdead")
    assert (
        failed.error == "engine_getPayloadV3: JSON-RPC error -38001: Unknown payload" and failed.latency >= 0
    )


def test_a_status_the_caller_refused_keeps_the_nodes_status_and_the_message() -> None:
    records: list[EngineCall] = []

    class Invalid(FakeNode):
        def answer(self, method: str, params: list[Any]) -> dict[str, Any]:
            return {
                "result": {
                    "status": "INVALID",
                    "latestValidHash": block_hash(0),
                    "validationError": "bad root\nx",
                }
            }

    with Invalid() as fake:
        client = EngineClient(fake.url, SECRET, observer=records.append)
        payload = {"blockNumber": "0x7", "blockHash": block_hash(7), "parentHash": block_hash(6),
                   "gasUsed": "0x5208", "transactions": ["0x01"], "withdrawals": []}  # fmt: skip
        with pytest.raises(EngineStatusError, match="returned status INVALID"):
            client.new_payload(payload)
        assert client.new_payload(payload, expect=("INVALID",)).status == "INVALID"
    refused, accepted = records
    assert (refused.status, refused.block_number, refused.block_hash, refused.parent_hash) == (
        "INVALID",
        7,
        block_hash(7),
        block_hash(6),
    )
    assert (refused.transactions, refused.gas_used, refused.latest_valid_hash) == (1, 21000, block_hash(0))
    assert refused.error == "engine_newPayloadV3 returned status INVALID (expected VALID): bad root"
    assert accepted.status == "INVALID" and accepted.error is None


def test_unreachable_and_refused_calls_are_errors_in_the_record() -> None:
    records: list[EngineCall] = []
    with FakeNode() as fake:
        url = fake.url
        with pytest.raises(EngineCallError):
            EngineClient(url, bytes(32), observer=records.append).forkchoice_updated(block_hash(0))
    with pytest.raises(EngineCallError):
        EngineClient(url, SECRET, timeout=2, observer=records.append).call("engine_getPayloadV2", "0x1")
    assert [(r.method, r.version, r.status) for r in records] == [
        ("forkchoiceUpdated", 3, "ERROR"), ("getPayload", 2, "ERROR")
    ]  # fmt: skip
    assert "HTTP 401" in str(records[0].error) and records[0].block_hash == block_hash(0)
    assert "cannot reach" in str(records[1].error)


def test_an_observer_that_raises_never_breaks_a_call(node: FakeNode) -> None:
    def broken(record: EngineCall) -> None:
        raise RuntimeError("observer bug")

    client = EngineClient(node.url, SECRET, observer=broken)
    assert client.forkchoice_updated(block_hash(0)).payload_status.status == "VALID"
    with pytest.raises(EngineCallError, match="-38005"):  # the call's own error, not the observer's
        client.with_version(2).get_payload("0x1")


# ----------------------------------------------------------------------------------------------
# the driver: records, withdrawals, settings


def driver_for(fake: FakeNode, **kwargs: Any) -> ConsensusDriver:
    return ConsensusDriver(EngineClient(fake.url, SECRET, version=fake.fork), fake.url, **kwargs)


def test_the_driver_records_every_call_and_one_build_per_block(node: FakeNode) -> None:
    node.delay = 0.02
    mine: list[EngineCall] = []
    driver = ConsensusDriver(EngineClient(node.url, SECRET, observer=mine.append), node.url)
    before = time.time()
    for _ in range(3):
        driver.build_block()
    after = time.time()
    builds = driver.builds_between(before, after)
    calls = driver.calls_between(before, after)
    assert [b.number for b in builds] == [1, 2, 3] and len(calls) == 12 and len(mine) == 12  # both observers
    for build, four in zip(builds, [calls[i : i + 4] for i in range(0, 12, 4)], strict=True):
        assert [c.method for c in four] == [
            "forkchoiceUpdated",
            "getPayload",
            "newPayload",
            "forkchoiceUpdated",
        ]
        assert four[0].with_attributes and not four[3].with_attributes
        assert build.build_s == pytest.approx(four[0].latency + four[1].latency)
        assert build.import_s == pytest.approx(four[2].latency + four[3].latency)
        assert build.build_s >= 0.04 and build.import_s >= 0.04  # the node's time is the client's
        assert 0 < build.driver_cpu_s < build.build_s + build.import_s  # waiting costs the driver no CPU
        assert build.head_after == build.block_hash == four[2].block_hash == four[3].block_hash
        assert build.payload_id == four[0].payload_id == four[1].payload_id
        assert (build.version, build.withdrawals, build.transactions) == (3, 0, build.number % 3)
    assert driver.calls_between(after + 1, after + 2) == [] and driver.dropped() == (0, 0)


def test_records_are_bounded_and_what_falls_out_is_counted(node: FakeNode) -> None:
    driver = driver_for(node, max_calls=6, max_builds=2)
    for _ in range(3):
        driver.build_block()
    assert driver.dropped() == (6, 1)
    assert [b.number for b in driver.builds_between(0, time.time() + 1)] == [2, 3]
    assert len(driver.calls_between(0, time.time() + 1)) == 6


def test_withdrawals_number_on_over_the_chain_and_are_credited(node: FakeNode) -> None:
    driver = driver_for(node, withdrawals_per_block=3)
    for _ in range(2):
        driver.build_block()
    indexes = [int(w["index"], 16) for block in node.blocks[1:] for w in block["withdrawals"]]
    assert indexes == [0, 1, 2, 3, 4, 5]
    assert node.blocks[1]["withdrawals"][1] == {
        "index": "0x1", "validatorIndex": "0x1", "address": withdrawal_address(1), "amount": hex(WITHDRAWAL_GWEI)
    }  # fmt: skip
    assert sum(node.balances.values()) == 6 * WITHDRAWAL_GWEI * 10**9
    # A new driver on the same chain goes on from the head's last index.
    again = driver_for(node, withdrawals_per_block=1)
    again.build_block()
    assert node.blocks[-1]["withdrawals"][0]["index"] == "0x6"


def test_configure_returns_the_previous_settings_and_restore_puts_them_back() -> None:
    with FakeNode(fork=2) as fake:
        driver = driver_for(fake)
        previous = driver.configure(interval=0.5, withdrawals_per_block=2, fee_recipient="0x" + "ab" * 20)
        assert previous == DriverSettings(1.0, 2, 0, "0x" + "00" * 20)
        assert driver.settings() == DriverSettings(0.5, 2, 2, "0x" + "ab" * 20)
        driver.build_block()
        assert len(fake.blocks[1]["withdrawals"]) == 2
        driver.restore(previous)
        assert driver.settings() == previous
        driver.build_block()
        assert fake.blocks[2]["withdrawals"] == []


def test_configure_refuses_bad_values_one_line_and_changes_nothing() -> None:
    with FakeNode(fork=2, capabilities=[c for c in EJS_CAPABILITIES if not c.endswith("V4")]) as fake:
        driver = driver_for(fake)
        before = driver.settings()
        cases: list[tuple[dict[str, Any], type[Exception], str]] = [
            ({"version": 1, "withdrawals_per_block": 1}, ConfigError, "V1 (Paris) blocks carry no withdrawals"),
            ({"version": 4}, DevnetError, "does not serve Engine API V4 (forkchoiceUpdated, getPayload and "
             "newPayload); it serves V1, V2, V3"),
            ({"version": 3}, DevnetError, "Engine API V3 builds Cancun blocks, and this chain's head is a "
             "Shanghai block: use version 2"),
            ({"version": 7}, ConfigError, "one of 1, 2, 3, 4"),
            ({"interval": 0}, ConfigError, "positive number of seconds"),
            ({"withdrawals_per_block": -1}, ConfigError, "0 or more"),
            ({"fee_recipient": "0x12"}, ConfigError, "20-byte address"),
        ]  # fmt: skip
        for kwargs, kind, expected in cases:
            with pytest.raises(kind) as info:
                driver.configure(**kwargs)
            assert expected in str(info.value) and "\n" not in str(info.value), kwargs
            assert driver.settings() == before
        with pytest.raises(ConfigError, match="carry no withdrawals"):
            ConsensusDriver(EngineClient(fake.url, SECRET, version=1), fake.url, withdrawals_per_block=1)


def test_version_one_drives_a_paris_chain_without_withdrawals() -> None:
    with FakeNode(fork=1) as fake:
        driver = driver_for(fake)
        driver.build_block()
        (build,) = driver.builds_between(0, time.time() + 1)
        assert build.version == 1 and "withdrawals" not in fake.blocks[1]
        assert [r["method"] for r in fake.requests if r["method"].startswith("engine_")] == [
            "engine_forkchoiceUpdatedV1", "engine_getPayloadV1", "engine_newPayloadV1", "engine_forkchoiceUpdatedV1"
        ]  # fmt: skip
        assert fake.shape_errors == []


def test_a_failed_block_is_recorded_as_calls_but_not_as_a_build(node: FakeNode) -> None:
    driver = ConsensusDriver(EngineClient(node.url, SECRET, version=2), node.url)  # the fake is Cancun
    with pytest.raises(EngineCallError, match="-38005"):
        driver.build_block()
    (call,) = driver.calls_between(0, time.time() + 1)
    assert (call.method, call.status, call.with_attributes) == ("forkchoiceUpdated", "ERROR", True)
    assert driver.builds_between(0, time.time() + 1) == []


# ----------------------------------------------------------------------------------------------
# any execution client by URL: the JWT secret file, the options, the start


@pytest.mark.parametrize("text", [SECRET.hex(), "0x" + SECRET.hex(), "  0X" + SECRET.hex().upper() + "\n"])
def test_a_jwt_secret_file_is_hex_with_or_without_0x(tmp_path: Path, text: str) -> None:
    path = tmp_path / "jwt.hex"
    path.write_text(text)
    assert read_jwt_secret(path) == SECRET


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is not hex"),
        (b"0x" + b"ab" * 31, "holds 62 hex digits; a JWT secret is 32 bytes"),
        (b"ab" * 33, "holds 66 hex digits"),
        (b"zz" * 32, "is not hex"),
        (bytes(range(256)) * 8, "holds more than 1024 bytes"),
        (b"\xff\xfe" * 32, "is not hex text"),
    ],
)
def test_anything_else_is_one_line_naming_the_option(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "jwt.hex"
    path.write_bytes(content)
    with pytest.raises(DevnetError) as info:
        read_jwt_secret(path)
    message = str(info.value)
    assert message.startswith(f"{options.JWT_SECRET} {path}") and expected in message and "\n" not in message


def test_a_missing_jwt_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match=f"{options.JWT_SECRET} .*missing.hex cannot be read"):
        read_jwt_secret(tmp_path / "missing.hex")


def test_the_engine_options_need_each_other() -> None:
    assert engine_options_problem(None, None, None) is None
    assert engine_options_problem("http://e", "/jwt", "http://r") is None
    assert engine_options_problem("http://e", None, "http://r") == (
        "--gashammer-engine-url needs --gashammer-jwt-secret: the plugin builds the blocks of the node whose "
        "JSON-RPC is --gashammer-rpc-url, with the JWT secret file in --gashammer-jwt-secret (and funds "
        "senders with --gashammer-funder-key)"
    )
    assert "needs --gashammer-rpc-url and --gashammer-jwt-secret:" in str(
        engine_options_problem("http://e", None, None)
    )
    assert str(engine_options_problem(None, "/jwt", "http://r")).startswith(
        "--gashammer-jwt-secret is the secret of the node of --gashammer-engine-url"
    )
    with pytest.raises(DevnetError, match="needs --gashammer-rpc-url"):
        open_devnet(DevnetOptions(engine_url="http://127.0.0.1:1", jwt_secret="/jwt"))


@pytest.mark.parametrize(
    "argv",
    [
        (options.ENGINE_URL, "http://127.0.0.1:8551"),
        (options.ENGINE_URL, "http://127.0.0.1:8551", options.RPC_URL, "http://127.0.0.1:8545"),
        (options.JWT_SECRET, "jwt.hex"),
    ],
)
def test_a_missing_partner_option_is_a_one_line_usage_error(
    pytester: pytest.Pytester, argv: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert (options.JWT_SECRET in line) and (options.ENGINE_URL in line)


def test_the_target_starts_at_the_forks_version_and_drives_the_node(tmp_path: Path) -> None:
    with FakeNode(fork=3) as fake:  # serves V1-V4 like EthereumJS: V4 would be refused on Cancun
        target = EngineTargetDevnet(fake.url, fake.url, SECRET, FUNDER_KEY, block_interval=0.05).start()
        try:
            assert target.kind == "engine" and target.engine_version == 3 and target.chain_id == 1337
            deadline = time.monotonic() + 10
            while (
                len(target.consensus.builds_between(0, time.time() + 1)) < 3 and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            assert len(fake.blocks) >= 4 and target.incidents() == []
        finally:
            target.close()
        with pytest.raises(DevnetError) as info:
            EngineTargetDevnet(fake.url, fake.url, SECRET, FUNDER_KEY, version=4).start()
        assert str(info.value) == (
            f"Engine API V4 builds Prague blocks, and the head of --gashammer-rpc-url {fake.url} is a Cancun "
            "block: use version 3"
        )


def test_a_wrong_secret_is_found_at_start_and_named(tmp_path: Path) -> None:
    with FakeNode() as fake:
        wrong = tmp_path / "jwt.hex"
        wrong.write_text("ab" * 32)
        options_ = DevnetOptions(
            rpc_url=fake.url, engine_url=fake.url, jwt_secret=str(wrong), funder_key=FUNDER_KEY
        )
        with pytest.raises(DevnetError) as info:
            open_devnet(options_)
    message = str(info.value)
    assert message == (
        f"--gashammer-engine-url {fake.url} refused the JWT (HTTP 401): --gashammer-jwt-secret is not the "
        "secret the node was started with (or this machine's clock is more than a minute off)"
    )


@pytest.mark.parametrize(
    ("fork", "times"),
    [
        ("paris", set()),
        ("shanghai", {"shanghaiTime"}),
        ("cancun", {"shanghaiTime", "cancunTime"}),
        ("prague", {"shanghaiTime", "cancunTime", "pragueTime"}),
    ],
)
def test_the_ethereumjs_genesis_starts_in_the_fork_asked_for(fork: str, times: set[str]) -> None:
    from pytest_gashammer.devnet.ethereumjs import EthereumJSDevnet, genesis

    config = genesis(fork=fork)["config"]
    assert {key for key in config if key.endswith("Time")} == times
    assert all(config[key] == 0 for key in times) and config["terminalTotalDifficulty"] == 0
    assert set(config.get("blobSchedule", {})) == {"cancun", "prague"} & {
        key.removesuffix("Time") for key in times
    }
    assert (
        EthereumJSDevnet(fork=fork).engine_version
        == ("paris", "shanghai", "cancun", "prague").index(fork) + 1
    )
    with pytest.raises(DevnetError, match="one of paris, shanghai, cancun, prague, got 'osaka'"):
        EthereumJSDevnet(fork="osaka")
