"""Marker arguments validated into a spec, and the spec compiled into a plain-data plan."""

from __future__ import annotations

import json
import math
import random
import sys
import types
from typing import Any, ClassVar

import pytest

from pytest_gashammer.errors import ConfigError
from pytest_gashammer.scenario.spec import (
    DEFAULTS,
    Phase,
    ScenarioPlan,
    ScenarioSpec,
    compile_plan,
    default_seed,
    parse_spec,
)
from pytest_gashammer.workload.base import Template

TRANSFER_PATH = "pytest_gashammer.workload.transfer:TransferTemplate"
USER_MODULE = "gashammer_user_templates"


class HeavyTemplate(Template):
    name: ClassVar[str] = "heavy"
    nominal_gas: ClassVar[int] = 210_000

    def build(self, sender_index: int, rng: random.Random) -> dict[str, Any]:
        return {"to": "0x" + "11" * 20, "value": 0, "data": b"\x01"}


class NotATemplate:
    pass


@pytest.fixture
def user_templates(monkeypatch: pytest.MonkeyPatch) -> str:
    """A user module importable as ``gashammer_user_templates`` holding one template and one other class."""
    module = types.ModuleType(USER_MODULE)
    module.HeavyTemplate = HeavyTemplate  # type: ignore[attr-defined]
    module.NotATemplate = NotATemplate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, USER_MODULE, module)
    return USER_MODULE


def spec_of(**arguments: Any) -> ScenarioSpec:
    return parse_spec({"gas_per_sec": "2M", **arguments})


def shares(workload: tuple[tuple[Any, ...], ...]) -> dict[str, float]:
    """Template name to gas share, whatever else each workload entry carries."""
    return {entry[0]: entry[1] for entry in workload}


