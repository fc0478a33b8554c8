"""The EthereumJS devnet's parts that need no node: genesis, JWT, the Engine API client's status
checks (against a loopback HTTP server that verifies every token), option validation, and the
driver's timing rules."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from pytest_gashammer import options
from pytest_gashammer.chain.engine import (
    EngineCallError,
    EngineClient,
    EngineStatusError,
    jwt_token,
)
from pytest_gashammer.chain.rpc import RpcError
from pytest_gashammer.devnet.base import (
    FUNDER_BALANCE_WEI,
    MAINNET_CHAIN_IDS,
    NITRO_DEV_ADDRESS,
    NITRO_DEV_CHAIN_ID,
    NITRO_DEV_KEY,
)
from pytest_gashammer.devnet.consensus import ConsensusDriver, next_tick, next_timestamp
from pytest_gashammer.devnet.ethereumjs import (
    BASE_FEE_WEI,
    ETHEREUMJS_CHAIN_ID,
    find_node,
    genesis,
)
from pytest_gashammer.devnet.factory import DevnetOptions, open_devnet
from pytest_gashammer.errors import DevnetError
from pytest_gashammer.plugin import _devnet_backend
from tests.unit.loopback_http import LoopbackHttp, bearer_token, json_reply

SECRET = bytes(range(32))

# ----------------------------------------------------------------------------------------------
# genesis


def test_genesis_is_post_merge_cancun_from_block_zero() -> None:
    config = genesis()["config"]
    blocks = {key: value for key, value in config.items() if key.endswith("Block")}
    assert len(blocks) == 14 and set(blocks.values()) == {0}  # homestead .. grayGlacier, mergeNetsplit
    assert config["terminalTotalDifficulty"] == 0 and config["terminalTotalDifficultyPassed"] is True
    assert config["shanghaiTime"] == config["cancunTime"] == 0
    assert "pragueTime" not in config  # the driver speaks Engine API V3: Cancun
    assert config["blobSchedule"]["cancun"]["max"] == 6


def test_genesis_funds_the_nitro_dev_account_at_a_1_gwei_base_fee() -> None:
    document = genesis()
    assert int(document["baseFeePerGas"], 16) == BASE_FEE_WEI == 10**9
    assert int(document["difficulty"], 16) == 0
    (address, account), *others = document["alloc"].items()
    assert not others
    assert "0x" + address == NITRO_DEV_ADDRESS.lower()
    assert Account.from_key(NITRO_DEV_KEY).address.lower() == "0x" + address  # the same funder works
    assert int(account["balance"], 16) == FUNDER_BALANCE_WEI
    json.dumps(document)  # written to disk as JSON


def test_the_devnet_chain_id_is_declared_once_and_is_no_public_chain() -> None:
    assert genesis()["config"]["chainId"] == ETHEREUMJS_CHAIN_ID
    assert ETHEREUMJS_CHAIN_ID not in MAINNET_CHAIN_IDS and ETHEREUMJS_CHAIN_ID != NITRO_DEV_CHAIN_ID


# ----------------------------------------------------------------------------------------------
# JWT


def test_jwt_token_is_hs256_with_a_fresh_iat_claim() -> None:
    before = int(time.time())
    token = jwt_token(SECRET)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert set(claims) == {"iat"} and before <= claims["iat"] <= time.time() + 1
    assert jwt.decode(jwt_token(SECRET, issued_at=1_700_000_000), SECRET, algorithms=["HS256"]) == {
        "iat": 1_700_000_000
    }


def test_jwt_token_does_not_verify_under_another_secret() -> None:
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(jwt_token(SECRET), bytes(32), algorithms=["HS256"])


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_a_secret_that_is_not_32_bytes_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        jwt_token(b"x" * length)
    with pytest.raises(ValueError, match="32 bytes"):
        EngineClient("http://127.0.0.1:1", b"x" * length)


def test_engine_client_repr_hides_the_secret() -> None:
    text = repr(EngineClient("http://127.0.0.1:1", SECRET))
    assert SECRET.hex() not in text and "V3" in text


# ----------------------------------------------------------------------------------------------
# the Engine API client against a loopback server that checks every token


class EngineServer:
    """Answers each Engine API method from ``answers`` after verifying the request's JWT."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.answers: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        self.http = LoopbackHttp(self._respond)
        self.url = self.http.url

    def _respond(self, headers: Mapping[str, str], raw: bytes) -> tuple[int, bytes]:
        body = json.loads(raw)
        try:
            jwt.decode(bearer_token(headers), self.secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return 401, b""
        self.requests.append(body)
        return json_reply({"jsonrpc": "2.0", "id": body["id"], **self.answers[body["method"]]})

    def __enter__(self) -> EngineServer:
        self.http.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.__exit__(*exc_info)


@pytest.fixture
def server() -> Iterator[EngineServer]:
    with EngineServer(SECRET) as running:
        yield running


def status(value: str, error: str | None = None) -> dict[str, Any]:
    return {"status": value, "latestValidHash": None, "validationError": error}


def test_a_valid_build_cycle_passes_every_check(server: EngineServer) -> None:
    server.answers = {
        "engine_forkchoiceUpdatedV3": {"result": {"payloadStatus": status("VALID"), "payloadId": "0x01"}},
        "engine_getPayloadV3": {"result": {"executionPayload": {"blockHash": "0xbb"}, "blockValue": "0x0"}},
        "engine_newPayloadV3": {"result": status("VALID")},
    }
    client = EngineClient(server.url, SECRET)
    choice = client.forkchoice_updated("0xaa", {"timestamp": "0x1"})
    assert choice.payload_id == "0x01" and choice.payload_status.status == "VALID"
    payload = client.get_payload("0x01")["executionPayload"]
    assert client.new_payload(payload).status == "VALID"
    fcu, _, new = server.requests
    assert fcu["params"][0] == {
        "headBlockHash": "0xaa",
        "safeBlockHash": "0xaa",
        "finalizedBlockHash": "0xaa",
    }
    assert new["params"] == [{"blockHash": "0xbb"}, [], "0x" + "00" * 32]


@pytest.mark.parametrize("value", ["INVALID", "SYNCING", "ACCEPTED", "INVALID_BLOCK_HASH"])
def test_a_status_other_than_valid_is_one_line_naming_the_call_status_and_reason(
    server: EngineServer, value: str
) -> None:
    server.answers = {
        "engine_newPayloadV3": {"result": status(value, "Invalid blockHash, expected: 0x12\nmore")}
    }
    with pytest.raises(EngineStatusError) as info:
        EngineClient(server.url, SECRET).new_payload({"blockHash": "0xbb"})
    message = str(info.value).splitlines()[0]
    assert message.startswith(
        f"engine_newPayloadV3 returned status {value} (expected VALID): Invalid blockHash"
    )
    assert info.value.status.status == value and info.value.method == "engine_newPayloadV3"


def test_a_status_the_caller_expects_is_returned(server: EngineServer) -> None:
    server.answers = {"engine_newPayloadV3": {"result": status("INVALID", "bad state root")}}
    result = EngineClient(server.url, SECRET).new_payload({}, expect=("INVALID",))
    assert result.status == "INVALID" and result.validation_error == "bad state root"


def test_forkchoice_with_attributes_but_no_payload_id_is_an_error(server: EngineServer) -> None:
    server.answers = {
        "engine_forkchoiceUpdatedV3": {"result": {"payloadStatus": status("VALID"), "payloadId": None}}
    }
    client = EngineClient(server.url, SECRET)
    with pytest.raises(EngineCallError, match="no payloadId"):
        client.forkchoice_updated("0xaa", {"timestamp": "0x1"})
    assert client.forkchoice_updated("0xaa").payload_id is None  # without attributes that is normal
    server.answers["engine_forkchoiceUpdatedV3"]["result"]["payloadStatus"] = status("SYNCING")
    with pytest.raises(EngineStatusError, match="engine_forkchoiceUpdatedV3 returned status SYNCING"):
        client.forkchoice_updated("0xaa")


def test_a_json_rpc_error_keeps_its_code_and_message(server: EngineServer) -> None:
    server.answers = {"engine_getPayloadV3": {"error": {"code": -38001, "message": "Unknown payload"}}}
    with pytest.raises(EngineCallError) as info:
        EngineClient(server.url, SECRET).get_payload("0x02")
    assert str(info.value) == "engine_getPayloadV3: JSON-RPC error -38001: Unknown payload"
    assert isinstance(info.value.cause, RpcError) and info.value.cause.code == -38001


def test_a_refused_jwt_says_the_secrets_differ(server: EngineServer) -> None:
    with pytest.raises(EngineCallError) as info:
        EngineClient(server.url, bytes(32)).exchange_capabilities()
    assert "HTTP 401" in str(info.value) and "--jwtSecret" in str(info.value)
    assert server.requests == []


def test_an_unreachable_engine_is_a_call_error() -> None:
    with EngineServer(SECRET) as gone:
        url = gone.url
    with pytest.raises(EngineCallError, match="engine_exchangeCapabilities: cannot reach"):
        EngineClient(url, SECRET, timeout=5).exchange_capabilities()


# ----------------------------------------------------------------------------------------------
# --gashammer-devnet


def test_the_devnet_option_accepts_each_backend_and_defaults_to_embedded() -> None:
    assert options.DEVNET_BACKENDS[0] == "embedded"
    for backend in options.DEVNET_BACKENDS:
        value = "container:anvil" if backend == "container" else backend
        assert _devnet_backend(value) == value


def test_an_unknown_backend_is_one_line_naming_the_choices() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        _devnet_backend("geth")
    assert str(info.value) == (
        "'geth' is not a devnet backend; use embedded, ethereumjs, network, nitro or container:IMAGE"
    )


def test_the_factory_refuses_an_unknown_backend_and_a_local_node_with_an_endpoint() -> None:
    with pytest.raises(
        DevnetError,
        match="'reth' is not a devnet backend; use one of embedded, ethereumjs, network, nitro, container:IMAGE",
    ):
        open_devnet(DevnetOptions(backend="reth"))
    with pytest.raises(DevnetError) as info:
        open_devnet(DevnetOptions(backend="ethereumjs", rpc_url="http://127.0.0.1:1", funder_key="0x01"))
    assert str(info.value) == (
        "--gashammer-devnet ethereumjs starts a local node, --gashammer-rpc-url names another; drop one of them"
    )


def test_without_node_the_devnet_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevnetError) as info:
        find_node()
    message = str(info.value)
    assert "Node.js" in message and "--gashammer-devnet embedded" in message and "\n" not in message


