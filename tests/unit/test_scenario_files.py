"""Scenario files: read through the marker's table and parser, errors at the file's line and column,
the JSON Schema from the same table, ``gashammer validate`` and ``gashammer schema``, collection."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from pytest_gashammer.cli import main
from pytest_gashammer.scenario.arguments import ARGUMENTS
from pytest_gashammer.scenario.files import (
    ScenarioFileError,
    file_schema,
    is_scenario_file,
    load_file,
    load_text,
)
from pytest_gashammer.scenario.spec import compile_plan, parse_spec

EXAMPLES = Path(__file__).parents[2] / "examples" / "scenarios"

MARKER_ARGUMENTS = {
    "gas_per_sec": "5M",
    "duration": "10s",
    "warmup": "2s",
    "ramp": "3s",
    "workload": {
        "transfer": 0.8,
        "pytest_gashammer.workload.storage:StorageTemplate": {"share": 0.2, "slots": 4},
    },
    "arrival": "poisson",
    "seed": 7,
    "receipts": "all",
    "isolated": True,
    "slo": {"inclusion_p99": "2s", "min_gas_ratio": 0.95},
    "skip_invariants": ["gas_model"],
    "faults": [{"kind": "node.pause", "at": "sustain+3s", "duration": "2s"}],
}

SAME_IN_A_FILE = """\
defaults:
  warmup: 2s
  arrival: poisson
  receipts: all
scenarios:
  transfers_5m:
    gas_per_sec: 5M
    duration: 10s
    ramp: 3s
    workload:
      transfer: 0.8
      pytest_gashammer.workload.storage:StorageTemplate: {share: 0.2, slots: 4}
    seed: 7
    isolated: true
    slo: {inclusion_p99: 2s, min_gas_ratio: 0.95}
    skip_invariants: [gas_model]
    faults:
      - {kind: node.pause, at: sustain+3s, duration: 2s}
  search:
    capacity: {from: 1M, to: 8M, step: 2s}
    slo: {inclusion_p99: 1s}