def config_error(**arguments: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_spec(arguments)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


# ----------------------------------------------------------------------------------------------
# parse_spec: defaults


def test_only_gas_per_sec_is_required_and_the_rest_defaults() -> None:
    spec = parse_spec({"gas_per_sec": "2M"})
    assert spec.gas_per_sec == 2_000_000.0
    assert spec.duration == 10.0
    assert spec.warmup == 1.0
    assert spec.ramp == 0.0
    assert spec.cooldown == 0.0
    assert spec.warmup_rate == 0.1
    assert shares(spec.workload) == {"transfer": 1.0}
    assert spec.seed is None
    assert spec.arrival == "constant"
    assert spec.senders is None
    assert spec.inclusion_timeout == 30.0
    assert spec.receipts == 2000  # an evenly spread sample
    assert spec.max_in_flight is None


def test_human_friendly_values_are_normalised_to_seconds_and_plain_numbers() -> None:
    spec = spec_of(
        gas_per_sec="500k gas/s",
        duration="1m30s",
        warmup="500ms",
        ramp=2,
        cooldown="1.5s",
        warmup_rate=1,
        seed=0,
        arrival="poisson",
        senders=3,
        inclusion_timeout="2m",
        receipts=0,
        max_in_flight=64,
    )
    assert spec.gas_per_sec == 500_000.0
    assert spec.duration == 90.0
    assert spec.warmup == 0.5
    assert spec.ramp == 2.0
    assert spec.cooldown == 1.5
    assert spec.warmup_rate == 1.0 and isinstance(spec.warmup_rate, float)
    assert spec.seed == 0
    assert spec.arrival == "poisson"
    assert spec.senders == 3
    assert spec.inclusion_timeout == 120.0
    assert spec.receipts == 0
    assert spec.max_in_flight == 64


def test_the_marker_defaults_do_not_change_when_a_spec_is_parsed() -> None:
    before = json.dumps(DEFAULTS, sort_keys=True)
    parse_spec({"gas_per_sec": 1, "workload": {"transfer": 5}})
    assert json.dumps(DEFAULTS, sort_keys=True) == before


# ----------------------------------------------------------------------------------------------
# parse_spec: every error names its argument


def test_unknown_argument_is_named_with_the_accepted_list() -> None:
    message = config_error(gas_per_sec="2M", gas_per_second="2M")
    assert "'gas_per_second'" in message
    assert "accepted:" in message
    assert "gas_per_sec" in message.split("accepted:")[1]
    assert "duration" in message.split("accepted:")[1]


def test_missing_gas_per_sec_says_it_is_required() -> None:
    message = config_error(duration="5s")
    assert "gas_per_sec" in message
    assert "required" in message


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"gas_per_sec": "fast"}, "gas_per_sec="),
        ({"gas_per_sec": 0}, "gas_per_sec="),
        ({"duration": 0}, "duration="),
        ({"duration": "0s"}, "duration="),
        ({"duration": "soon"}, "duration="),
        ({"warmup": "-1s"}, "warmup="),
        ({"ramp": "later"}, "ramp="),
        ({"cooldown": -3}, "cooldown="),
        ({"inclusion_timeout": 0}, "inclusion_timeout="),
        ({"arrival": "bursty"}, "arrival="),
        ({"senders": 0}, "senders="),
        ({"senders": 2.5}, "senders="),
        ({"senders": True}, "senders="),
        ({"receipts": "some"}, "receipts="),
        ({"receipts": -1}, "receipts="),
        ({"warmup_rate": 0}, "warmup_rate="),
        ({"warmup_rate": 1.5}, "warmup_rate="),
        ({"warmup_rate": -0.1}, "warmup_rate="),
        ({"warmup_rate": math.nan}, "warmup_rate="),
        ({"warmup_rate": "10%"}, "warmup_rate="),
        ({"warmup_rate": True}, "warmup_rate="),
        ({"seed": -1}, "seed="),
        ({"seed": "42"}, "seed="),
        ({"max_in_flight": 0}, "max_in_flight="),
        ({"max_rejected_share": 1.5}, "max_rejected_share="),
        ({"max_rejected_share": -0.1}, "max_rejected_share="),
        ({"max_rejected_share": "10%"}, "max_rejected_share="),
        ({"max_rejected_share": True}, "max_rejected_share="),
        ({"max_rejected_share": math.nan}, "max_rejected_share="),
        ({"workload": ["transfer"]}, "workload="),
        ({"workload": {}}, "workload="),
        ({"workload": {"transfer": 0}}, "workload['transfer']"),
        ({"workload": {"transfer": -1}}, "workload['transfer']"),
        ({"workload": {"transfer": math.inf}}, "workload['transfer']"),
        ({"workload": {"transfer": math.nan}}, "workload['transfer']"),
        ({"workload": {"transfer": "half"}}, "workload['transfer']"),
        ({"workload": {"transfer": True}}, "workload['transfer']"),
    ],
)
def test_invalid_argument_error_names_the_argument(arguments: dict[str, Any], named: str) -> None:
    message = config_error(**{"gas_per_sec": "2M", **arguments})
    assert named in message


def test_arrival_error_lists_the_supported_arrivals() -> None:
    message = config_error(gas_per_sec="2M", arrival="bursty")
    assert "'constant'" in message and "'poisson'" in message


def test_max_rejected_share_error_is_one_line_with_the_fix() -> None:
    message = config_error(gas_per_sec="2M", max_rejected_share=2)
    assert "\n" not in message and "[0, 1]" in message and "max_rejected_share=0.1" in message
    assert parse_spec({"gas_per_sec": "2M", "max_rejected_share": 0}).max_rejected_share == 0.0
    assert parse_spec({"gas_per_sec": "2M", "max_rejected_share": 1}).max_rejected_share == 1.0


def test_receipts_error_says_all_is_accepted() -> None:
    assert "'all'" in config_error(gas_per_sec="2M", receipts="some")


def test_warmup_rate_error_shows_the_allowed_interval() -> None:
    for bad in (0, 1.5):
        assert "(0, 1]" in config_error(gas_per_sec="2M", warmup_rate=bad)


def test_unknown_template_name_lists_the_accepted_names() -> None:
    message = config_error(gas_per_sec="2M", workload={"swap": 1.0})
    assert "'swap'" in message
    assert "transfer" in message
    assert "module:" in message  # how to reference a user template