# ----------------------------------------------------------------------------------------------
# the driver's timing rules


@given(st.integers(0, 2**40), st.floats(0, 2**41, allow_nan=False))
def test_block_timestamps_are_whole_seconds_strictly_after_the_parent(parent: int, now: float) -> None:
    stamp = next_timestamp(parent, now)
    assert isinstance(stamp, int) and stamp > parent and stamp >= int(now)
    assert stamp in (parent + 1, int(now))


def test_timestamps_follow_the_clock_and_run_ahead_only_when_blocks_come_faster() -> None:
    assert next_timestamp(100, 250.7) == 250
    assert next_timestamp(250, 250.9) == 251  # two blocks in one second
    assert next_timestamp(251, 251.2) == 252


@given(st.floats(0, 1e6), st.floats(0.05, 10), st.floats(0, 100))
def test_the_next_tick_is_in_the_future_and_on_the_grid(
    previous: float, interval: float, late: float
) -> None:
    now = previous + late
    tick = next_tick(previous, interval, now)
    assert tick >= now and tick - now <= interval + 1e-6
    steps = (tick - previous) / interval
    assert abs(steps - round(steps)) < 1e-6 and round(steps) >= 1


def test_a_slow_block_skips_the_ticks_it_overran() -> None:
    assert next_tick(10.0, 1.0, 10.5) == 11.0  # on time
    assert next_tick(10.0, 1.0, 13.4) == 14.0  # took 3.4 s: ticks 11, 12 and 13 are skipped


@pytest.mark.parametrize("interval", [0, -1.0])
def test_the_driver_needs_a_positive_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="greater than zero"):
        ConsensusDriver(EngineClient("http://127.0.0.1:1", SECRET), "http://127.0.0.1:1", interval=interval)
