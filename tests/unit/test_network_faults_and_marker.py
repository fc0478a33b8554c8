"""The network side of a load run's marker: ``network={...}`` and the network fault kinds
(``net.partition``, ``net.disconnect``, ``node.stop``): validated in one line each, refused on a
single node or for a node the devnet lacks, and driven through the devnet's network control on the
run clock, each undone at its end."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.fault.timeline import FaultSchedule, FaultTargets
from pytest_gashammer.hive.network_watch import NetworkWatch
from pytest_gashammer.scenario.arguments import parse_network
from pytest_gashammer.scenario.faults import check_fault_target, parse_faults, place_faults
from pytest_gashammer.scenario.spec import compile_plan, parse_spec
from pytest_gashammer.workload.rate import Phase

NODES = ["node0", "node1", "node2", "node3"]


def test_network_settings_are_normalised_in_key_order() -> None:
    assert parse_network(None) == ()
    assert parse_network({"converge_within": "45s", "send_to": "spread"}) == (
        ("send_to", "spread"),
        ("converge_within", 45.0),
    )
    assert parse_network({"send_to": "node2"}) == (("send_to", "node2"),)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "spread",
            "network='spread' must be a dict, e.g. network={'send_to': 'spread', 'converge_within': '30s'}",
        ),
        (
            {"send_to": "everywhere"},
            "network['send_to']='everywhere' must be 'builder' or 'spread' or a node's name such as 'node2'",
        ),
        (
            {"send_to": 2},
            "network['send_to']=2 must be 'builder' or 'spread' or a node's name such as 'node2'",
        ),
        ({"converge_within": "0s"}, "network['converge_within']='0s' must be longer than zero, e.g. '30s'"),
        (
            {"sent_to": "spread"},
            "network: unknown key 'sent_to' (did you mean 'send_to'?); accepted: send_to, converge_within",
        ),
    ],
)
def test_a_bad_network_argument_is_one_line_naming_it_and_the_fix(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_network(value)
    assert str(caught.value) == message and "\n" not in str(caught.value)


def test_the_network_argument_travels_in_the_plan() -> None:
    spec = parse_spec({"gas_per_sec": "1M", "duration": "2s", "network": {"send_to": "spread"}})
    plan = compile_plan(spec, name="t", seed=1)
    assert plan.network == (("send_to", "spread"),)
    assert type(plan).from_dict(plan.to_dict()).network == plan.network
    assert spec.replace(duration="3s").network == spec.network


class FakeDevnet:
    kind = "network"

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls

    def node_urls(self) -> dict[str, str]:
        return self.urls


def plan_sending_to(send_to: str) -> Any:
    spec = parse_spec({"gas_per_sec": "1M", "duration": "2s", "network": {"send_to": send_to}})
    return compile_plan(spec, name="t", seed=1)


def test_send_to_a_node_the_devnet_lacks_or_on_a_single_node_is_refused_before_the_run() -> None:
    with pytest.raises(ConfigError, match=r"names no node of the devnet; its nodes: node0, node1$"):
        NetworkWatch.open(plan_sending_to("node7"), FakeDevnet({"node0": "http://a", "node1": "http://b"}))
    with pytest.raises(ConfigError, match=r"needs a devnet of several nodes \(--gashammer-devnet network\)"):
        NetworkWatch.open(plan_sending_to("spread"), FakeDevnet({}))
    assert NetworkWatch.open(plan_sending_to("builder"), FakeDevnet({})) is None


def test_the_edges_send_to_the_builder_one_node_or_every_node_the_builder_through_its_proxy() -> None:
    urls = {"node0": "http://n0", "node1": "http://n1", "node2": "http://n2"}

    def watch(send_to: str) -> NetworkWatch:
        return NetworkWatch(plan_sending_to(send_to), FakeDevnet(urls), urls, first_block=1)

    assert watch("builder").send_urls("http://proxy") == []
    assert watch("node2").send_urls("http://proxy") == ["http://n2"]
    assert watch("spread").send_urls("http://proxy") == ["http://proxy", "http://n1", "http://n2"]


# ------------------------------------------------------------------------------------- fault kinds


def parsed(**fault: Any) -> dict[str, Any]:
    (one,) = parse_faults([{"at": "1s", "duration": "2s", **fault}])
    return one


def test_the_network_fault_kinds_take_their_nodes() -> None:
    groups = [["node0", "node1", "node2"], ["node3"]]
    assert parsed(kind="net.partition", groups=groups)["params"] == {"groups": groups}
    assert parsed(kind="net.disconnect", a="node0", b="node3")["params"] == {"a": "node0", "b": "node3"}
    assert parsed(kind="node.stop", name="node3")["params"] == {"name": "node3"}


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            {"kind": "net.partition", "groups": "node3"},
            "faults[0] net.partition groups='node3' must be a list of non-empty lists of node names",
        ),
        (
            {"kind": "net.partition", "groups": [["node0"], []]},
            "faults[0] net.partition groups=[['node0'], []] must be a list of non-empty lists of node names",
        ),
        (
            {"kind": "net.partition", "groups": [["node0", "node1"], ["node1"]]},
            "faults[0] net.partition groups: node1 is in two groups; a node is on one side of a partition",
        ),
        (
            {"kind": "net.partition", "groups": [["node0"], ["n3"]]},
            "faults[0] net.partition groups='n3' must be a node's name such as 'node2'",
        ),
        ({"kind": "net.partition"}, "faults[0] net.partition needs groups=..., the sides of the split"),
        (
            {"kind": "net.disconnect", "a": "node1", "b": "node1"},
            "faults[0] net.disconnect: a and b are both node1; a link joins two different nodes",
        ),
        (
            {"kind": "node.stop", "name": 3},
            "faults[0] node.stop name=3 must be a node's name such as 'node2'",
        ),
        ({"kind": "node.stop", "node": "node3"}, "faults[0] node.stop: unknown parameter 'node'; accepted:"),
    ],
)
def test_a_bad_network_fault_is_one_line_naming_it(fault: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_faults([{"at": "1s", "duration": "2s", **fault}])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_network_faults_are_refused_on_a_single_node_or_for_a_node_the_devnet_lacks() -> None:
    partition = parsed(kind="net.partition", groups=[["node0", "node1"], ["node5"]])
    with pytest.raises(ConfigError) as caught:
        check_fault_target([partition], where="the ethereumjs devnet", network_nodes=[])
    assert str(caught.value) == (
        "faults[0] net.partition needs a devnet of several nodes the plugin started; the ethereumjs devnet "
        "has a single node: run with --gashammer-devnet network, or remove the fault"
    )
    with pytest.raises(ConfigError) as caught:
        check_fault_target([partition], where="the network devnet", network_nodes=NODES)
    assert str(caught.value) == (
        "faults[0] net.partition names node5, which the network devnet does not have; its nodes: "
        "node0, node1, node2, node3"
    )
    check_fault_target([partition], where="the network devnet", network_nodes=None)  # not known yet


def test_network_faults_take_turns() -> None:
    phases = (Phase("sustain", 0.0, 10.0, 1e6, 1e6),)
    faults = parse_faults(
        [
            {"kind": "net.partition", "at": "1s", "duration": "4s", "groups": [["node0"], ["node1"]]},
            {"kind": "node.stop", "at": "3s", "duration": "1s", "name": "node2"},
        ]
    )
    with pytest.raises(
        ConfigError, match=r"^faults\[1\] node.stop begins at 3 s while faults\[0\] net.partition"
    ):
        place_faults(faults, phases)


class FakeNetwork:
    """Records what the schedule asked of the network control, with run-clock times."""

    def __init__(self) -> None:
        self.origin = time.monotonic()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def node_names(self) -> list[str]:
        return list(NODES)

    def partition(self, *groups: list[str]) -> None:
        self._record("partition", *groups)

    def heal(self) -> None:
        self._record("heal")

    def disconnect(self, a: str, b: str) -> None:
        self._record("disconnect", a, b)

    def connect(self, a: str, b: str) -> None:
        self._record("connect", a, b)

    def stop(self, name: str) -> None:
        self._record("stop", name)

    def start(self, name: str) -> None:
        self._record("start", name)


def test_the_schedule_drives_each_network_fault_through_the_control_and_undoes_it() -> None:
    network = FakeNetwork()
    steps = [
        {
            "index": 0,
            "kind": "net.partition",
            "start": 0.05,
            "end": 0.1,
            "params": {"groups": [["node0"], ["node3"]]},
        },
        {
            "index": 1,
            "kind": "net.disconnect",
            "start": 0.15,
            "end": 0.2,
            "params": {"a": "node0", "b": "node1"},
        },
        {"index": 2, "kind": "node.stop", "start": 0.25, "end": 10.0, "params": {"name": "node3"}},
    ]
    schedule = FaultSchedule(steps, FaultTargets(network=network))
    schedule.start(network.origin)
    time.sleep(0.5)
    records = schedule.close()  # the stop is still active: closing starts the node again
    assert network.calls == [
        ("partition", (["node0"], ["node3"])),
        ("heal", ()),
        ("disconnect", ("node0", "node1")),
        ("connect", ("node0", "node1")),
        ("stop", ("node3",)),
        ("start", ("node3",)),
    ]
    assert all(record.error is None and record.ended_at is not None for record in records)


def test_a_network_fault_without_a_network_control_is_recorded_not_raised() -> None:
    steps = [{"index": 0, "kind": "node.stop", "start": 0.0, "end": 0.05, "params": {"name": "node3"}}]
    schedule = FaultSchedule(steps, FaultTargets())
    schedule.start()
    time.sleep(0.2)
    (record,) = schedule.close()
    assert record.error is not None and "no network control" in record.error