"""


def test_a_file_and_a_marker_with_the_same_content_give_the_same_plan() -> None:
    transfers, search = load_text(SAME_IN_A_FILE, "gashammer_l2.yaml")
    assert (transfers.name, transfers.error, transfers.mark.line) == ("transfers_5m", None, 6)
    marker_spec = parse_spec(MARKER_ARGUMENTS)
    assert transfers.spec == marker_spec
    assert compile_plan(transfers.spec, name="transfers_5m", seed=7, duration_scale=0.5) == compile_plan(
        marker_spec, name="transfers_5m", seed=7, duration_scale=0.5
    )
    # The defaults reach every scenario; a scenario's own value replaces one.
    assert search.error is None and search.spec is not None
    assert search.spec == parse_spec(
        {
            "warmup": "2s",
            "arrival": "poisson",
            "receipts": "all",
            "capacity": {"from": "1M", "to": "8M", "step": "2s"},
            "slo": {"inclusion_p99": "1s"},
        }
    )


def located(text: str) -> str:
    """The one error of ``text``: the file's, or its only invalid scenario's."""
    try:
        scenarios = load_text(textwrap.dedent(text), "scenarios/gashammer_l2.yaml")
    except ScenarioFileError as exc:
        return str(exc)
    (error,) = [scenario.error for scenario in scenarios if scenario.error is not None]
    return error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """\
            scenarios:
              ok: {gas_per_sec: 1M}
              transfers_5m:
                gas_per_sec: 5M
                workload:
                  transfer: 0.8
                  transfr: 0.2
            """,
            "scenarios/gashammer_l2.yaml:7:7: workload.transfr: unknown template 'transfr' "
            "(did you mean 'transfer'?) in workload=...; use one of calldata, deploy,",
        ),
        (
            """\
            scenarios:
              s:
                gas_per_sec: 5M
                dration: 10s
            """,
            "scenarios/gashammer_l2.yaml:4:5: dration: unknown argument 'dration' (did you mean 'duration'?); "
            "accepted: gas_per_sec, duration,",
        ),
        (
            """\
            defaults:
              duration: ten seconds
            scenarios:
              s: {gas_per_sec: 5M}
            """,
            "scenarios/gashammer_l2.yaml:2:3: duration: duration='ten seconds' is not a duration",
        ),
        (
            """\
            scenarios:
              s:
                gas_per_sec: 5M
                slo: {inclusion_p99: 2s, inclusion_p999: 3s}
            """,
            "scenarios/gashammer_l2.yaml:4:30: slo.inclusion_p999: slo: unknown objective 'inclusion_p999' "
            "(did you mean 'inclusion_p99'?)",
        ),
        (
            """\
            scenarios:
              s:
                gas_per_sec: 5M
                faults:
                  - {kind: node.pause, at: 1s, duration: 1s}
                  - kind: node.pause
                    at: 3s
                    duration: 1s
                    durration: 1s
            """,
            "scenarios/gashammer_l2.yaml:9:9: faults[1].durration: faults[1] node.pause: unknown parameter "
            "'durration' (did you mean 'duration'?)",
        ),
        (
            """\
            scenarios:
              s:
                capacity: {from: 1M, to: 8M, stepp: 2s}
            """,
            "scenarios/gashammer_l2.yaml:3:34: capacity.stepp: capacity: unknown key 'stepp' (did you mean 'step'?)",
        ),
        (
            """\
            scenarios:
              s: {duration: 3s}
            """,
            "scenarios/gashammer_l2.yaml:2:3: s: needs gas_per_sec=...",
        ),
        (
            """\
            scenarios:
              s: {gas_per_sec: 5M, duration: 3s, faults: [{kind: node.pause, at: 9s, duration: 1s}]}
            """,
            "scenarios/gashammer_l2.yaml:2:47: faults[0]: faults[0] node.pause runs 9-10 s, past the end of the run",
        ),
        (
            "scenario:\n  s: {gas_per_sec: 5M}\n",
            "scenarios/gashammer_l2.yaml:1:1: scenario: unknown key (did you mean 'scenarios'?)",
        ),
        ("defaults: {}\n", "scenarios/gashammer_l2.yaml:1:1: the file needs scenarios:"),
        ("", "scenarios/gashammer_l2.yaml:1:1: the file is empty"),
        ("- a\n", "scenarios/gashammer_l2.yaml:1:1: the file must be a mapping with scenarios:"),
        (
            "scenarios:\n  s: {gas_per_sec: 5M\n",
            "scenarios/gashammer_l2.yaml:3:1: not valid YAML: expected ',' or '}'",
        ),
        (
            "scenarios:\n  s: {gas_per_sec: 5M}\n  s: {gas_per_sec: 6M}\n",
            "scenarios/gashammer_l2.yaml:3:3: scenarios.s: duplicate key (first at line 2); remove one",
        ),
        (
            "scenarios:\n  'a b': {gas_per_sec: 5M}\n",
            "scenarios/gashammer_l2.yaml:2:3: scenario name 'a b' must be",
        ),
        (
            "scenarios:\n  s: {gas_per_sec: 5M, 1: 2}\n",
            "scenarios/gashammer_l2.yaml:2:24: 1 is not an argument name",
        ),
        ("scenarios:\n  s: 5M\n", "scenarios/gashammer_l2.yaml:2:3: s: a scenario is a mapping of arguments"),
    ],
)
def test_a_problem_is_one_line_at_its_line_and_column(text: str, expected: str) -> None:
    error = located(text)
    assert error.startswith(expected), error
    assert "\n" not in error


def test_yaml_anchors_and_merge_keys_are_read() -> None:
    (scenario,) = load_text(
        "common: &common {gas_per_sec: 2M, duration: 3s}\n".replace("common:", "defaults:")
        + "scenarios:\n  s:\n    <<: *common\n    duration: 4s\n",
        "f.yaml",
    )
    assert scenario.error is None and scenario.spec is not None
    assert (scenario.spec.gas_per_sec, scenario.spec.duration) == (2e6, 4.0)


def test_file_names_that_are_collected() -> None:
    assert is_scenario_file(Path("gashammer_l2.yaml"))
    assert is_scenario_file(Path("dir/l2.gashammer.yaml"))
    assert not is_scenario_file(Path("l2.yaml"))
    assert not is_scenario_file(Path("gashammer_l2.yml.bak"))


def test_the_schema_covers_every_argument_and_accepts_every_example() -> None:
    schema = file_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    scenario = schema["$defs"]["scenario"]["properties"]
    assert list(scenario) == [argument.name for argument in ARGUMENTS]
    for name, fragment in scenario.items():
        assert set(fragment) - {"description", "default"}, f"{name} has no type in the schema"
    validator = jsonschema.Draft202012Validator(schema)
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert len(examples) >= 3 and all(is_scenario_file(path) for path in examples)
    for path in examples:
        errors = [error.message for error in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], path
    # What the schema refuses, an editor marks as you type.
    bad = yaml.safe_load(
        "scenarios:\n  s:\n    gas_per_sec: 5M\n    dration: 1s\n    workload: {transfer: -1}\n"
        "    slo: {inclusion_p999: 1s}\n    faults: [{kind: node.pase, at: 1s}]\n"
    )
    problems = {tuple(error.absolute_path): error.message for error in validator.iter_errors(bad)}
    assert "'dration' was unexpected" in problems[("scenarios", "s")]
    assert "'inclusion_p999' was unexpected" in problems[("scenarios", "s", "slo")]
    assert problems[("scenarios", "s", "workload", "transfer")].startswith("-1 is not valid")
    assert problems[("scenarios", "s", "faults", 0, "kind")].startswith("'node.pase' is not one of")
    assert len(problems) == 4


def test_the_examples_are_valid_scenarios() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        if "custom_template" in path.name:
            continue  # its template imports where examples/ is on sys.path (the CLI test below)
        scenarios = load_file(path)
        assert scenarios and all(s.error is None for s in scenarios), [s.error for s in scenarios]


def test_validate_exit_codes_and_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # validate puts examples/ (its conftest's directory) on sys.path, as pytest would: not for long.
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["validate", str(EXAMPLES)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "3 scenario file(s), no problem(s)" in err
    bad = tmp_path / "gashammer_bad.yaml"
    bad.write_text(
        "scenarios:\n  a: {gas_per_sec: 5M, dration: 1s}\n  b: {gas_per_sec: 5M}\n  c: {gas_per_sec: -1}\n"
    )
    broken = tmp_path / "gashammer_broken.yaml"
    broken.write_text("scenarios: [\n")
    assert main(["validate", str(bad), str(broken)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{bad}:2:24: dration: unknown argument 'dration'")
    assert lines[1].startswith(f"{bad}:4:7: gas_per_sec: gas_per_sec=-1 ")
    assert lines[2].startswith(f"{broken}:2:1: not valid YAML")
    assert main(["validate", str(tmp_path / "missing")]) == 1
    assert "cannot read the file" in capsys.readouterr().out


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == file_schema()


def test_scenario_files_are_collected_as_tests(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        gashammer_l2="scenarios:\n  first: {gas_per_sec: 1M}\n  second: {gas_per_sec: 2M, dration: 1s}\n",
    )
    pytester.makefile(".gashammer.yaml", l1="scenarios:\n  third: {gas_per_sec: 1M}\n")
    pytester.makefile(".yaml", other="scenarios:\n  ignored: {gas_per_sec: 1M}\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q", "-m", "gashammer")
    result.stdout.fnmatch_lines(
        [
            "gashammer_l2.yaml::first",
            "gashammer_l2.yaml::second",
            "l1.gashammer.yaml::third",
            "3 tests collected*",
        ]
    )
    # An invalid scenario fails its own test at setup, before any devnet; its file's others still run.
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "second")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["gashammer_l2.yaml:3:29: dration: unknown argument 'dration'*"])
    # A file that is not a scenario file at all is a collection error, one located line.
    pytester.makefile(".yaml", gashammer_bad="scenarios:\n  s: {gas_per_sec: 1M\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["gashammer_bad.yaml:2:*: not valid YAML: *"])
    assert "Traceback" not in result.stdout.str()
