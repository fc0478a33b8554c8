"""Engine API faults, each measured through a real EngineProxy in front of a small fake execution client
on loopback: what each fault answers for each method and version, what still reaches the client, the
switch and the counts, batches, the JWT passed through untouched; the marker's engine faults checked
against the devnet; the fault rig routing a consensus driver through the proxy and back."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import jwt
import pytest

from pytest_gashammer import options
from pytest_gashammer.chain.engine import (
    ZERO_HASH,
    EngineCallError,
    EngineClient,
    EngineStatusError,
    jwt_token,
)
from pytest_gashammer.chain.rpc import RpcError
from pytest_gashammer.devnet.consensus import ConsensusDriver
from pytest_gashammer.errors import ConfigError
from pytest_gashammer.fault import (
    EngineInvalid,
    EngineProxy,
    EngineSyncing,
    EngineWithholdPayload,
    RpcLatency,
)
from pytest_gashammer.fault.engine_proxy import UNKNOWN_PAYLOAD, client_through, engine_method
from pytest_gashammer.fault.timeline import FAULT_KINDS, effect_of
from pytest_gashammer.hive.faulting import FaultRig
from pytest_gashammer.scenario.faults import check_fault_target
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.vocabulary import ENGINE_HEAD, ENGINE_PAYLOAD_IDS, ENGINE_PAYLOAD_VALID
from tests.unit.loopback_http import LoopbackHttp, json_reply

SECRET = bytes(range(32))
VERSIONS = (1, 2, 3, 4)


def block_hash(number: int) -> str:
    return "0x" + f"{number:064x}"


def payload_id(number: int) -> str:
    return "0x" + f"{number:016x}"


class FakeEngine:
    """An execution client on loopback, as far as a consensus driver can tell: a chain of empty blocks.

    Serves the Engine API (any version) and ``eth_getBlockByNumber("latest")`` on one port; checks
    every Engine API request's JWT against :data:`SECRET` (HTTP 401 otherwise, as clients do) and
    records every call and every Authorization header it got.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.head = 0
        self.built: dict[str, int] = {}  # payload id -> block number being built
        self.lock = threading.Lock()
        self.http = LoopbackHttp(self._respond, keep_alive=True)

    def _respond(self, headers: Mapping[str, str], raw: bytes) -> tuple[int, bytes]:
        body = json.loads(raw)
        authorization = headers.get("Authorization")
        self.authorizations.append(authorization)
        items = body if isinstance(body, list) else [body]
        if any(item["method"].startswith("engine_") for item in items) and not self.authorized(authorization):
            return 401, b"Unauthorized"
        answers = [self.answer(item) for item in items]
        return json_reply(answers if isinstance(body, list) else answers[0])

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def methods(self) -> list[str]:
        return [call["method"] for call in self.calls]

    def authorized(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        try:
            jwt.decode(authorization[7:], SECRET, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return False
        return True

    def answer(self, item: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.calls.append(item)
            try:
                result = self.result(item["method"], item["params"])
            except (KeyError, TypeError, IndexError) as exc:
                return {"jsonrpc": "2.0", "id": item["id"], "error": {"code": -32602, "message": repr(exc)}}
            return {"jsonrpc": "2.0", "id": item["id"], "result": result}

    def result(self, method: str, params: list[Any]) -> Any:
        parsed = engine_method(method)
        name = parsed[0] if parsed else method
        if name == "forkchoiceUpdated":
            head = params[0]["headBlockHash"]
            self.head = int(head, 16)
            built = None
            if len(params) > 1 and params[1] is not None:
                built = payload_id(self.head + 1)
                self.built[built] = self.head + 1
            return {"payloadStatus": {"status": "VALID", "latestValidHash": head, "validationError": None},
                    "payloadId": built}  # fmt: skip
        if name == "getPayload":
            number = self.built[params[0]]
            return {"executionPayload": self.payload(number), "blockValue": "0x0"}
        if name == "newPayload":
            block = params[0]["blockHash"]
            return {"status": "VALID", "latestValidHash": block, "validationError": None}
        if method == "eth_getBlockByNumber":
            return {
                "number": hex(self.head),
                "hash": block_hash(self.head),
                "timestamp": hex(1000 + self.head),
            }
        return ["engine_newPayloadV3"]  # exchangeCapabilities, and anything else

    @staticmethod
    def payload(number: int) -> dict[str, Any]:
        return {"blockNumber": hex(number), "blockHash": block_hash(number),
                "parentHash": block_hash(number - 1), "timestamp": hex(1000 + number)}  # fmt: skip

    def __enter__(self) -> FakeEngine:
        self.http.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.__exit__(*exc_info)


@pytest.fixture
def node() -> Iterator[FakeEngine]:
    with FakeEngine() as fake:
        yield fake


def request(method: str, params: list[Any], request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def post(url: str, body: Any, authorization: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    headers["Authorization"] = authorization or f"Bearer {jwt_token(SECRET)}"
    sent = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(sent, timeout=10) as answer:
        return json.loads(answer.read())


def new_payload(version: int, number: int = 5) -> dict[str, Any]:
    params: list[Any] = [FakeEngine.payload(number)]
    if version >= 3:
        params += [[], ZERO_HASH]
    if version >= 4:
        params += [[]]
    return request(f"engine_newPayloadV{version}", params)


def fcu(version: int, head: int = 4, attributes: bool = False) -> dict[str, Any]:
    state = {
        "headBlockHash": block_hash(head),
        "safeBlockHash": block_hash(head),
        "finalizedBlockHash": ZERO_HASH,
    }
    return request(
        f"engine_forkchoiceUpdatedV{version}", [state, {"timestamp": "0x10"} if attributes else None]
    )


SYNCING = {"status": "SYNCING", "latestValidHash": None, "validationError": None}


# ------------------------------------------------------------------------------------ the faults


@pytest.mark.parametrize("version", VERSIONS)
def test_syncing_answers_new_payload_and_forkchoice_without_forwarding_them(
    node: FakeEngine, version: int
) -> None:
    syncing = EngineSyncing()
    with EngineProxy(node.url, faults=[syncing]) as proxy:
        assert post(proxy.url, new_payload(version))["result"] == SYNCING
        assert post(proxy.url, fcu(version))["result"] == {"payloadStatus": SYNCING, "payloadId": None}
        assert post(proxy.url, fcu(version, attributes=True))["result"] == {
            "payloadStatus": SYNCING,
            "payloadId": None,
        }
        # What is not newPayload or forkchoiceUpdated reaches the client as ever.
        unknown = post(proxy.url, request(f"engine_getPayloadV{version}", [payload_id(1)]))
        assert unknown["error"]["code"] == -32602  # the client's own answer: it built nothing
    assert node.methods == [f"engine_getPayloadV{version}"]
    stats = syncing.stats
    assert (stats["calls"], stats["newPayload"], stats["forkchoiceUpdated"]) == (3, 1, 2)
    assert syncing.affected == [block_hash(5), block_hash(4)]
    assert syncing.summary() == (
        "engine.syncing answered 3 calls SYNCING (2 forkchoiceUpdated, 1 newPayload), none forwarded"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_answers_new_payload_invalid_naming_the_parent_and_saying_it_was_made_up(
    node: FakeEngine, version: int
) -> None:
    invalid = EngineInvalid()
    with EngineProxy(node.url, faults=[invalid]) as proxy:
        answer = post(proxy.url, new_payload(version, number=7))["result"]
        forwarded = post(proxy.url, fcu(version))["result"]
        # A newPayload without a payload is not a block a verdict could be made up about: forwarded.
        post(proxy.url, request(f"engine_newPayloadV{version}", ["0x"]))
    assert answer["status"] == "INVALID" and answer["latestValidHash"] == block_hash(6)
    assert answer["validationError"] == (
        f"made up by the gashammer engine.invalid fault: the proxy answered INVALID for block "
        f"{block_hash(7)} without asking the execution client"
    )
    assert forwarded["payloadStatus"]["status"] == "VALID"
    assert node.methods == [f"engine_forkchoiceUpdatedV{version}", f"engine_newPayloadV{version}"]
    assert invalid.affected == [block_hash(7)] and invalid.stats["newPayload"] == 1
    assert invalid.events[1:] == [{"method": "newPayload", "version": version, "parent_hash": block_hash(6)}]
    assert invalid.summary() == "engine.invalid answered 1 newPayload calls INVALID, none forwarded"


@pytest.mark.parametrize("version", VERSIONS)
def test_withholding_forwards_the_build_and_answers_its_payload_id_null(
    node: FakeEngine, version: int
) -> None:
    withhold = EngineWithholdPayload()
    with EngineProxy(node.url, faults=[withhold]) as proxy:
        build = post(proxy.url, fcu(version, head=9, attributes=True))["result"]
        plain = post(proxy.url, fcu(version, head=9))["result"]
        served = post(proxy.url, request(f"engine_getPayloadV{version}", [payload_id(10)]))["result"]
    assert build == {"payloadStatus": {"status": "VALID", "latestValidHash": block_hash(9),
                                       "validationError": None}, "payloadId": None}  # fmt: skip
    assert node.built == {payload_id(10): 10}  # the client was asked and built it
    assert plain["payloadId"] is None and served["executionPayload"]["blockNumber"] == "0xa"
    assert withhold.affected == [payload_id(10)] and withhold.touched == 1
    assert withhold.summary() == (
        "engine.withhold_payload withheld 1 payload ids (forkchoiceUpdated with payload attributes "
        "forwarded, its payloadId answered null)"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_withholding_as_unknown_answers_get_payload_38001_unforwarded(node: FakeEngine, version: int) -> None:
    withhold = EngineWithholdPayload(how="unknown")
    with EngineProxy(node.url, faults=[withhold]) as proxy:
        build = post(proxy.url, fcu(version, head=2, attributes=True))["result"]
        refused = post(
            proxy.url, request(f"engine_getPayloadV{version}", [build["payloadId"]], request_id="a")
        )
    assert build["payloadId"] == payload_id(3)
    assert refused == {"jsonrpc": "2.0", "id": "a", "error": {"code": -38001, "message": "Unknown payload"}}
    assert node.methods == [f"engine_forkchoiceUpdatedV{version}"]
    assert withhold.affected == [payload_id(3)] and withhold.stats["getPayload"] == 1
    assert withhold.summary() == (
        "engine.withhold_payload answered 1 getPayload calls -38001 Unknown payload, none forwarded"
    )


def test_the_engine_client_fails_on_each_the_way_the_driver_will_report_it(node: FakeEngine) -> None:
    faults = {
        "syncing": EngineSyncing(armed=False),
        "invalid": EngineInvalid(armed=False),
        "null": EngineWithholdPayload(armed=False),
        "unknown": EngineWithholdPayload(how="unknown", armed=False),
    }
    with EngineProxy(node.url, faults=list(faults.values())) as proxy:
        client = EngineClient(proxy.url, SECRET)
        attributes = {"timestamp": "0x10"}
        faults["syncing"].arm()
        with pytest.raises(EngineStatusError, match=r"forkchoiceUpdatedV3 returned status SYNCING"):
            client.forkchoice_updated(block_hash(1), attributes)
        faults["syncing"].disarm()
        faults["null"].arm()
        with pytest.raises(EngineCallError, match=r"VALID with payload attributes but no payloadId"):
            client.forkchoice_updated(block_hash(1), attributes)
        faults["null"].disarm()
        faults["unknown"].arm()
        built = client.forkchoice_updated(block_hash(1), attributes).payload_id
        assert built == payload_id(2)
        with pytest.raises(EngineCallError, match=r"^engine_getPayloadV3: ") as caught:
            client.get_payload(built)
        assert "Unknown payload" in str(caught.value) and "38001" in str(caught.value)
        assert isinstance(caught.value.cause, RpcError) and caught.value.cause.code == UNKNOWN_PAYLOAD
        faults["unknown"].disarm()
        payload = client.get_payload(built)["executionPayload"]
        faults["invalid"].arm()
        with pytest.raises(EngineStatusError, match=r"newPayloadV3 returned status INVALID .*: made up by"):
            client.new_payload(payload)
        faults["invalid"].disarm()
        assert client.new_payload(payload).status == "VALID"
    assert [fault.touched for fault in faults.values()] == [1, 1, 1, 1]


# ----------------------------------------------------------------- the switch, the share, batches


def test_disarmed_faults_pass_everything_and_count_nothing_and_the_switch_works_from_any_thread(
    node: FakeEngine,
) -> None:
    syncing = EngineSyncing(armed=False)
    with EngineProxy(node.url, faults=[syncing]) as proxy:
        assert post(proxy.url, new_payload(3))["result"]["status"] == "VALID"
        thread = threading.Thread(target=syncing.arm)
        thread.start()
        thread.join(5)
        assert post(proxy.url, new_payload(3))["result"] == SYNCING
        thread = threading.Thread(target=syncing.disarm)
        thread.start()
        thread.join(5)
        assert post(proxy.url, new_payload(3))["result"]["status"] == "VALID"
        syncing.disarm()  # idempotent
    assert node.methods == ["engine_newPayloadV3", "engine_newPayloadV3"]
    assert syncing.touched == 1
    (window,) = syncing.windows
    assert window["touched"] == 1 and window["disarmed_ns"] >= window["armed_ns"]
    assert effect_of(syncing) == {
        "kind": "engine.syncing",
        "windows": 1,
        "calls": 1,
        "newPayload": 1,
        "summary": "engine.syncing answered 1 calls SYNCING (1 newPayload), none forwarded",
    }


def test_rate_takes_exactly_that_share_of_the_candidates_by_a_counter(node: FakeEngine) -> None:
    invalid = EngineInvalid(rate=0.5)
    with EngineProxy(node.url, faults=[invalid]) as proxy:
        statuses = [post(proxy.url, new_payload(3, number=n))["result"]["status"] for n in range(1, 7)]
        post(proxy.url, fcu(3))  # not a candidate: not counted
    assert statuses == ["VALID", "INVALID"] * 3
    assert invalid.affected == [block_hash(2), block_hash(4), block_hash(6)]
    assert (
        invalid.summary() == "engine.invalid answered 3 newPayload calls INVALID (rate 0.5), none forwarded"
    )
    for bad in (0, 1.5, True, "half"):
        with pytest.raises(ValueError, match=r"^EngineInvalid: rate=.* must be a share in \(0, 1\]"):
            EngineInvalid(rate=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^EngineWithholdPayload: how='never' must be 'null'"):
        EngineWithholdPayload(how="never")


def test_a_batch_is_split_forwarding_only_what_no_fault_answered_in_the_client_s_order(
    node: FakeEngine,
) -> None:
    syncing = EngineSyncing()
    batch = [
        {**fcu(3, head=3), "id": 10},
        {**request("engine_exchangeCapabilities", [[]]), "id": 11},
        {**new_payload(3, number=4), "id": 12},
        {**request("eth_getBlockByNumber", ["latest", False]), "id": 13},
    ]
    with EngineProxy(node.url, faults=[syncing]) as proxy:
        answers = post(proxy.url, batch)
    assert [answer["id"] for answer in answers] == [10, 11, 12, 13]
    assert answers[0]["result"]["payloadStatus"] == SYNCING and answers[2]["result"] == SYNCING
    assert answers[1]["result"] == ["engine_newPayloadV3"] and answers[3]["result"]["number"] == "0x0"
    # The node got one batch of the other two, under the proxy's ids.
    assert node.methods == ["engine_exchangeCapabilities", "eth_getBlockByNumber"]
    assert [call["id"] for call in node.calls] == [0, 1]
    assert syncing.touched == 2


def test_the_authorization_header_reaches_the_client_untouched_and_a_refusal_comes_back(
    node: FakeEngine,
) -> None:
    token = f"Bearer {jwt_token(SECRET)}"
    with EngineProxy(node.url, faults=[EngineSyncing(armed=False)]) as proxy:
        post(proxy.url, request("engine_exchangeCapabilities", [[]]), authorization=token)
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(proxy.url, request("engine_exchangeCapabilities", [[]]), authorization="Bearer nonsense")
        assert refused.value.code == 401
        wrong = EngineClient(proxy.url, bytes(32))
        with pytest.raises(EngineCallError, match=r"HTTP 401 .*the JWT was refused"):
            wrong.exchange_capabilities()
    assert node.authorizations[:2] == [token, "Bearer nonsense"]


def test_other_rpc_faults_apply_on_the_engine_path_too(node: FakeEngine) -> None:
    latency = RpcLatency(ms=50)
    with EngineProxy(node.url, faults=[latency]) as proxy:
        EngineClient(proxy.url, SECRET).exchange_capabilities()
    assert latency.touched == 1 and node.methods == ["engine_exchangeCapabilities"]
    assert repr(proxy).startswith("<EngineProxy ")


def test_client_through_keeps_the_secret_version_and_timeout_and_changes_only_the_url(
    node: FakeEngine,
) -> None:
    original = EngineClient("http://127.0.0.1:9", SECRET, timeout=7.0)
    through = client_through(original, node.url)
    assert (through.url, through.timeout, through.version) == (node.url, 7.0, original.version)
    assert original.url == "http://127.0.0.1:9"
    assert through.exchange_capabilities() == ["engine_newPayloadV3"]  # the node accepted its JWT


# ------------------------------------------------------------------ the marker and the devnet


def engine_spec(**fault: Any) -> Any:
    return parse_spec({"gas_per_sec": "200k", "duration": "6s", "warmup": 0,
                       "faults": [{"at": 2, "duration": 2, **fault}]})  # fmt: skip


def test_the_kinds_are_registered_on_the_engine_path_with_what_catches_them() -> None:
    kinds = {name: kind for name, kind in FAULT_KINDS.items() if kind.path == "engine"}
    assert sorted(kinds) == ["engine.invalid", "engine.syncing", "engine.withhold_payload"]
    assert (
        ENGINE_HEAD in kinds["engine.syncing"].help and ENGINE_PAYLOAD_VALID in kinds["engine.syncing"].help
    )
    assert ENGINE_PAYLOAD_VALID in kinds["engine.invalid"].help
    assert ENGINE_PAYLOAD_IDS in kinds["engine.withhold_payload"].help
    plan = compile_plan(
        engine_spec(kind="engine.withhold_payload", how="unknown", rate=0.25), name="t", seed=3
    )
    (step,) = plan.faults
    assert step["params"] == {"how": "unknown", "rate": 0.25}
    mechanism = FAULT_KINDS[step["kind"]].mechanism
    assert mechanism is not None
    made = mechanism(step["params"], 3)
    assert isinstance(made, EngineWithholdPayload) and (made.how, made.rate, made.armed) == (
        "unknown",
        0.25,
        False,
    )
    assert compile_plan(engine_spec(kind="engine.syncing"), name="t", seed=3).faults[0]["params"] == {
        "rate": 1.0
    }


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            {"kind": "engine.withhold_payload", "how": "maybe"},
            r"^faults\[0\] engine.withhold_payload how='maybe' must be 'null' or 'unknown': 'null': the "
            r"payloadId withheld; 'unknown': getPayload answered -38001 Unknown payload$",
        ),
        ({"kind": "engine.invalid", "rate": 0}, r"^faults\[0\] engine.invalid rate=0 must be in \(0, 1\], "),
        (
            {"kind": "engine.syncing", "rate": 1.5},
            r"^faults\[0\] engine.syncing rate=1.5 must be in \(0, 1\], ",
        ),
        (
            {"kind": "engine.syncing", "how": "null"},
            r"^faults\[0\] engine.syncing: unknown parameter 'how'; accepted: at, duration, rate$",
        ),
        (
            {"kind": "engine.sync"},
            r"^faults\[0\]: unknown fault kind 'engine.sync' \(did you mean 'engine.syncing'",
        ),
    ],
)
def test_a_bad_engine_fault_is_one_line_naming_the_fault_and_the_fix(
    fault: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        engine_spec(**fault)
    assert "\n" not in str(caught.value)


ENGINE_FIX = (
    r"needs a devnet whose blocks the plugin builds over the Engine API; {where} has no consensus driver: "
    r"run with --gashammer-devnet ethereumjs or --gashammer-engine-url, or remove the fault$"
)


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        ((), "the embedded devnet"),
        ((options.DEVNET, "nitro"), "the nitro devnet"),
        ((options.RPC_URL, "http://127.0.0.1:8547"), r"--gashammer-rpc-url \(an external node\)"),
    ],
)
def test_an_engine_fault_on_a_devnet_without_a_consensus_driver_is_refused_at_collection(
    pytester: pytest.Pytester, argv: tuple[str, ...], where: str
) -> None:
    from pytest_gashammer.plugin import _check_fault_target

    faults = [{"kind": "engine.invalid"}]
    with pytest.raises(ConfigError, match=r"^faults\[0\] engine.invalid " + ENGINE_FIX.format(where=where)):
        _check_fault_target(pytester.parseconfig(*argv), faults)
    _check_fault_target(pytester.parseconfig(options.DEVNET, "ethereumjs"), faults)  # accepted
    check_fault_target(faults, where="somewhere")  # not known yet: the hive checks again


def test_the_rig_refuses_an_engine_fault_on_a_devnet_without_a_driver() -> None:
    plan = compile_plan(engine_spec(kind="engine.syncing"), name="t", seed=1)
    anvil = SimpleNamespace(chain_id=412346, kind="embedded", feed_url=None, rpc_url="http://127.0.0.1:9")
    with pytest.raises(
        ConfigError, match=r"^faults\[0\] engine.syncing " + ENGINE_FIX.format(where="the embedded devnet")
    ):
        FaultRig.open(plan, anvil)  # type: ignore[arg-type]


class DriverDevnet:
    """What the rig reads of an EthereumJS devnet: its chain, and the consensus driver building on it."""

    kind = "ethereumjs"
    chain_id = 1337
    feed_url = None
    ws_url = None

    def __init__(self, node: FakeEngine) -> None:
        self.rpc_url = node.url
        self.consensus = ConsensusDriver(EngineClient(node.url, SECRET), node.url)


@pytest.mark.parametrize("failure", [False, True])
def test_the_rig_routes_the_driver_through_the_proxy_for_the_run_and_back_on_every_exit(
    node: FakeEngine, failure: bool
) -> None:
    devnet = DriverDevnet(node)
    driver = devnet.consensus
    own = driver.engine
    plan = compile_plan(engine_spec(kind="engine.syncing"), name="t", seed=1)
    seen: dict[str, Any] = {}

    def run() -> None:
        rig = FaultRig.open(plan, devnet)  # type: ignore[arg-type]
        assert rig is not None
        try:
            proxy = seen["proxy"] = rig.targets.engine_proxy
            assert isinstance(proxy, EngineProxy) and proxy.upstream_url == node.url
            assert driver.engine is not own and driver.engine.url == proxy.url
            assert rig.endpoints(devnet)["rpc_url"] == node.url  # type: ignore[arg-type]
            assert driver.build_block().number == 1  # disarmed until the fault begins: built through it
            (syncing,) = seen["faults"] = list(rig.schedule.mechanisms.values())
            rig.start(time.monotonic() - 2.0)  # the run clock is at the fault's begin: the schedule arms it
            deadline = time.monotonic() + 5
            while not syncing.armed and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(EngineStatusError, match="SYNCING"):
                driver.build_block()
            if failure:
                raise RuntimeError("the run failed")
        finally:
            seen["records"] = rig.close()

    if failure:
        with pytest.raises(RuntimeError, match="the run failed"):
            run()
    else:
        run()
    assert driver.engine is own and not seen["proxy"].running
    assert driver.build_block().number == 2  # the node's own port again, nothing faulted
    (syncing,) = seen["faults"]
    assert syncing.touched == 1 and not syncing.armed
    (record,) = seen["records"]
    assert record.started_at is not None and record.ended_at is not None and record.error is None
    assert (
        record.effect["summary"]
        == "engine.syncing answered 1 calls SYNCING (1 forkchoiceUpdated), none forwarded"
    )
    assert node.methods.count("engine_forkchoiceUpdatedV3") == 4  # two blocks, two calls each: none faulted


def test_the_rig_starts_no_engine_proxy_for_a_scenario_without_engine_faults(node: FakeEngine) -> None:
    devnet = DriverDevnet(node)
    own = devnet.consensus.engine
    spec = parse_spec({"gas_per_sec": "200k", "duration": "6s", "warmup": 0,
                       "faults": [{"kind": "rpc.latency", "at": 2, "duration": 2, "ms": 5}]})  # fmt: skip
    rig = FaultRig.open(compile_plan(spec, name="t", seed=1), devnet)  # type: ignore[arg-type]
    assert rig is not None
    try:
        assert rig.targets.engine_proxy is None and rig.targets.rpc_proxy is not None
        assert devnet.consensus.engine is own
    finally:
        rig.close()
    assert devnet.consensus.engine is own