def test_template_from_an_unimportable_module_names_the_module() -> None:
    message = config_error(gas_per_sec="2M", workload={"nosuchmodule:X": 1.0})
    assert "'nosuchmodule:X'" in message
    assert "'nosuchmodule'" in message


@pytest.mark.parametrize(
    "path", [f"{USER_MODULE}:NotATemplate", f"{USER_MODULE}:Missing", "fractions:Fraction"]
)
def test_template_path_to_something_that_is_not_a_template_is_refused(user_templates: str, path: str) -> None:
    message = config_error(gas_per_sec="2M", workload={path: 1.0})
    assert path in message
    assert "Template" in message


def test_template_key_must_be_a_string() -> None:
    assert "workload key 7" in config_error(gas_per_sec="2M", workload={7: 1.0})


def test_user_template_by_import_path_is_accepted(user_templates: str) -> None:
    spec = spec_of(workload={f"{USER_MODULE}:HeavyTemplate": 1})
    assert shares(spec.workload) == {f"{USER_MODULE}:HeavyTemplate": 1.0}


def test_workload_weights_are_normalised_to_shares_summing_to_one(user_templates: str) -> None:
    spec = spec_of(workload={"transfer": 3, f"{USER_MODULE}:HeavyTemplate": 1})
    assert shares(spec.workload) == pytest.approx({"transfer": 0.75, f"{USER_MODULE}:HeavyTemplate": 0.25})
    assert math.fsum(shares(spec.workload).values()) == pytest.approx(1.0)
    assert [entry[0] for entry in spec.workload] == ["transfer", f"{USER_MODULE}:HeavyTemplate"]


def test_workload_weights_already_summing_to_one_are_kept() -> None:
    spec = spec_of(workload={"transfer": 0.4, TRANSFER_PATH: 0.6})
    assert shares(spec.workload) == pytest.approx({"transfer": 0.4, TRANSFER_PATH: 0.6})


# ----------------------------------------------------------------------------------------------
# ScenarioSpec.replace


def test_replace_applies_overrides_and_keeps_everything_else() -> None:
    spec = spec_of(duration="20s", senders=5, receipts=7, workload={"transfer": 2, TRANSFER_PATH: 2})
    changed = spec.replace(gas_per_sec="4M", duration="1m")
    assert changed.gas_per_sec == 4_000_000.0
    assert changed.duration == 60.0
    assert changed.senders == 5
    assert changed.receipts == 7
    assert changed.workload == spec.workload
    assert spec.gas_per_sec == 2_000_000.0  # the original is untouched


def test_replace_without_overrides_is_an_equal_spec() -> None:
    spec = spec_of(arrival="poisson", seed=9, cooldown="2s", max_in_flight=10)
    assert spec.replace() == spec
    assert spec_of().replace() == spec_of()  # receipts "all" survives the round trip


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"duration": 0}, "duration="),
        ({"senders": 0}, "senders="),
        ({"warmup_rate": 2}, "warmup_rate="),
        ({"workload": {"swap": 1}}, "'swap'"),
        ({"durations": "5s"}, "'durations'"),
    ],
)
def test_replace_validates_overrides_like_the_marker(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        spec_of().replace(**overrides)


# ----------------------------------------------------------------------------------------------
# compile_plan: the phase layout


def assert_phases(plan: ScenarioPlan, expected: list[tuple[str, float, float, float, float]]) -> None:
    """Names compared exactly, times and rates with approx, phase by phase.

    pytest.approx does not take tuples nested in a list (pytest 9.2 and newer refuse them), so each
    phase is compared on its own.
    """
    assert [p.name for p in plan.phases] == [name for name, *_ in expected]
    for phase, (_, *numbers) in zip(plan.phases, expected, strict=True):
        assert [phase.start, phase.end, phase.gas_from, phase.gas_to] == pytest.approx(numbers), phase.name


def test_every_phase_is_laid_out_back_to_back() -> None:
    spec = spec_of(warmup="1s", ramp="2s", duration="10s", cooldown="3s", warmup_rate=0.1)
    plan = compile_plan(spec, name="t", seed=1)
    assert_phases(
        plan,
        [
            ("warmup", 0.0, 1.0, 200_000.0, 200_000.0),
            ("ramp", 1.0, 3.0, 200_000.0, 2_000_000.0),
            ("sustain", 3.0, 13.0, 2_000_000.0, 2_000_000.0),
            ("cooldown", 13.0, 16.0, 2_000_000.0, 0.0),
        ],
    )
    assert plan.sending_time == 16.0
    assert plan.sustain.name == "sustain" and plan.sustain.length == 10.0
    assert plan.target_gas_per_sec == 2_000_000.0


def test_default_plan_is_a_warmup_then_the_sustain() -> None:
    plan = compile_plan(spec_of(), name="t", seed=1)
    assert_phases(
        plan,
        [("warmup", 0.0, 1.0, 200_000.0, 200_000.0), ("sustain", 1.0, 11.0, 2_000_000.0, 2_000_000.0)],
    )


def test_ramp_without_warmup_climbs_from_zero() -> None:
    plan = compile_plan(spec_of(warmup=0, ramp="4s", duration="5s"), name="t", seed=1)
    assert_phases(
        plan,
        [("ramp", 0.0, 4.0, 0.0, 2_000_000.0), ("sustain", 4.0, 9.0, 2_000_000.0, 2_000_000.0)],
    )


def test_ramp_after_warmup_starts_from_the_warmup_rate() -> None:
    plan = compile_plan(spec_of(warmup="2s", warmup_rate=0.25, ramp="4s"), name="t", seed=1)
    ramp = next(p for p in plan.phases if p.name == "ramp")
    assert ramp.gas_from == pytest.approx(500_000.0)
    assert ramp.gas_to == pytest.approx(2_000_000.0)
    assert ramp.start == pytest.approx(2.0)


def test_zero_length_phases_are_left_out() -> None:
    plan = compile_plan(spec_of(warmup=0, ramp=0, cooldown=0, duration="3s"), name="t", seed=1)
    assert [p.name for p in plan.phases] == ["sustain"]
    assert plan.sustain.start == 0.0 and plan.sustain.end == 3.0


def test_duration_scale_scales_every_phase_but_no_rate() -> None:
    spec = spec_of(warmup="1s", ramp="2s", duration="10s", cooldown="3s")
    full = compile_plan(spec, name="t", seed=1)
    tenth = compile_plan(spec, name="t", seed=1, duration_scale=0.1)
    assert tenth.duration_scale == 0.1
    assert [p.name for p in tenth.phases] == [p.name for p in full.phases]
    for short, long in zip(tenth.phases, full.phases, strict=True):
        assert short.start == pytest.approx(long.start * 0.1)
        assert short.end == pytest.approx(long.end * 0.1)
        assert (short.gas_from, short.gas_to) == (long.gas_from, long.gas_to)
    assert tenth.sending_time == pytest.approx(1.6)


def test_duration_scale_never_collapses_the_sustain_to_nothing() -> None:
    plan = compile_plan(spec_of(duration="1s", warmup=0), name="t", seed=1, duration_scale=1e-9)
    assert plan.sustain.length > 0


@pytest.mark.parametrize("scale", [0, -1, math.nan, math.inf])
def test_bad_duration_scale_is_refused_naming_the_option(scale: float) -> None:
    with pytest.raises(ConfigError, match="--gashammer-duration-scale"):
        compile_plan(spec_of(), name="t", seed=1, duration_scale=scale)


def test_plan_carries_the_spec_settings() -> None:
    spec = spec_of(arrival="poisson", senders=7, receipts=3, max_in_flight=99, inclusion_timeout="5s")
    plan = compile_plan(spec, name="tests/test_x.py::test_y", seed=1234)
    assert plan.name == "tests/test_x.py::test_y"
    assert plan.seed == 1234
    assert plan.arrival == "poisson"
    assert plan.senders == 7
    assert plan.receipts == 3
    assert plan.max_in_flight == 99
    assert plan.inclusion_timeout == 5.0
    assert plan.workload == spec.workload


# ----------------------------------------------------------------------------------------------
# the plan as plain data


def test_plan_round_trips_through_json(user_templates: str) -> None:
    spec = spec_of(
        warmup="1s",
        ramp="2s",
        cooldown="1s",
        arrival="poisson",
        receipts=10,
        max_in_flight=500,
        workload={"transfer": 1, f"{USER_MODULE}:HeavyTemplate": 3},
    )
    plan = compile_plan(spec, name="tests/test_load.py::test_rate[20M]", seed=2**32 - 1, duration_scale=0.5)
    wire = json.dumps(plan.to_dict())
    again = ScenarioPlan.from_dict(json.loads(wire))
    assert again == plan
    assert isinstance(again.phases, tuple) and all(isinstance(p, Phase) for p in again.phases)
    assert isinstance(again.workload, tuple)


def test_plan_with_every_receipt_round_trips_through_json() -> None:
    plan = compile_plan(spec_of(), name="n", seed=0)
    assert ScenarioPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_plan_dict_is_plain_data() -> None:
    data = compile_plan(spec_of(ramp="1s"), name="n", seed=3).to_dict()

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, str | int | float | bool)

    assert plain(data)


def test_gas_rate_at_follows_the_phases() -> None:
    plan = compile_plan(spec_of(warmup="1s", ramp="2s", duration="10s", cooldown="4s"), name="t", seed=1)
    assert plan.gas_rate_at(-0.5) == 0.0
    assert plan.gas_rate_at(0.0) == pytest.approx(200_000.0)
    assert plan.gas_rate_at(0.5) == pytest.approx(200_000.0)
    assert plan.gas_rate_at(2.0) == pytest.approx(1_100_000.0)  # half-way up the ramp
    assert plan.gas_rate_at(3.0) == pytest.approx(2_000_000.0)
    assert plan.gas_rate_at(12.9) == pytest.approx(2_000_000.0)
    assert plan.gas_rate_at(14.0) == pytest.approx(1_500_000.0)  # a quarter into the cooldown
    assert plan.gas_rate_at(17.0) == 0.0
    assert plan.gas_rate_at(100.0) == 0.0


# ----------------------------------------------------------------------------------------------
# senders and seeds


def test_auto_sender_count_grows_with_the_rate() -> None:
    rates = [100_000, 2_000_000, 20_000_000, 100_000_000, 400_000_000, 10_000_000_000]
    counts = [compile_plan(spec_of(gas_per_sec=rate), name="t", seed=1).senders for rate in rates]
    assert counts == sorted(counts)
    assert counts[0] < counts[-1]
    assert all(8 <= count <= 1024 for count in counts)
    # Each sender keeps a modest number of transfers per second until the cap is reached.
    for rate, count in zip(rates, counts, strict=True):
        if count < 1024:
            assert rate / 21_000 / count <= 40


def test_auto_sender_count_follows_the_gas_per_transaction(user_templates: str) -> None:
    light = compile_plan(spec_of(gas_per_sec="200M"), name="t", seed=1)
    heavy = compile_plan(
        spec_of(gas_per_sec="200M", workload={f"{USER_MODULE}:HeavyTemplate": 1}), name="t", seed=1
    )
    assert heavy.senders < light.senders


def test_explicit_senders_win_over_the_automatic_count() -> None:
    assert compile_plan(spec_of(gas_per_sec="1G", senders=2), name="t", seed=1).senders == 2


def test_default_seed_is_stable_across_runs_and_processes() -> None:
    nodeid = "tests/test_chain.py::test_sustains_20M"
    assert default_seed(nodeid) == default_seed(nodeid)
    # Pinned: a recorded seed must replay the same transactions in later runs and versions.
    assert default_seed(nodeid) == 3448070839


def test_default_seed_differs_across_node_ids_and_is_a_valid_seed() -> None:
    ids = [f"tests/test_chain.py::test_rate[{rate}M]" for rate in range(50)]
    seeds = {default_seed(nodeid) for nodeid in ids}
    assert len(seeds) == len(ids)
    for seed in seeds:
        assert spec_of(seed=seed).seed == seed
